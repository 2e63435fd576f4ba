"""The engine over the real tiny-opt backend: pooling, the cache, OOM back-off and failure safety."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import pytest

from audit.backends.hf import is_out_of_memory
from audit.cache import ResultCache, keys_for
from audit.engine import EngineOptions, run_requests
from audit.types import Generate, GenParams, LogLikelihood

GREEDY = GenParams(max_new_tokens=8)
OPTS = EngineOptions(progress=False)


def _requests() -> list:
    """12 unique requests (8 log-likelihood, 4 generation), asked 20 times in all."""
    ll = [LogLikelihood("", "Hello world"), LogLikelihood("The cat", " sat"),
          LogLikelihood("The cat ", "sat"),  # same tokens as the one before, but a different request
          LogLikelihood("", "The poor are really ignorant about money."),
          LogLikelihood("Der Bär", " läuft über die Straße."),
          LogLikelihood("Question: 2 + 2 =", " 4"), LogLikelihood("Question: 2 + 2 =", " 5"),
          LogLikelihood("A long context " * 20, " ends here")]
    gen = [Generate(p, GREEDY) for p in ("Hi", "Once upon a time", "The history of Rome " * 5, "Q: why?")]
    unique = ll + gen
    return unique + [ll[0], ll[1], ll[1], gen[0], ll[3], gen[2], ll[7], gen[3]]


def _ll_close(a, b) -> bool:
    """Log-likelihood results equal up to fp32 rounding of the sum (batch shapes differ)."""
    if hasattr(a, "logprob"):
        return (a.n_tokens, a.is_greedy) == (b.n_tokens, b.is_greedy) and \
            a.logprob == pytest.approx(b.logprob, rel=1e-6, abs=1e-5)
    return a == b  # generations: exactly equal


def test_duplicates_are_pooled_and_a_second_call_is_all_cache(backend, tmp_path: Path) -> None:
    reqs = _requests()
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        first, s1 = run_requests(backend, reqs, cache, OPTS)
        assert (s1.total, s1.unique, s1.cached, s1.computed, s1.oom_splits) == (20, 12, 0, 12, 0)
        assert s1.batches >= 2  # log-likelihood and generation never share a batch
        assert cache.count() == 12
        assert set(first) == set(reqs)

        second, s2 = run_requests(backend, reqs, cache, OPTS)
        assert (s2.total, s2.unique, s2.cached, s2.computed, s2.batches) == (20, 12, 12, 0, 0)
        assert second == first  # cached results round-trip exactly (floats included)
    # The whitespace convention maps both spellings to the same tokens, hence the same score.
    assert first[LogLikelihood("The cat ", "sat")] == first[LogLikelihood("The cat", " sat")]


def test_cache_key_covers_backend_and_greedy_ignores_seed(backend, tmp_path: Path) -> None:
    reqs = _requests()
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        run_requests(backend, reqs, cache, OPTS)
        _, other_seed = run_requests(backend, reqs, cache, EngineOptions(seed=99, progress=False))
        assert other_seed.computed == 0  # nothing here is sampled: the seed does not change outputs
    unique = list(dict.fromkeys(reqs))
    assert len(set(keys_for(backend.id, unique, 0))) == 12
    assert set(keys_for(backend.id, unique, 0)).isdisjoint(keys_for("hf:other@x|float32|sdpa|cpu", unique, 0))


class AroundReal:
    """What the fault injectors below share: the REAL backend's id and request costs (so the engine
    plans batches as it would on the real model) and no shared prompt prefixes."""

    def __init__(self, real) -> None:
        self.real = real

    @property
    def id(self) -> str:
        return self.real.id

    def cost(self, request) -> int:
        return self.real.cost(request)

    def shared_prefix(self, request) -> None:
        return None  # shares nothing: every batch is planned as plain rows


class OOMAbove(AroundReal):
    """A fault injector around the REAL backend: batches of more than `limit` rows raise CUDA's
    out-of-memory message; smaller ones run on the real model."""

    def __init__(self, real, limit: int = 2) -> None:
        super().__init__(real)
        self.limit = limit
        self.calls: list[int] = []

    def _check(self, n: int) -> None:
        self.calls.append(n)
        if n > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def loglikelihood(self, requests: Sequence):
        self._check(len(requests))
        return self.real.loglikelihood(requests)

    def generate(self, requests: Sequence, seed: int):
        self._check(len(requests))
        return self.real.generate(requests, seed)


def test_out_of_memory_halves_the_batch_and_keeps_every_result(backend, tmp_path: Path) -> None:
    reqs = _requests()
    with ResultCache(tmp_path / "plain.sqlite") as cache:
        plain, _ = run_requests(backend, reqs, cache, OPTS)
    flaky = OOMAbove(backend)
    with ResultCache(tmp_path / "oom.sqlite") as cache:
        got, stats = run_requests(flaky, reqs, cache, OPTS, is_oom=is_out_of_memory)
        assert cache.count() == 12
    assert stats.oom_splits > 0
    assert stats.computed == 12 and stats.unique == 12
    assert max(flaky.calls) > 2  # the planned batches were bigger than the limit...
    assert sum(n for n in flaky.calls if n <= 2) == 12  # ...and every request ran exactly once after splitting
    assert set(got) == set(plain)
    for r in plain:
        assert _ll_close(got[r], plain[r]), r


def test_out_of_memory_without_is_oom_propagates(backend, tmp_path: Path) -> None:
    with ResultCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(RuntimeError, match="CUDA out of memory"):
            run_requests(OOMAbove(backend), _requests(), cache, OPTS)  # default is_oom: never OOM


def test_out_of_memory_on_a_single_request_propagates(backend, tmp_path: Path) -> None:
    with ResultCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(RuntimeError, match="CUDA out of memory"):
            run_requests(OOMAbove(backend, limit=0), _requests(), cache, OPTS, is_oom=is_out_of_memory)
        assert cache.count() == 0


class FailOnCall(AroundReal):
    """The real backend, except that call number `fail_at` (1-based) raises a non-OOM error."""

    def __init__(self, real, fail_at: int) -> None:
        super().__init__(real)
        self.fail_at = fail_at
        self.calls = 0
        self.done: list = []  # requests of the batches that finished

    def _maybe_fail(self, requests: Sequence) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("tokenizer exploded")

    def loglikelihood(self, requests: Sequence):
        self._maybe_fail(requests)
        out = self.real.loglikelihood(requests)
        self.done.extend(requests)
        return out

    def generate(self, requests: Sequence, seed: int):
        self._maybe_fail(requests)
        out = self.real.generate(requests, seed)
        self.done.extend(requests)
        return out


def test_non_oom_error_propagates_and_finished_batches_are_cached(backend, tmp_path: Path) -> None:
    reqs = _requests()
    opts = EngineOptions(max_batch_size=4, progress=False)  # 8 LL -> 2 batches, 4 generate -> 1 batch
    failing = FailOnCall(backend, fail_at=3)
    path = tmp_path / "c.sqlite"
    with ResultCache(path) as cache:
        with pytest.raises(ValueError, match="tokenizer exploded"):
            run_requests(failing, reqs, cache, opts, is_oom=is_out_of_memory)
    assert failing.calls == 3
    assert len(failing.done) == 8  # two log-likelihood batches finished before the generate batch failed
    assert all(isinstance(r, LogLikelihood) for r in failing.done)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        stored = {k for (k,) in db.execute("SELECT key FROM results")}
    assert stored == set(keys_for(backend.id, failing.done, 0))

    with ResultCache(path) as cache:  # the rerun recomputes only what was lost
        results, stats = run_requests(backend, reqs, cache, opts, is_oom=is_out_of_memory)
    assert (stats.unique, stats.cached, stats.computed) == (12, 8, 4)
    assert set(results) == set(reqs)
