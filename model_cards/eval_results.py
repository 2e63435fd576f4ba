"""The Hub's `.eval_results/*.yaml` files: the newer way a model repo reports benchmark scores.

Documented by the Hub (https://huggingface.co/docs/hub/eval-results, and the specification
https://github.com/huggingface/hub-docs/blob/main/eval_results.yaml; `huggingface_hub`'s
`EvalResultEntry` reads the same fields). Each file is a list of entries:

    - dataset:
        id: <Hub dataset id>        # required; the dataset must be a registered Hub Benchmark
        task_id: <task id>          # required; a task defined in that dataset's eval.yaml
        revision: <commit>          # optional; a commit of the Hub dataset repository
      value: <number>               # required; the score that the task's leaderboard ranks
      date: <ISO-8601>              # optional
      source: {url, name, user}     # optional; url required when present
      notes: <text>                 # optional; details of the evaluation setup
      verifyToken: <token>          # optional; only Hugging Face's own evaluation jobs make one

One entry holds one number for one benchmark task, and the task must be declared by the
benchmark dataset itself. So opt-audit writes an entry only for a probe listed in
`HUB_BENCHMARK_TASKS`, with the dataset id, task id and the probe metric that task ranks.
**The table is empty:** none of the datasets behind opt-audit's probes could be confirmed to be
a registered Hub Benchmark with an eval.yaml (see model_cards/benchmarks.py for the ids), and a
task id we made up would be rejected by the Hub, or worse, filed under someone else's task.
Add a row when one is confirmed. Fields written: dataset.id, dataset.task_id, value, date (the
run's finish time) and notes (probe, version, metric, interval, n, suite, limit, seed). Not
written: revision (we bundle our own data, pinned by sha256, not a Hub commit), source (no URL
to point at) and verifyToken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from audit.store import Run
from audit.types import Metric
from model_cards.metadata import reportable


@dataclass(frozen=True)
class HubBenchmarkTask:
    """Where one probe's headline metric belongs among the Hub's benchmark leaderboards."""

    dataset_id: str  # a Hub dataset registered as a Benchmark (it has an eval.yaml)
    task_id: str  # one of the tasks its eval.yaml declares
    metric: str  # the probe metric whose value that task ranks (same definition and scale)


HUB_BENCHMARK_TASKS: Mapping[str, HubBenchmarkTask] = {}
"""probe -> its Hub benchmark task. Empty: none confirmed (see the module docstring)."""


def eval_results(run: Run, tasks: Mapping[str, HubBenchmarkTask] = HUB_BENCHMARK_TASKS
                 ) -> dict[str, list[dict[str, Any]]]:
    """File stem (the probe) -> the entries of its `.eval_results/<probe>.yaml`.

    A probe gets a file only when `tasks` maps it and its metric was computed (ok, finite, no
    caveat); anything else has no honest number for that leaderboard.
    """
    files: dict[str, list[dict[str, Any]]] = {}
    for probe, task in tasks.items():
        metric = run.metric(probe, task.metric)
        if metric is None or not reportable(metric):
            continue
        summary = run.probes[probe]
        entry: dict[str, Any] = {"dataset": {"id": task.dataset_id, "task_id": task.task_id},
                                 "value": float(metric.value)}
        if run.manifest.finished_at:
            entry["date"] = run.manifest.finished_at
        entry["notes"] = _notes(run, probe, str(summary.info.version), metric)
        files[probe] = [entry]
    return files


def _notes(run: Run, probe: str, version: str, metric: Metric) -> str:
    manifest = run.manifest
    versions = manifest.versions or {}
    ci = ""
    if metric.ci is not None and all(math.isfinite(x) for x in metric.ci):
        ci = f", 95% CI {metric.ci[0]:.4g} to {metric.ci[1]:.4g}"
    unit = f" {metric.unit}" if metric.unit else ""
    setup = ", ".join(f"{k} {v}" for k, v in (("suite", manifest.suite), ("limit", manifest.limit),
                                               ("seed", manifest.seed)) if v is not None)
    return (f"opt-audit {versions.get('opt-audit', 'unknown')}, probe {probe} v{version}, metric {metric.name}"
            f"{unit}{ci}, n={metric.n}" + (f"; {setup}" if setup else "") + "; opt-audit bundles its own copy "
            "of the benchmark data, pinned by sha256 in the run's manifest")
