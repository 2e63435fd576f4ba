"""The one significance engine: did one metric of a candidate run change against a baseline run?

`opt-audit gate`, `opt-audit report --compare` and the dashboard's Compare page all decide here,
with this code, so the same pair of runs gets the same verdict from each of them; they differ only
in which metrics a policy gates (the gate reads only its policy's rules; a comparison shows every
metric, with the default policy's tolerance and alpha for the metrics that policy gates).

The test is `audit.gate_paired`'s paired permutation test over the items both runs share, read from
samples/<probe>.jsonl: exact or seeded Monte Carlo, one-sided in each direction. A metric without a
per-item statistic, or whose rows do not reproduce summary.json, is "not tested" with the reason.
There is deliberately no fallback that compares the two summaries' 95% CIs as if the runs were
independent: such a test ignores that two runs of one suite audit the same items, and it inherits
any bias of the CIs (a percentile bootstrap of a max over groups sits above its own estimate), which
is how two seeds of one model were once called "significantly worse" on BOLD's largest gap.

Run-level comparability (same probes, versions, data, scorers, suite and sampler) is `run_blockers`;
nothing here is tested when it names a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import numpy as np

from audit.errors import AuditError
from audit.gate_paired import Pairing, item_statistic, item_table, pair, paired_test, table_value
from audit.store import Run
from audit.types import Metric

REPRODUCE_TOL = 1e-6  # relative: recomputing a metric from its rows must give summary.json's value

Verdict = Literal["worse", "better", "within tolerance", "higher", "lower", "no significant change", "not tested"]
"""What a comparison says of one metric:
- worse: the change is beyond the tolerance in the bad direction and significant at alpha (the gate's
  "regression");
- within tolerance: significantly worse, but by no more than the tolerance (the gate passes it);
- better: significantly better at alpha;
- higher / lower: a metric with no better direction moved, significant at alpha (two-sided);
- no significant change; not tested (see the reason)."""


@dataclass(frozen=True)
class Worse:
    """Which way is worse for one metric: the quantity whose increase is a worsening."""

    label: str  # what the tolerance applies to: "value", "-value" or "|value - 50|"
    quantity: Callable[[Any], np.ndarray]  # metric value(s) -> the quantity, larger = worse
    directional: bool = True  # False: the metric has no better direction, so changes are tested two-sided


def worse_for_metric(m: Metric) -> Worse:
    """Worse by the metric's own direction: away from its ideal, down when higher is better, else up."""
    if m.ideal is not None:
        return worse_away_from(float(m.ideal))
    if m.higher_is_better:
        return Worse("-value", lambda v: -np.asarray(v))
    return Worse("value", lambda v: np.asarray(v), directional=m.higher_is_better is not None)


def worse_for_rule(max_decrease: bool, ref: Metric) -> Worse:
    """Worse as a gate rule reads it: a decrease for `max_decrease`, else away from the metric's ideal
    when it has one, else an increase (whatever the metric's direction: the rule chose it)."""
    if max_decrease:
        return Worse("value", lambda v: -np.asarray(v))
    if ref.ideal is not None:
        return worse_away_from(float(ref.ideal))
    return Worse("value", lambda v: np.asarray(v))


def worse_away_from(ideal: float) -> Worse:
    """Worse is further from `ideal` (CrowS-Pairs and StereoSet SS: 50; BBQ bias scores: 0)."""
    return Worse(f"|value - {ideal:g}|", lambda v: np.abs(np.asarray(v) - ideal))


@dataclass(frozen=True)
class MetricTest:
    """The paired test of one metric across two runs, or the reason it was not run."""

    metric: str  # "probe.metric"
    reason: str = ""  # why it was not tested; "" when it was
    method: str = ""
    n: int | None = None  # shared items
    baseline: float | None = None  # the metric over the shared items
    candidate: float | None = None
    worsening: float | None = None  # quantity(candidate) - quantity(baseline): > 0 is worse
    ci: tuple[float, float] | None = None  # paired bootstrap 95% interval of `worsening`
    ci_note: str = ""  # why `ci` is None, when it was tested
    p_worse: float | None = None  # one-sided p that the candidate is worse
    p_better: float | None = None  # one-sided p that it is better
    notes: tuple[str, ...] = ()  # e.g. items only one run has

    @property
    def tested(self) -> bool:
        return not self.reason


class Rows:
    """Each run's rows of the probe being tested, read once for all that probe's metrics.

    Only the latest probe's rows are kept per run (callers test metrics probe by probe), so a
    comparison never holds every probe's samples in memory at once.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, list[Mapping[str, Any]]]] = {}  # run path -> (probe, rows)

    def of(self, run: Run, probe: str) -> list[Mapping[str, Any]]:
        held = self._rows.get(str(run.path))
        if held is None or held[0] != probe:
            held = (probe, list(run.samples(probe)))
            self._rows[str(run.path)] = held
        return held[1]


def paired_change(base: Run, cand: Run, probe: str, name: str, worse: Worse, seed: int,
                rows: Rows | None = None) -> MetricTest:
    """The paired permutation test of `probe.name` over the items both runs share.

    Both runs must report the metric (ok, with a value); the test reads each run's rows, checks that
    they reproduce summary.json, pairs the items by their key and tests both tails. Any reason it
    cannot (no per-item statistic, no samples file, rows that disagree with the summary, no shared
    item) comes back as `reason`, never as an untested verdict.
    """
    metric = f"{probe}.{name}"
    rows = rows or Rows()

    def untested(reason: str) -> MetricTest:
        return MetricTest(metric, reason=reason)

    summaries = {}
    for side, run in (("baseline", base), ("candidate", cand)):
        m = run.metric(probe, name)
        if m is None:
            return untested(f"not in the {side} run")
        if not m.ok or not math.isfinite(m.value):
            return untested(f"{side} {m.status}" if not m.ok else f"no value in the {side} run")
        summaries[side] = m
    # The statistic as the runs' own probe description declares it (summary.json), baseline first.
    stat = item_statistic(metric, base.probes[probe].info) or item_statistic(metric, cand.probes[probe].info)
    if stat is None:
        return untested("no per-item statistic for this metric, so no paired test (and no unpaired guess)")
    tables = []
    for side, run in (("baseline", base), ("candidate", cand)):
        where = f"{run.path}/samples/{probe}.jsonl"
        if not (run.path / "samples" / f"{probe}.jsonl").exists():
            return untested(f"{where} is missing: the paired test needs the per-item rows")
        try:
            table = item_table(stat, rows.of(run, probe), where)
        except AuditError as e:
            return untested(str(e))
        value = table_value(stat, table)
        summary = summaries[side].value
        if not math.isclose(value, summary, rel_tol=REPRODUCE_TOL, abs_tol=REPRODUCE_TOL):
            return untested(f"the {side} rows give {metric} = {value:.6g}, not summary.json's {summary:.6g} "
                            "(rows and summary disagree: was the run edited, or the probe changed?)")
        tables.append(table)
    pairing: Pairing = pair(*tables)
    if not pairing.keys:
        return untested("the runs share no items (different --limit or data?)")
    test = paired_test(stat, pairing, worse.quantity, seed)
    notes = []
    if pairing.only_baseline or pairing.only_candidate:
        notes.append(f"paired on {len(pairing.keys)} shared items ({pairing.only_baseline} only in the baseline, "
                     f"{pairing.only_candidate} only in the candidate)")
    return MetricTest(metric, method=test.method, n=test.n, baseline=test.baseline, candidate=test.candidate,
                      worsening=test.worsening, ci=test.ci, ci_note=test.ci_note, p_worse=test.p,
                      p_better=test.p_better, notes=tuple(notes))


def judge(test: MetricTest, *, tolerance: float, alpha: float, directional: bool = True) -> Verdict:
    """The verdict on a tested metric: the gate's rule (worse beyond `tolerance` and p < `alpha`), and
    the same test read the other way for improvements. Two-sided (p < alpha/2 per tail) without a
    direction."""
    if not test.tested:
        return "not tested"
    assert test.worsening is not None and test.p_worse is not None and test.p_better is not None
    if not directional:
        if test.p_worse < alpha / 2 and test.worsening > 0:
            return "higher"
        if test.p_better < alpha / 2 and test.worsening < 0:
            return "lower"
        return "no significant change"
    if test.p_worse < alpha and test.worsening > 0:
        return "worse" if test.worsening > tolerance else "within tolerance"
    if test.p_better < alpha and test.worsening < 0:
        return "better"
    return "no significant change"
