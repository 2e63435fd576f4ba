"""The fast nucleus path draws the reference's tokens, bit for bit, and leaves every generator where it would.

The reference is sampler version 1 as it shipped: sort every row (`_nucleus_filter_by_sort`), then one
`torch.multinomial` per row (`_draw_by_multinomial`). Equal tokens and equal generator states after
every step are what keep SAMPLER_VERSION at "1" and every cached sample valid.
"""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from audit.backends import sampling
from audit.backends.sampling import (
    SeededSampler,
    _band_cut,
    _draw_by_multinomial,
    _nucleus_filter_by_sort,
    draw,
    nucleus_filter,
)
from audit.types import GenParams

OPT_VOCAB = 50272


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flat(rows: int, seed: int) -> torch.Tensor:
    """A random opt-125m's logits: std about 0.55, so p = 0.9 keeps ~38,500 of 50,272 tokens."""
    return torch.randn(rows, OPT_VOCAB, generator=_gen(seed)) * 0.55


def _peaked(rows: int, seed: int) -> torch.Tensor:
    """A trained model's shape: a long tail and a few tokens far above it."""
    logits = torch.randn(rows, OPT_VOCAB, generator=_gen(seed)) * 2.0
    spikes = torch.randint(0, OPT_VOCAB, (rows, 5), generator=_gen(seed + 1))
    return logits.scatter_add(1, spikes, torch.rand(rows, 5, generator=_gen(seed + 2)) * 12.0)


def _tied(rows: int, seed: int) -> torch.Tensor:
    """Few distinct values in a small vocabulary: exact ties everywhere, the cut often inside one."""
    return torch.randint(0, 4, (rows, 64), generator=_gen(seed)).float()


def _masked(rows: int, seed: int) -> torch.Tensor:
    """Half the vocabulary at -inf (probability exactly 0), and one row with a single finite logit."""
    logits = _flat(rows, seed) * 4.0
    logits[:, ::2] = float("-inf")
    logits[0, :] = float("-inf")
    logits[0, 7] = 1.0
    return logits


def _tiny(rows: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, 3, generator=_gen(seed)) * 2.0


KINDS: dict[str, Callable[[int, int], torch.Tensor]] = {
    "flat": _flat, "peaked": _peaked, "tied": _tied, "masked": _masked, "tiny": _tiny,
}
TOP_P = (1e-9, 0.05, 0.5, 0.9, 0.95, 0.999, 1.0 - 1e-7, 1.0)
TEMPERATURES = (0.3, 1.0, 1.7)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_filter_is_the_reference_bit_for_bit(kind: str) -> None:
    for seed, temperature in enumerate(TEMPERATURES):
        logits = KINDS[kind](12, 100 * seed)
        for top_p in TOP_P:
            fast = nucleus_filter(logits, temperature, top_p)
            ref = _nucleus_filter_by_sort(logits, temperature, top_p)
            assert torch.equal(fast, ref), (kind, temperature, top_p)


def test_both_band_and_fallback_rows_are_exercised() -> None:
    # The tests above prove something only if both paths run: the band on the distributions a model
    # gives with ordinary p, the full sort on split ties and on p within float32 noise of 1.
    band = {kind: 0 for kind in KINDS}
    rows = {kind: 0 for kind in KINDS}
    fallback = 0
    for kind, make in KINDS.items():
        for temperature in TEMPERATURES:
            probs = torch.softmax(make(12, 7) / temperature, dim=-1)
            for top_p in TOP_P[:-1]:
                exact = _band_cut(probs, top_p).exact
                fallback += int((~exact).sum())
                if 1e-9 < top_p < 0.99:
                    band[kind] += int(exact.sum())
                    rows[kind] += exact.numel()
    assert fallback > 100
    for kind in ("flat", "peaked", "masked", "tiny"):
        assert band[kind] >= 0.95 * rows[kind], (kind, band[kind], rows[kind])
    assert band["tied"] < 0.5 * rows["tied"]  # most cuts split a tie there


def test_a_tie_split_by_the_cut_takes_the_full_sort() -> None:
    # probs 0.4, 0.2, 0.2, 0.2; mass before each in sorted order: 0, 0.4, 0.6, 0.8. p = 0.7 keeps
    # three tokens: two of the three tied 0.2s, which two being the sort's tie order. The band
    # cannot know it, so the row must fall back, and the mask is the sort's.
    logits = torch.log(torch.tensor([[0.2, 0.4, 0.2, 0.2]]))
    probs = torch.softmax(logits, dim=-1)
    assert _band_cut(probs, 0.7).exact.tolist() == [False]
    assert torch.equal(nucleus_filter(logits, 1.0, 0.7), _nucleus_filter_by_sort(logits, 1.0, 0.7))
    # p = 0.5 keeps the 0.4 and one of the 0.2s: again a split tie.
    assert _band_cut(probs, 0.5).exact.tolist() == [False]
    assert torch.equal(nucleus_filter(logits, 1.0, 0.5), _nucleus_filter_by_sort(logits, 1.0, 0.5))
    # p = 0.3 keeps the 0.4 alone: nothing tied is split, so the band decides it.
    assert _band_cut(probs, 0.3).exact.tolist() == [True]
    assert (nucleus_filter(logits, 1.0, 0.3) > 0).tolist() == [[False, True, False, False]]


def test_p_within_float32_noise_of_the_total_takes_the_full_sort() -> None:
    # With p = 1 - 1e-7 the cut falls where the reference's float32 prefix sums are within an ulp
    # of p, and a tail of probabilities under 2^-29 joins the sums: the band proves nothing there.
    logits = _peaked(4, 3) * 3.0
    assert not bool(_band_cut(torch.softmax(logits, dim=-1), 1.0 - 1e-7).exact.any())
    assert torch.equal(nucleus_filter(logits, 1.0, 1.0 - 1e-7), _nucleus_filter_by_sort(logits, 1.0, 1.0 - 1e-7))


def _steps(kind: str, params: GenParams, seeds: list[int], steps: int = 3) -> None:
    fast = SeededSampler(params, seeds, torch.device("cpu"))
    ref = [_gen(s) for s in seeds]
    for step in range(steps):
        scores = KINDS[kind](len(seeds), 1000 * step + seeds[0])
        one_hot = fast(None, scores)
        picks = one_hot.argmax(dim=-1)
        expected = _draw_by_multinomial(_nucleus_filter_by_sort(scores, params.temperature, params.top_p), ref)
        assert torch.equal(picks, expected), (kind, params, step)
        for g_fast, g_ref in zip(fast.generators, ref):
            assert torch.equal(g_fast.get_state(), g_ref.get_state())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sampler_tokens_and_generator_states_match_the_reference(kind: str) -> None:
    for temperature, top_p in ((1.0, 0.9), (0.7, 0.95), (1.3, 0.5), (1.0, 1.0), (0.5, 1e-9)):
        params = GenParams(20, do_sample=True, top_p=top_p, temperature=temperature)
        _steps(kind, params, seeds=[17 * i + int(top_p * 1000) for i in range(10)])


def test_many_seeds_on_the_benchmark_shape() -> None:
    # The RealToxicityPrompts protocol on a random opt-125m: p = 0.9, T = 1, 64 seeds.
    params = GenParams(20, do_sample=True, n=25, top_p=0.9)
    _steps("flat", params, seeds=list(range(64)), steps=2)


def test_draw_rescoring_absorbs_log1p_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # The vectorised log1p may differ from libm's in the last float64 bit. Make it err on purpose,
    # by far more than that (relative 1e-9, and some q pushed to exactly 0 so that the
    # whole-row path runs too): the near-winners are rescored with math.log1p, so tokens still match.
    real = torch.log1p
    flip = torch.Generator().manual_seed(5)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        out = real(x)
        out = out * (1.0 + 1e-9 * (torch.rand(out.shape, generator=flip, dtype=out.dtype) - 0.5))
        out[0, 3] = 0.0  # a q of 0: score inf or nan, so row 0 takes the exact whole-row path
        return out

    monkeypatch.setattr(torch, "log1p", noisy)
    probs = nucleus_filter(_flat(24, 9), 1.0, 0.9)
    fast, ref = [_gen(s) for s in range(24)], [_gen(s) for s in range(24)]
    assert torch.equal(draw(probs, fast), _draw_by_multinomial(probs, ref))
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(fast, ref))


def test_an_exact_tie_goes_to_the_first_token_even_when_log1p_errs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tokens 10 and 20 get p = q / 4 for the q this generator draws, so p / q = 0.25 for both: an
    # exact tie, which argmax (inside multinomial) gives to token 10. A log1p that errs by 2^-20 on
    # token 20 makes it look ahead; the rescoring with libm's log1p must still return token 10.
    u = torch.empty(64, dtype=torch.float64).uniform_(generator=_gen(3))
    q = torch.tensor([-math.log1p(-x) for x in u.tolist()], dtype=torch.float64).float()
    probs = torch.zeros(1, 64)
    probs[0, 10], probs[0, 20] = q[10] / 4, q[20] / 4
    real = torch.log1p

    def err(x: torch.Tensor) -> torch.Tensor:
        out = real(x)
        out[0, 20] *= 1.0 - 2.0 ** -20  # a smaller q: a larger score for token 20
        return out

    monkeypatch.setattr(torch, "log1p", err)
    assert draw(probs, [_gen(3)]).tolist() == [10]
    assert _draw_by_multinomial(probs, [_gen(3)]).tolist() == [10]


def test_draw_refuses_what_multinomial_refuses() -> None:
    gens = [_gen(0)]
    with pytest.raises(RuntimeError, match="inf"):
        draw(torch.tensor([[0.5, float("nan")]]), gens)
    with pytest.raises(RuntimeError, match="element < 0"):
        draw(torch.tensor([[1.5, -0.5]]), gens)
    with pytest.raises(RuntimeError, match="sum of probabilities"):
        draw(torch.zeros(1, 4), gens)


def test_samples_do_not_depend_on_batch_size() -> None:
    params = GenParams(20, do_sample=True, top_p=0.9)
    seeds = list(range(40))
    scores = torch.cat([_flat(20, 1), _peaked(20, 2)])  # (40, V)
    together = SeededSampler(params, seeds, torch.device("cpu"))(None, scores).argmax(dim=-1)
    apart = torch.cat([SeededSampler(params, seeds[i:i + 3], torch.device("cpu"))(None, scores[i:i + 3]).argmax(dim=-1)
                       for i in range(0, 40, 3)])
    assert torch.equal(together, apart)


def test_sampler_version_is_unchanged() -> None:
    # Same tokens from the same generators: cached samples of version 1 stay valid.
    assert sampling.SAMPLER_VERSION == "1"


def test_inference_mode_and_thread_count_survive_the_row_pool() -> None:
    # Decoding runs under inference_mode, which is per thread: the pool threads must see it to
    # update its tensors in place. And the intra-op thread count comes back as it was.
    params = GenParams(20, do_sample=True, top_p=0.9)
    seeds = list(range(40))  # more rows than one chunk: the pool runs
    scores = _flat(40, 4)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        picks = SeededSampler(params, seeds, torch.device("cpu"))(None, scores).argmax(dim=-1)
    assert torch.get_num_threads() == threads
    expected = _draw_by_multinomial(_nucleus_filter_by_sort(scores, 1.0, 0.9), [_gen(s) for s in seeds])
    assert torch.equal(picks, expected)
