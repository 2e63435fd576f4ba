"""Property: on random model outputs, every metric of every probe has a 95% interval that contains its
value, or says why it has none ("no interval: ..." in its ci_method, or a skipped status).

Each probe in probes.registry is built on its bundled data (custom_prompts on a small written file),
its requests get random results (generations that are sometimes empty, sometimes a token or phrase
loop; random log-likelihoods), its texts get random toxicity and sentiment scores, and its rows are
aggregated by the probe itself, as in tests/probes but without a model. Several seeds and sizes, each
from a seeded numpy Generator. The old percentile bootstrap of BOLD's max gaps fails this (e.g. 50 pp
with an interval of [100, 100]); so would any interval biased off its estimate.

The same random runs check the gate's registry: every item statistic, aggregated over a probe's rows,
reproduces the value the probe reports (the check the gate and `report --compare` rely on).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit import gate_paired
from audit.gate_paired import ItemStatistic, item_table, table_value
from audit.metrics import NO_INTERVAL
from audit.types import (Classify, ClassifyResult, Embed, Embedding, ExtractSpan, Generate, Generation,
                         LogLikelihoodResult, Metric, Sample, SpanResult, TextScores)
from probes.loading import ProbeConfig
from probes.registry import PROBES


def item_statistic(metric: str) -> ItemStatistic | None:
    """The statistic as the probe's own description declares it (what a run writes to summary.json)."""
    return gate_paired.item_statistic(metric, PROBES[metric.split(".", 1)[0]].info)


def item_statistic_names() -> tuple[str, ...]:
    return tuple(f"{p}.{s.metric}" for p, e in PROBES.items() for s in e.info.paired)

SEEDS = range(6)
SIZES = (6, 24, 60)  # items per probe (BOLD: per group, 1 or 2), cycled over the seeds
TOL = 1e-9


def _limit(name: str, seed: int) -> int:
    return 1 + seed % 2 if name == "bold" else SIZES[seed % len(SIZES)]


@functools.lru_cache(maxsize=None)
def _probe(name: str, limit: int, data: Path | None) -> Any:
    """The registered probe (bundled data read once per size)."""
    return PROBES[name].build(ProbeConfig(limit=limit, data=data))


def _tokens(rng: np.random.Generator) -> list[int]:
    """A random continuation: empty (10%), ending in a loop of period 1-3 (30%), or plain."""
    u = rng.random()
    if u < 0.1:
        return []
    if u < 0.4:
        head = rng.integers(0, 50, size=int(rng.integers(0, 6))).tolist()
        return head + rng.integers(0, 50, size=int(rng.integers(1, 4))).tolist() * int(rng.integers(3, 8))
    return rng.integers(0, 50, size=int(rng.integers(1, 20))).tolist()


def _results(probe: Any, rng: np.random.Generator) -> dict:
    out: dict = {}
    for r in probe.requests():
        if isinstance(r, Generate):
            samples = []
            for _ in range(r.params.n):
                t = _tokens(rng)
                samples.append(Sample(" ".join(f"w{x}" for x in t), tuple(t), bool(rng.random() < 0.5)))
            out[r] = Generation(tuple(samples))
        elif isinstance(r, Classify):  # a two-label head: random probabilities
            p = float(rng.random())
            out[r] = ClassifyResult((1.0 - p, p), ("negative", "positive"))
        elif isinstance(r, ExtractSpan):  # one of the candidates (or a random stretch), random span scores
            scores = tuple(float(rng.normal(0.0, 3.0)) for _ in r.candidates)
            pick = r.candidates[int(np.argmax(scores))] if r.candidates and rng.random() < 0.8 else r.context[:5]
            start = max(0, r.context.find(pick))
            out[r] = SpanResult(pick, start, start + len(pick), float(max(scores, default=0.0)), scores)
        elif isinstance(r, Embed):  # unit-scale random vectors
            out[r] = Embedding(tuple(float(x) for x in rng.normal(0.0, 1.0, 8)), int(rng.integers(2, 9)))
        else:
            out[r] = LogLikelihoodResult(float(-rng.exponential(20.0)), int(rng.integers(1, 10)),
                                         bool(rng.random() < 0.3))
    return out


def _scores(probe: Any, results: dict, rng: np.random.Generator) -> TextScores:
    texts = probe.texts_to_score(results)
    by: dict[str, dict[str, dict[str, float]]] = {}
    for kind in probe.score_kinds:
        if kind == "toxicity":
            by[kind] = {t: {"toxicity": float(rng.beta(0.5, 2.0))} for t in texts}
        else:
            by[kind] = {t: {"compound": float(rng.uniform(-1.0, 1.0))} for t in texts}
    return TextScores(by)


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom_prompts file: 60 prompts in two groups."""
    path = tmp_path_factory.mktemp("custom") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"The person number {i} said", "group": "ab"[i % 2], "id": f"p{i}"})
                            + "\n" for i in range(60)), encoding="utf-8")
    return path


def _random_run(name: str, seed: int, prompts_file: Path) -> tuple[list[dict], list[Metric]]:
    rng = np.random.default_rng([seed, len(name)])
    probe = _probe(name, _limit(name, seed), prompts_file if PROBES[name].needs_data else None)
    results = _results(probe, rng)
    rows = probe.rows(results, _scores(probe, results, rng))
    return rows, probe.aggregate(rows)


def _inside(value: float, ci: tuple[float, float]) -> bool:
    tol = TOL * max(1.0, abs(value))
    return ci[0] - tol <= value <= ci[1] + tol


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(PROBES))
def test_every_interval_contains_its_value_or_says_why_not(name: str, seed: int, prompts_file: Path) -> None:
    _, metrics = _random_run(name, seed, prompts_file)
    assert metrics
    for m in metrics:
        if not m.ok:
            assert m.status.startswith("skipped: ") and len(m.status) > len("skipped: "), m
            continue
        if m.ci is None:
            assert m.ci_method.startswith(NO_INTERVAL), f"{name}.{m.name}: no interval and no reason ({m.ci_method!r})"
        else:
            assert _inside(m.value, m.ci), f"{name}.{m.name} = {m.value} outside its CI {m.ci} ({m.ci_method})"
        for g, gv in m.groups.items():
            if gv.ci is not None and math.isfinite(gv.value):
                assert _inside(gv.value, gv.ci), f"{name}.{m.name}[{g}] = {gv.value} outside {gv.ci}"


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("name", sorted({s.split(".", 1)[0] for s in item_statistic_names()}))
def test_item_statistics_reproduce_the_probe_values(name: str, seed: int, prompts_file: Path) -> None:
    rows, metrics = _random_run(name, seed, prompts_file)
    by = {m.name: m for m in metrics}
    for full in item_statistic_names():
        probe, metric = full.split(".", 1)
        if probe != name or not by[metric].ok:
            continue
        stat = item_statistic(full)
        value = table_value(stat, item_table(stat, rows, "random rows"))
        assert value == pytest.approx(by[metric].value, rel=1e-6, abs=1e-6), full
