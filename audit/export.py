"""Export a run's metrics for other tools: lm-evaluation-harness's results JSON, or a tidy table.

    opt-audit export RUN --format lm-eval|csv|parquet [--out PATH]

- `lm-eval` writes the shape of an lm-evaluation-harness 0.4 `results_<date>.json` (`results`,
  `versions`, `n-shot`, `higher_is_better`, `n-samples`, `configs`, `config`, `model_name`,
  `date`) for the tasks both tools score the same way, so a leaderboard or notebook that reads
  lm-eval's files reads ours beside them. Which tasks those are, and which of our metrics each
  reports under which key, each probe declares in its description (`ProbeInfo.lm_eval`, read from
  the run's summary.json); `bench/likelihood_vs_lmeval.py` checks every such log-likelihood and
  aggregate against lm-eval 0.4.13 to 1e-4. lm-eval reports fractions where we report percent: a
  `%` metric is divided by 100. The standard errors are lm-eval's (`mean_stderr`: the sample
  standard deviation of the per-item values over sqrt(n)), computed from samples/<probe>.jsonl. A
  skipped metric is left out and named in the export's notes, never written as a number.
- `csv` / `parquet`: one row per metric and per group of it (the overall value has an empty
  group), with the run, model, value, unit, 95% CI, n, direction and status, so nothing is
  dropped: a skipped metric is a row with no value and its `status`. Parquet needs pyarrow, which
  opt-audit does not depend on; without it `--format parquet` is a one-line error.

Reads the run through `audit.store`; runs no model.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Sequence

from audit.errors import AuditError
from audit.store import Run, atomic_write_text, load_run
from audit.types import LmEvalTask, Metric, ProbeInfo

Format = Literal["lm-eval", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("lm-eval", "csv", "parquet")
DEFAULT_NAMES = {"lm-eval": "lm_eval_results.json", "csv": "metrics.csv", "parquet": "metrics.parquet"}
COLUMNS = ("run_id", "model", "probe", "metric", "group", "value", "unit", "ci_low", "ci_high", "n",
           "direction", "status")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs such a cell as a formula


@dataclass(frozen=True)
class TidyRow:
    """One metric, or one group of it, as a table row (the overall value has group "")."""

    run_id: str
    model: str
    probe: str
    metric: str
    group: str  # "" for the metric over all items
    value: float  # NaN when the metric is skipped
    unit: str
    ci_low: float | None
    ci_high: float | None
    n: int
    direction: str  # "higher_is_better", "lower_is_better", "ideal=<v>" or "none"
    status: str  # "ok" or "skipped: <reason>"


@dataclass(frozen=True)
class Exported:
    """What an export wrote, and what it left out and why."""

    path: Path
    format: str
    written: tuple[str, ...]  # "probe.metric" (lm-eval) or rows (tables) written
    notes: tuple[str, ...]  # metrics left out of an lm-eval export, and why


def _direction(m: Metric) -> str:
    if m.higher_is_better is True:
        return "higher_is_better"
    if m.higher_is_better is False:
        return "lower_is_better"
    return f"ideal={m.ideal:g}" if m.ideal is not None else "none"


def _model(run: Run) -> str:
    spec = run.manifest.spec
    return str(run.manifest.facts.model or (spec.model.model if spec is not None else "") or "")


def tidy_rows(run: Run) -> list[TidyRow]:
    """Every metric of the run and every group of each, in summary order; skipped metrics included."""
    run_id, model = run.run_id, _model(run)
    rows: list[TidyRow] = []
    for probe, summary in run.probes.items():
        for m in summary.metrics:
            ci = m.ci if m.ok else None
            rows.append(TidyRow(run_id, model, probe, m.name, "", m.value if m.ok else math.nan, m.unit,
                                ci[0] if ci else None, ci[1] if ci else None, m.n, _direction(m), m.status))
            if not m.ok:
                continue
            for group, g in m.groups.items():
                rows.append(TidyRow(run_id, model, probe, m.name, group, g.value, m.unit,
                                    g.ci[0] if g.ci else None, g.ci[1] if g.ci else None, g.n, _direction(m),
                                    m.status))
    return rows


def _cell(value: Any) -> Any:
    """A CSV cell: no value is empty; a text cell that a spreadsheet would run as a formula gets a
    leading apostrophe (OWASP CSV injection: group names and model ids are user text)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: Sequence[TidyRow]) -> str:
    """The tidy rows as CSV with a header line; floats at full precision."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_cell(getattr(r, c)) for c in COLUMNS])
    return out.getvalue()


def write_parquet(rows: Sequence[TidyRow], path: Path) -> None:
    """The tidy rows as Parquet (pandas + pyarrow); a missing pyarrow is a one-line error."""
    try:
        import pyarrow  # noqa: F401 - only to say clearly what is missing
    except ImportError:
        raise AuditError("--format parquet needs the pyarrow package, which is not installed "
                         "(pip install pyarrow), or use --format csv") from None
    import pandas as pd

    frame = pd.DataFrame([{c: getattr(r, c) for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    frame["n"] = frame["n"].astype("int64")
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = frame[column].astype("float64")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.to_parquet(tmp, engine="pyarrow", index=False)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise AuditError(f"{path}: cannot write it ({e.strerror or e})") from None


def _stderr(values: Sequence[float]) -> float | str:
    """lm-eval's mean_stderr: sample standard deviation (n - 1) over sqrt(n); "N/A" below 2 items."""
    n = len(values)
    if n < 2:
        return "N/A"
    mean = sum(values) / n
    return math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


FullSize = Callable[[Run, str, int], int]
"""(run, probe, effective items) -> items in the probe's whole data set. Passed in by the composition
roots (cli.py, api.py), which know the probes; audit/ never imports them."""


Registered = Callable[[str], ProbeInfo | None]
"""probe name -> this opt-audit's description of it, or None: where a run was written before probes
declared their lm-eval tasks, those of the probe registered under its name are exported (as
`reports.describe` falls back for old runs). Passed in by the composition roots."""


def _effective(run: Run, probe: str, effective: int) -> int:
    return effective


def _unregistered(probe: str) -> ProbeInfo | None:
    return None


class SharedTask(NamedTuple):
    """An lm-eval task that scores one of the run's probes' items exactly as the probe does."""

    probe: str
    task: LmEvalTask


def shared_tasks(run: Run, registered: Registered = _unregistered) -> list[SharedTask]:
    """Every lm-eval task the run's probes declare, in task-name order (whatever order the run ran its
    probes in, so two runs of the same probes export alike)."""
    found: list[SharedTask] = []
    for probe, summary in run.probes.items():
        tasks = summary.info.lm_eval
        if tasks is None:  # written before probes declared it: today's description of the probe
            current = registered(probe)
            tasks = current.lm_eval if current is not None else None
        found.extend(SharedTask(probe, task) for task in tasks or ())
    return sorted(found, key=lambda shared: shared.task.task)


def _unix_time(run: Run) -> float | None:
    stamp = run.manifest.finished_at or run.manifest.started_at
    try:
        return datetime.fromisoformat(str(stamp)).timestamp() if stamp else None
    except ValueError:
        return None


def lm_eval_results(run: Run, full_size: FullSize = _effective, registered: Registered = _unregistered
                    ) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """lm-eval's results JSON for the tasks this run shares with it: (document, "probe.metric"
    written, notes on what was left out). No shared metric at all is an error."""
    from audit import __version__

    results: dict[str, Any] = {}
    versions: dict[str, str] = {}
    n_shot: dict[str, int] = {}
    higher: dict[str, dict[str, bool]] = {}
    n_samples: dict[str, dict[str, int]] = {}
    configs: dict[str, dict[str, Any]] = {}
    written: list[str] = []
    notes: list[str] = []
    tasks = shared_tasks(run, registered)
    for probe, task in tasks:
        summary = run.probes[probe]
        by_name = {m.name: m for m in summary.metrics}
        entry: dict[str, Any] = {"alias": task.task}
        n = 0
        for shared in task.metrics:
            m = by_name.get(shared.metric)
            where = f"{probe}.{shared.metric}"
            if m is None or not m.ok or not math.isfinite(m.value):
                why = "missing" if m is None else (m.status if not m.ok else "without a value")
                notes.append(f"{where} is {why}: not exported to {task.task}")
                continue
            scale = 0.01 if m.unit == "%" else 1.0  # lm-eval reports fractions, we report percent
            items = [float(r[shared.item_field]) for r in run.samples(probe)]
            value = m.value * scale
            if len(items) != m.n or not math.isclose(sum(items) / max(len(items), 1), value, rel_tol=1e-6,
                                                     abs_tol=1e-9):
                raise AuditError(f"{run.path}: samples/{probe}.jsonl does not reproduce {where} "
                                 f"({len(items)} rows for n = {m.n}); the run is damaged")
            entry[f"{shared.lm_eval_metric},none"] = value
            entry[f"{shared.lm_eval_metric}_stderr,none"] = _stderr(items)
            higher.setdefault(task.task, {})[shared.lm_eval_metric] = shared.higher_is_better
            written.append(where)
            n = m.n
        if len(entry) == 1:
            continue
        results[task.task] = entry
        versions[task.task] = task.version
        n_shot[task.task] = 0  # a probe's few-shot primer, where it has one, is part of its prompt text, as in lm-eval
        n_samples[task.task] = {"original": full_size(run, probe, n), "effective": n}
        configs[task.task] = {"task": task.task, "output_type": "multiple_choice", "num_fewshot": 0,
                              "metadata": {"version": task.version,
                                           "opt_audit_probe": f"{probe} v{summary.info.version}"}}
    others = [p for p in run.probes if p not in {t.probe for t in tasks}]
    if others:
        notes.append(f"no lm-eval counterpart, not exported: {', '.join(others)} (use --format csv for every metric)")
    if not results:
        raise AuditError(f"{run.path}: no metric shared with lm-evaluation-harness (it has "
                         f"{', '.join(run.probes) or 'no probes'}, and no probe of this run declares an lm-eval "
                         "task that scores its items as it does); use --format csv")
    facts, spec = run.manifest.facts, run.manifest.spec
    model_args = ",".join(f"{k}={v}" for k, v in (("pretrained", _model(run)), ("revision", facts.revision),
                                                   ("dtype", facts.dtype)) if v)
    document: dict[str, Any] = {
        "results": results,
        "group_subtasks": {task: [] for task in results},
        "configs": configs,
        "versions": versions,
        "n-shot": n_shot,
        "higher_is_better": higher,
        "n-samples": n_samples,
        "config": {"model": spec.backend if spec is not None and spec.backend else "hf", "model_args": model_args,
                   "device": facts.device, "limit": run.manifest.limit, "random_seed": run.manifest.seed},
        "model_name": _model(run),
        "date": _unix_time(run),
        "opt_audit": {"version": __version__, "run_id": run.run_id,
                      "note": "written by opt-audit export from its own run, in lm-evaluation-harness's "
                              "results shape; versions are the lm-eval task versions these numbers match"},
    }
    return document, tuple(written), tuple(notes)


def _destination(run_dir: Path, fmt: str, out: Path | None) -> Path:
    if out is None:
        return run_dir / DEFAULT_NAMES[fmt]
    return out / DEFAULT_NAMES[fmt] if out.is_dir() else out


def export_run(run_dir: Path | str, fmt: str, out: Path | None = None, *,
               full_size: FullSize = _effective, registered: Registered = _unregistered) -> Exported:
    """Write one export of a complete run (default: into the run directory) and say what it holds.

    `full_size` gives lm-eval's n-samples "original"; without it, the run's own item count.
    `registered` gives the lm-eval tasks of a run written before probes declared them; without it,
    such a run's probes have none."""
    if fmt not in FORMATS:
        raise AuditError(f"--format {fmt!r}: unknown format (known: {', '.join(FORMATS)})")
    run = load_run(Path(run_dir))
    path = _destination(run.path, fmt, None if out is None else Path(out))
    if fmt == "lm-eval":
        document, written, notes = lm_eval_results(run, full_size, registered)
        atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
        return Exported(path, fmt, written, notes)
    rows = tidy_rows(run)
    if fmt == "csv":
        atomic_write_text(path, csv_text(rows))
    else:
        write_parquet(rows, path)
    return Exported(path, fmt, tuple(f"{r.probe}.{r.metric}" + (f"[{r.group}]" if r.group else "") for r in rows),
                    ())
