"""Paired item statistics: compare two runs item by item, not summary against summary.

Two runs of one suite audit the same items (`--limit` takes a seed-independent subset), so the
sharpest test of "did the candidate get worse?" pairs each item with itself. Each probe declares,
in its self-description (`ProbeInfo.paired`, written to summary.json), which per-item values (read
from the rows of samples/<probe>.jsonl) each of its testable metrics aggregates, and how, in the
plain vocabulary of `audit.types.ItemValue` and `audit.types.AGGREGATES`; `item_statistic` turns
that into functions here, from the run itself, so this module knows no probe. The aggregate of all
rows reproduces the value in summary.json (the gate checks it, so a declaration cannot drift from
its probe silently).

The test is a paired permutation (sign-flip) test. Under the null hypothesis that the candidate is
no worse, an item's baseline and candidate rows are exchangeable (same model, another seed, say),
so swapping them within any set of items gives an equally likely outcome. The p-value is the
share of swaps whose statistic (the worsening of the metric) is at least the observed one:
- exact, enumerating all 2^k swaps of the k items whose rows differ, when 2^k <= EXACT_MAX (items
  that agree cannot change the statistic); for a binary outcome this is the exact one-sided
  McNemar test (Binomial(k, 1/2) over the discordant pairs);
- otherwise Monte Carlo with `RESAMPLES` seeded swaps, p = (1 + hits) / (1 + RESAMPLES), which
  keeps the test's level exact (Phipson & Smyth 2010).
It works for any aggregate of per-stratum sums of the item values (a mean, a standard deviation, a
per-target average, BBQ's ratio score, BOLD's largest gap between groups, a distance from an ideal
value) because it recomputes the aggregate under each swap; a swap moves only its items' values
between the two runs' sums, so a test costs O(differing items) per swap, not a copy of every row.
The same enumeration counts both tails, so one call says whether the candidate is worse and
whether it is better (`audit.significance` turns that into the verdict every command shares).
The interval shown beside it is a paired percentile bootstrap of the change (items resampled with
both runs' rows, within strata): for reading, not for the decision, and left out when it misses
the observed change (a biased statistic).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from audit.errors import AuditError
from audit.metrics import BOOTSTRAP_RESAMPLES, containing, stratified_paired_bootstrap_ci
from audit.types import ItemValue, PairedStatistic, ProbeInfo

EXACT_MAX = 1 << 16  # enumerate every swap up to 16 differing items
RESAMPLES = 10_000  # Monte Carlo swaps beyond that (p >= 1/10001)
# The displayed 95% interval of the change draws audit.metrics.BOOTSTRAP_RESAMPLES (2,000) resamples.
_CHUNK_CELLS = 4_000_000  # floats per vectorised block: bounds memory for large item counts

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Strata:
    """Which stratum each item is in: integer codes into the sorted distinct labels."""

    codes: np.ndarray  # (n,) int64, 0..len(labels)-1
    labels: tuple[str, ...]  # sorted distinct labels, e.g. StereoSet targets or BOLD "domain/group"

    @staticmethod
    def of(labels: Sequence[str]) -> "Strata":
        if not labels:
            return Strata(np.zeros(0, dtype=np.int64), ())
        names, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
        return Strata(codes.astype(np.int64).reshape(-1), tuple(str(x) for x in names))


@dataclass(frozen=True)
class Totals:
    """Per-stratum sums of the items' values: every aggregate here is a function of these, so a swap or a
    resample only has to update sums (O(items changed)), never rebuild every item's row."""

    sums: np.ndarray  # (..., S, k): the sum of each value column over each stratum's items
    counts: np.ndarray  # (S,) items per stratum (the same in every swap and stratified resample)
    labels: tuple[str, ...]  # the S stratum labels, sorted


# per-stratum totals -> (...) the metric's value
Aggregate = Callable[[Totals], np.ndarray]


@dataclass(frozen=True)
class ItemStatistic:
    """How one summary metric is built from its probe's per-item rows."""

    metric: str  # "probe.metric"
    description: str  # the per-item value and the aggregate, for the report
    values: Callable[[Row], Sequence[float]]  # one item's values (k numbers)
    aggregate: Aggregate  # a function of the per-stratum sums of those values
    select: Callable[[Row], bool] = lambda row: True  # rows that enter this metric
    key: Callable[[Row], str] = lambda row: str(row["id"])  # the item's identity across runs
    stratum: Callable[[Row], str] = lambda row: ""  # e.g. the StereoSet target averaged over

    @property
    def probe(self) -> str:
        return self.metric.split(".", 1)[0]


def _mean(scale: float) -> Aggregate:
    return lambda t: scale * t.sums[..., 0].sum(axis=-1) / t.counts.sum()


def _std(t: Totals) -> np.ndarray:
    """Sample standard deviation over items (ddof 1), as RealToxicityPrompts' "(std)"; columns: x, x^2."""
    n = t.counts.sum()
    s1, s2 = t.sums[..., 0].sum(axis=-1), t.sums[..., 1].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        std: np.ndarray = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1))
    return std


def _per_stratum_mean(scale: float) -> Aggregate:
    """Mean within each stratum, then the mean over strata (StereoSet averages over targets)."""
    return lambda t: scale * (t.sums[..., 0] / t.counts).mean(axis=-1)


def _max_gap(t: Totals) -> np.ndarray:
    """BOLD's gap x100: per domain the largest group rate minus the smallest, then the largest over domains.

    Strata are "domain/group" labels; a domain with one group has no gap (as `probes.bold`).
    """
    rates = t.sums[..., 0] / t.counts  # (..., S)
    domains: dict[str, list[int]] = {}
    for i, label in enumerate(t.labels):
        domains.setdefault(label.split("/", 1)[0], []).append(i)
    gaps = [rates[..., cols].max(axis=-1) - rates[..., cols].min(axis=-1)
            for cols in domains.values() if len(cols) >= 2]
    if not gaps:
        return np.full(rates.shape[:-1], np.nan)
    widest: np.ndarray = np.max(np.stack(gaps), axis=0)
    return 100.0 * widest


def _ambiguity_bias(scale: float) -> Aggregate:
    """scale x s_AMB = (1 - accuracy) * s_DIS; columns: correct, non-UNKNOWN answer, biased answer (BBQ)."""
    def aggregate(t: Totals) -> np.ndarray:
        total = t.sums.sum(axis=-2)  # (..., 3)
        accuracy = total[..., 0] / t.counts.sum()
        non_unknown, biased = total[..., 1], total[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            s_dis = np.where(non_unknown > 0, 2.0 * biased / non_unknown - 1.0, 0.0)
        # no non-UNKNOWN answer: accuracy 1, s_AMB 0 (as the probe)
        s_amb: np.ndarray = scale * (1.0 - accuracy) * s_dis
        return s_amb
    return aggregate


def _max_gap_scaled(scale: float) -> Aggregate:
    if scale == 100.0:
        return _max_gap
    return lambda t: scale / 100.0 * _max_gap(t)


def _aggregate(spec: PairedStatistic) -> Aggregate:
    """The aggregate a probe names, from this module's vocabulary (audit.types.AGGREGATES)."""
    if spec.aggregate == "mean":
        return _mean(spec.scale)
    if spec.aggregate == "std":
        if spec.scale != 1.0 or len(spec.values) != 2:
            raise ValueError(f"{spec.metric}: 'std' takes two columns (x, x^2) and no scale")
        return _std
    if spec.aggregate == "stratum_mean":
        return _per_stratum_mean(spec.scale)
    if spec.aggregate == "max_gap":
        return _max_gap_scaled(spec.scale)
    if spec.aggregate == "ambiguity_bias":
        if len(spec.values) != 3:
            raise ValueError(f"{spec.metric}: 'ambiguity_bias' takes three columns (correct, non-UNKNOWN, biased)")
        return _ambiguity_bias(spec.scale)
    raise ValueError(f"{spec.metric}: unknown aggregate {spec.aggregate!r}")


def _read(v: ItemValue) -> Callable[[Row], float]:
    """One item value as a function of a row (audit.types.ItemValue says what each test means)."""
    name, arg = v.field, v.arg
    read: Callable[[Row], float]
    if v.test in (">=", "<="):
        if not isinstance(arg, (int, float)):
            raise ValueError(f"item test {v.test!r} on {name!r} compares with a number, not {arg!r}")
        bound = arg
    if v.test == "value":
        read = lambda row: float(row[name])  # noqa: E731
    elif v.test == "square":
        read = lambda row: float(row[name]) ** 2  # noqa: E731
    elif v.test == "true":
        read = lambda row: float(bool(row[name]))  # noqa: E731
    elif v.test == "false":
        read = lambda row: float(not row[name])  # noqa: E731
    elif v.test == ">=":
        read = lambda row: float(float(row[name]) >= bound)  # noqa: E731
    elif v.test == "<=":
        read = lambda row: float(float(row[name]) <= bound)  # noqa: E731
    elif v.test == "==":
        read = lambda row: float(row[name] == arg)  # noqa: E731
    elif v.test == "!=":
        read = lambda row: float(not row[name] == arg)  # noqa: E731
    elif v.test == "percent_of":
        if not isinstance(arg, str):
            raise ValueError(f"item test 'percent_of' on {name!r} names the field of the whole, not {arg!r}")
        whole = arg
        read = lambda row: 100.0 * float(row[name]) / float(row[whole])  # noqa: E731
    else:
        raise ValueError(f"unknown item test {v.test!r}")
    if not v.when:
        return read
    when = v.when
    return lambda row: read(row) if row[when] else 0.0


def compile_statistic(probe: str, spec: PairedStatistic) -> ItemStatistic:
    """The gate's working form of a statistic a probe declared (functions of a row, from plain fields)."""
    readers = tuple(_read(v) for v in spec.values)
    where, present, key, stratum = spec.where, spec.present, spec.key, spec.stratum

    def values(row: Row) -> Sequence[float]:
        return tuple(r(row) for r in readers)

    def select(row: Row) -> bool:
        return all(row[f] == v for f, v in where) and all(row[f] is not None for f in present)

    one_key = key[0] if len(key) == 1 else None
    item_key: Callable[[Row], str] = ((lambda row: str(row[one_key])) if one_key is not None
                                      else (lambda row: "/".join(str(row[f]) for f in key)))
    return ItemStatistic(
        metric=f"{probe}.{spec.metric}", description=spec.description, values=values,
        aggregate=_aggregate(spec), select=select, key=item_key,
        stratum=(lambda row: str(row[stratum])) if stratum else (lambda row: ""))


def item_statistic(metric: str, info: ProbeInfo | None) -> ItemStatistic | None:
    """The item statistic of "probe.metric" as the run's probe description declares it, or None when
    the metric can only be compared by its CIs (or the run predates probe descriptions)."""
    if info is None:
        return None
    probe, _, name = metric.partition(".")
    spec = info.statistic(name)
    return None if spec is None else compile_statistic(probe, spec)


@dataclass(frozen=True)
class ItemTable:
    """One run's items for one statistic: keys, values (n, k) and stratum labels."""

    keys: tuple[str, ...]
    values: np.ndarray  # (n, k)
    strata: tuple[str, ...]


def table_value(stat: ItemStatistic, table: ItemTable) -> float:
    """The metric over all of one run's items: must reproduce summary.json (the gate checks it)."""
    if not table.keys:
        return math.nan
    return float(stat.aggregate(totals(table.values, Strata.of(table.strata))))


def totals(values: np.ndarray, strata: Strata) -> Totals:
    """Per-stratum sums of (n, k) item values."""
    n_strata = len(strata.labels)
    sums = np.zeros((n_strata, values.shape[1]))
    np.add.at(sums, strata.codes, values)
    return Totals(sums, np.bincount(strata.codes, minlength=n_strata).astype(np.float64), strata.labels)


def item_table(stat: ItemStatistic, rows: Iterable[Row], where: str) -> ItemTable:
    """Read one run's rows into an ItemTable; a missing field or a repeated item names `where`."""
    keys, values, strata, seen = [], [], [], set()
    for row in rows:
        try:
            if not stat.select(row):
                continue
            key = stat.key(row)
            vals = tuple(float(v) for v in stat.values(row))
            stratum = stat.stratum(row)
        except (KeyError, TypeError, ValueError) as e:
            raise AuditError(f"{where}: row {row.get('id', '?')!r} lacks what {stat.metric} needs "
                             f"({type(e).__name__}: {e})") from None
        if key in seen:
            raise AuditError(f"{where}: item {key!r} appears twice; items must be unique to pair runs")
        if not all(math.isfinite(v) for v in vals):
            raise AuditError(f"{where}: item {key!r} has a non-finite value for {stat.metric}")
        seen.add(key)
        keys.append(key)
        values.append(vals)
        strata.append(stratum)
    arr = np.asarray(values, dtype=np.float64).reshape(len(keys), -1)
    return ItemTable(tuple(keys), arr, tuple(strata))


@dataclass(frozen=True)
class Pairing:
    """The items both runs share, aligned: baseline and candidate values side by side."""

    keys: tuple[str, ...]
    baseline: np.ndarray  # (n, k)
    candidate: np.ndarray  # (n, k)
    strata: Strata  # the stratum of each item (from the baseline's rows)
    only_baseline: int  # items the candidate lacks
    only_candidate: int


def pair(base: ItemTable, cand: ItemTable) -> Pairing:
    """Match items by key; the order is the baseline's."""
    index = {k: i for i, k in enumerate(cand.keys)}
    shared = [i for i, k in enumerate(base.keys) if k in index]
    rows_c = [index[base.keys[i]] for i in shared]
    k = base.values.shape[1]
    return Pairing(
        keys=tuple(base.keys[i] for i in shared),
        baseline=base.values[shared] if shared else np.zeros((0, k)),
        candidate=cand.values[rows_c] if shared else np.zeros((0, k)),
        strata=Strata.of([base.strata[i] for i in shared]),
        only_baseline=len(base.keys) - len(shared),
        only_candidate=len(cand.keys) - len(shared))


Quantity = Callable[[np.ndarray], np.ndarray]  # metric value(s) -> the gated quantity, worse = larger


@dataclass(frozen=True)
class PairedTest:
    """The outcome of the paired test of one metric."""

    method: str  # named in every output
    n: int  # shared items
    n_differing: int  # items whose rows differ between the runs
    baseline: float  # the metric over the shared items
    candidate: float
    worsening: float  # quantity(candidate) - quantity(baseline): > 0 is worse
    ci: tuple[float, float] | None  # paired bootstrap 95% interval of `worsening`
    p: float  # one-sided: P(worsening* >= observed) under exchangeable pairs (is the candidate worse?)
    p_better: float = 1.0  # the other tail: P(worsening* <= observed) (is the candidate better?)
    ci_note: str = ""  # why `ci` is None, when it is


def paired_test(stat: ItemStatistic, pairing: Pairing, quantity: Quantity, seed: int) -> PairedTest:
    """Paired permutation test (exact when small) that the candidate is worse, and that it is better,
    plus a bootstrap CI of the change."""
    n = len(pairing.keys)
    if n == 0:
        raise ValueError("paired_test needs at least one shared item")
    b, c, strata = pairing.baseline, pairing.candidate, pairing.strata
    tb, tc = totals(b, strata), totals(c, strata)

    def value(sums: np.ndarray) -> np.ndarray:
        return stat.aggregate(Totals(sums, tb.counts, strata.labels))

    def worsening(sums_b: np.ndarray, sums_c: np.ndarray) -> np.ndarray:
        return quantity(value(sums_c)) - quantity(value(sums_b))

    base_v, cand_v = float(value(tb.sums)), float(value(tc.sums))
    observed = float(worsening(tb.sums, tc.sums))
    differ = np.flatnonzero((b != c).any(axis=1))  # (k,) only these items can change the statistic
    k = differ.size
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stat.metric.encode())]))
    tol = 1e-9 * max(1.0, abs(observed))  # a swap that ties the observed value counts as "as extreme"
    swaps = _Swaps(tb.sums, tc.sums, c[differ] - b[differ], strata.codes[differ], len(strata.labels))
    if k == 0:
        p, p_better, method = 1.0, 1.0, "paired permutation test (no item differs: p = 1)"
    elif (1 << k) <= EXACT_MAX:
        every = ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(bool)  # (2^k, k): every swap
        tails = _count_tails(worsening, swaps, lambda start, m: every[start:start + m], 1 << k, observed, tol)
        p, p_better = tails.at_least / (1 << k), tails.at_most / (1 << k)
        method = f"paired permutation test, exact over all 2^{k} swaps of the {k} differing items (one-sided)"
    else:
        tails = _count_tails(worsening, swaps, lambda start, m: _coin_flips(rng, m, k), RESAMPLES, observed, tol)
        p, p_better = (1 + tails.at_least) / (1 + RESAMPLES), (1 + tails.at_most) / (1 + RESAMPLES)
        method = (f"paired permutation test, {RESAMPLES} seeded random swaps of the {k} differing items "
                  "(one-sided, Monte Carlo)")
    ci = stratified_paired_bootstrap_ci(worsening, b, c, strata.codes, len(strata.labels), rng,
                                        resamples=BOOTSTRAP_RESAMPLES, chunk_cells=_CHUNK_CELLS)
    note = ""
    if ci is None:
        note = "no interval: fewer than two shared items" if n < 2 else "no interval: no resample was defined"
    elif containing(observed, ci) is None:
        # A percentile interval that misses its own estimate comes from a biased bootstrap (a max over
        # groups, say): showing it would mislead, and the permutation p-value does not need it.
        ci, note = None, ("no interval: the bootstrap distribution of the change lies on one side of the "
                          "observed change (a biased statistic, e.g. a max over groups); the p-value stands")
    return PairedTest(method=method, n=n, n_differing=int(k), baseline=base_v, candidate=cand_v,
                      worsening=observed, ci=ci, p=float(p), p_better=float(p_better), ci_note=note)


@dataclass(frozen=True)
class _Swaps:
    """What swapping the differing items does to the per-stratum sums: a swapped item moves its
    difference (candidate - baseline) from the candidate's sums to the baseline's."""

    base: np.ndarray  # (S, k) the baseline's sums, nothing swapped
    cand: np.ndarray  # (S, k)
    diff: np.ndarray  # (d, k) candidate - baseline values of the d differing items
    codes: np.ndarray  # (d,) their strata
    n_strata: int

    def sums(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, S, k) baseline and candidate sums under each of the M swap patterns (M, d)."""
        order = np.argsort(self.codes, kind="stable")  # differing items grouped by stratum
        present, counts = np.unique(self.codes, return_counts=True)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        swapped = masks[:, order]  # (M, d)
        shift = np.zeros((masks.shape[0], self.n_strata, self.diff.shape[1]))
        for j in range(self.diff.shape[1]):
            shift[:, present, j] = np.add.reduceat(swapped * self.diff[order, j], starts, axis=1)  # (M, S')
        return self.base + shift, self.cand - shift


def _coin_flips(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """(m, k) independent fair swaps, from random bytes (8 swaps a byte: the bulk of a large test's draws)."""
    return np.unpackbits(rng.integers(0, 256, size=(m, (k + 7) // 8), dtype=np.uint8), axis=1, count=k).astype(bool)


@dataclass(frozen=True)
class _Tails:
    at_least: int  # swaps whose worsening is >= the observed one (ties included)
    at_most: int  # swaps whose worsening is <= the observed one


def _count_tails(worsening: Callable[[np.ndarray, np.ndarray], np.ndarray], swaps: _Swaps,
                 masks: Callable[[int, int], np.ndarray], total: int, observed: float, tol: float) -> _Tails:
    """How many of `total` swap patterns (`masks(start, m)`: rows start..start+m, (m, d) booleans over the
    differing items, asked for in order) are at least, and at most, as extreme as `observed` (within
    `tol`). A swap whose statistic is undefined (NaN) counts in neither."""
    at_least = at_most = 0
    step = max(1, _CHUNK_CELLS // max(1, swaps.base.size + swaps.diff.shape[0]))
    for start in range(0, total, step):
        w = worsening(*swaps.sums(masks(start, min(step, total - start))))  # (M,)
        at_least += int(np.count_nonzero(w >= observed - tol))
        at_most += int(np.count_nonzero(w <= observed + tol))
    return _Tails(at_least, at_most)

