"""Run directories written from hand-made rows, for the gate, comparison and dashboard tests.

Every summary metric is computed from the rows written beside it with the same `audit.metrics`
helpers the probes use, so the paired engine's check that rows reproduce summary.json holds.
Imported by name (`from written_runs import ...`): pytest puts tests/ on sys.path for its conftest.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping

from audit.metrics import mean_metric, proportion_metric
from audit.store import write_manifest, write_samples, write_summary
from audit.types import Metric, ProbeInfo

RowsAndMetrics = tuple[list[dict], list[Metric]]  # one probe's rows and summary metrics
SCORER_ID = "embedded:1:abc"


def rtp_rows(flags: list[int]) -> RowsAndMetrics:
    """RealToxicityPrompts rows, one per flag (1: a toxic continuation, max toxicity 0.9; 0: 0.1),
    all in the "toxic" prompt group, with toxicity_probability and expected_max_toxicity."""
    rows = [{"id": f"p{i}", "group": "toxic", "any_toxic": bool(f), "max_toxicity": 0.9 if f else 0.1}
            for i, f in enumerate(flags)]
    groups = [r["group"] for r in rows]
    metrics = [proportion_metric("toxicity_probability", [r["any_toxic"] for r in rows], groups,
                                 higher_is_better=False, description="", citation=""),
               mean_metric("expected_max_toxicity", [r["max_toxicity"] for r in rows], groups,
                           higher_is_better=False, description="", citation="")]
    return rows, [replace(m, scorer={"kind": "toxicity", "id": SCORER_ID}) for m in metrics]


def crows_rows(flags: list[int]) -> RowsAndMetrics:
    """CrowS-Pairs rows, one per flag (1: stereotyped; pair i's |difference| is 1 + i nats), with
    pct_stereotype."""
    rows = [{"id": str(i), "group": "race", "stereotyped": bool(f), "abs_diff": 1.0 + i} for i, f in enumerate(flags)]
    return rows, [proportion_metric("pct_stereotype", [r["stereotyped"] for r in rows], None, higher_is_better=None,
                                    ideal=50.0, unit="%", scale=100.0, description="", citation="")]


def write_run_dir(run_dir: Path, probes: Mapping[str, RowsAndMetrics], versions: Mapping[str, str], *, seed: int = 0,
                  suite: str | None = None, limit: int | None = None, sampler: str = "sampler1",
                  scorer_id: str = SCORER_ID, backend_id: str | None = None) -> Path:
    """A complete run directory in the runner's shape, named after its folder: manifest, summary with
    each probe's registered self-description (what the gate and comparisons pair on; a made-up name
    gets a bare one) and samples."""
    from probes.registry import PROBES

    name = run_dir.name
    write_manifest(run_dir, {
        "run_id": name, "status": "complete",
        "spec": {"model": {"model": name, "revision": None, "dtype": "auto", "attn": "auto", "device": "cpu"},
                 "probes": list(probes), "suite": suite, "limit": limit, "seed": seed, "data": [],
                 "scorer": {"name": "embedded", "checkpoint": None, "config_dir": None, "device": "auto"}},
        "model": {"model": name, "revision": "sha256:0", "dtype": "float32"},
        "backend_id": backend_id or f"hf:{name}@sha256:0|float32|sdpa|cpu|{sampler}",
        "probes": {p: {"version": versions[p], "data_sha256": "d"} for p in probes},
        "scorers": {"toxicity": {"id": scorer_id}}})
    write_summary(run_dir, {
        p: (replace(PROBES[p].info, version=versions[p], title=p, description="", citation="", data_license="")
            if p in PROBES else ProbeInfo(p, versions[p], p, "", "", ""), metrics)
        for p, (_, metrics) in probes.items()})
    for p, (rows, _) in probes.items():
        write_samples(run_dir, p, rows)
    return run_dir
