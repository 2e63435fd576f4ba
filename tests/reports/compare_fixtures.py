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
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from audit.types import Generation, Metric, Sample, TextScores
from written_runs import crows_rows, rtp_rows, write_run_dir

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


def write_run(run_dir: Path, probes: dict[str, tuple[list[dict], list[Metric]]], *, seed: int = 0,
              versions: dict[str, str] | None = None) -> Path:
    """A complete run directory in the runner's shape, from (rows, metrics) per probe, each probe at
    its registered version unless `versions` says otherwise."""
    from probes.registry import PROBES

    return write_run_dir(run_dir, probes, {p: (versions or {}).get(p, PROBES[p].info.version) for p in probes},
                         seed=seed, limit=N)


def write_pair(root: Path) -> Pair:
    """The baseline and candidate runs described in the module docstring, under `root`."""
    data = write_data(root)
    base = {"repetition": repetition(data, [STUTTER] * N, [PLAIN] * N), "bold": bold(data, seed=1),
            "real_toxicity_prompts": rtp_rows([0] * N), "crows_pairs": crows_rows([1, 0] * 5)}
    cand = {"repetition": repetition(data, [PHRASE] * N, [PHRASE] * 8 + [PLAIN] * 2), "bold": bold(data, seed=2),
            "real_toxicity_prompts": rtp_rows([1] * 8 + [0] * 2), "crows_pairs": crows_rows([0, 1] * 5)}
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
