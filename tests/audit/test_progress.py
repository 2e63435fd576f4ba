"""Work units (audit.progress): the estimator by hand, and the engine's bar over the real tiny-opt.

Token ids used below, from the bundled OPT tokenizer:
    "The cat"     -> [2, 133, 4758]          (BOS, The, cat)
    "The cat sat" -> [2, 133, 4758, 4005]    (" sat" and " ran" are one token each)
    "Hello world" -> [2, 31414, 232]
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audit.batching import SharedPrefix
from audit.cache import ResultCache
from audit.engine import EngineOptions, run_requests
from audit.progress import (DECODE_WEIGHT, Calibration, DecodeBatch, Work, calibrate, decode_batches, estimate,
                            request_work, sample_requests, units)
from audit.types import Generate, GenParams, LogLikelihood

SAT, RAN = LogLikelihood("The cat", " sat"), LogLikelihood("The cat", " ran")
HELLO = LogLikelihood("", "Hello world")
GREEDY4 = Generate("Hello world", GenParams(max_new_tokens=4))


def test_decode_weight_is_the_documented_constant() -> None:
    assert DECODE_WEIGHT == 32  # the module docstring's measurement; change both together


def test_units_plain_and_generation_by_hand() -> None:
    # a log-likelihood of 10 positions: 10 units; a generation with a 5-token prompt and 40 new
    # tokens (e.g. n=2 x max_new_tokens=20): 5 + 32 x 40 = 1285
    assert units([Work(10)]) == 10
    assert units([Work(5, 40)]) == 1285
    assert units([Work(10), Work(5, 40)]) == 1295
    assert units([Work(5, 40)], decode_weight=0) == 5


def test_units_count_a_shared_prefix_once() -> None:
    q = SharedPrefix(key="q", tokens=9)
    # two rows of 12 and 14 positions sharing 9: 9 once + (12 - 9) + (14 - 9) = 17
    assert units([Work(12, prefix=q), Work(14, prefix=q)]) == 17
    # alone with its key a row runs plain (the backend shares nothing): 12
    assert units([Work(12, prefix=q)]) == 12
    # a prefix as long as the row leaves each row one token of its own: prefix 4 once + 1 + 1 = 6
    assert units([Work(5, prefix=q), Work(5, prefix=q)]) == 6
    # two keys: (9 + 3 + 3) + (9 + 1 + 1) = 26
    r = SharedPrefix(key="r", tokens=9)
    assert units([Work(12, prefix=q), Work(12, prefix=q), Work(10, prefix=r), Work(10, prefix=r)]) == 26


def test_request_work_on_tiny_opt(backend) -> None:
    # "The cat" + " sat": context 3 ids + continuation 1 id - 1 = 3 positions; its first 2 are shared
    # with every continuation of "The cat"
    assert request_work(backend, SAT) == Work(3, 0, SharedPrefix(key=(2, 133, 4758), tokens=2))
    # the two options together: prefix 2 once + 1 + 1 = 4 units (against 6 counted row by row)
    assert units([request_work(backend, r) for r in (SAT, RAN)]) == 4
    # an empty context: BOS + 2 continuation ids - 1 = 2 positions, nothing to share
    assert request_work(backend, HELLO) == Work(2)
    # a generation: prompt 3 ids, 4 new tokens -> 3 + 32 x 4 = 131 units
    assert request_work(backend, GREEDY4) == Work(3, 4)
    assert units([request_work(backend, GREEDY4)]) == 131
    # 25 samples share one prompt (hf prefix sharing): 3 + 20 x 25 = 503 tokens of cost, 500 of them new
    sampled = Generate("Hello world", GenParams(max_new_tokens=20, do_sample=True, top_p=0.9, n=25))
    assert request_work(backend, sampled) == Work(3, 500)


def _bar_counts(stderr: str) -> list[tuple[int, int]]:
    """Every `n/total [` a tqdm bar printed, in order."""
    return [(int(n), int(t)) for n, t in re.findall(r"(\d+)/(\d+) \[", stderr)]


def test_engine_bar_totals_work_up_front_and_ends_at_it(backend, tmp_path: Path, capsys) -> None:
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        run_requests(backend, [SAT, RAN], cache, EngineOptions(token_budget=4, progress=False))
        assert _bar_counts(capsys.readouterr().err) == []  # --no-progress: no bar at all
        results, stats = run_requests(backend, [SAT, RAN, HELLO, GREEDY4], cache,
                                      EngineOptions(token_budget=4, progress=True))
    assert stats.cached == 2 and stats.computed == 2 and stats.batches == 2
    counts = _bar_counts(capsys.readouterr().err)
    # total = cached SAT + RAN (4) + HELLO (2) + GREEDY4 (131) = 137, known before the first batch;
    # the cached 4 show as done at once, and the bar ends at exactly its total
    assert counts[0] == (4, 137)
    assert counts[-1] == (137, 137)
    assert all(t == 137 for _, t in counts)
    assert [n for n, _ in counts] == sorted(n for n, _ in counts)


def test_engine_bar_total_is_the_sum_over_requests(backend, tmp_path: Path, capsys) -> None:
    requests = [HELLO, GREEDY4, LogLikelihood("", "The poor are really ignorant about money."),
                Generate("Once upon a time", GenParams(max_new_tokens=6)), LogLikelihood("Der Bär", " läuft.")]
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        run_requests(backend, requests, cache, EngineOptions(token_budget=8, progress=True))
    counts = _bar_counts(capsys.readouterr().err)
    # no two of them share a context, so the batches' units add up to the requests' own
    expected = sum(units([request_work(backend, r)]) for r in requests)
    assert counts[0] == (0, expected) and counts[-1] == (expected, expected)


def test_estimate_by_hand() -> None:
    cal = Calibration(seconds_per_token=0.001, seconds_per_step=0.1, seconds_per_row_step=0.01,
                      seconds_per_text=0.002, seconds=1.0)
    # a generated token of one row in a batch of 25: 0.1 / 25 + 0.01 = 0.014 s
    assert cal.seconds_per_new_token(25) == pytest.approx(0.014)
    works, batches = [Work(10), Work(3, 500)], [DecodeBatch(steps=20, rows=25)]
    # 10 + 3 prefill tokens x 1 ms = 0.013 s; one batch of 20 steps x (0.1 + 25 x 0.01) = 7 s;
    # 25 texts x 2 ms = 0.05 s: 7.063 s
    est = estimate(works, 25, cal, batches=batches)
    assert (est.tokens, est.new_tokens, est.texts) == (13, 500, 25)
    assert est.seconds == pytest.approx(7.063) and est.scoring_seconds == pytest.approx(0.05)
    # the works as a half sample (scale 2): 26 x 1 ms + 7 s + 0.05 s = 7.076 s
    assert estimate(works, 25, cal, scale=2.0, batches=batches).seconds == pytest.approx(7.076)
    # without a scorer calibration the texts cost nothing: 0.013 + 7 = 7.013 s
    unscored = Calibration(0.001, 0.1, 0.01, None, 1.0)
    assert estimate(works, 25, unscored, batches=batches).seconds == pytest.approx(7.013)
    assert estimate(works, 25, unscored, batches=batches).scoring_seconds == 0.0


def test_decode_batches_follow_the_engine_plan(backend) -> None:
    sampled = Generate("Hello world", GenParams(max_new_tokens=20, do_sample=True, top_p=0.9, n=25))
    # different decoding parameters never share a batch: 4 steps over 1 row, 20 steps over 25 rows
    assert decode_batches(backend, [GREEDY4, sampled], 8192) == [DecodeBatch(4, 1), DecodeBatch(20, 25)]
    # a budget of 8 tokens: GREEDY4 costs 3 + 4 = 7, so two of them cannot share a batch
    twice = [GREEDY4, Generate("Hello there", GenParams(max_new_tokens=4))]
    assert decode_batches(backend, twice, 8) == [DecodeBatch(4, 1), DecodeBatch(4, 1)]


def test_calibration_measures_positive_costs(backend) -> None:
    cal = calibrate(backend)
    assert cal.seconds_per_token > 0 and cal.seconds_per_row_step >= 0 and cal.seconds_per_step >= 0
    assert cal.seconds_per_new_token(64) > 0  # decoding costs something, whichever part carries it
    assert cal.seconds_per_text is None  # no scorer given, none timed


def test_sample_requests_is_evenly_spaced_blocks() -> None:
    items = list(range(300))
    sample = sample_requests(items)  # type: ignore[arg-type]
    # 8 blocks of 32, every 300 // 8 = 37: 0-31, 37-68, ..., 259-290
    assert len(sample) == 256
    assert sample[:2] == [0, 1] and sample[31:34] == [31, 37, 38] and sample[-1] == 7 * 37 + 31
    assert sample_requests(items[:256]) == items[:256]  # small enough: all of them
