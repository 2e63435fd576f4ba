"""The CI gate: does a candidate run regress against a baseline run, under a policy?

    opt-audit gate --baseline RUN_A --candidate RUN_B [--policy gate.yaml]      -> exit 0 / 1 / 2
    opt-audit gate --baseline RUN_A --candidate-model M                          (runs M first)

A rule flags a regression only when both hold: the metric got worse by more than the rule's
tolerance, and a paired test over the items both runs share says the worsening is significant at
the rule's alpha (`audit.gate_paired`). A gate that fires on noise gets switched off, so noise alone
must not fail it; a gate that misses a real regression is worse than none, so anything it cannot
check makes it "undecided" (exit 2), never "pass":

- runs that cannot be compared: different probes, probe versions, data (sha256), scorer ids (a
  different toxicity classifier moves every toxicity number), suites, or decoding (sampler version);
- a rule's metric missing or skipped in either run, or not reproducible from the run's rows.

Exit codes: 0 every rule passed; 1 at least one regression (and the runs are comparable); 2 the
gate could not decide. A regression outranks an undecided rule: it is a definite finding.

This module reads runs through `audit.store` and imports no torch, except `run_candidate`, which
runs a model with the baseline's exact RunSpec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from audit.compare import Z95, incomparability, standard_error
from audit.errors import AuditError
from audit.gate_paired import Pairing, item_statistic, item_table, pair, paired_test, table_value
from audit.gate_policy import Policy, Rule
from audit.store import Run, load_run
from audit.types import Metric

EXIT_PASS, EXIT_REGRESSION, EXIT_UNDECIDED = 0, 1, 2
Verdict = Literal["pass", "regression", "undecided", "not run"]
ABSOLUTE = "absolute bound on the candidate's value (no test)"
UNPAIRED = "unpaired z-test from each run's 95% CI (no per-item statistic for this metric; one-sided)"
_REPRODUCE_TOL = 1e-6  # relative: recomputing a metric from its rows must give summary.json's value


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


def run_blockers(base: Run, cand: Run) -> tuple[str, ...]:
    """Every reason two runs cannot be gated: compare.incomparability plus suite and decoding."""
    reasons = list(incomparability(base, cand))
    suite_b = (base.manifest.get("spec") or {}).get("suite")
    suite_c = (cand.manifest.get("spec") or {}).get("suite")
    if suite_b != suite_c:
        reasons.append(f"runs from different suites (baseline {suite_b or 'none: --probes'}, "
                       f"candidate {suite_c or 'none: --probes'})")
    sampler_b, sampler_c = _sampler(base), _sampler(cand)
    if sampler_b != sampler_c:
        reasons.append(f"different decoding: sampler {sampler_b or 'unknown'} vs {sampler_c or 'unknown'} "
                       "(samples from different samplers are not comparable)")
    return tuple(reasons)


def _sampler(run: Run) -> str | None:
    """The sampler from the backend id: its last '|'-field ('sampler1' under hf, 'vllm seeds1' under vLLM).

    hf and vLLM draw from different random streams, so their samples are never paired item by item.
    """
    backend = str(run.manifest.get("backend_id") or "")
    last = backend.rsplit("|", 1)[-1]
    if backend.startswith("vllm:") and last.startswith("seeds"):
        return f"vllm {last}"
    return last if last.startswith("sampler") else None


def setting_notes(base: Run, cand: Run) -> tuple[str, ...]:
    """Settings that differ but are what a comparison is for (model, revision, dtype, seed, limit)."""
    def facts(run: Run) -> dict[str, object]:
        model, spec = run.manifest.get("model") or {}, run.manifest.get("spec") or {}
        return {"model": model.get("model"), "revision": model.get("revision"), "dtype": model.get("dtype"),
                "attention": model.get("attention"), "device": model.get("device"), "seed": spec.get("seed"),
                "limit": spec.get("limit")}

    fb, fc = facts(base), facts(cand)
    return tuple(f"{k}: {fb[k]} -> {fc[k]}" for k in fb if fb[k] != fc[k])


def check_policy(policy: Policy, base: Run, cand: Run) -> None:
    """Bad policy for these runs: a metric its probe does not report, or a check against its direction."""
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
    check_policy(policy, base, cand)
    blockers = run_blockers(base, cand)
    outcomes = tuple(_outcome(rule, base, cand, policy.seed, blockers) for rule in policy.rules)
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


def _quantity(rule: Rule, ref: Metric) -> tuple[str, Callable[[object], np.ndarray]]:
    """What the tolerance applies to, as a label and a map value -> quantity (larger = worse)."""
    if rule.max_decrease is not None:
        return "value", lambda v: -np.asarray(v)
    if ref.ideal is not None:
        ideal = float(ref.ideal)
        return f"|value - {ideal:g}|", lambda v: np.abs(np.asarray(v) - ideal)
    return "value", lambda v: np.asarray(v)


def _outcome(rule: Rule, base: Run, cand: Run, seed: int, blockers: tuple[str, ...]) -> RuleOutcome:
    in_runs = [rule.probe in run.probes for run in (base, cand)]
    if not any(in_runs) and not rule.required:
        return RuleOutcome(rule, "not run", reasons=(f"probe {rule.probe} is in neither run (rule not required)",))
    mb, mc = base.metric(rule.probe, rule.name), cand.metric(rule.probe, rule.name)
    ref = mc or mb
    unit = ref.unit if ref is not None else ""
    vb = mb.value if mb is not None and mb.ok and math.isfinite(mb.value) else None
    vc = mc.value if mc is not None and mc.ok and math.isfinite(mc.value) else None
    shown = dict(unit=unit, baseline=vb, candidate=vc)
    if blockers:
        return RuleOutcome(rule, "undecided", reasons=("runs are not comparable",), **shown)
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
        return RuleOutcome(rule, "undecided", reasons=tuple(missing), **shown)
    assert ref is not None and vb is not None and vc is not None
    label, quantity = _quantity(rule, ref)
    failures: list[str] = []
    notes: list[str] = []
    fields: dict[str, object] = dict(quantity=label, **shown)
    if rule.relative:
        tested = _relative(rule, base, cand, quantity, seed)
        if isinstance(tested, str):
            return RuleOutcome(rule, "undecided", reasons=(tested,), **fields)
        fields.update(tested.fields)
        notes.extend(tested.notes)
        tolerance = rule.max_increase if rule.max_increase is not None else rule.max_decrease
        worse, p = tested.worsening, tested.p
        beyond = worse > tolerance
        significant = p < rule.alpha
        if beyond and significant:
            failures.append(f"worse by {worse:.4g} > tolerance {tolerance:g} and p = {p:.3g} < alpha {rule.alpha:g}")
        elif beyond:
            notes.append(f"worse by {worse:.4g} > tolerance {tolerance:g}, but not significant "
                         f"(p = {p:.3g} >= alpha {rule.alpha:g})")
        elif significant and worse > 0:
            notes.append(f"significantly worse (p = {p:.3g}) but within tolerance {tolerance:g}")
    else:
        fields["method"] = ABSOLUTE
    if rule.max_value is not None and vc > rule.max_value:
        failures.append(f"candidate {vc:.4g} > max_value {rule.max_value:g}")
    if rule.min_value is not None and vc < rule.min_value:
        failures.append(f"candidate {vc:.4g} < min_value {rule.min_value:g}")
    return RuleOutcome(rule, "regression" if failures else "pass", reasons=tuple(failures + notes), **fields)


@dataclass(frozen=True)
class _Tested:
    worsening: float
    p: float
    fields: dict[str, object]
    notes: tuple[str, ...] = ()


def _relative(rule: Rule, base: Run, cand: Run, quantity: Callable[[object], np.ndarray], seed: int) -> _Tested | str:
    """The paired test when the metric has an item statistic, else the unpaired CI test; a string
    is the reason the rule cannot be decided."""
    stat = item_statistic(rule.metric)
    if stat is None:
        return _unpaired(rule, base, cand, quantity)
    tables = []
    for side, run in (("baseline", base), ("candidate", cand)):
        where = f"{run.path}/samples/{rule.probe}.jsonl"
        if not (run.path / "samples" / f"{rule.probe}.jsonl").exists():
            return f"{where} is missing: the paired test needs the per-item rows"
        table = item_table(stat, run.samples(rule.probe), where)
        summary = run.metric(rule.probe, rule.name)
        assert summary is not None
        value = table_value(stat, table)
        if not math.isclose(value, summary.value, rel_tol=_REPRODUCE_TOL, abs_tol=_REPRODUCE_TOL):
            return (f"the {side} rows give {rule.metric} = {value:.6g}, not summary.json's {summary.value:.6g} "
                    "(rows and summary disagree: was the run edited, or the probe changed?)")
        tables.append(table)
    pairing: Pairing = pair(*tables)
    if not pairing.keys:
        return "the runs share no items (different --limit or data?)"
    test = paired_test(stat, pairing, quantity, seed)
    notes = []
    if pairing.only_baseline or pairing.only_candidate:
        notes.append(f"paired on {len(pairing.keys)} shared items ({pairing.only_baseline} only in the baseline, "
                     f"{pairing.only_candidate} only in the candidate)")
    return _Tested(test.worsening, test.p, dict(
        baseline=test.baseline, candidate=test.candidate, delta=test.worsening, ci=test.ci, p=test.p,
        method=test.method, n=test.n), tuple(notes))


def _unpaired(rule: Rule, base: Run, cand: Run, quantity: Callable[[object], np.ndarray]) -> _Tested | str:
    mb, mc = base.metric(rule.probe, rule.name), cand.metric(rule.probe, rule.name)
    assert mb is not None and mc is not None
    se_b, se_c = standard_error(mb.ci), standard_error(mc.ci)
    if se_b is None or se_c is None:
        return f"{rule.metric} has no item statistic and no confidence interval in both runs: it cannot be tested"
    worse = float(quantity(mc.value) - quantity(mb.value))
    se = math.hypot(se_b, se_c)
    p = 0.5 * math.erfc(worse / se / math.sqrt(2)) if se > 0 else (0.0 if worse > 0 else 1.0)
    return _Tested(worse, p, dict(delta=worse, ci=(worse - Z95 * se, worse + Z95 * se), p=p, method=UNPAIRED,
                                  n=min(mb.n, mc.n)))


def candidate_spec(baseline: Run, model: str, revision: str | None = None):
    """The baseline's exact RunSpec with another model: same probes, suite, limit, seed, data, scorer, backend."""
    from audit.backends.hf import ModelSpec
    from audit.backends.vllm import VLLMOptions
    from audit.runner import RunSpec
    from audit.scoring.registry import ScorerSpec

    where = f"{baseline.path}/manifest.json"
    spec = baseline.manifest.get("spec")
    if not isinstance(spec, dict):
        raise AuditError(f"{where}: no 'spec' (the RunSpec); cannot rerun it with another model")
    try:
        model_spec = ModelSpec(**{**spec["model"], "model": model, "revision": revision})
        data = tuple((str(p), str(path)) for p, path in spec.get("data") or ())
        scorer = ScorerSpec(**(spec.get("scorer") or {}))
        vllm = VLLMOptions(**(spec.get("vllm") or {}))
        run_spec = RunSpec(model=model_spec, probes=tuple(spec["probes"]), suite=spec.get("suite"),
                           limit=spec.get("limit"), seed=int(spec.get("seed", 0)), data=data, scorer=scorer,
                           backend=str(spec.get("backend", "hf")), vllm=vllm)
    except (KeyError, TypeError, ValueError) as e:
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
                  progress: bool = False) -> Path:
    """Audit `model` with the baseline's exact RunSpec (resuming if that run exists); its run directory."""
    from audit.engine import EngineOptions
    from audit.runner import execute, python_command

    spec = candidate_spec(baseline, model, revision)
    device = spec.model.device
    on_gpu = device.startswith("cuda") or (device == "auto" and _cuda_available())
    options = EngineOptions(token_budget=65536 if on_gpu else 8192, seed=spec.seed, progress=progress)
    return execute(spec, Path(out), options=options, command=python_command()).run_dir


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
