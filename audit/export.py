"""Export a run's metrics for other tools: lm-evaluation-harness's results JSON, or a tidy table.

    opt-audit export RUN --format lm-eval|csv|parquet [--out PATH]

- `lm-eval` writes the shape of an lm-evaluation-harness 0.4 `results_<date>.json` (`results`,
  `versions`, `n-shot`, `higher_is_better`, `n-samples`, `configs`, `config`, `model_name`,
  `date`) for the tasks both tools score the same way, so a leaderboard or notebook that reads
  lm-eval's files reads ours beside them. Those are CrowS-Pairs (`crows_pairs_english`:
  `pct_stereotype`, `likelihood_diff`) and TruthfulQA-MC (`truthfulqa_mc1`, `truthfulqa_mc2`:
  `acc`), whose every log-likelihood and aggregate `bench/likelihood_vs_lmeval.py` checks against
  lm-eval 0.4.13 to 1e-4. lm-eval reports fractions where we report percent: a `%` metric is
  divided by 100. The standard errors are lm-eval's (`mean_stderr`: the sample standard deviation
  of the per-item values over sqrt(n)), computed from samples/<probe>.jsonl. A skipped metric is
  left out and named in the export's notes, never written as a number.
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
from typing import Any, Callable, Literal, Sequence

from audit.errors import AuditError
from audit.store import Run, atomic_write_text, load_run
from audit.types import Metric

Format = Literal["lm-eval", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("lm-eval", "csv", "parquet")
DEFAULT_NAMES = {"lm-eval": "lm_eval_results.json", "csv": "metrics.csv", "parquet": "metrics.parquet"}
COLUMNS = ("run_id", "model", "probe", "metric", "group", "value", "unit", "ci_low", "ci_high", "n",
           "direction", "status")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs such a cell as a formula


@dataclass(frozen=True)
class SharedMetric:
    """One of our metrics that an lm-eval task reports, and how to read it there."""

    metric: str  # our metric name in summary.json
    lm_eval_metric: str  # its key in lm-eval's results ("<name>,none")
    item_field: str  # the per-item value in samples/<probe>.jsonl whose mean is the metric
    higher_is_better: bool  # as lm-eval's task YAML declares it


@dataclass(frozen=True)
class SharedTask:
    """An lm-eval task that scores a probe's items exactly as we do."""

    task: str  # lm-eval's task name
    probe: str  # our probe
    version: str  # the lm-eval task version our numbers were checked against (bench/likelihood_vs_lmeval.py)
    metrics: tuple[SharedMetric, ...]


# lm-eval 0.4.13: crows_pairs_english.yaml (metadata version 1.0; both metrics higher_is_better false)
# and truthfulqa_mc1/mc2.yaml (version 2.0; acc higher_is_better true).
SHARED_TASKS: tuple[SharedTask, ...] = (
    SharedTask("crows_pairs_english", "crows_pairs", "1.0", (
        SharedMetric("pct_stereotype", "pct_stereotype", "stereotyped", higher_is_better=False),
        SharedMetric("likelihood_diff", "likelihood_diff", "abs_diff", higher_is_better=False))),
    SharedTask("truthfulqa_mc1", "truthfulqa", "2.0", (
        SharedMetric("mc1", "acc", "mc1_correct", higher_is_better=True),)),
    SharedTask("truthfulqa_mc2", "truthfulqa", "2.0", (
        SharedMetric("mc2", "acc", "mc2", higher_is_better=True),)),
)


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
    model = run.manifest.get("model") or {}
    spec_model = (run.manifest.get("spec") or {}).get("model") or {}
    return str(model.get("model") or spec_model.get("model") or "")


def tidy_rows(run: Run) -> list[TidyRow]:
    """Every metric of the run and every group of each, in summary order; skipped metrics included."""
    run_id, model = str(run.manifest.get("run_id") or run.path.name), _model(run)
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


def _effective(run: Run, probe: str, effective: int) -> int:
    return effective


def _unix_time(run: Run) -> float | None:
    stamp = run.manifest.get("finished_at") or run.manifest.get("started_at")
    try:
        return datetime.fromisoformat(str(stamp)).timestamp() if stamp else None
    except ValueError:
        return None


def lm_eval_results(run: Run, full_size: FullSize = _effective
                    ) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """lm-eval's results JSON for the tasks this run shares with it: (document, "probe.metric"
    written, notes on what was left out). No shared metric at all is an error."""
    from audit import __version__

    results: dict[str, Any] = {}
    versions, n_shot, higher, n_samples, configs = {}, {}, {}, {}, {}
    written: list[str] = []
    notes: list[str] = []
    for task in SHARED_TASKS:
        summary = run.probes.get(task.probe)
        if summary is None:
            continue
        by_name = {m.name: m for m in summary.metrics}
        entry: dict[str, Any] = {"alias": task.task}
        n = 0
        for shared in task.metrics:
            m = by_name.get(shared.metric)
            where = f"{task.probe}.{shared.metric}"
            if m is None or not m.ok or not math.isfinite(m.value):
                why = "missing" if m is None else (m.status if not m.ok else "without a value")
                notes.append(f"{where} is {why}: not exported to {task.task}")
                continue
            scale = 0.01 if m.unit == "%" else 1.0  # lm-eval reports fractions, we report percent
            items = [float(r[shared.item_field]) for r in run.samples(task.probe)]
            value = m.value * scale
            if len(items) != m.n or not math.isclose(sum(items) / max(len(items), 1), value, rel_tol=1e-6,
                                                     abs_tol=1e-9):
                raise AuditError(f"{run.path}: samples/{task.probe}.jsonl does not reproduce {where} "
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
        n_shot[task.task] = 0  # TruthfulQA's 6-shot QA primer is part of its prompt text, as in lm-eval
        n_samples[task.task] = {"original": full_size(run, task.probe, n), "effective": n}
        configs[task.task] = {"task": task.task, "output_type": "multiple_choice", "num_fewshot": 0,
                              "metadata": {"version": task.version,
                                           "opt_audit_probe": f"{task.probe} v{summary.info.version}"}}
    others = [p for p in run.probes if p not in {t.probe for t in SHARED_TASKS}]
    if others:
        notes.append(f"no lm-eval counterpart, not exported: {', '.join(others)} (use --format csv for every metric)")
    if not results:
        raise AuditError(f"{run.path}: no metric shared with lm-evaluation-harness (it has "
                         f"{', '.join(run.probes) or 'no probes'}; lm-eval shares crows_pairs and truthfulqa); "
                         "use --format csv")
    model = run.manifest.get("model") or {}
    spec = run.manifest.get("spec") or {}
    model_args = ",".join(f"{k}={v}" for k, v in (("pretrained", _model(run)), ("revision", model.get("revision")),
                                                   ("dtype", model.get("dtype"))) if v)
    document = {
        "results": results,
        "group_subtasks": {task: [] for task in results},
        "configs": configs,
        "versions": versions,
        "n-shot": n_shot,
        "higher_is_better": higher,
        "n-samples": n_samples,
        "config": {"model": str(spec.get("backend") or "hf"), "model_args": model_args,
                   "device": model.get("device"), "limit": spec.get("limit"),
                   "random_seed": spec.get("seed")},
        "model_name": _model(run),
        "date": _unix_time(run),
        "opt_audit": {"version": __version__, "run_id": str(run.manifest.get("run_id") or run.path.name),
                      "note": "written by opt-audit export from its own run, in lm-evaluation-harness's "
                              "results shape; versions are the lm-eval task versions these numbers match"},
    }
    return document, tuple(written), tuple(notes)


def _destination(run_dir: Path, fmt: str, out: Path | None) -> Path:
    if out is None:
        return run_dir / DEFAULT_NAMES[fmt]
    return out / DEFAULT_NAMES[fmt] if out.is_dir() else out


def export_run(run_dir: Path | str, fmt: str, out: Path | None = None, *,
               full_size: FullSize = _effective) -> Exported:
    """Write one export of a complete run (default: into the run directory) and say what it holds.

    `full_size` gives lm-eval's n-samples "original"; without it, the run's own item count."""
    if fmt not in FORMATS:
        raise AuditError(f"--format {fmt!r}: unknown format (known: {', '.join(FORMATS)})")
    run = load_run(Path(run_dir))
    path = _destination(run.path, fmt, None if out is None else Path(out))
    if fmt == "lm-eval":
        document, written, notes = lm_eval_results(run, full_size)
        atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
        return Exported(path, fmt, written, notes)
    rows = tidy_rows(run)
    if fmt == "csv":
        atomic_write_text(path, csv_text(rows))
    else:
        write_parquet(rows, path)
    return Exported(path, fmt, tuple(f"{r.probe}.{r.metric}" + (f"[{r.group}]" if r.group else "") for r in rows),
                    ())
