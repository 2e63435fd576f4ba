"""audit.metrics, the estimators the probes and the gate share: seeds, percentile intervals, the
multinomial, pair-share and stratified paired bootstraps, the median interval and the range of
simultaneous intervals. Each expected value is worked out by hand in a comment."""

from __future__ import annotations

import numpy as np
import pytest

from audit.metrics import (PairCounts, containing, median_interval, multinomial_bootstrap_ci, pair_share_bootstrap,
                           percentile_interval, range_interval, scaled, stable_permutation, stable_seed,
                           stratified_paired_bootstrap_ci)
from probes.loading import fixed_subset

# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def test_stable_seed_is_the_first_8_sha256_bytes_little_endian() -> None:
    # sha256("abc") = ba7816bf 8f01cfea ... (the FIPS 180-2 test vector); its first 8 bytes
    # ba 78 16 bf 8f 01 cf ea read little-endian are 0xeacf018fbf1678ba.
    assert stable_seed("abc") == 0xEACF018FBF1678BA


def test_stable_permutation_depends_only_on_the_salt() -> None:
    a, b = stable_permutation(50, "probe/1"), stable_permutation(50, "probe/1")
    assert sorted(a.tolist()) == list(range(50))  # a permutation of 0..49
    assert a.tolist() == b.tolist()
    assert a.tolist() != stable_permutation(50, "probe/2").tolist()
    # fixed_subset keeps the first `limit` of that same permutation, in original order.
    assert fixed_subset(50, 7, "probe/1") == sorted(a[:7].tolist())


# ---------------------------------------------------------------------------------------------
# percentile_interval
# ---------------------------------------------------------------------------------------------


def test_percentile_interval_interpolates_linearly() -> None:
    # 5 sorted draws 0..4: the q-th percentile sits at position q/100 * (5 - 1):
    # 2.5% -> 0.1 (between 0 and 1: 0.1), 97.5% -> 3.9 (between 3 and 4: 3.9).
    lo, hi = percentile_interval(np.array([4.0, 0.0, 2.0, 1.0, 3.0]))
    assert lo == pytest.approx(0.1) and hi == pytest.approx(3.9)


# ---------------------------------------------------------------------------------------------
# multinomial_bootstrap_ci
# ---------------------------------------------------------------------------------------------


def _share_of_first(counts: np.ndarray) -> np.ndarray:
    return counts[:, 0] / counts.sum(axis=1)


def test_multinomial_bootstrap_of_a_fair_share_is_the_binomial_quantiles() -> None:
    # 10 items, 5 of type 0: every resample draws X ~ Binomial(10, 1/2) of type 0. P(X <= 1) =
    # 11/1024 = 0.011 and P(X <= 2) = 56/1024 = 0.055, so the 2.5% quantile of X/10 is 0.2; by
    # symmetry the 97.5% one is 0.8. With 2000 draws the 50th and 1950th order statistics land
    # there (about 21 draws expected at or below 0.1, about 109 at or below 0.2).
    assert multinomial_bootstrap_ci(np.array([5.0, 5.0]), _share_of_first) == (0.2, 0.8)


def test_multinomial_bootstrap_of_one_outcome_type_is_a_point() -> None:
    # Every item is of type 0, so every resample is (2, 0) and the share is 1.
    assert multinomial_bootstrap_ci(np.array([2.0, 0.0]), _share_of_first) == (1.0, 1.0)


def test_multinomial_bootstrap_needs_two_items_and_a_defined_draw() -> None:
    assert multinomial_bootstrap_ci(np.array([1.0, 0.0]), _share_of_first) is None  # one item
    never = multinomial_bootstrap_ci(np.array([3.0, 3.0]), lambda c: np.full(c.shape[0], np.nan))
    assert never is None  # every draw undefined


def test_multinomial_bootstrap_is_a_function_of_the_seed() -> None:
    counts = np.array([3.0, 4.0, 5.0])
    assert multinomial_bootstrap_ci(counts, _share_of_first, seed=7) == \
        multinomial_bootstrap_ci(counts, _share_of_first, seed=7)


# ---------------------------------------------------------------------------------------------
# pair_share_bootstrap
# ---------------------------------------------------------------------------------------------


def _pairs(hit_pairs: list[tuple[int, int]], d: int) -> PairCounts:
    hits, tested = np.zeros((d, d)), np.ones((d, d)) - np.eye(d)
    for i, j in hit_pairs:
        hits[i, j] = hits[j, i] = 1
    return PairCounts(hits, tested)


def test_pair_share_bootstrap_two_units_always_agree() -> None:
    # Units 0 and 1, their one pair a hit. A resample of 2 units draws (1, 1) (share 2/2 = 1) or
    # (2, 0) / (0, 2) (no pair: dropped), so every defined draw is 1.
    cis = pair_share_bootstrap({"a": _pairs([(0, 1)], 2)})
    assert cis == {"a": (1.0, 1.0), "": (1.0, 1.0)}


def test_pair_share_bootstrap_three_units_by_hand() -> None:
    # Units 0, 1, 2; only pair (0, 1) is a hit: share 1/3. Unit counts c = (c0, c1, c2) ~
    # Multinomial(3, 1/3 each) give share c0 c1 / (c0 c1 + c0 c2 + c1 c2):
    #   (1,1,1): 1/3, probability 6/27; (2,1,0), (1,2,0): 1, 3/27 each;
    #   (2,0,1), (0,2,1), (1,0,2), (0,1,2): 0, 3/27 each; (3,0,0) and the like: no pair, dropped.
    # Of the 24/27 defined draws, half are 0 and a quarter are 1, so the 2.5% and 97.5%
    # percentiles are 0 and 1.
    cis = pair_share_bootstrap({"a": _pairs([(0, 1)], 3)})
    assert cis["a"] == (0.0, 1.0) and cis[""] == (0.0, 1.0)


def test_pair_share_bootstrap_one_unit_has_no_pairs() -> None:
    assert pair_share_bootstrap({"a": _pairs([], 1)}) == {"a": None, "": None}


# ---------------------------------------------------------------------------------------------
# stratified_paired_bootstrap_ci
# ---------------------------------------------------------------------------------------------


def test_stratified_bootstrap_keeps_every_stratum_size() -> None:
    # Stratum 0: items 0, 1 (value 0); stratum 1: items 2, 3 (value 1), the same in both runs.
    # The change "candidate's stratum-1 sum minus baseline's stratum-0 sum" is 2 - 0 = 2 in every
    # resample, because each stratum is resampled within itself and keeps its 2 items (an
    # unstratified bootstrap would let it range over 0..4).
    values = np.array([[0.0], [0.0], [1.0], [1.0]])
    codes = np.array([0, 0, 1, 1])

    def change(sums_b: np.ndarray, sums_c: np.ndarray) -> np.ndarray:  # (M, S, k) -> (M,)
        return sums_c[:, 1, 0] - sums_b[:, 0, 0]

    ci = stratified_paired_bootstrap_ci(change, values, values, codes, 2, np.random.default_rng(0))
    assert ci == (2.0, 2.0)


def test_stratified_bootstrap_chunks_do_not_change_the_draws() -> None:
    # The same Generator state gives the same interval whether the 2000 resamples are drawn in
    # one block or in blocks of 5 (chunk_cells 40 over 8 cells), since blocks draw in order.
    rng_values = np.random.default_rng(1)
    b, c = rng_values.random((8, 1)), rng_values.random((8, 1))
    codes = np.zeros(8, dtype=np.int64)

    def change(sums_b: np.ndarray, sums_c: np.ndarray) -> np.ndarray:
        return (sums_c - sums_b)[:, 0, 0] / 8

    one = stratified_paired_bootstrap_ci(change, b, c, codes, 1, np.random.default_rng(3))
    many = stratified_paired_bootstrap_ci(change, b, c, codes, 1, np.random.default_rng(3), chunk_cells=40)
    assert one is not None and many is not None
    assert one == pytest.approx(many, rel=0, abs=1e-12)
    observed = float((c - b).mean())
    assert containing(observed, one) == one  # a mean's paired interval contains the mean change


def test_stratified_bootstrap_needs_two_items() -> None:
    one = np.array([[1.0]])
    assert stratified_paired_bootstrap_ci(lambda b, c: c[:, 0, 0], one, one, np.array([0]), 1,
                                          np.random.default_rng(0)) is None


# ---------------------------------------------------------------------------------------------
# median_interval, range_interval, scaled
# ---------------------------------------------------------------------------------------------


def test_median_interval_of_100_values_by_hand() -> None:
    # n = 100: half-width 1.959964 * sqrt(100) / 2 = 9.79982; ranks floor(50 - 9.79982) = 40 and
    # ceil(1 + 50 + 9.79982) = 61 (1-based), i.e. values 39 and 60 of 0..99.
    x = np.random.default_rng(0).permutation(100).astype(float)  # order must not matter
    assert median_interval(x) == (39.0, 60.0)


def test_median_interval_small_samples() -> None:
    # n = 9: half-width 1.959964 * 3 / 2 = 2.939946; ranks max(1, floor(1.560054)) = 1 and
    # min(9, ceil(8.439946)) = 9: the whole sample. n = 1: no interval.
    assert median_interval(np.arange(1.0, 10.0)) == (1.0, 9.0)
    assert median_interval(np.array([5.0])) is None


def test_range_interval_by_hand() -> None:
    # Disjoint: lower = max(0, 0.5 - 0.3) = 0.2, upper = 0.9 - 0.1 = 0.8.
    assert range_interval([(0.1, 0.3), (0.5, 0.9)]) == pytest.approx((0.2, 0.8))
    # Overlapping: the rates may be equal, so lower = max(0, 0.4 - 0.6) = 0; upper = 0.9 - 0.1.
    assert range_interval([(0.1, 0.6), (0.4, 0.9)]) == pytest.approx((0.0, 0.8))


def test_scaled() -> None:
    assert scaled((0.25, 0.5), 100.0) == (25.0, 50.0)
    assert scaled(None, 100.0) is None
