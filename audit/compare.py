"""Baseline versus candidate: can two runs be compared, and which metrics changed significantly.

The report's `--compare` section, the dashboard's Compare page and the CI gate decide with the same
code: comparability is `run_blockers` here (the gate's blockers), and each metric's verdict is
`audit.significance`'s paired permutation test over the items both runs share, with the tolerance
and alpha of the policy's rule when the policy (by default the gate's default policy) gates that
metric. So the same pair of runs gets the same verdict on a metric from all three; a metric the
paired engine cannot test is "not tested" with its reason, never an unpaired guess from CIs.

Two runs are comparable when they ran the same probes at the same versions on the same data,
scored texts with the same scorers (same scorer id per kind: a different toxicity classifier moves
every toxicity number without the model changing), from the same suite and with the same sampler.
Other differences, such as the model, its revision, dtype, seed or limit, are what a comparison is
for; they are listed as notes. This module reads runs (`audit.store.Run`) and their sample rows; it
writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from audit.gate_policy import DEFAULT_ALPHA, Policy, Rule
from audit.significance import (Rows, Verdict, Worse, judge, paired_change, worse_for_metric,
                                worse_for_rule)
from audit.store import Run
from audit.types import Metric

Direction = Literal["better", "worse", "same", "no direction"]

SIGNIFICANCE_RULE = (
    "Verdicts come from the gate's engine (audit.significance): a paired permutation test over the items "
    "both runs share (exact up to 16 differing items, else 10,000 seeded swaps), one-sided at the gate "
    f"policy's alpha for that metric ({DEFAULT_ALPHA:g} when it does not gate it). Worse means significant and "
    "beyond the rule's tolerance (0 when not gated), exactly as `opt-audit gate` decides; a metric with no "
    "better direction is tested two-sided. A metric without a per-item statistic, skipped in either "
    "run, or whose rows do not reproduce summary.json is not tested, with the reason.")
"""How the verdicts are reached, for the report and the dashboard to print beside them."""

SIGNIFICANT: tuple[Verdict, ...] = ("worse", "better", "higher", "lower")


@dataclass(frozen=True)
class MetricChange:
    """One metric in both runs: values, intervals, the change, and the shared engine's verdict."""

    probe: str
    metric: str
    unit: str
    higher_is_better: bool | None
    ideal: float | None
    baseline: float | None  # None: skipped or absent in the baseline
    candidate: float | None
    baseline_ci: tuple[float, float] | None
    candidate_ci: tuple[float, float] | None
    delta: float | None  # candidate - baseline (the summaries' values)
    verdict: Verdict
    reason: str = ""  # why the change was not tested; "" when it was
    p: float | None = None  # one-sided p of the verdict's direction (two-sided without a direction)
    alpha: float = DEFAULT_ALPHA
    tolerance: float = 0.0  # in the metric's unit, from the policy's rule (0 when not gated)
    quantity: str = "value"  # what got worse: "value", "-value" or "|value - ideal|"
    worsening: float | None = None  # change of `quantity` over the shared items, > 0 is worse
    worsening_ci: tuple[float, float] | None = None  # paired bootstrap 95% interval of `worsening`
    method: str = ""  # the test, named
    n: int | None = None  # items paired
    notes: tuple[str, ...] = ()

    @property
    def testable(self) -> bool:
        return self.verdict != "not tested"

    @property
    def significant(self) -> bool | None:
        """True for a significant change (worse beyond tolerance, better, higher or lower); None untested."""
        return None if not self.testable else self.verdict in SIGNIFICANT

    @property
    def verdict_text(self) -> str:
        """The verdict in the words every comparison prints (report, dashboard)."""
        if self.verdict == "not tested":
            return f"not tested: {self.reason}" if self.reason else "not tested"
        if self.verdict == "within tolerance":
            return f"worse, within tolerance {self.tolerance:g}"
        if self.verdict == "worse" and self.tolerance > 0:
            return f"worse, beyond tolerance {self.tolerance:g}"
        return self.verdict

    @property
    def direction(self) -> Direction | None:
        """Whether the candidate is better, by the metric's own direction; None without both values."""
        if self.delta is None or self.baseline is None or self.candidate is None:
            return None
        if self.delta == 0:
            return "same"
        if self.higher_is_better is not None:
            return "better" if (self.delta > 0) == self.higher_is_better else "worse"
        if self.ideal is not None:
            before, after = abs(self.baseline - self.ideal), abs(self.candidate - self.ideal)
            return "same" if before == after else ("better" if after < before else "worse")
        return "no direction"


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side. `reasons` is empty exactly when they are comparable."""

    baseline: str  # run id (directory name) of the baseline
    candidate: str
    reasons: tuple[str, ...]  # what makes the runs incomparable
    notes: tuple[str, ...]  # settings that differ but are a legitimate subject of comparison
    changes: tuple[MetricChange, ...]
    policy: str = ""  # the policy whose rules set tolerances and alphas

    @property
    def comparable(self) -> bool:
        return not self.reasons

    @property
    def significant(self) -> tuple[MetricChange, ...]:
        """The changes the engine calls significant (worse beyond tolerance, better, higher, lower)."""
        return tuple(c for c in self.changes if c.significant)


@dataclass(frozen=True)
class Criterion:
    """How one metric is judged: which way is worse, the tolerance and the alpha."""

    worse: Worse
    tolerance: float
    alpha: float


def criterion(ref: Metric, rule: Rule | None) -> Criterion:
    """The policy rule's criterion when it gates the metric relatively, else the metric's own direction
    with no tolerance and the default alpha."""
    if rule is not None and rule.relative:
        tolerance = rule.max_increase if rule.max_increase is not None else rule.max_decrease
        assert tolerance is not None
        return Criterion(worse_for_rule(rule.max_decrease is not None, ref), tolerance, rule.alpha)
    return Criterion(worse_for_metric(ref), 0.0, DEFAULT_ALPHA)


def metric_change(base_run: Run, cand_run: Run, probe: str, name: str, *, rule: Rule | None = None,
                  seed: int = 0, blocked: bool = False, rows: Rows | None = None) -> MetricChange:
    """Compare one metric across two runs with the shared engine (see the module docstring).

    `blocked` (the runs are not comparable) leaves every metric untested; the values and delta are
    still filled in so a caller can show them beside the reasons.
    """
    base, cand = base_run.metric(probe, name), cand_run.metric(probe, name)
    ref = cand or base
    if ref is None:
        raise ValueError(f"metric_change: {probe}.{name} is in neither run")

    def value(m: Metric | None) -> float | None:
        return m.value if m is not None and m.ok and math.isfinite(m.value) else None

    b, c = value(base), value(cand)
    how = criterion(ref, rule)
    shown: dict[str, Any] = dict(
        probe=probe, metric=ref.name, unit=ref.unit, higher_is_better=ref.higher_is_better, ideal=ref.ideal,
        baseline=b, candidate=c, baseline_ci=base.ci if base is not None and b is not None else None,
        candidate_ci=cand.ci if cand is not None and c is not None else None,
        delta=None if b is None or c is None else c - b, alpha=how.alpha, tolerance=how.tolerance,
        quantity=how.worse.label)
    if base is None or cand is None:
        only = "candidate" if base is None else "baseline"
        return MetricChange(**shown, verdict="not tested", reason=f"only in the {only}")
    if not base.ok or not cand.ok:
        reason = "; ".join(f"{side} {m.status}" for side, m in (("baseline", base), ("candidate", cand)) if not m.ok)
        return MetricChange(**shown, verdict="not tested", reason=reason)
    if blocked:
        return MetricChange(**shown, verdict="not tested", reason="the runs are not comparable")
    test = paired_change(base_run, cand_run, probe, name, how.worse, seed, rows)
    verdict = judge(test, tolerance=how.tolerance, alpha=how.alpha, directional=how.worse.directional)
    if not test.tested:
        return MetricChange(**shown, verdict=verdict, reason=test.reason)
    assert test.worsening is not None and test.p_worse is not None and test.p_better is not None
    if not how.worse.directional:
        p = min(1.0, 2.0 * min(test.p_worse, test.p_better))
    else:
        p = test.p_worse if test.worsening >= 0 else test.p_better
    return MetricChange(**shown, verdict=verdict, p=p, worsening=test.worsening, worsening_ci=test.ci,
                        method=test.method, n=test.n, notes=test.notes)


def scorer_ids(run: Run) -> dict[str, str]:
    """Scorer kind -> scorer id of a run: from the manifest, else from the metrics' scorer records."""
    ids: dict[str, str] = {}
    for kind, record in (run.manifest.scorers or {}).items():
        if isinstance(record, Mapping) and record.get("id"):
            ids[str(kind)] = str(record["id"])
    for summary in run.probes.values():
        for m in summary.metrics:
            if m.scorer and m.scorer.get("kind") and m.scorer.get("id"):
                ids.setdefault(str(m.scorer["kind"]), str(m.scorer["id"]))
    return ids


def incomparability(base: Run, cand: Run) -> tuple[str, ...]:
    """Every reason the two runs cannot be compared metric by metric (empty when they can)."""
    reasons: list[str] = []
    only_b = [p for p in base.probes if p not in cand.probes]
    only_c = [p for p in cand.probes if p not in base.probes]
    if only_b or only_c:
        parts = ([f"only in baseline: {', '.join(only_b)}"] if only_b else []) + \
                ([f"only in candidate: {', '.join(only_c)}"] if only_c else [])
        reasons.append("different probes (" + "; ".join(parts) + ")")
    base_facts, cand_facts = base.manifest.probes, cand.manifest.probes
    for name in (p for p in cand.probes if p in base.probes):
        vb, vc = base.probes[name].info.version, cand.probes[name].info.version
        if vb != vc:
            reasons.append(f"probe {name} version differs (baseline {vb}, candidate {vc})")
            continue
        db = base_facts[name].data_sha256 if name in base_facts else None
        dc = cand_facts[name].data_sha256 if name in cand_facts else None
        if db is not None and dc is not None and db != dc:
            reasons.append(f"probe {name} data differs (different data_sha256)")
    ids_b, ids_c = scorer_ids(base), scorer_ids(cand)
    kinds = sorted(set(ids_b) | set(ids_c), key=lambda k: (k != "toxicity", k))
    for kind in kinds:
        if ids_b.get(kind) != ids_c.get(kind):
            reasons.append(f"{kind} scorer id differs (baseline {ids_b.get(kind, 'none')}, "
                           f"candidate {ids_c.get(kind, 'none')})")
    return tuple(reasons)


def _setting_notes(base: Run, cand: Run) -> tuple[str, ...]:
    def facts(run: Run) -> dict[str, Any]:
        m = run.manifest
        return {"model": m.facts.model, "revision": m.facts.revision, "dtype": m.facts.dtype,
                "attention": m.facts.attention, "device": m.facts.device, "suite": m.suite, "seed": m.seed,
                "limit": m.limit}

    fb, fc = facts(base), facts(cand)
    return tuple(f"{k}: {fb[k]} → {fc[k]}" for k in fb if fb[k] != fc[k])


def run_blockers(base: Run, cand: Run) -> tuple[str, ...]:
    """Every reason two runs cannot be compared or gated: `incomparability` plus suite and decoding."""
    reasons = list(incomparability(base, cand))
    suite_b, suite_c = base.manifest.suite, cand.manifest.suite
    if suite_b != suite_c:
        reasons.append(f"runs from different suites (baseline {suite_b or 'none: --probes'}, "
                       f"candidate {suite_c or 'none: --probes'})")
    sampler_b, sampler_c = base.manifest.sampler, cand.manifest.sampler
    if sampler_b != sampler_c:
        reasons.append(f"different decoding: sampler {sampler_b or 'unknown'} vs {sampler_c or 'unknown'} "
                       "(samples from different samplers are not comparable)")
    rule_b, rule_c = base.manifest.prompt_rule, cand.manifest.prompt_rule
    if rule_b != rule_c:
        reasons.append(f"different generation prompt rules: {rule_b} vs {rule_c} (re-run the older one)")
    return tuple(reasons)


def compare_runs(base: Run, cand: Run, policy: Policy | None = None) -> Comparison:
    """Compare a candidate run against a baseline: comparability, then every metric's verdict.

    `policy` (default: the gate's default policy) sets the tolerance, alpha and seed; a metric it
    gates gets the verdict `opt-audit gate` gives it under that policy. Runs that are not comparable
    get their reasons and untested changes (values and deltas only); the report refuses them.
    """
    if policy is None:
        from audit.gate_policy import load_policy

        policy = load_policy()
    rules = {r.metric: r for r in policy.rules}
    reasons = run_blockers(base, cand)
    rows = Rows()
    names = [(probe, m.name) for probe, summary in cand.probes.items() for m in summary.metrics]
    names += [(probe, m.name) for probe, summary in base.probes.items() for m in summary.metrics
              if cand.metric(probe, m.name) is None]
    changes = tuple(metric_change(base, cand, probe, name, rule=rules.get(f"{probe}.{name}"), seed=policy.seed,
                                  blocked=bool(reasons), rows=rows) for probe, name in names)
    return Comparison(baseline=base.run_id, candidate=cand.run_id,
                      reasons=reasons, notes=_setting_notes(base, cand), changes=changes, policy=policy.source)
