"""The one home of the project's statistical estimators and intervals, and the metric builders on them.

Every probe, the gate and the dashboards take their intervals from here, so one estimator is written
once and a fix reaches every caller:
- proportions: `wilson_interval`, and `simultaneous_wilson` for several rates that must hold at once;
- a range (max - min) of rates: `range_interval` over simultaneous intervals (not a bootstrap);
- percentile bootstraps: `bootstrap_ci` (items), `multinomial_bootstrap_ci` (outcome counts),
  `pair_share_bootstrap` (units that form pairs), `stratified_paired_bootstrap_ci` (two runs' items);
- a median: `median_interval` (order statistics, no resampling);
- seeded randomness: `stable_seed` and `stable_permutation` (a salt, never the global RNG);
- the builders `mean_metric` and `proportion_metric`, which attach these to a `Metric`.

Every interval is a 95% interval that contains its metric's value; a metric without one says why in
its `ci_method` ("no interval: ..."). Randomness comes only from an explicit seed, so the same rows
always give the same summary (a resumed run must equal an uninterrupted one).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Callable, Hashable, Mapping, Sequence, TypedDict

import numpy as np

from audit.types import GroupValue, Metric, skipped_metric

if TYPE_CHECKING:
    from typing import Unpack  # Python 3.11; only read by the type checker (setup.cfg allows 3.10)

Z95 = 1.959963984540054  # standard normal quantile for a two-sided 95% interval
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240521  # fixed: CIs are a function of the rows only
NO_INTERVAL = "no interval: "
"""How a metric's `ci_method` begins when it has no interval; the rest says why."""
NO_INTERVAL_ONE_ITEM = NO_INTERVAL + "one item (an interval needs at least two)"

Interval = tuple[float, float]
"""A (low, high) 95% interval."""


def stable_seed(salt: str) -> int:
    """A 64-bit seed that depends only on `salt` (the first 8 bytes of its sha256, little-endian).

    Why: item subsets and demonstrations are chosen by probe name and version, never by the run seed
    or Python's salted `hash`, so every run and machine audits the same items and the gate can pair them.
    """
    return int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "little")


def stable_permutation(n: int, salt: str) -> np.ndarray:
    """A fixed permutation of range(n) from `stable_seed(salt)`, drawn from its own Generator."""
    return np.random.default_rng(stable_seed(salt)).permutation(n)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (Wilson 1927); sound near 0 and 1, unlike Wald."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def simultaneous_wilson(counts: Sequence[tuple[int, int]], confidence: float = 0.95
                        ) -> list[tuple[float, float]]:
    """Wilson intervals for k proportions that hold jointly with probability >= `confidence`.

    Why: a statistic of several rates at once, such as the largest gap between groups, needs every
    rate's interval to hold at the same time. Bonferroni (Dunn 1961) gives each of the k intervals
    level 1 - (1 - confidence) / k, so z = Phi^-1(1 - (1 - confidence) / (2k)); conservative, never
    anti-conservative, and each interval still contains its own estimate (Wilson does). `counts` are
    (successes, n) pairs with n >= 1.
    """
    k = len(counts)
    if k == 0:
        return []
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / (2 * k))
    out = []
    for successes, n in counts:
        ci = wilson_interval(successes, n, z)
        if ci is None:
            raise ValueError(f"simultaneous_wilson: a group has n = {n}; every group needs at least one item")
        out.append(ci)
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float, float] | None:
    """Percentile bootstrap 95% CI of `statistic` (default: the mean) over items.

    `statistic` maps a (resamples, n) array to (resamples,) so the resampling is vectorised.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        return None
    if x.size == 1:
        return None
    stat = statistic or (lambda a: a.mean(axis=1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    return percentile_interval(stat(x[idx]))


def percentile_interval(draws: np.ndarray) -> Interval:
    """The 2.5th and 97.5th percentiles of bootstrap draws (numpy's linear interpolation).

    Why one function: every bootstrap here reads its interval the same way, so they agree to the bit.
    Callers drop undefined (non-finite) draws first when their statistic can be undefined.
    """
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return (float(lo), float(hi))


def multinomial_bootstrap_ci(counts: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], *,
                             seed: int = BOOTSTRAP_SEED, resamples: int = BOOTSTRAP_RESAMPLES) -> Interval | None:
    """Percentile bootstrap 95% CI of a statistic of outcome counts, resampling items as counts.

    Why: when a statistic depends only on how many items fall in each of T outcome types (BBQ's
    bias scores), resampling n items with replacement is exactly a multinomial(n, counts / n) draw,
    which is far cheaper than drawing item indices. `counts` is (T,); `statistic` maps (R, T)
    counts to (R,) values. Undefined (non-finite) draws are dropped; None with fewer than two
    items or no defined draw.
    """
    n = int(counts.sum())
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = statistic(rng.multinomial(n, counts / n, size=resamples).astype(np.float64))
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None
    return percentile_interval(draws)


@dataclass(frozen=True)
class PairCounts:
    """Outcomes of comparisons between pairs of units, as symmetric (D, D) count matrices (zero diagonal)."""

    hits: np.ndarray  # (D, D): comparisons of the pair that came out positive (e.g. significant)
    tested: np.ndarray  # (D, D): comparisons of the pair


def pair_share_bootstrap(pairs: Mapping[str, PairCounts], *, seed: int = BOOTSTRAP_SEED,
                         resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Interval | None]:
    """95% percentile CIs of the share of positive comparisons, resampling the units that form pairs.

    Why: comparisons that share a unit (HolisticBias: a descriptor) are not independent, so the
    unit is resampled (with replacement, within its key). A resample that draws unit counts c holds
    c_i * c_j copies of pair (i, j) and no pair of a unit with itself, so its share is
    (c' H c) / (c' T c) over the hit (H) and tested (T) matrices. Keys: each key of `pairs`, and ""
    for all keys pooled. A key's draws come from one Generator, in the order of `pairs`.
    """
    rng = np.random.default_rng(seed)
    hits_all = np.zeros(resamples)
    tested_all = np.zeros(resamples)
    out: dict[str, Interval | None] = {}
    for key, p in pairs.items():
        d = p.tested.shape[0]
        counts = rng.multinomial(d, np.full(d, 1.0 / d), size=resamples).astype(float)  # (R, D)
        hits = np.einsum("ri,ij,rj->r", counts, p.hits, counts)
        tested = np.einsum("ri,ij,rj->r", counts, p.tested, counts)
        hits_all += hits
        tested_all += tested
        out[key] = _share_interval(hits, tested)
    out[""] = _share_interval(hits_all, tested_all)
    return out


def _share_interval(num: np.ndarray, den: np.ndarray) -> Interval | None:
    ok = den > 0  # a resample that drew one unit only has no pairs
    if ok.sum() < 2:
        return None
    return percentile_interval(num[ok] / den[ok])


def stratified_paired_bootstrap_ci(change: Callable[[np.ndarray, np.ndarray], np.ndarray], base: np.ndarray,
                                   cand: np.ndarray, codes: np.ndarray, n_strata: int, rng: np.random.Generator,
                                   *, resamples: int = BOOTSTRAP_RESAMPLES, chunk_cells: int = 4_000_000
                                   ) -> Interval | None:
    """95% percentile interval of a change between two runs over the items they share.

    Why paired: both runs' rows of an item are resampled together, so the interval is of the change
    itself, not of two independent estimates. Why stratified: items are resampled within each
    stratum (`codes`, 0..n_strata-1: a StereoSet target, a BOLD group), so every stratum keeps its
    size and an aggregate over strata stays defined. `base` and `cand` are (n, k) item values;
    `change(sums_base, sums_cand)` maps (M, S, k) per-stratum sums to (M,) changes. `rng` is the
    caller's (the gate draws its permutations from it first); blocks of about `chunk_cells` floats
    bound memory. Undefined draws are dropped; None with fewer than two items or no defined draw.
    """
    n, k = base.shape
    if n < 2:
        return None
    groups = [np.flatnonzero(codes == s) for s in range(n_strata)]
    draws = []
    step = max(1, chunk_cells // max(1, base.size))
    for start in range(0, resamples, step):
        m = min(step, resamples - start)
        sums_b, sums_c = np.zeros((m, len(groups), k)), np.zeros((m, len(groups), k))  # (M, S, k)
        for s, g in enumerate(groups):
            idx = g[rng.integers(0, g.size, size=(m, g.size))]  # (M, n_s): stratum s keeps its size
            sums_b[:, s], sums_c[:, s] = base[idx].sum(axis=1), cand[idx].sum(axis=1)
        draws.append(change(sums_b, sums_c))
    d = np.concatenate(draws)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    return percentile_interval(d)


def median_interval(x: np.ndarray) -> Interval | None:
    """Distribution-free 95% CI of the median: the order statistics at ranks n/2 -+ 1.96 sqrt(n)/2.

    Why: it needs no resampling (the normal approximation to the binomial; Conover, Practical
    Nonparametric Statistics, 3.2), is cheap at any n, and is monotone, so it maps through an
    increasing transform (e.g. exp of a log-perplexity) exactly like the median itself.
    """
    n = x.size
    if n < 2:
        return None
    xs = np.sort(x)
    half = Z95 * math.sqrt(n) / 2
    lo, hi = max(1, math.floor(n / 2 - half)), min(n, math.ceil(1 + n / 2 + half))  # 1-based ranks
    return (float(xs[lo - 1]), float(xs[hi - 1]))


def range_interval(intervals: Sequence[Interval]) -> Interval:
    """Bounds on max - min of quantities that each lie in their interval: the projection of the box.

    Why not a bootstrap for a gap between groups: the gap is a max over groups, and resampling
    inflates a max, so percentile bootstrap draws sit above the estimate (BOLD's intervals once
    missed their own value, e.g. 32.5 with [35.0, 59.5]); the basic bootstrap reflects that
    interval about the estimate, so it misses exactly when the percentile one does. Given intervals
    that hold jointly (`simultaneous_wilson`), the true range lies in [max(0, largest lower bound -
    smallest upper bound), largest upper bound - smallest lower bound] with the same probability,
    and the observed range always does.
    """
    lower = max(0.0, max(lo for lo, _ in intervals) - min(hi for _, hi in intervals))
    upper = max(hi for _, hi in intervals) - min(lo for lo, _ in intervals)
    return (lower, upper)


class _RequiredMetricArgs(TypedDict):
    higher_is_better: bool | None  # None: neither direction is better (a target value, see `ideal`)
    description: str
    citation: str


class MetricArgs(_RequiredMetricArgs, total=False):
    """The keywords of the per-item metric builders (`mean_metric`, `proportion_metric`), declared once:
    how the metric presents itself, and the scale of its value."""

    ideal: float | None  # the best value, where it is a target rather than a direction (default None)
    unit: str  # e.g. "%" (default "")
    scale: float  # multiplies value and CI, e.g. 100 for percentages (default 1)


def mean_metric(name: str, values: Sequence[float], groups: Sequence[Hashable] | None,
                **args: Unpack[MetricArgs]) -> Metric:
    """Mean of per-item values with a bootstrap CI, overall and per group.

    Non-finite items are an error upstream; an empty input becomes a skipped metric, never a 0.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: {int((~np.isfinite(x)).sum())} non-finite item values")
    return _summarise(name, x, groups, lambda a: (float(a.mean()), bootstrap_ci(a)),
                      "percentile bootstrap over items (2000 resamples, 95%)", args)


def proportion_metric(name: str, hits: Sequence[bool], groups: Sequence[Hashable] | None,
                      **args: Unpack[MetricArgs]) -> Metric:
    """Share of True items with a Wilson CI, overall and per group.

    Items must be real booleans: a None or NaN would otherwise be coerced into a hit or a miss.
    """
    bad = [i for i, x in enumerate(hits) if not isinstance(x, (bool, np.bool_))]
    if bad:
        raise ValueError(f"{name}: item {bad[0]} is {hits[bad[0]]!r}, not a boolean ({len(bad)} such items)")
    h = np.asarray(hits, dtype=bool)
    return _summarise(name, h, groups, lambda a: (float(a.mean()), wilson_interval(int(a.sum()), int(a.size))),
                      "Wilson score interval (95%)", args)


@dataclass(frozen=True)
class MetricMeta:
    """How a metric presents itself: direction, text, citation, ideal value, unit."""

    higher_is_better: bool | None
    description: str
    citation: str
    ideal: float | None
    unit: str

    @staticmethod
    def of(name: str, args: MetricArgs) -> "MetricMeta":
        """The presentation keywords of a builder call; one it does not know, or a required one left out, is
        an error as it would be for a plain signature (a misspelt `unit=` must not vanish)."""
        unknown = set(args) - MetricArgs.__required_keys__ - MetricArgs.__optional_keys__
        missing = MetricArgs.__required_keys__ - set(args)
        if unknown or missing:
            raise TypeError(f"{name}: " + "; ".join(f"{what} metric keyword(s): {', '.join(sorted(keys))}"
                                                   for what, keys in (("unknown", unknown), ("missing", missing))
                                                   if keys))
        return MetricMeta(args["higher_is_better"], args["description"], args["citation"], args.get("ideal"),
                          args.get("unit", ""))


def _summarise(name: str, x: np.ndarray, groups: Sequence[Hashable] | None,
               estimate: Callable[[np.ndarray], tuple[float, tuple[float, float] | None]],
               ci_method: str, args: MetricArgs) -> Metric:
    """Apply `estimate` (value, CI) to all items and to each group's items."""
    meta, scale = MetricMeta.of(name, args), args.get("scale", 1.0)
    if x.size == 0:
        return skipped_metric(name, "no items", higher_is_better=meta.higher_is_better,
                              description=meta.description, citation=meta.citation, ideal=meta.ideal)
    by_group: dict[str, GroupValue] = {}
    if groups is not None:
        if len(groups) != x.size:
            raise ValueError(f"{name}: {len(groups)} group labels for {x.size} items")
        for g, idx in group_indices(groups).items():
            v, ci = estimate(x[idx])
            by_group[g] = GroupValue(v * scale, scaled(containing(v, ci), scale), int(idx.size))
    value, raw = estimate(x)
    ci = containing(value, raw)
    if ci is None:  # say why, so a reader (and the report) never takes a missing interval for a certain value
        if x.size == 1:
            ci_method = NO_INTERVAL_ONE_ITEM
        elif raw is not None:
            ci_method = f"{NO_INTERVAL}the {ci_method} missed the value itself, so it is not shown"
        else:
            ci_method = f"{NO_INTERVAL}undefined for these {x.size} items ({ci_method})"
    return Metric(name=name, value=value * scale, ci=scaled(ci, scale), n=int(x.size),
                  higher_is_better=meta.higher_is_better, description=meta.description,
                  citation=meta.citation, ideal=meta.ideal, unit=meta.unit, ci_method=ci_method,
                  groups=by_group)


def containing(value: float, ci: Interval | None) -> Interval | None:
    """`ci` when it contains `value` (up to rounding), else None: an interval that misses its own
    estimate comes from a biased resampling distribution and would mislead."""
    if ci is None:
        return None
    tol = 1e-9 * max(1.0, abs(value))
    return ci if ci[0] - tol <= value <= ci[1] + tol else None


_containing = containing  # the name tests/audit/test_metrics.py imports


def group_indices(groups: Sequence[Hashable]) -> Mapping[str, np.ndarray]:
    """Item indices of each group, groups in sorted order (stable output schema)."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by[str(g)].append(i)
    return {g: np.asarray(by[g]) for g in sorted(by)}


def scaled(ci: Interval | None, scale: float) -> Interval | None:
    """`ci` multiplied by `scale` (e.g. 100 for a percentage); None stays None."""
    return None if ci is None else (ci[0] * scale, ci[1] * scale)
