"""The contract every registered probe keeps, checked on each one through the real engine and tiny-opt.

Parametrized over `probes.registry.PROBES`, so a probe added there is held to it without a new
test: batch size does not change its numbers (audit/invariance.py's contract), a metric it cannot
compute is recorded as skipped with its reason, its `--limit` subset does not depend on global RNG
state, and its self-description (serialized into summary.json) names only metrics it reports, with
their real direction, and rebuilds each paired metric from its own rows. Items are few (LIMITS) so
the whole file runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.gate_paired import item_statistic, item_table, table_value
from audit.invariance import differences
from audit.types import Probe, ProbeInfo
from probes.loading import ProbeConfig
from probes.registry import PROBES, fed_by, missing_user_data

# Items per probe: few, so the file stays near a minute on 2 cores. Generation probes get 2 prompts
# (RealToxicityPrompts and custom prompts sample 25 continuations each); bold's limit is per group
# (43 groups); HolisticBias needs a few sentences per axis to compare descriptors at all.
LIMITS = {"bold": 1, "holistic_bias": 40, "real_toxicity_prompts": 2, "toxigen": 2, "custom_prompts": 2,
          "repetition": 2}
DEFAULT_LIMIT = 4
SMALL_BUDGET = 16  # tokens: below any request's cost, so every request is its own batch
PROMPTS = ('{"id": "a", "group": "g1", "prompt": "Alpha starts"}\n'
           '{"id": "b", "group": "g2", "prompt": "Beta starts"}\n'
           '{"id": "c", "group": "g2", "prompt": "Gamma starts"}\n')


def _config(name: str, tmp: Path) -> ProbeConfig:
    limit = LIMITS.get(name, DEFAULT_LIMIT)
    if PROBES[name].needs_data:  # custom prompts run only on the user's file
        path = tmp / f"{name}.jsonl"
        path.write_text(PROMPTS, encoding="utf-8")
        return ProbeConfig(limit=limit, data=path)
    return ProbeConfig(limit=limit)


@pytest.fixture(scope="module")
def evaluations(backend, real_scorers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each probe run twice, at a one-request batch budget and at a large one (separate caches)."""
    from audit.backends.registry import load_backend
    from audit.contract import ModelSpec
    from audit.engine import EngineOptions
    from audit.runner import evaluate

    tmp = tmp_path_factory.mktemp("contract")
    out: dict[str, Any] = {}
    # a probe of a head model runs on the embedded model of its family (tiny-opt's body with that head)
    heads = {"sequence-classification": "tiny-opt-classifier", "question-answering": "tiny-opt-qa"}
    backends = {"causal-lm": backend}
    for name in PROBES:
        family = PROBES[name].family
        if family not in backends:
            backends[family] = load_backend(ModelSpec(heads[family], dtype="float32", attn="sdpa", device="cpu"))
        probe = PROBES[name].build(_config(name, tmp))
        out[name] = (probe, [evaluate({name: probe}, backends[family], tmp / f"{name}-{budget}.sqlite",
                                      loaded_scorers=real_scorers,
                                      options=EngineOptions(token_budget=budget, progress=False))
                             for budget in (SMALL_BUDGET, 4096)])
    return out


NAMES = sorted(PROBES)


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_does_not_change_rows_or_metrics(name: str, evaluations: dict[str, Any]) -> None:
    _, (small, large) = evaluations[name]
    assert small.stats.batches > large.stats.batches  # the small budget really split the work
    # rows (texts, tokens, log-likelihoods) and summaries agree within audit/invariance.py's contract:
    # tokens exactly, log-likelihoods within 1e-4, metrics within 1e-4 relative or absolute
    assert differences(small.rows[name], large.rows[name], path="rows") == []
    assert differences([m.to_json() for m in small.metrics[name][1]],
                       [m.to_json() for m in large.metrics[name][1]], path="metrics") == []


@pytest.mark.parametrize("name", NAMES)
def test_a_skipped_metric_carries_its_reason(name: str, evaluations: dict[str, Any]) -> None:
    probe, (_, large) = evaluations[name]
    empty = probe.aggregate([])  # no rows at all: every metric is still written, skipped with a reason
    assert empty and [m.name for m in empty] == [m.name for m in large.metrics[name][1]]
    for m in [*empty, *large.metrics[name][1]]:
        if m.status != "ok":
            assert m.status.startswith("skipped: ") and m.status[len("skipped: "):].strip(), m
            assert math.isnan(m.value), m
    assert all(not m.ok for m in empty)


@pytest.mark.parametrize("name", NAMES)
def test_the_limited_subset_is_fixed(name: str, tmp_path: Path) -> None:
    def requests() -> list[Any]:
        return PROBES[name].build(_config(name, tmp_path)).requests()

    np.random.seed(1)
    random.seed(1)
    first = requests()
    np.random.seed(7)
    random.seed(7)
    assert requests() == first and first  # same items, same order, whatever the global RNGs hold


@pytest.mark.parametrize("name", NAMES)
def test_the_description_matches_what_the_probe_reports(name: str, evaluations: dict[str, Any]) -> None:
    probe, (_, large) = evaluations[name]
    info: ProbeInfo = probe.info
    assert info is PROBES[name].info and info.name == name and info.described
    assert ProbeInfo.from_json(info.to_json()) == info  # what summary.json holds reads back the same
    metrics = {m.name: m for m in large.metrics[name][1]}
    assert info.headline, "a probe names at least one headline metric"
    for h in info.headline:
        m = metrics[h.metric]
        assert (m.higher_is_better, m.ideal) == (h.higher_is_better, h.ideal), h
    for hint in info.charts:
        assert set(hint.metrics) <= set(metrics), hint
    rows = large.rows[name]
    for spec in info.paired:  # the gate's statistic rebuilds the summary value from the rows
        m = metrics[spec.metric]
        stat = item_statistic(f"{name}.{spec.metric}", info)
        assert stat is not None
        if m.ok and m.n:
            value = table_value(stat, item_table(stat, rows, f"{name} rows"))
            assert value == pytest.approx(m.value, rel=1e-9, abs=1e-9), spec.metric
    for task in info.lm_eval or ():  # `export --format lm-eval` reads each metric as the mean of a row field
        for shared in task.metrics:
            m = metrics[shared.metric]
            if m.ok and m.n:
                values = [float(r[shared.item_field]) for r in rows]
                scale = 0.01 if m.unit == "%" else 1.0  # lm-eval's fractions of our percentages
                assert sum(values) / len(values) == pytest.approx(m.value * scale, rel=1e-9, abs=1e-9), shared


def test_short_names_and_user_data_are_declared_once() -> None:
    # a gate policy's short name stands for one probe and is no probe's own name
    aliases = [a for e in PROBES.values() for a in e.info.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(PROBES)
    # a probe that runs only on the user's file is fed by its own run option, and says so when it has none
    fed = {e.user_data.option: name for name, e in PROBES.items() if e.user_data is not None}
    assert fed and all(fed_by(option) == name for option, name in fed.items())
    for option, name in fed.items():
        holds = PROBES[name].user_data.holds  # "prompts"
        expected = f"the {name} probe needs your {holds}: pass {option} FILE.jsonl"
        assert missing_user_data(["crows_pairs", name]) == expected
        assert missing_user_data(["crows_pairs", name], given=[name]) is None


@pytest.mark.parametrize("name", NAMES)
def test_every_row_reads_as_samples(name: str, evaluations: dict[str, Any]) -> None:
    from dashboards.samples import sample_frame

    probe: Probe = evaluations[name][0]
    rows = evaluations[name][1][1].rows[name]
    frame = sample_frame(name, rows, probe.info)
    assert len(frame) >= len(rows) > 0  # one sample per row, or several (sampled continuations)
    assert set(frame["score_name"]) == {probe.info.reading.score_name}
    assert frame["item"].is_unique or probe.info.reading.samples  # items pair two runs: unique per sample
