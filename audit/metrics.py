"""Shared statistics: seeded bootstrap CIs, Wilson intervals, and per-group breakdowns.

Every interval is a 95% interval that contains its metric's value; a metric without one says why in
its `ci_method` ("no interval: ..."). Randomness comes only from an explicit seed, so the same rows
always give the same summary (a resumed run must equal an uninterrupted one).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np

from audit.types import GroupValue, Metric, skipped_metric

Z95 = 1.959963984540054  # standard normal quantile for a two-sided 95% interval
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240521  # fixed: CIs are a function of the rows only
NO_INTERVAL = "no interval: "
"""How a metric's `ci_method` begins when it has no interval; the rest says why."""
NO_INTERVAL_ONE_ITEM = NO_INTERVAL + "one item (an interval needs at least two)"


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
    draws = stat(x[idx])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return (float(lo), float(hi))


def mean_metric(
    name: str,
    values: Sequence[float],
    groups: Sequence[Hashable] | None,
    *,
    higher_is_better: bool | None,
    description: str,
    citation: str,
    ideal: float | None = None,
    unit: str = "",
    scale: float = 1.0,
) -> Metric:
    """Mean of per-item values with a bootstrap CI, overall and per group.

    `scale` multiplies value and CI (e.g. 100 for percentages). Non-finite items are an error
    upstream; an empty input becomes a skipped metric, never a 0.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: {int((~np.isfinite(x)).sum())} non-finite item values")
    return _summarise(name, x, groups, lambda a: (float(a.mean()), bootstrap_ci(a)),
                      "percentile bootstrap over items (2000 resamples, 95%)", scale,
                      MetricMeta(higher_is_better, description, citation, ideal, unit))


def proportion_metric(
    name: str,
    hits: Sequence[bool],
    groups: Sequence[Hashable] | None,
    *,
    higher_is_better: bool | None,
    description: str,
    citation: str,
    ideal: float | None = None,
    unit: str = "",
    scale: float = 1.0,
) -> Metric:
    """Share of True items with a Wilson CI, overall and per group.

    Items must be real booleans: a None or NaN would otherwise be coerced into a hit or a miss.
    """
    bad = [i for i, x in enumerate(hits) if not isinstance(x, (bool, np.bool_))]
    if bad:
        raise ValueError(f"{name}: item {bad[0]} is {hits[bad[0]]!r}, not a boolean ({len(bad)} such items)")
    h = np.asarray(hits, dtype=bool)
    return _summarise(name, h, groups, lambda a: (float(a.mean()), wilson_interval(int(a.sum()), int(a.size))),
                      "Wilson score interval (95%)", scale,
                      MetricMeta(higher_is_better, description, citation, ideal, unit))


@dataclass(frozen=True)
class MetricMeta:
    """How a metric presents itself: direction, text, citation, ideal value, unit."""

    higher_is_better: bool | None
    description: str
    citation: str
    ideal: float | None
    unit: str


def _summarise(name: str, x: np.ndarray, groups: Sequence[Hashable] | None,
               estimate: Callable[[np.ndarray], tuple[float, tuple[float, float] | None]],
               ci_method: str, scale: float, meta: MetricMeta) -> Metric:
    """Apply `estimate` (value, CI) to all items and to each group's items."""
    if x.size == 0:
        return skipped_metric(name, "no items", higher_is_better=meta.higher_is_better,
                              description=meta.description, citation=meta.citation, ideal=meta.ideal)
    by_group: dict[str, GroupValue] = {}
    if groups is not None:
        if len(groups) != x.size:
            raise ValueError(f"{name}: {len(groups)} group labels for {x.size} items")
        for g, idx in group_indices(groups).items():
            v, ci = estimate(x[idx])
            by_group[g] = GroupValue(v * scale, _scaled(_containing(v, ci), scale), int(idx.size))
    value, raw = estimate(x)
    ci = _containing(value, raw)
    if ci is None:  # say why, so a reader (and the report) never takes a missing interval for a certain value
        if x.size == 1:
            ci_method = NO_INTERVAL_ONE_ITEM
        elif raw is not None:
            ci_method = f"{NO_INTERVAL}the {ci_method} missed the value itself, so it is not shown"
        else:
            ci_method = f"{NO_INTERVAL}undefined for these {x.size} items ({ci_method})"
    return Metric(name=name, value=value * scale, ci=_scaled(ci, scale), n=int(x.size),
                  higher_is_better=meta.higher_is_better, description=meta.description,
                  citation=meta.citation, ideal=meta.ideal, unit=meta.unit, ci_method=ci_method,
                  groups=by_group)


def _containing(value: float, ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """`ci` when it contains `value` (up to rounding), else None: an interval that misses its own
    estimate comes from a biased resampling distribution and would mislead."""
    if ci is None:
        return None
    tol = 1e-9 * max(1.0, abs(value))
    return ci if ci[0] - tol <= value <= ci[1] + tol else None


def group_indices(groups: Sequence[Hashable]) -> Mapping[str, np.ndarray]:
    """Item indices of each group, groups in sorted order (stable output schema)."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by[str(g)].append(i)
    return {g: np.asarray(by[g]) for g in sorted(by)}


def _scaled(ci: tuple[float, float] | None, scale: float) -> tuple[float, float] | None:
    return None if ci is None else (ci[0] * scale, ci[1] * scale)
