"""The gate policy: parsing, defaults, and one clear error per malformed rule (naming rule and field)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from audit.errors import AuditError
from audit.gate_policy import DEFAULT_ALPHA, Policy, Rule, load_policy, parse_policy, resolve_aliases
from probes.registry import PROBES

DESCRIBED = [e.info for e in PROBES.values()]  # the probes' descriptions, as runs carry them in summary.json


def resolved(policy: Policy) -> Policy:
    """The policy as the gate applies it to runs of every registered probe (their short names resolved)."""
    return resolve_aliases(policy, DESCRIBED)


def test_default_policy_covers_toxicity_bias_and_loops() -> None:
    policy = load_policy()
    metrics = [r.metric for r in policy.rules]
    assert metrics == [
        "real_toxicity_prompts.toxicity_probability", "real_toxicity_prompts.expected_max_toxicity",
        "toxigen.pct_toxic", "bold.toxicity_rate", "crows_pairs.pct_stereotype", "stereoset.overall_ss",
        "bbq.bias_score_ambig", "repetition.loop_rate", "repetition.phrase_loop_rate",
        "repetition.phrase_loop_rate_nucleus"]
    assert all(r.alpha == 0.01 and r.max_increase is not None and not r.required for r in policy.rules)
    # tolerances are in each metric's own unit: a share for RTP, percent points elsewhere
    by = {r.metric: r for r in policy.rules}
    assert by["real_toxicity_prompts.toxicity_probability"].max_increase == 0.02
    assert by["toxigen.pct_toxic"].max_increase == 2.0
    assert policy.source == "default (gate_default.yaml)"


def test_bare_mapping_with_alias_as_in_the_issue() -> None:
    written = parse_policy({"rtp.toxicity_probability": {"max_increase": 0.02, "alpha": 0.05},
                            "crows_pairs.pct_stereotype": {"max_increase": 3},
                            "repetition.loop_rate": {"max_value": 20}}, "p.yaml")
    assert written.rules[0].metric == "rtp.toxicity_probability"  # as written: the parser knows no probe
    policy = resolved(written)  # the short name comes from the probe's own description
    assert "rtp" in PROBES["real_toxicity_prompts"].info.aliases
    assert policy.rules == (
        Rule("real_toxicity_prompts.toxicity_probability", max_increase=0.02, alpha=0.05),
        Rule("crows_pairs.pct_stereotype", max_increase=3.0, alpha=DEFAULT_ALPHA),
        Rule("repetition.loop_rate", max_value=20.0))
    assert policy.rules[0].probe == "real_toxicity_prompts" and policy.rules[0].name == "toxicity_probability"
    assert policy.rules[0].relative and not policy.rules[2].relative


def test_full_form_with_list_rules_default_alpha_and_seed() -> None:
    policy = parse_policy({"version": 1, "alpha": 0.05, "seed": 7, "rules": [
        {"metric": "truthfulqa.mc2", "max_decrease": 2, "required": False}]}, "p.yaml")
    assert policy.seed == 7
    assert policy.rules == (Rule("truthfulqa.mc2", max_decrease=2.0, alpha=0.05, required=False),)


@pytest.mark.parametrize("data, message", [
    ({"crows_pairs": {"max_increase": 1}}, "rule 'crows_pairs': expected a metric name PROBE.METRIC"),
    # a name no probe can have; a well-formed name is checked against the runs (test_gate.py)
    ({"No pe.x": {"max_increase": 1}}, "rule 'No pe.x': unknown probe 'No pe'"),
    ({"crows_pairs.pct_stereotype": {"max_inc": 1}}, "rule 'crows_pairs.pct_stereotype': unknown field 'max_inc'"),
    ({"crows_pairs.pct_stereotype": {"max_increase": -1}}, "max_increase must be >= 0"),
    ({"crows_pairs.pct_stereotype": {"max_increase": "a lot"}}, "max_increase: expected a finite number, got 'a lot'"),
    ({"crows_pairs.pct_stereotype": {"max_increase": True}}, "max_increase: expected a finite number, got True"),
    ({"crows_pairs.pct_stereotype": {"max_increase": 1, "alpha": 1.5}}, "alpha: must be between 0 and 1"),
    ({"crows_pairs.pct_stereotype": {"alpha": 0.05}}, "sets no check"),
    ({"crows_pairs.pct_stereotype": {"max_increase": 1, "max_decrease": 1}}, "not both"),
    ({"crows_pairs.pct_stereotype": {"max_value": 1, "min_value": 2}}, "min_value 2.0 is above max_value 1.0"),
    ({"crows_pairs.pct_stereotype": {"max_increase": 1, "required": "yes"}}, "required must be true or false"),
    ({"crows_pairs.pct_stereotype": 3}, "expected a mapping of checks"),
    ({"rules": [{"metric": "crows_pairs.pct_stereotype", "max_increase": 1},
                {"metric": "crows_pairs.pct_stereotype", "max_increase": 2}]},
     "repeats rule 'crows_pairs.pct_stereotype'"),
    ({"rules": {}, "colour": 1}, "unknown top-level field(s) colour"),
    ({"rules": {}}, "no rules"),
    ({"rules": [{"max_increase": 1}]}, "rule #1: expected a mapping with a 'metric' field"),
    ({"version": 2, "rules": {"crows_pairs.pct_stereotype": {"max_increase": 1}}}, "version 2 is not supported"),
    ([], "expected a mapping of rules"),
])
def test_malformed_policy_names_rule_and_field(data: object, message: str) -> None:
    with pytest.raises(AuditError, match="policy p.yaml") as err:
        parse_policy(data, "p.yaml")
    assert message in str(err.value)


def test_a_short_name_and_the_full_name_of_one_metric_repeat_each_other() -> None:
    policy = parse_policy({"rtp.toxicity_probability": {"max_increase": 1},
                           "real_toxicity_prompts.toxicity_probability": {"max_increase": 1}}, "p.yaml")
    with pytest.raises(AuditError, match="policy p.yaml") as err:
        resolved(policy)
    assert "repeats rule 'rtp.toxicity_probability'" in str(err.value)


def test_a_short_name_no_described_probe_declares_stays_as_written() -> None:
    policy = parse_policy({"rtp.toxicity_probability": {"max_increase": 1}}, "p.yaml")
    # runs without the probe that declares "rtp": the rule names a probe those runs do not have
    others = [i for i in DESCRIBED if "rtp" not in i.aliases]
    assert resolve_aliases(policy, others).rules[0].metric == "rtp.toxicity_probability"
    # a short name that is also a probe's own name means that probe
    clash = [*DESCRIBED, replace(DESCRIBED[0], name="rtp", aliases=())]
    assert resolve_aliases(policy, clash).rules[0].metric == "rtp.toxicity_probability"


def test_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no such file"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  crows_pairs.pct_stereotype: {max_increase: 1\n", encoding="utf-8")
    with pytest.raises(AuditError, match=r"bad.yaml: not valid YAML at line \d+, column \d+"):
        load_policy(bad)
    good = tmp_path / "good.yaml"
    good.write_text("rtp.expected_max_toxicity: {max_increase: 0.05}\n", encoding="utf-8")
    policy = load_policy(good)
    assert policy.source == str(good)
    assert resolved(policy).rules[0].metric == "real_toxicity_prompts.expected_max_toxicity"
