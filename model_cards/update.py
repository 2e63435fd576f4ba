"""Write a run's card to disk: create it, merge into an existing one (default), or replace it.

    update_card(run_dir, out=README.md)              new file: the full card
                                                     existing file: opt-audit's results merged in
                                                     (model_cards.merge), everything else kept
    update_card(run_dir, out=README.md, force=True)  the whole file replaced by a fresh card

Before an existing file changes, its bytes are copied to `<name>.bak`, or `<name>.bak.1`,
`.bak.2`, ... when earlier backups exist (a backup is never overwritten). A merge that changes
nothing writes nothing and makes no backup, so merging twice leaves one backup. Any problem
(malformed front matter, unreadable file) raises AuditError before anything is written.
Beside the card, the Hub's `.eval_results/<probe>.yaml` files are written for the probes that
have a confirmed Hub benchmark task (`model_cards.eval_results`; none today, and the result
says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import yaml

from audit.errors import AuditError
from audit.store import Run, atomic_write_text, load_run, write_error
from audit.verdicts import VerdictPolicy
from model_cards.build import build_card, results_section
from model_cards.eval_results import HUB_BENCHMARK_TASKS, HubBenchmarkTask, eval_results
from model_cards.info import CardInfo, load_card_info
from model_cards.merge import merge_card
from model_cards.metadata import index_results, model_name

EVAL_RESULTS_DIR = ".eval_results"  # huggingface_hub.constants.EVAL_RESULTS_FOLDER


@dataclass(frozen=True)
class CardUpdate:
    """What `update_card` did."""

    path: Path  # the card
    action: Literal["created", "merged", "replaced", "unchanged"]
    backup: Path | None  # the previous card's bytes, when it changed
    eval_results: tuple[Path, ...]  # .eval_results files written (or found up to date)
    note: str  # '' or one sentence the user should read (e.g. why no .eval_results were written)


def update_card(run_dir: Path, *, info: Path | None = None, out: Path | None = None, force: bool = False,
                tasks: Mapping[str, HubBenchmarkTask] = HUB_BENCHMARK_TASKS,
                verdict_policy: VerdictPolicy | None = None) -> CardUpdate:
    """Write the card of a complete run to `out` (default `<run_dir>/README.md`); see the module doc.
    `verdict_policy`: the thresholds of the verdicts the results open with (default: the bundled policy)."""
    card_info = load_card_info(info) if info is not None else CardInfo()  # the user's file first: cheap
    run = load_run(Path(run_dir))
    target = Path(out) if out is not None else Path(run_dir) / "README.md"
    existing = _read(target) if target.exists() else None
    if existing is None:
        text, action = build_card(run, card_info, verdict_policy=verdict_policy), "created"
    elif force:
        text, action = build_card(run, card_info, verdict_policy=verdict_policy), "replaced"
    else:
        if info is not None:
            raise AuditError(f"{target} exists, so opt-audit would merge only its results into it and "
                             f"ignore --info {info}; pass --force to rebuild the whole card from it "
                             "(the old file is kept as a backup), or leave out --info")
        text = merge_card(existing, section=results_section(run, verdict_policy=verdict_policy),
                          results=index_results(run), model=model_name(run), source=str(target))
        action = "merged"
    backup = None
    if existing is not None and text == existing:
        action = "unchanged"
    else:
        if existing is not None:
            backup = _backup(target, existing)
        atomic_write_text(target, text)
    written, note = _write_eval_results(run, target.parent / EVAL_RESULTS_DIR, tasks)
    return CardUpdate(target, action, backup, written, note)


def _read(path: Path) -> str:
    """The existing card's exact text (line endings kept); an unreadable one is an AuditError."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise AuditError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); a model card must be UTF-8") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: is a folder; --out names the card file, e.g. {path / 'README.md'}") from None
    except OSError as e:
        raise AuditError(f"{path}: cannot read it ({e.strerror or e})") from None


def _backup(target: Path, text: str) -> Path:
    """Copy `text` (the file's current bytes) to the first free `<name>.bak[.N]`, never over one."""
    candidates = [target.with_name(target.name + ".bak")] + [
        target.with_name(f"{target.name}.bak.{n}") for n in range(1, 1000)]
    for path in candidates:
        try:
            with open(path, "x", encoding="utf-8", newline="") as f:  # "x": fails if it exists
                f.write(text)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise write_error(path, e) from None
    raise AuditError(f"{target}: 1000 backups already exist beside it; remove old ones")


def _write_eval_results(run: Run, folder: Path, tasks: Mapping[str, HubBenchmarkTask]) -> tuple[tuple[Path, ...], str]:
    files = eval_results(run, tasks)
    if not files:
        return (), ("no .eval_results/ file written: none of this run's benchmarks is a registered Hub "
                    "benchmark with a known task id (see model_cards/eval_results.py)")
    written = []
    for stem, entries in files.items():
        path = folder / f"{stem}.yaml"
        text = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
        old = _read(path) if path.exists() else None
        if old != text:
            if old is not None:
                _backup(path, old)
            atomic_write_text(path, text)
        written.append(path)
    return tuple(written), ""
