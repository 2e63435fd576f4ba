"""audit.metrics: Wilson and bootstrap intervals, and the mean / proportion metric builders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.metrics import (NO_INTERVAL_ONE_ITEM, Z95, _containing, bootstrap_ci, group_indices, mean_metric,
                           proportion_metric, simultaneous_wilson, wilson_interval)

META = dict(higher_is_better=False, description="d", citation="c")


# ---------------------------------------------------------------------------------------------
# wilson_interval
# ---------------------------------------------------------------------------------------------


def test_wilson_8_of_10_by_hand() -> None:
    # p = 0.8, n = 10, z = 1.959964, z^2 = 3.841459
    # denom  = 1 + z^2/n              = 1.3841459
    # centre = (p + z^2/(2n)) / denom = (0.8 + 0.1920729) / 1.3841459 = 0.7167374
    # half   = z * sqrt(p(1-p)/n + z^2/(4n^2)) / denom
    #        = 1.959964 * sqrt(0.016 + 0.0096036) / 1.3841459
    #        = 1.959964 * 0.1600113 / 1.3841459 = 0.2265751
    # -> (0.7167374 - 0.2265751, 0.7167374 + 0.2265751) = (0.4902, 0.9433)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=5e-5)
    assert hi == pytest.approx(0.9433, abs=5e-5)


def test_wilson_0_of_5_by_hand() -> None:
    # p = 0: centre = half = (z^2/(2n)) / (1 + z^2/n) = 0.3841459 / 1.7682918 = 0.2172412
    # -> lower 0 exactly, upper = (z^2/n) / (1 + z^2/n) = 0.7682918 / 1.7682918 = 0.4344825
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0
    assert hi == pytest.approx(0.4344825, abs=1e-6)


def test_wilson_all_successes_mirrors_none() -> None:
    # By symmetry, 5 of 5 is (1 - 0.4344825, 1).
    lo, hi = wilson_interval(5, 5)
    assert lo == pytest.approx(1 - 0.4344825, abs=1e-6)
    assert hi == 1.0


@pytest.mark.parametrize("n", [0, -1])
def test_wilson_no_items_is_none(n: int) -> None:
    assert wilson_interval(0, n) is None


def test_z95_is_the_normal_quantile() -> None:
    # Phi(1.959964) = 0.975: check through erf, Phi(z) = (1 + erf(z / sqrt 2)) / 2.
    assert (1 + math.erf(Z95 / math.sqrt(2))) / 2 == pytest.approx(0.975, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# simultaneous_wilson (Bonferroni over k intervals)
# ---------------------------------------------------------------------------------------------


def test_simultaneous_wilson_by_hand() -> None:
    # k = 2 intervals jointly at 95%: each at 97.5%, z = Phi^-1(1 - 0.05/4) = Phi^-1(0.9875) = 2.241403,
    # z^2 = 5.023886. For n = 2, denom = 1 + z^2/2 = 3.511943:
    #   2 of 2: lower = 1 / 3.511943 = 0.284743, upper 1
    #   0 of 2: lower 0, upper = (z^2/2) / 3.511943 = 2.511943 / 3.511943 = 0.715257
    (a_lo, a_hi), (b_lo, b_hi) = simultaneous_wilson([(2, 2), (0, 2)])
    assert (a_lo, a_hi) == (pytest.approx(0.284743, abs=1e-6), 1.0)
    assert (b_lo, b_hi) == (0.0, pytest.approx(0.715257, abs=1e-6))
    # one interval is the plain 95% Wilson interval (z = 1.96)
    assert simultaneous_wilson([(8, 10)]) == [wilson_interval(8, 10)]
    # wider with more intervals to hold jointly, and each still contains its estimate
    lo3, hi3 = simultaneous_wilson([(8, 10)] * 3)[0]
    lo1, hi1 = wilson_interval(8, 10)
    assert lo3 < lo1 < 0.8 < hi1 < hi3
    assert simultaneous_wilson([]) == []
    with pytest.raises(ValueError, match="n = 0"):
        simultaneous_wilson([(0, 0)])


# ---------------------------------------------------------------------------------------------
# bootstrap_ci
# ---------------------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    x = [0.1, 0.4, 0.35, 0.8, 0.9, 0.05, 0.6]
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(list(x), seed=7)
    assert bootstrap_ci(x) == bootstrap_ci(np.asarray(x))  # default seed is fixed too
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)


def test_bootstrap_contains_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=3.0, scale=1.0, size=200)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi
    # The width is about 2 * 1.96 * sd / sqrt(n) = 3.92 / 14.14 = 0.277 for sd ~ 1.
    assert 0.2 < hi - lo < 0.36


def test_bootstrap_constant_sample_is_a_point() -> None:
    # Every resample of [2, 2, 2] has mean 2, so both percentiles are 2.
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_bootstrap_two_values_by_hand() -> None:
    # Resample means of [0, 1] are 0 (p = 1/4), 0.5 (p = 1/2) or 1 (p = 1/4); with 2000
    # resamples about 500 are 0 and 500 are 1, so the 2.5th percentile is 0 and the 97.5th is 1.
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)


def test_bootstrap_custom_statistic() -> None:
    # The median of a resample of a constant-except-one sample stays inside [min, max].
    lo, hi = bootstrap_ci([1.0, 1.0, 1.0, 1.0, 9.0], statistic=lambda a: np.median(a, axis=1))
    assert lo == 1.0 and 1.0 <= hi <= 9.0


@pytest.mark.parametrize("values", [[], [3.0], np.zeros((2, 2))])
def test_bootstrap_needs_two_items_in_one_dimension(values) -> None:
    assert bootstrap_ci(values) is None


# ---------------------------------------------------------------------------------------------
# mean_metric
# ---------------------------------------------------------------------------------------------


def test_mean_metric_values_scale_and_groups() -> None:
    # values 1, 2, 3, 6 -> mean 12 / 4 = 3, scale 100 -> 300
    # group a = [2, 6] -> mean 4 -> 400, n 2; group b = [1, 3] -> mean 2 -> 200, n 2
    values = [1.0, 2.0, 3.0, 6.0]
    m = mean_metric("m", values, ["b", "a", "b", "a"], scale=100.0, unit="%", **META)
    assert m.ok and m.status == "ok"
    assert m.value == pytest.approx(300.0)
    assert m.n == 4
    assert m.unit == "%"
    assert list(m.groups) == ["a", "b"]  # sorted, whatever the input order
    assert m.groups["a"].value == pytest.approx(400.0) and m.groups["a"].n == 2
    assert m.groups["b"].value == pytest.approx(200.0) and m.groups["b"].n == 2
    lo, hi = bootstrap_ci(values)
    assert m.ci == pytest.approx((lo * 100, hi * 100))
    assert m.groups["a"].ci == pytest.approx(tuple(c * 100 for c in bootstrap_ci([2.0, 6.0])))


def test_mean_metric_without_groups_and_singleton_group() -> None:
    m = mean_metric("m", [0.5, 1.5], None, **META)
    assert m.value == pytest.approx(1.0) and m.groups == {}
    # A group of one item has a value but no interval.
    m = mean_metric("m", [0.5, 1.5], ["x", "y"], **META)
    assert m.groups["x"].value == 0.5 and m.groups["x"].ci is None and m.groups["x"].n == 1


def test_a_metric_of_one_item_says_why_it_has_no_interval() -> None:
    m = mean_metric("m", [0.5], None, **META)
    assert m.ok and m.value == 0.5 and m.ci is None
    assert m.ci_method == NO_INTERVAL_ONE_ITEM == "no interval: one item (an interval needs at least two)"


def test_an_interval_that_misses_its_value_is_dropped() -> None:
    # 32.5 with [35.0, 59.5] (a percentile bootstrap of a max, as BOLD's gaps once were): not shown
    assert _containing(32.5, (35.0, 59.5)) is None
    assert _containing(35.0, (35.0, 59.5)) == (35.0, 59.5)  # an end point counts as inside
    assert _containing(1.0, None) is None


def test_mean_metric_empty_is_skipped_not_zero() -> None:
    m = mean_metric("m", [], [], ideal=0.0, **META)
    assert m.status.startswith("skipped")
    assert not m.ok
    assert math.isnan(m.value) and m.n == 0 and m.ci is None
    assert m.name == "m" and m.description == "d" and m.ideal == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_mean_metric_non_finite_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="m: 1 non-finite"):
        mean_metric("m", [1.0, bad, 2.0], None, **META)


def test_mean_metric_group_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="1 group labels for 2 items"):
        mean_metric("m", [1.0, 2.0], ["a"], **META)


# ---------------------------------------------------------------------------------------------
# proportion_metric
# ---------------------------------------------------------------------------------------------


def test_proportion_metric_values_scale_and_groups() -> None:
    # hits T F T T -> 3 / 4 = 0.75 -> 75 with scale 100
    # group x = [T, T] -> 100, n 2; group y = [F, T] -> 50, n 2
    hits = [True, False, True, True]
    m = proportion_metric("p", hits, ["y", "y", "x", "x"], scale=100.0, **META)
    assert m.value == pytest.approx(75.0) and m.n == 4
    lo, hi = wilson_interval(3, 4)
    assert m.ci == pytest.approx((lo * 100, hi * 100))
    assert list(m.groups) == ["x", "y"]
    assert m.groups["x"].value == pytest.approx(100.0) and m.groups["x"].n == 2
    assert m.groups["y"].value == pytest.approx(50.0) and m.groups["y"].n == 2
    assert m.groups["x"].ci == pytest.approx(tuple(c * 100 for c in wilson_interval(2, 2)))
    assert m.ci_method.startswith("Wilson")


def test_proportion_metric_8_of_10_interval() -> None:
    # Same numbers as the Wilson hand check, scaled: (49.02, 94.33)
    m = proportion_metric("p", [True] * 8 + [False] * 2, None, scale=100.0, **META)
    assert m.value == pytest.approx(80.0)
    assert m.ci == pytest.approx((49.02, 94.33), abs=5e-3)
    assert m.groups == {}


def test_proportion_metric_empty_is_skipped() -> None:
    m = proportion_metric("p", [], None, **META)
    assert m.status.startswith("skipped") and math.isnan(m.value) and m.n == 0


def test_proportion_metric_nan_raises() -> None:
    with pytest.raises(ValueError):
        proportion_metric("p", [math.nan, False], None, **META)


def test_group_indices_sorted_by_string_label() -> None:
    # labels are compared as strings: "10" < "2" < "a"
    idx = group_indices([2, "a", 10, 2])
    assert list(idx) == ["10", "2", "a"]
    assert [list(v) for v in idx.values()] == [[2], [0, 3], [1]]
