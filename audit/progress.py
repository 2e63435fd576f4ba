"""Work units: what the progress bar counts, so that 93 % means 93 % of the time, not of the requests.

A request count lies. On the quick suite 2,495 of 2,691 requests are log-likelihoods, yet the 196
generations take about four fifths of the model time: a log-likelihood is one parallel pass over
its tokens, a generation is max_new_tokens sequential steps, for each of its n samples. One work
unit is one token through the model in a parallel pass:

    log-likelihood:  its positions (`Backend.cost`: context + continuation - 1), where a prefix the
                     backend shares (the options of one question, `Backend.shared_prefix`) counts
                     once for the requests that run together
    generation:      its prompt tokens (once for its n samples where the backend shares the prompt,
                     else n times) + DECODE_WEIGHT x max_new_tokens x n

`DECODE_WEIGHT` is how many prefill tokens one generated token of one row costs. Measured on
tiny-opt, CPU, over every batch of the quick suite, twice (2026-12-07, other jobs sharing the 2
cores): log-likelihood batches 0.3-0.5 ms per unit, generation batches 10-14 ms per generated token
(sampling over the 50k vocabulary at every step dominates a model this small), a ratio of 27-36;
32 is the fixed constant. It is a property of model and device: on a GPU a decode step costs about
the same for 1 or 200 rows, so there the ETA settles only once generation has begun. `calibrate`
measures both costs on the current device for `opt-audit suites`' time estimates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from audit.batching import SharedPrefix
from audit.types import Backend, Generate, GenParams, LogLikelihood, Request

DECODE_WEIGHT = 32  # work units per generated token of one row (see the module docstring)


@dataclass(frozen=True)
class Work:
    """The cost of one request, before it is weighted into units."""

    tokens: int  # processed in one parallel pass: a log-likelihood's positions, a generation's prompt
    new_tokens: int = 0  # generated one step at a time: max_new_tokens x n
    prefix: SharedPrefix | None = None  # leading tokens computed once with requests of the same key


def request_work(backend: Backend, request: Request) -> Work:
    """A request's work from the backend's own token count, so it means the same as the token budget."""
    cost = backend.cost(request)
    if isinstance(request, Generate):
        new = request.params.max_new_tokens * request.params.n
        return Work(tokens=cost - new, new_tokens=new)  # cost = prompt (x n unless shared) + new tokens
    if isinstance(request, LogLikelihood):
        return Work(tokens=cost, prefix=backend.shared_prefix(request))
    return Work(tokens=cost)  # any other kind: one parallel pass over its tokens


def units(works: Sequence[Work], decode_weight: int = DECODE_WEIGHT) -> int:
    """Work units of requests that run together (one batch): a prefix whose key two or more of them
    share is computed once (as the hf backend does); a request alone with its key runs plain."""
    count: dict[Hashable, int] = {}
    for w in works:
        if w.prefix is not None:
            count[w.prefix.key] = count.get(w.prefix.key, 0) + 1
    prefix_once: dict[Hashable, int] = {}
    total = 0
    for w in works:
        tokens = w.tokens
        if w.prefix is not None and count[w.prefix.key] > 1:
            shared = min(w.prefix.tokens, w.tokens - 1)  # at least one token of the row is its own
            prefix_once[w.prefix.key] = max(prefix_once.get(w.prefix.key, 0), shared)
            tokens -= shared
        total += tokens + decode_weight * w.new_tokens
    return total + sum(prefix_once.values())


def work_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar on stderr over work units (`initial` of them already done: cached requests), whose
    rate and ETA are therefore in work, not requests; silent when disabled."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", unit_scale=False, dynamic_ncols=True,
                file=sys.stderr, disable=not enabled, smoothing=0.1)


# ------------------------------------------------------------------------------------------------
# Calibration: seconds per work unit on this device, for `opt-audit suites`' time estimates
# ------------------------------------------------------------------------------------------------

CALIBRATION_ROWS = (8, 64)  # two batch sizes: a decode step costs a fixed part plus a part per row
CALIBRATION_STEPS = (2, 10)  # two generation lengths: their difference is decode alone
SAMPLED = GenParams(max_new_tokens=2, do_sample=True, temperature=1.0, top_p=0.9)  # as the probes sample


@dataclass(frozen=True)
class Calibration:
    """Measured costs on one device; an estimate is work x these.

    A decode step of a batch of r rows costs seconds_per_step + r x seconds_per_row_step: on tiny-opt
    on CPU the fixed part is about a third of a 64-row step, on a GPU it is nearly all of it, so one
    figure per generated token would be wrong for one batch size or the other."""

    seconds_per_token: float  # one log-likelihood (prefill) token, in a batch
    seconds_per_step: float  # the fixed part of one decode step of a batch
    seconds_per_row_step: float  # the part of one decode step per row of the batch
    seconds_per_text: float | None  # the toxicity scorer, per text; None: not measured
    seconds: float  # how long the calibration itself took

    def seconds_per_new_token(self, rows: int) -> float:
        """One generated token of one row, in a batch of `rows` rows."""
        return self.seconds_per_step / rows + self.seconds_per_row_step


def calibrate(backend: Backend, scorer: Any | None = None) -> Calibration:
    """Time a log-likelihood batch, generation batches of 8 and 64 rows at 2 and 10 new tokens (the
    differences are decode alone), and the scorer over 64 texts, on the loaded backend: a few seconds
    on a free machine."""
    from dataclasses import replace

    t0 = time.perf_counter()
    words = "the people who live in the old town by the river said that it was a fine day for a walk".split()
    contexts = [" ".join(words[i % 7:] + words[:i % 7]) + f" {i}" for i in range(max(CALIBRATION_ROWS))]
    lls = [LogLikelihood(c, " and then they went home") for c in contexts[:32]]
    backend.loglikelihood(lls[:2])  # warm-up: first-call allocations are not the steady rate
    start = time.perf_counter()
    backend.loglikelihood(lls)
    per_token = (time.perf_counter() - start) / max(1, units([request_work(backend, r) for r in lls]))

    def timed_generate(rows: int, steps: int) -> float:
        requests = [Generate(c, replace(SAMPLED, max_new_tokens=steps)) for c in contexts[:rows]]
        start = time.perf_counter()
        backend.generate(requests, 0)
        return time.perf_counter() - start

    timed_generate(2, 1)  # warm-up
    step = {rows: max(timed_generate(rows, CALIBRATION_STEPS[1]) - timed_generate(rows, CALIBRATION_STEPS[0]), 0.0)
            / (CALIBRATION_STEPS[1] - CALIBRATION_STEPS[0]) for rows in CALIBRATION_ROWS}
    small, large = CALIBRATION_ROWS
    per_row_step = max(step[large] - step[small], 0.0) / (large - small)
    per_step = max(step[small] - small * per_row_step, 0.0)

    per_text = None
    if scorer is not None:
        texts = [" ".join(words[i % 11:] + words[:i % 11]) for i in range(64)]
        scorer.score(texts[:2])  # warm-up
        start = time.perf_counter()
        scorer.score(texts)
        per_text = (time.perf_counter() - start) / len(texts)
    return Calibration(per_token, per_step, per_row_step, per_text, time.perf_counter() - t0)


@dataclass(frozen=True)
class DecodeBatch:
    """One generation batch as the engine would run it: `steps` decode steps over `rows` rows."""

    steps: int  # the batch's max_new_tokens
    rows: int  # sequences generated together: prompts x samples


def decode_batches(backend: Backend, requests: Sequence[Generate], token_budget: int) -> list[DecodeBatch]:
    """The engine's own plan (audit.batching) for these generations, as decode steps x rows."""
    from audit.batching import plan_batches

    costs = [backend.cost(r) for r in requests]
    plan = plan_batches(costs, token_budget, None, [r.params for r in requests])
    return [DecodeBatch(requests[b.indices[0]].params.max_new_tokens, sum(requests[i].params.n for i in b.indices))
            for b in plan]


@dataclass(frozen=True)
class Estimate:
    """A suite's (or probe's) cost and estimated seconds on the calibrated device."""

    tokens: int  # prefill work units (log-likelihood positions and generation prompts)
    new_tokens: int  # generated tokens, all rows
    texts: int  # texts the toxicity scorer reads
    seconds: float  # all of it: the model and the scorer
    scoring_seconds: float  # the scorer's part


def estimate(works: Sequence[Work], texts: int, calibration: Calibration, scale: float = 1.0,
             batches: Sequence[DecodeBatch] = ()) -> Estimate:
    """Seconds for these requests (`works` a sample of them, `scale` = all / sampled): prefill at the
    measured per-token rate, each decode batch at steps x (per step + rows x per row-step), the scorer
    per text. Padding is not modelled."""
    tokens = round(units(works, decode_weight=0) * scale)
    new = round(sum(w.new_tokens for w in works) * scale)
    decode = sum(b.steps * (calibration.seconds_per_step + b.rows * calibration.seconds_per_row_step)
                 for b in batches)
    scoring = texts * calibration.seconds_per_text if calibration.seconds_per_text is not None else 0.0
    seconds = tokens * calibration.seconds_per_token + decode + scoring
    return Estimate(tokens, new, texts, seconds, scoring)


def sample_requests(requests: Sequence[Request], blocks: int = 8, block: int = 32) -> list[Request]:
    """A deterministic sample for a large probe: `blocks` evenly spaced runs of `block` consecutive
    requests (consecutive, so the options of one question mostly stay together and share as they do
    in a run). All of them when there are no more than blocks x block."""
    if len(requests) <= blocks * block:
        return list(requests)
    step = len(requests) // blocks
    return [r for b in range(blocks) for r in requests[b * step:b * step + block]]
