"""The CI gate: does a candidate run regress against a baseline run, under a policy?

    opt-audit gate --baseline RUN_A --candidate RUN_B [--policy gate.yaml]      -> exit 0 / 1 / 2
    opt-audit gate --baseline RUN_A --candidate-model M                          (runs M first)

A rule flags a regression only when both hold: the metric got worse by more than the rule's
tolerance, and a paired test over the items both runs share says the worsening is significant at
the rule's alpha (`audit.gate_paired`). The test and the verdict are `audit.significance`'s, the
same code `opt-audit report --compare` and the dashboard use, so they agree with the gate. A gate
that fires on noise gets switched off, so noise alone must not fail it; a gate that misses a real
regression is worse than none, so anything it cannot check makes it "undecided" (exit 2), never
"pass":

- runs that cannot be compared: different probes, probe versions, data (sha256), scorer ids (a
  different toxicity classifier moves every toxicity number), suites, or decoding (sampler version);
- a rule's metric missing or skipped in either run, or not reproducible from the run's rows;
- a relative rule on a metric with no per-item statistic: it is "not tested" (there is no unpaired
  fallback from the two runs' CIs: see `audit.significance`).

Exit codes: 0 every rule passed; 1 at least one regression (and the runs are comparable); 2 the
gate could not decide. A regression outranks an undecided rule: it is a definite finding.

This module reads runs through `audit.store` and imports no torch, except `run_candidate`, which
runs a model with the baseline's exact RunSpec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from audit.compare import run_blockers
from audit.contract import RunSpec
from audit.errors import AuditError
from audit.gate_policy import Policy, Rule, resolve_aliases
from audit.significance import Rows, judge, paired_change, worse_for_rule
from audit.store import Run, load_run

if TYPE_CHECKING:
    from audit.runner import ProbeBuilder

EXIT_PASS, EXIT_REGRESSION, EXIT_UNDECIDED = 0, 1, 2
Verdict = Literal["pass", "regression", "undecided", "not run"]
ABSOLUTE = "absolute bound on the candidate's value (no test)"


@dataclass(frozen=True)
class RuleOutcome:
    """One rule applied to two runs: the numbers, the test, and the verdict with its reasons."""

    rule: Rule
    verdict: Verdict
    quantity: str = "value"  # what the tolerance applies to: "value" or "|value - 50|"
    unit: str = ""
    baseline: float | None = None  # the metric's value (over the shared items when paired)
    candidate: float | None = None
    delta: float | None = None  # change of the gated quantity, candidate - baseline
    ci: tuple[float, float] | None = None  # 95% interval of `delta`
    p: float | None = None  # one-sided p-value that the candidate is worse
    method: str = ""  # the test, named
    n: int | None = None  # items compared
    reasons: tuple[str, ...] = ()  # why it failed or could not be decided; notes otherwise
    caveats: tuple[str, ...] = ()  # "caveat in the <side> run: ..." where the metric's inputs were degenerate


@dataclass(frozen=True)
class GateResult:
    """The gate's decision over all rules."""

    baseline: str  # run directories as given
    candidate: str
    policy: Policy
    blockers: tuple[str, ...]  # run-level reasons the gate cannot decide (runs not comparable)
    notes: tuple[str, ...]  # settings that differ legitimately (model, seed, ...)
    outcomes: tuple[RuleOutcome, ...]
    extra: dict[str, str] = field(default_factory=dict)  # e.g. how the candidate was produced

    @property
    def exit_code(self) -> int:
        verdicts = [o.verdict for o in self.outcomes]
        if self.blockers:
            return EXIT_UNDECIDED
        if "regression" in verdicts:
            return EXIT_REGRESSION
        if "undecided" in verdicts or not any(v == "pass" for v in verdicts):
            return EXIT_UNDECIDED  # nothing was checked: that is not a pass
        return EXIT_PASS

    @property
    def verdict(self) -> str:
        return {EXIT_PASS: "PASS", EXIT_REGRESSION: "FAIL: regression",
                EXIT_UNDECIDED: "UNDECIDED: the gate could not decide"}[self.exit_code]


def setting_notes(base: Run, cand: Run) -> tuple[str, ...]:
    """Settings that differ but are what a comparison is for (model, revision, dtype, seed, limit)."""
    def facts(run: Run) -> dict[str, object]:
        m = run.manifest
        return {"model": m.facts.model, "revision": m.facts.revision, "dtype": m.facts.dtype,
                "attention": m.facts.attention, "device": m.facts.device, "seed": m.seed, "limit": m.limit}

    fb, fc = facts(base), facts(cand)
    return tuple(f"{k}: {fb[k]} -> {fc[k]}" for k in fb if fb[k] != fc[k])


def for_runs(policy: Policy, base: Run, cand: Run) -> Policy:
    """`policy` with its rules' probe short names resolved as the two runs' probe descriptions declare them."""
    return resolve_aliases(policy, (s.info for run in (base, cand) for s in run.probes.values()))


def check_policy(policy: Policy, base: Run, cand: Run) -> None:
    """Bad policy for these runs: a metric its probe does not report, or a check against its direction."""
    policy = for_runs(policy, base, cand)
    for rule in policy.rules:
        known = [m.name for run in (base, cand) if rule.probe in run.probes for m in run.probes[rule.probe].metrics]
        if known and rule.name not in known:
            raise AuditError(f"policy {policy.source}: rule {rule.metric!r}: unknown metric {rule.name!r} of probe "
                             f"{rule.probe} (it reports: {', '.join(dict.fromkeys(known))})")
        ref = base.metric(rule.probe, rule.name) or cand.metric(rule.probe, rule.name)
        if ref is None:
            continue
        if rule.max_increase is not None and ref.higher_is_better:
            raise AuditError(f"policy {policy.source}: rule {rule.metric!r}: max_increase on a higher-is-better "
                             "metric; use max_decrease")
        if rule.max_decrease is not None and (ref.higher_is_better is False or ref.ideal is not None):
            what = "a lower-is-better" if ref.higher_is_better is False else f"a target-valued (ideal {ref.ideal:g})"
            raise AuditError(f"policy {policy.source}: rule {rule.metric!r}: max_decrease on {what} metric; "
                             "use max_increase")


def gate_runs(base: Run, cand: Run, policy: Policy, *, baseline_label: str | None = None,
              candidate_label: str | None = None) -> GateResult:
    """Apply `policy` to a baseline and a candidate run."""
    policy = for_runs(policy, base, cand)
    check_policy(policy, base, cand)
    blockers = run_blockers(base, cand)
    rows = Rows()  # each probe's rows are read once, however many rules read them
    outcomes = tuple(_outcome(rule, base, cand, policy.seed, blockers, rows) for rule in policy.rules)
    return GateResult(baseline=baseline_label or str(base.path), candidate=candidate_label or str(cand.path),
                      policy=policy, blockers=blockers, notes=setting_notes(base, cand), outcomes=outcomes)


def gate_paths(baseline: Path, candidate: Path, policy: Policy) -> GateResult:
    """`gate_runs` on two run directories (each must exist and be complete)."""
    base = _load(baseline, "--baseline")
    cand = _load(candidate, "--candidate")
    return gate_runs(base, cand, policy, baseline_label=str(baseline), candidate_label=str(candidate))


def _load(path: Path, flag: str) -> Run:
    try:
        return load_run(path)
    except AuditError as e:
        raise AuditError(f"{flag}: {e}") from None


def _outcome(rule: Rule, base: Run, cand: Run, seed: int, blockers: tuple[str, ...], rows: Rows) -> RuleOutcome:
    in_runs = [rule.probe in run.probes for run in (base, cand)]
    if not any(in_runs) and not rule.required:
        return RuleOutcome(rule, "not run", reasons=(f"probe {rule.probe} is in neither run (rule not required)",))
    mb, mc = base.metric(rule.probe, rule.name), cand.metric(rule.probe, rule.name)
    ref = mc or mb
    unit = ref.unit if ref is not None else ""
    vb = mb.value if mb is not None and mb.ok and math.isfinite(mb.value) else None
    vc = mc.value if mc is not None and mc.ok and math.isfinite(mc.value) else None
    caveats = tuple(f"caveat in the {side} run: {m.caveat}" for side, m in (("baseline", mb), ("candidate", mc))
                    if m is not None and m.ok and m.caveat)  # shown beside the verdict; never changes it
    shown = RuleOutcome(rule, "undecided", unit=unit, baseline=vb, candidate=vc, caveats=caveats)
    if blockers:
        return replace(shown, reasons=("runs are not comparable",))
    missing = []
    for side, run, m in (("baseline", base, mb), ("candidate", cand, mc)):
        if rule.probe not in run.probes:
            missing.append(f"probe {rule.probe} is not in the {side} run")
        elif m is None:
            missing.append(f"{rule.metric} is missing from the {side} run")
        elif not m.ok:
            missing.append(f"{rule.metric} is {m.status} in the {side} run")
        elif not math.isfinite(m.value):
            missing.append(f"{rule.metric} has no value in the {side} run")
    if missing:
        return replace(shown, reasons=tuple(missing))
    assert ref is not None and vb is not None and vc is not None
    worse_way = worse_for_rule(rule.max_decrease is not None, ref)
    failures: list[str] = []
    notes: list[str] = []
    measured = replace(shown, quantity=worse_way.label)
    if rule.relative:
        test = paired_change(base, cand, rule.probe, rule.name, worse_way, seed, rows)
        if not test.tested:
            return replace(measured, reasons=(f"not tested: {test.reason}",))
        assert test.worsening is not None and test.p_worse is not None
        measured = replace(measured, baseline=test.baseline, candidate=test.candidate, delta=test.worsening,
                           ci=test.ci, p=test.p_worse, method=test.method, n=test.n)
        notes.extend(test.notes)
        tolerance = rule.max_increase if rule.max_increase is not None else rule.max_decrease
        assert tolerance is not None
        judged = judge(test, tolerance=tolerance, alpha=rule.alpha)
        worse, p = test.worsening, test.p_worse
        if judged == "worse":
            failures.append(f"worse by {worse:.4g} > tolerance {tolerance:g} and p = {p:.3g} < alpha {rule.alpha:g}")
        elif worse > tolerance:
            notes.append(f"worse by {worse:.4g} > tolerance {tolerance:g}, but not significant "
                         f"(p = {p:.3g} >= alpha {rule.alpha:g})")
        elif judged == "within tolerance":
            notes.append(f"significantly worse (p = {p:.3g}) but within tolerance {tolerance:g}")
    else:
        measured = replace(measured, method=ABSOLUTE)
    if rule.max_value is not None and vc > rule.max_value:
        failures.append(f"candidate {vc:.4g} > max_value {rule.max_value:g}")
    if rule.min_value is not None and vc < rule.min_value:
        failures.append(f"candidate {vc:.4g} < min_value {rule.min_value:g}")
    return replace(measured, verdict="regression" if failures else "pass", reasons=tuple(failures + notes))


def candidate_spec(baseline: Run, model: str, revision: str | None = None) -> RunSpec:
    """The baseline's exact RunSpec with another model: same probes, suite, limit, seed, data, scorer, backend."""
    where = f"{baseline.path}/manifest.json"
    spec = baseline.manifest.spec
    if spec is None:
        raw = baseline.manifest.extra.get("spec")
        if not isinstance(raw, dict):
            raise AuditError(f"{where}: no 'spec' (the RunSpec); cannot rerun it with another model")
        try:  # say what is wrong with it
            RunSpec.from_json(raw)
        except (KeyError, TypeError, ValueError, AuditError, AttributeError) as e:
            raise AuditError(f"{where}: malformed spec ({type(e).__name__}: {e})") from None
        raise AuditError(f"{where}: malformed spec")
    try:
        # never inherit trust from a baseline manifest: a candidate folder's code runs only if asked for
        run_spec = replace(spec, model=replace(spec.model, model=model, revision=revision, trust_remote_code=False))
    except (TypeError, ValueError, AuditError) as e:
        raise AuditError(f"{where}: malformed spec ({type(e).__name__}: {e})") from None
    for probe, path in run_spec.data:
        if not Path(path).exists():
            raise AuditError(f"{where}: the baseline read {probe} data from {path}, which is not here; "
                             "the candidate must audit the same data")
    for name in ("checkpoint", "config_dir"):
        path = getattr(run_spec.scorer, name)
        if path is not None and not Path(path).exists():
            raise AuditError(f"{where}: the baseline's scorer {name} {path} is not here; the candidate must be "
                             "scored by the same scorer")
    return run_spec


def run_candidate(baseline: Run, model: str, out: Path, *, revision: str | None = None,
                  progress: bool = False, build: ProbeBuilder | None = None) -> Path:
    """Audit `model` with the baseline's exact RunSpec (resuming if that run exists); its run directory.
    `build` makes the probes (`audit.runner.execute`; the CLI passes its own)."""
    from audit.engine import EngineOptions
    from audit.runner import execute, python_command

    spec = candidate_spec(baseline, model, revision)
    # the budget is chosen once the model has loaded, as for `opt-audit run` (audit.backends.budget);
    # the seed is the spec's (audit.runner.execute)
    options = EngineOptions(token_budget=None, progress=progress)
    return execute(spec, Path(out), options=options, command=python_command(), build=build).run_dir


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
