"""What every page is given: the folder of runs, its runs, and the selected run and baseline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audit.store import Run
from dashboards.runs import RunEntry

CREATE_RUN = "opt-audit run --model tiny-opt --suite quick --out {runs_dir}"
"""The command an empty folder suggests (the offline demo run)."""
RUN_ALL_PROBES = "opt-audit run --model M --suite quick"
"""What a page suggests when the run has none of its probes: every probe, on a small subset."""


@dataclass(frozen=True)
class Context:
    """The page's inputs. `run` is None when the folder has no run that opens."""

    runs_dir: Path
    entries: tuple[RunEntry, ...]  # every run folder, newest first, bad ones included
    run: Run | None = None
    entry: RunEntry | None = None
    baseline: Run | None = None  # the run to compare against, when one is chosen
    baseline_entry: RunEntry | None = None

    @property
    def usable(self) -> tuple[RunEntry, ...]:
        """The runs that open (complete, readable)."""
        return tuple(e for e in self.entries if e.usable)

    @property
    def create_command(self) -> str:
        return CREATE_RUN.format(runs_dir=self.runs_dir)
