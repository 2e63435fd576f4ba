"""Per-sample seeded nucleus sampling: a sample depends on (seed, prompt, params, index) only.

`model.generate(do_sample=True)` draws every row from one global RNG, so a sample changes with
whatever else shares its batch, and a different token budget gives different numbers. Here each
row owns a `torch.Generator` seeded from its request, and this processor does the drawing itself:
it applies temperature and top-p (Holtzman et al. 2020: the smallest set of tokens whose
probability mass reaches p), draws one token with the row's generator, and hands `generate` a
one-hot score that greedy decoding then picks. Scores are invariant to batch size and order.

Why `torch.multinomial` and not a cheaper inverse-CDF draw: logits of the same row differ in the
last float32 bit between padded batch shapes. An inverse-CDF lookup over a flat 50k-token
distribution crosses a token boundary on such noise (we measured it: samples changed with batch
size), while multinomial's exponential race (argmax of p / Exp(1)) only flips on near-exact ties.

The fast path (CPU) gives the reference's bits, so SAMPLER_VERSION and every cached sample stay
valid. The reference (`_nucleus_filter_by_sort`, `_draw_by_multinomial`, kept for the tests and the
benchmark) sorts all 50,272 tokens of every row at every step and calls `torch.multinomial` once
per row: 1.1 s a step for 320 rows of an opt-125m on 2 cores, more than the model's forward pass.

- The cut without a full sort. Buckets of the probabilities' float32 bit patterns (1/128 of an
  octave each) get their mass in a float64 histogram; only the band of buckets where the mass
  crosses p is sorted. Tokens above the band are kept, tokens below it dropped, and inside it the
  reference's own arithmetic decides. This is exact because CPU `cumsum` adds float32 values into
  a float64 accumulator one after another, and float64 adds float32 values >= 2^-29 (last bit
  >= 2^-52) without rounding while the sum stays under 2: each prefix sum the reference rounds to
  float32 is the true sum, whatever the order, so the band's sums can start from the exact mass
  above it. The sort's tie order (unstable) only matters where the cut splits equal values, so a
  row is settled by the band only if its last kept value is strictly above its first dropped one,
  and a few other checks hold (`_band_cut`); the rest (about 1 row in 300 on a random opt-125m,
  and all rows with p within float32 noise of 1) take the reference's sort.
- The draw without multinomial's per-row calls. multinomial(p, 1) is argmax(p / q) over a tensor
  of q ~ Exp(1) (aten Distributions.cpp), q = float32(-log1p(-u)) for float64 uniforms u drawn in
  token order. `_race` draws the same u with `uniform_`, leaving each generator in the same state,
  computes the race for a chunk of rows at once, and rescores the winner and near-ties with libm's
  log1p (what aten calls), so a last-bit difference in the vectorised log1p cannot change a token.
- Chunks of rows run on a small thread pool, single-threaded each (`_over_row_chunks`).

tests/audit/test_fast_nucleus.py checks token and generator-state equality with the reference
over many seeds, temperatures, peaked, flat and tied distributions, p near 0 and 1, and rows that
take the fallback. Other devices keep the reference path (CUDA's cumsum does not add in float64).
"""

from __future__ import annotations

import functools
import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Sequence

import torch

from audit.types import Generate, GenParams

SAMPLER_VERSION = "1"  # part of the backend id: samples from another sampler are never reused

_SHIFT = 16  # a histogram bucket spans 2^16 float32 bit patterns: 1/128 of an octave
_BUCKETS = 2048  # 16 octaves below a row's largest probability; smaller ones share the last bucket
_SLACK = 1e-4  # mass on each side of p that the band spans, so that the exact checks pass
_MAX_BAND = 4096  # most tokens sorted in one row; a wider band takes the full sort
_EXACT_MIN = 2.0 ** -29  # smallest float32 whose float64 sums stay exact (its last bit is >= 2^-52)
_BELOW_MARGIN = 1e-6  # mass past p that proves every token below the band is dropped (> 8 float32 ulps)
_CHUNK_ROWS = 16  # rows per band computation: 3 MiB per float32 temporary at opt's vocabulary


def row_seed(seed: int, request: Generate, sample_index: int) -> int:
    """The seed of one sample's generator."""
    h = hashlib.sha256()
    for part in (str(seed), request.prompt, repr(request.params), str(sample_index)):
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\0")
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


def nucleus_filter(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Probabilities after temperature and top-p, renormalised; rows are independent. (B, V).

    Bit for bit `_nucleus_filter_by_sort`, without sorting the vocabulary on CPU (module docstring).
    """
    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature  # x / 1 is x: a pass saved
    probs = torch.softmax(scaled, dim=-1)  # (B, V)
    if top_p >= 1.0:
        return probs
    _zero_outside_nucleus_(probs, top_p)
    return probs.div_(probs.sum(dim=-1, keepdim=True))


def _zero_outside_nucleus_(probs: torch.Tensor, top_p: float) -> None:
    """Zero, in place, the probabilities the nucleus drops: the reference's `probs * keep`, bit for bit.

    Rows go in chunks whose temporaries stay in cache; a row the band cannot settle is left whole
    by its chunk and cut by the reference's full sort at the end.
    """
    if probs.device.type != "cpu" or probs.dtype != torch.float32 or probs.dim() != 2 or not probs.is_contiguous():
        probs.mul_(_keep_by_sort(probs, top_p))
        return

    def cut(start: int, stop: int) -> torch.Tensor:
        part = probs[start:stop]  # (C, V), a view
        band = _band_cut(part, top_p)
        floor = band.floor.masked_fill(~band.exact[:, None], torch.iinfo(torch.int32).min)  # (C, 1)
        part.mul_(part.view(torch.int32) >= floor)  # the reference's probs * keep; unsettled rows whole
        return (~band.exact).nonzero().squeeze(1) + start  # (F_c,)

    rows = torch.cat(_over_row_chunks(cut, probs.shape[0]))  # (F,) rows the band left to the sort
    if rows.numel():
        probs[rows] = probs[rows] * _keep_by_sort(probs[rows], top_p)


def draw(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per row, row i drawn with generators[i]: the token `torch.multinomial(probs[i], 1,
    generator=g)` gives, with g left in the same state, without multinomial's per-row calls. (B,)."""
    if probs.device.type != "cpu" or probs.dim() != 2 or probs.dtype != torch.float32:
        return _draw_by_multinomial(probs, generators)
    total = probs.sum(dim=-1)  # (B,): multinomial's own checks, with its messages
    if not bool((torch.isfinite(total) & (probs.amin(dim=-1) >= 0)).all()):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if bool((total == 0).any()):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    return torch.cat(_over_row_chunks(lambda start, stop: _race(probs[start:stop], generators[start:stop]),
                                      probs.shape[0]))  # (B,)


def _over_row_chunks(fn: Callable[[int, int], torch.Tensor], rows: int) -> list[torch.Tensor]:
    """[fn(start, stop) for each chunk of rows], in order, the chunks spread over torch's thread count.

    Each chunk runs single-threaded: its ops are small and per row, so an intra-op split would add
    a barrier per op and save little, and on a shared CPU a barrier waits for a descheduled thread
    (we measured a 3x slower sampler with 2 intra-op threads on 2 loaded cores). The results do
    not depend on the split: every step is per row, and every sum the results rest on is exact.
    """
    spans = [(start, min(start + _CHUNK_ROWS, rows)) for start in range(0, rows, _CHUNK_ROWS)]
    threads = torch.get_num_threads()
    workers = min(threads, len(spans))
    torch.set_num_threads(1)
    try:
        if workers <= 1:
            return [fn(*span) for span in spans]
        inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()  # thread-local: passed on
        return list(_pool(workers).map(lambda span: _single_threaded(fn, span[0], span[1], inference, grad), spans))
    finally:
        torch.set_num_threads(threads)


def _single_threaded(fn: Callable[[int, int], torch.Tensor], start: int, stop: int,
                     inference: bool, grad: bool) -> torch.Tensor:
    """fn on a pool thread, with one intra-op thread and the caller's inference and grad modes."""
    torch.set_num_threads(1)  # this thread's own setting
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        return fn(start, stop)


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per size, made on first use (never at import)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opt-audit-sampler")


def _race(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """multinomial's exponential race, argmax(p / q) with q ~ Exp(1), on a few rows. (B,).

    aten draws q[j] = float32(-log1p(-u[j])), u[j] a float64 uniform, one per token in order
    (exponential_distribution<double> in DistributionsHelper.h). `uniform_` on a float64 row draws
    the same u and leaves the generator where exponential_ would. The vectorised log1p may differ
    from libm's in the last float64 bit, so every token whose score comes within 2^-16 of the best
    (the winner and near-ties; a last-bit error moves a score by about 2^-22) is scored again with
    `math.log1p`, the libm function aten calls, and the first best of those wins, as in argmax.
    """
    minus_u = torch.empty(probs.shape, dtype=torch.float64)  # (B, V)
    for row, g in zip(minus_u, generators):
        row.uniform_(generator=g)
    minus_u.neg_()
    score = torch.log1p(minus_u).neg_().float()  # (B, V): q, to within a float32 rounding
    score = torch.div(probs, score, out=score)  # (B, V): p / q
    best = score.amax(dim=-1, keepdim=True)  # (B, 1); inf or nan where some u is exactly 0
    picks = best.new_empty(probs.shape[0], dtype=torch.long)
    r, c = (score >= best * (1.0 - 2.0 ** -16)).nonzero(as_tuple=True)  # the best and near-ties
    q = torch.tensor([-math.log1p(x) for x in minus_u[r, c].tolist()], dtype=torch.float64).float()
    exact = (probs[r, c] / q).tolist()
    winner: dict[int, tuple[float, int]] = {}
    for i, j, s in zip(r.tolist(), c.tolist(), exact):
        if i not in winner or s > winner[i][0]:  # ascending j: the first of equal scores stays
            winner[i] = (s, j)
    for i, ok in enumerate(torch.isfinite(best).squeeze(1).tolist()):
        if ok:
            picks[i] = winner[i][1]
        else:  # a uniform of exactly 0 (p 2^-53 a token): q = 0, p / q is inf or nan; score it all exactly
            q_row = torch.tensor([-math.log1p(x) for x in minus_u[i].tolist()], dtype=torch.float64).float()
            picks[i] = (probs[i] / q_row).argmax()
    return picks


class SeededSampler:
    """A transformers LogitsProcessor that samples each row with its own generator."""

    def __init__(self, params: GenParams, seeds: Sequence[int], device: torch.device) -> None:
        self.params = params
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = nucleus_filter(scores, self.params.temperature, self.params.top_p)  # (B, V)
        if probs.shape[0] != len(self.generators):
            raise RuntimeError(f"{probs.shape[0]} rows but {len(self.generators)} generators")
        picks = draw(probs, self.generators)  # (B,)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, picks[:, None], 0.0)
        return out


# --------------------------------------------------------------------------------------------
# The reference: the sort-everything path the fast path must match bit for bit
# --------------------------------------------------------------------------------------------


def _nucleus_filter_by_sort(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The reference nucleus filter, as sampler version 1 shipped: sort every row. (B, V)."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of strictly more likely tokens
    keep_sorted = before < top_p  # keeps the token that crosses p, and always the first
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    probs = probs * keep
    return probs / probs.sum(dim=-1, keepdim=True)


def _keep_by_sort(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The reference's mask, (B, V) bool, by its own steps: for the rows the band cannot settle."""
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of strictly more likely tokens
    keep_sorted = before < top_p  # keeps the token that crosses p, and always the first
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def _draw_by_multinomial(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """The reference draw (sampler version 1): one `torch.multinomial` call per row. (B,)."""
    return torch.stack([torch.multinomial(probs[i], 1, generator=g)[0] for i, g in enumerate(generators)])


# --------------------------------------------------------------------------------------------
# The band: where the cumulative mass crosses p
# --------------------------------------------------------------------------------------------


class BandCut(NamedTuple):
    """Where the nucleus ends in each row, and whether that is proven to be the reference's cut."""

    floor: torch.Tensor  # (B, 1) int32: the nucleus is every token whose bit pattern is >= floor
    exact: torch.Tensor  # (B,) bool: else the row needs the reference's full sort


def _band_cut(probs: torch.Tensor, top_p: float) -> BandCut:
    """Nucleus mask from a histogram and a sort of the band of tokens around the cut (module docstring).

    `probs` is a contiguous (B, V) float32 CPU tensor of non-negative probabilities (a softmax).
    """
    rows = probs.shape[0]
    bits = probs.view(torch.int32)  # (B, V): for x >= 0 the bit pattern orders like the value
    top = bits.amax(dim=-1, keepdim=True)  # (B, 1)
    key = (top - bits).bitwise_right_shift_(_SHIFT).clamp_(0, _BUCKETS - 1)  # (B, V) int32; 0 = largest
    # Mass per bucket in float64: exact for every bucket whose probabilities are all >= 2^-29.
    hist = torch.zeros(rows, _BUCKETS, dtype=torch.float64).scatter_add_(1, key, probs.double())  # (B, K)
    end = hist.cumsum(dim=-1)  # (B, K) mass up to the end of each bucket
    lo = (end <= top_p - _SLACK).sum(dim=-1, keepdim=True, dtype=torch.int32)  # (B, 1) first band bucket
    lo.clamp_(max=_BUCKETS - 1)
    hi = ((end - hist) < top_p + _SLACK).sum(dim=-1, keepdim=True, dtype=torch.int32).sub_(1)  # (B, 1) last
    hi = torch.maximum(hi, lo)
    base = (end - hist).gather(1, lo.long()).squeeze(1)  # (B,) mass above the band: exact if the band's is

    # The band's tokens, one row each, padded with -1 (sorts last): (B, W).
    r, c = ((key >= lo).logical_and_(key <= hi)).nonzero(as_tuple=True)  # (N,) each, row-major
    counts = torch.bincount(r, minlength=rows)  # (B,)
    exact = torch.isfinite(end[:, -1]) & (counts >= 1) & (counts <= _MAX_BAND)
    if not bool(exact.all()):
        r, c = r[exact[r]], c[exact[r]]
        counts = counts * exact
    width = max(int(counts.max()), 1)
    slot = torch.arange(r.numel()) - (counts.cumsum(0) - counts)[r]
    band = probs.new_full((rows, width), -1.0)
    band[r, slot] = probs[r, c]
    band = band.sort(dim=-1, descending=True).values  # (B, W); ties need no order: equal values, equal sums
    position = torch.arange(width)[None, :]  # (1, W)
    valid = position < counts[:, None]  # (B, W)

    # The reference's arithmetic on the band: float64 prefix sums rounded to float32, minus the value.
    band_sums = band.double().where(valid, 0.0).cumsum(dim=-1) + base[:, None]  # (B, W) exact sums
    kept = (band_sums.float() - band < top_p) & valid  # (B, W)
    m = kept.sum(dim=-1, keepdim=True)  # (B, 1) tokens kept in the band
    last = band.gather(1, (m - 1).clamp_(min=0))  # (B, 1) smallest kept value (if m >= 1)
    first_out = band.gather(1, m.clamp(max=width - 1))  # (B, 1) largest dropped value (if m < count)

    exact &= (kept == (position < m)).all(dim=-1)  # the kept tokens are a prefix
    exact &= ((m == 0) | (m == counts[:, None]) | (last > first_out)).squeeze(1)  # the cut splits no tie
    exact &= band.where(valid, 1.0).amin(dim=-1) >= _EXACT_MIN  # sums exact down to the band's end
    exact &= base.float() < top_p  # every token above the band: its before <= float32(base) < p
    exact &= band_sums[:, -1] >= top_p + _BELOW_MARGIN  # every token below: before >= that - 2^-22 > p

    # Kept: every token at least as large as the smallest kept one; with none kept in the band,
    # every token above the band, whose bit patterns start one past the band's top bucket.
    floor = torch.where(m > 0, last.view(torch.int32), top - (lo << _SHIFT) + 1)  # (B, 1) int32
    return BandCut(floor, exact)
