"""Two run directories whose summaries follow from their rows, for comparison and gate tests.

Unlike report_fixtures.py (made-up values, which the paired engine rightly refuses to test because
its rows do not reproduce them), every metric here is computed by the probes' own aggregation from
the rows written beside it, so `opt-audit gate`, `report --compare` and the dashboard can test them.

    baseline   a "random-weight" model: every greedy continuation stutters on one token, no
               sampled continuation loops; RealToxicityPrompts toxic on 0 of 10 prompts
    candidate  a model trained into phrase loops: every greedy continuation and 8 of 10 sampled
               ones end in a repeated phrase; toxic on 8 of 10 prompts
    both       BOLD continuations drawn from one distribution with two different seeds (another
               seed of the same model); CrowS-Pairs 5 of 10 stereotyped, on different pairs

Shared by tests/reports/test_compare_runs.py and tests/dashboards (loaded by path there).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from audit.metrics import mean_metric, proportion_metric
from audit.store import write_manifest, write_samples, write_summary
from audit.types import Generation, Metric, ProbeInfo, Sample, TextScores

N = 10  # prompts per probe (repetition: per decoding)
# BOLD-format prompts: two domains of two groups, 5 prompts each (the repetition probe reads them too)
DATA = {"d1": {"g1": {"e": [f"d1 g1 {i} " for i in range(5)]}, "g2": {"e": [f"d1 g2 {i} " for i in range(5)]}},
        "d2": {"g3": {"e": [f"d2 g3 {i} " for i in range(5)]}, "g4": {"e": [f"d2 g4 {i} " for i in range(5)]}}}
STUTTER, PHRASE, PLAIN = [3, 9, 9, 9, 9, 9], [3, 4, 5, 4, 5, 4, 5], [3, 4, 5, 6]


class Pair(NamedTuple):
    baseline: Path
    candidate: Path


def write_data(root: Path) -> Path:
    """The BOLD-format prompt files both probes read."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for domain, groups in DATA.items():
        (data / f"{domain}_prompt.json").write_text(json.dumps(groups), encoding="utf-8")
    return data


def repetition(data: Path, greedy: list[list[int]], nucleus: list[list[int]]) -> tuple[list[dict], list[Metric]]:
    """Rows and metrics of the real repetition probe on the first N prompts, from token lists."""
    from probes.loading import ProbeConfig
    from probes.repetition import Repetition

    probe = Repetition(ProbeConfig(data=data, limit=N))
    tokens = {(p.prompt, False): greedy[i] for i, p in enumerate(probe.prompts)}
    tokens.update({(p.prompt, True): nucleus[i] for i, p in enumerate(probe.prompts)})
    results = {}
    for r in probe.requests():
        t = tokens[(r.prompt, r.params.do_sample)]
        results[r] = Generation((Sample(" ".join(map(str, t)), tuple(t), False),))
    rows = probe.rows(results, TextScores())
    return rows, probe.aggregate(rows)


def bold(data: Path, seed: int) -> tuple[list[dict], list[Metric]]:
    """Rows and metrics of the real BOLD probe: every prompt's compound and toxicity drawn from one
    distribution with `seed` (another seed of the same model)."""
    from probes.bold import Bold
    from probes.loading import ProbeConfig

    probe = Bold(ProbeConfig(data=data))
    rng = np.random.default_rng(seed)
    rows = [{"id": p.id, "group": f"{p.domain}/{p.group}", "domain": p.domain, "subgroup": p.group,
             "prompt": p.prompt, "continuation": f"text {i}", "n_tokens": 20, "stopped_at_eos": False,
             "compound": float(rng.choice([-0.8, 0.0, 0.7])), "toxicity": float(rng.uniform(0.0, 0.6))}
            for i, p in enumerate(probe.prompts)]
    return rows, probe.aggregate(rows)


def rtp(flags: list[int]) -> tuple[list[dict], list[Metric]]:
    rows = [{"id": f"p{i}", "group": "toxic", "any_toxic": bool(f), "max_toxicity": 0.9 if f else 0.1}
            for i, f in enumerate(flags)]
    groups = [r["group"] for r in rows]
    metrics = [proportion_metric("toxicity_probability", [r["any_toxic"] for r in rows], groups,
                                 higher_is_better=False, description="", citation=""),
               mean_metric("expected_max_toxicity", [r["max_toxicity"] for r in rows], groups,
                           higher_is_better=False, description="", citation="")]
    return rows, [replace(m, scorer={"kind": "toxicity", "id": "embedded:1:abc"}) for m in metrics]


def crows(flags: list[int]) -> tuple[list[dict], list[Metric]]:
    rows = [{"id": str(i), "group": "race", "stereotyped": bool(f), "abs_diff": 1.0 + i} for i, f in enumerate(flags)]
    return rows, [proportion_metric("pct_stereotype", [r["stereotyped"] for r in rows], None, higher_is_better=None,
                                    ideal=50.0, unit="%", scale=100.0, description="", citation="")]


def write_run(run_dir: Path, probes: dict[str, tuple[list[dict], list[Metric]]], *, seed: int = 0,
              versions: dict[str, str] | None = None) -> Path:
    """A complete run directory in the runner's shape, from (rows, metrics) per probe."""
    from probes.registry import PROBES

    versions = {p: (versions or {}).get(p, PROBES[p].info.version) for p in probes}
    name = run_dir.name
    write_manifest(run_dir, {
        "run_id": name, "status": "complete",
        "spec": {"model": {"model": name, "revision": None, "dtype": "auto", "attn": "auto", "device": "cpu"},
                 "probes": list(probes), "suite": None, "limit": N, "seed": seed, "data": [],
                 "scorer": {"name": "embedded", "checkpoint": None, "config_dir": None, "device": "auto"}},
        "model": {"model": name, "revision": "sha256:0", "dtype": "float32"},
        "backend_id": f"hf:{name}@sha256:0|float32|sdpa|cpu|sampler1",
        "probes": {p: {"version": versions[p], "data_sha256": "d"} for p in probes},
        "scorers": {"toxicity": {"id": "embedded:1:abc"}}})
    # each probe's registered self-description, as a run writes it (comparisons pair on its statistics)
    write_summary(run_dir, {p: (replace(PROBES[p].info, version=versions[p], title=p, description="", citation="",
                                        data_license=""), metrics)
                            for p, (_, metrics) in probes.items()})
    for p, (rows, _) in probes.items():
        write_samples(run_dir, p, rows)
    return run_dir


def write_pair(root: Path) -> Pair:
    """The baseline and candidate runs described in the module docstring, under `root`."""
    data = write_data(root)
    base = {"repetition": repetition(data, [STUTTER] * N, [PLAIN] * N), "bold": bold(data, seed=1),
            "real_toxicity_prompts": rtp([0] * N), "crows_pairs": crows([1, 0] * 5)}
    cand = {"repetition": repetition(data, [PHRASE] * N, [PHRASE] * 8 + [PLAIN] * 2), "bold": bold(data, seed=2),
            "real_toxicity_prompts": rtp([1] * 8 + [0] * 2), "crows_pairs": crows([0, 1] * 5)}
    return Pair(write_run(root / "baseline", base, seed=0), write_run(root / "candidate", cand, seed=1))


def all_rules(run_dir: Path) -> dict[str, Any]:
    """A policy document gating every metric of a run with zero tolerance, each in its worse direction."""
    from audit.store import load_run

    run = load_run(run_dir)
    rules: dict[str, Any] = {}
    for probe, summary in run.probes.items():
        for m in summary.metrics:
            check = "max_decrease" if m.higher_is_better and m.ideal is None else "max_increase"
            rules[f"{probe}.{m.name}"] = {check: 0}
    return {"rules": rules}
