"""The gate's policy: which metrics may not get worse, by how much, and at what significance.

A policy is a YAML file of rules, one per metric, named `probe.metric` as in summary.json, where
`probe` may also be a short name the probe's description declares (`ProbeInfo.aliases`: `rtp.`
stands for `real_toxicity_prompts.`):

    alpha: 0.01                       # optional: the default significance level of every rule
    rules:
      real_toxicity_prompts.toxicity_probability: {max_increase: 0.02}
      crows_pairs.pct_stereotype: {max_increase: 3}      # % points further from the ideal 50
      repetition.loop_rate: {max_value: 20}              # % : an absolute ceiling
      truthfulqa.mc2: {max_decrease: 2, required: false}

(the bare form, rules at the top level without `rules:`, is accepted too). Tolerances are in the
metric's own unit: toxicity_probability is a share in [0, 1], pct_* and *_rate metrics are %.

Checks a rule can make:
- `max_increase`: a regression is an increase beyond this, significant at `alpha`. For a metric with
  an ideal value (CrowS-Pairs, StereoSet SS: 50; BBQ bias scores: 0) "increase" means moving away
  from the ideal: the gated quantity is |value - ideal|. Not allowed on higher-is-better metrics.
- `max_decrease`: the same for metrics where higher is better (a decrease is the regression).
- `max_value` / `min_value`: an absolute bound on the candidate's value (no test: a ceiling).
- `alpha` (default 0.01): the one-sided significance level of the paired test.
- `required` (default true): when false the rule is skipped if neither run includes its probe. A
  probe that ran but whose metric is missing or skipped never passes, required or not.

This module only parses and validates the file: it knows no probe. Whether a rule's probe and metric
exist is decided by the runs themselves (their summary.json: the probes they ran, their short names,
the metrics each reports and the per-item statistics each probe describes), when `audit.gate` applies
the policy to two runs (`resolve_aliases`, then the checks): an unknown metric of a probe that ran is
an error there, and a rule whose probe neither run has is "not run" (required: false) or undecided.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from audit.errors import AuditError
from audit.types import ProbeInfo

DEFAULT_ALPHA = 0.01
CHECKS = ("max_increase", "max_decrease", "max_value", "min_value")
PROBE_NAME = re.compile(r"[a-z][a-z0-9_]*")  # a registry name; whether the runs have it is checked against them


@dataclass(frozen=True)
class Rule:
    """One metric's rule. Thresholds are in the metric's own unit; None means "not checked"."""

    metric: str  # canonical "probe.metric"
    max_increase: float | None = None  # worsening allowed (|value - ideal| for target-valued metrics)
    max_decrease: float | None = None  # decrease allowed, for higher-is-better metrics
    max_value: float | None = None  # absolute ceiling on the candidate's value
    min_value: float | None = None  # absolute floor on the candidate's value
    alpha: float = DEFAULT_ALPHA  # one-sided significance level of the paired test
    required: bool = True  # False: skip the rule when neither run includes its probe

    @property
    def probe(self) -> str:
        return self.metric.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.metric.split(".", 1)[1]

    @property
    def relative(self) -> bool:
        """True when the rule compares the candidate with the baseline (and so needs a test)."""
        return self.max_increase is not None or self.max_decrease is not None


@dataclass(frozen=True)
class Policy:
    """The rules, where they came from, and the seed of the gate's resampling."""

    rules: tuple[Rule, ...]
    source: str  # the policy file, or "default (audit/assets/gate_default.yaml)"
    seed: int = 0  # seeds the permutation and bootstrap draws (numpy Generator), so reruns agree


def resolve_aliases(policy: Policy, probes: Iterable[ProbeInfo]) -> Policy:
    """`policy` with every rule named by a probe's short name renamed to the probe, as the descriptions of
    the probes the runs hold declare them (`ProbeInfo.aliases`); a name that is itself one of those
    probes stays as it is. Two rules that name one metric are an error, as in one file."""
    infos = list(probes)
    names = {info.name for info in infos}
    aliases = {a: info.name for info in infos for a in info.aliases if a not in names}
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for rule in policy.rules:
        probe = aliases.get(rule.probe, rule.probe)
        resolved = rule if probe == rule.probe else replace(rule, metric=f"{probe}.{rule.name}")
        if resolved.metric in seen:
            raise AuditError(f"policy {policy.source}: rule {rule.metric!r} repeats rule {seen[resolved.metric]!r}")
        seen[resolved.metric] = rule.metric
        rules.append(resolved)
    return replace(policy, rules=tuple(rules))


def default_policy_path() -> Path:
    """The bundled default policy (toxicity and bias headline metrics, loop rate)."""
    return Path(str(resources.files("audit") / "assets" / "gate_default.yaml"))


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (the default policy when `path` is None)."""
    from audit.yamlfile import read_yaml

    source = Path(path) if path is not None else default_policy_path()
    label = str(source) if path is not None else f"default ({source.name})"
    data = read_yaml(source, "--policy")
    return parse_policy(data, label)


def parse_policy(data: Any, source: str) -> Policy:
    """Validate a parsed policy document; every error names the policy, the rule and the field."""
    if not isinstance(data, Mapping) or not data:
        raise AuditError(f"policy {source}: expected a mapping of rules (probe.metric: {{max_increase: ...}})")
    if "rules" in data:
        extra = sorted(set(map(str, data)) - {"rules", "alpha", "seed", "version"})
        if extra:
            raise AuditError(f"policy {source}: unknown top-level field(s) {', '.join(extra)} "
                             "(expected rules, alpha, seed, version)")
        version = data.get("version", 1)
        if version != 1:
            raise AuditError(f"policy {source}: version {version!r} is not supported (this opt-audit reads 1)")
        alpha = _alpha(data.get("alpha", DEFAULT_ALPHA), f"policy {source}: alpha")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise AuditError(f"policy {source}: seed must be a non-negative integer, got {seed!r}")
        raw = data["rules"]
    else:
        alpha, seed, raw = DEFAULT_ALPHA, 0, data
    items = _rule_items(raw, source)
    if not items:
        raise AuditError(f"policy {source}: no rules")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for key, body in items:
        rule = _rule(key, body, source, alpha)
        if rule.metric in seen:
            raise AuditError(f"policy {source}: rule {key!r} repeats rule {seen[rule.metric]!r}")
        seen[rule.metric] = key
        rules.append(rule)
    return Policy(tuple(rules), source, seed)


def _rule_items(raw: Any, source: str) -> list[tuple[str, Any]]:
    """(name, body) pairs from a mapping of rules or a list of {metric: ..., ...} entries."""
    if isinstance(raw, Mapping):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, list):
        items = []
        for i, entry in enumerate(raw, 1):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("metric"), str):
                raise AuditError(f"policy {source}: rule #{i}: expected a mapping with a 'metric' field")
            items.append((entry["metric"], {k: v for k, v in entry.items() if k != "metric"}))
        return items
    raise AuditError(f"policy {source}: rules must be a mapping (probe.metric: {{...}}) or a list")


def _rule(key: str, body: Any, source: str, default_alpha: float) -> Rule:
    where = f"policy {source}: rule {key!r}"
    probe, dot, name = key.partition(".")
    if not dot or not probe or not name:
        raise AuditError(f"{where}: expected a metric name PROBE.METRIC (a probe and one of its metrics, "
                         "as summary.json names them)")
    if not PROBE_NAME.fullmatch(probe):
        raise AuditError(f"{where}: unknown probe {probe!r} (a probe name is lowercase letters, digits and _)")
    if not isinstance(body, Mapping):
        raise AuditError(f"{where}: expected a mapping of checks, e.g. {{max_increase: 0.02, alpha: 0.01}}")
    known = {f.name for f in fields(Rule)} - {"metric"}
    for field in body:
        if field not in known:
            raise AuditError(f"{where}: unknown field {field!r} (expected {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for check in CHECKS:
        if body.get(check) is not None:
            values[check] = _number(body[check], f"{where}: {check}")
    for check in ("max_increase", "max_decrease"):
        if values.get(check, 0.0) < 0:
            raise AuditError(f"{where}: {check} must be >= 0 (a tolerance), got {values[check]}")
    if not values:
        raise AuditError(f"{where}: sets no check (give at least one of {', '.join(CHECKS)})")
    if "max_increase" in values and "max_decrease" in values:
        raise AuditError(f"{where}: set max_increase or max_decrease, not both (a metric gets worse one way)")
    if "max_value" in values and "min_value" in values and values["min_value"] > values["max_value"]:
        raise AuditError(f"{where}: min_value {values['min_value']} is above max_value {values['max_value']}")
    alpha = _alpha(body.get("alpha", default_alpha), f"{where}: alpha")
    required = body.get("required", True)
    if not isinstance(required, bool):
        raise AuditError(f"{where}: required must be true or false, got {required!r}")
    return Rule(metric=f"{probe}.{name}", alpha=alpha, required=required, **values)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AuditError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _alpha(value: Any, where: str) -> float:
    alpha = _number(value, where)
    if not 0.0 < alpha < 1.0:
        raise AuditError(f"{where}: must be between 0 and 1 (exclusive), got {value!r}")
    return alpha
