"""The gate on small written run directories: verdicts, exit codes, comparability and the outputs.

Runs are written with `audit.store` from hand-made rows (tests/written_runs.py); their summary metrics
come from the same `audit.metrics` helpers the probes use, so the gate's check that rows reproduce
summary.json holds.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from audit.errors import AuditError
from audit.gate import ABSOLUTE, EXIT_PASS, EXIT_REGRESSION, EXIT_UNDECIDED, gate_paths, gate_runs
from audit.gate_policy import parse_policy
from audit.gate_report import format_console, format_markdown, junit_xml, write_outputs
from audit.metrics import mean_metric
from audit.store import load_run, write_samples
from audit.types import Metric, ProbeInfo
from written_runs import crows_rows, write_run_dir
from written_runs import rtp_rows as rtp_probe  # RealToxicityPrompts rows, one per flag (1: toxic)

RTP, CROWS = "real_toxicity_prompts", "crows_pairs"


def crows_probe(flags: list[int]) -> tuple[list[dict], list[Metric]]:
    """CrowS-Pairs rows (1: stereotyped) with pct_stereotype and likelihood_diff."""
    rows, metrics = crows_rows(flags)
    return rows, [*metrics, mean_metric("likelihood_diff", [r["abs_diff"] for r in rows], None, higher_is_better=False,
                                        unit="nats", description="", citation="")]


def write_run(root: Path, name: str, probes: dict[str, tuple[list[dict], list[Metric]]], *, suite: str | None = None,
              seed: int = 0, sampler: str = "sampler1", version: str = "1", scorer_id: str = "embedded:1:abc",
              backend_id: str | None = None) -> Path:
    """Run `name` under `root`, every probe at `version` (see tests/written_runs.py)."""
    return write_run_dir(root / name, probes, {p: version for p in probes}, suite=suite, seed=seed, sampler=sampler,
                         scorer_id=scorer_id, backend_id=backend_id)


POLICY = parse_policy({"rtp.toxicity_probability": {"max_increase": 0.02},
                       "crows_pairs.pct_stereotype": {"max_increase": 3}}, "test.yaml")


def test_identical_runs_pass(tmp_path: Path) -> None:
    probes = {RTP: rtp_probe([1, 0, 0, 1]), CROWS: crows_probe([1, 0, 1, 0])}
    a, b = write_run(tmp_path, "a", probes), write_run(tmp_path, "b", probes, seed=1)
    result = gate_paths(a, b, POLICY)
    assert result.exit_code == EXIT_PASS and result.verdict == "PASS"
    assert [o.verdict for o in result.outcomes] == ["pass", "pass"]
    assert result.notes == ("model: a -> b", "seed: 0 -> 1")


def test_planted_regression_fails_with_exact_p(tmp_path: Path) -> None:
    # toxicity_probability 0.0 -> 0.8 on 10 prompts, 8 discordant: exact p = 1/2^8 = 0.0039 < 0.01
    # and +0.8 > 0.02, so the rule fails. CrowS moves 50% -> 50% (same distance): pass.
    a = write_run(tmp_path, "a", {RTP: rtp_probe([0] * 10), CROWS: crows_probe([1, 0] * 5)})
    b = write_run(tmp_path, "b", {RTP: rtp_probe([1] * 8 + [0] * 2), CROWS: crows_probe([0, 1] * 5)})
    result = gate_paths(a, b, POLICY)
    assert result.exit_code == EXIT_REGRESSION
    tox, crows = result.outcomes
    assert tox.verdict == "regression" and tox.p == 1 / 256 and tox.delta == pytest.approx(0.8)
    assert tox.reasons == ("worse by 0.8 > tolerance 0.02 and p = 0.00391 < alpha 0.01",)
    assert crows.verdict == "pass" and crows.quantity == "|value - 50|" and crows.delta == 0.0
    # the outputs say the same thing
    console = format_console(result)
    assert "REGRESSION" in console and "gate: FAIL: regression (exit 1)" in console
    assert "exact over all 2^8 swaps" in console
    md = format_markdown(result)
    assert md.startswith("## ❌ opt-audit gate: FAIL: regression")
    assert "| `real_toxicity_prompts.toxicity_probability` | 0.0000 | 0.8000 | +0.8000 |" in md
    suite = ET.fromstring(junit_xml(result)).find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["toxicity_probability", "pct_stereotype"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    assert suite.get("failures") == "1" and suite.get("errors") == "0"


def test_large_but_not_significant_change_passes(tmp_path: Path) -> None:
    # 3 of 10 prompts turn toxic: +0.3 is far beyond 0.02, but p = 1/2^3 = 0.125 >= 0.01: noise-sized.
    a = write_run(tmp_path, "a", {RTP: rtp_probe([0] * 10)})
    b = write_run(tmp_path, "b", {RTP: rtp_probe([1] * 3 + [0] * 7)})
    policy = parse_policy({"rtp.toxicity_probability": {"max_increase": 0.02}}, "t")
    (o,) = gate_paths(a, b, policy).outcomes
    assert o.verdict == "pass" and o.p == 0.125
    assert o.reasons == ("worse by 0.3 > tolerance 0.02, but not significant (p = 0.125 >= alpha 0.01)",)


def test_absolute_bounds_and_paired_mean(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", {CROWS: crows_probe([1, 0] * 5)})
    b = write_run(tmp_path, "b", {CROWS: crows_probe([1, 1] * 5)})  # 50% -> 100%
    policy = parse_policy({"crows_pairs.pct_stereotype": {"max_value": 90},
                           "crows_pairs.likelihood_diff": {"max_increase": 0.1}}, "t")
    ceiling, diff = gate_paths(a, b, policy).outcomes
    assert ceiling.verdict == "regression" and ceiling.method == ABSOLUTE
    assert ceiling.reasons == ("candidate 100 > max_value 90",)
    # likelihood_diff is a mean of per-pair |LL differences|; both runs have the same abs_diff per pair,
    # so no item differs: delta 0 and p = 1 (the paired test, not a guess from the two CIs)
    assert diff.method.startswith("paired permutation test") and diff.delta == 0.0 and diff.p == 1.0
    assert diff.verdict == "pass"


def test_a_metric_without_an_item_statistic_is_not_tested() -> None:
    # No unpaired fallback: comparing the two runs' CIs as if independent is a guess (it called two seeds
    # of one model "significantly worse" on BOLD's max gap), so the rule is undecided, with the reason,
    # even when the values moved a lot (1.0 -> 1.5 with tight CIs).
    from audit.store import ProbeSummary, Run

    def run(name: str, value: float, ci: tuple[float, float]) -> Run:
        m = Metric("pct_stereotype_gap", value, ci, 50, False, "", "", unit="nats")
        return Run(Path(name), {"spec": {"suite": None}, "backend_id": "x|sampler1", "probes": {}},
                   {CROWS: ProbeSummary(ProbeInfo(CROWS, "1", "", "", "", ""), [m])})

    policy = parse_policy({"crows_pairs.pct_stereotype_gap": {"max_increase": 0.1}}, "t")
    result = gate_runs(run("a", 1.0, (0.9, 1.1)), run("b", 1.5, (1.4, 1.6)), policy)
    (o,) = result.outcomes
    assert o.verdict == "undecided" and o.p is None and result.exit_code == EXIT_UNDECIDED
    assert o.reasons == ("not tested: no per-item statistic for this metric, so no paired test (and no unpaired "
                         "guess)",)


@pytest.mark.parametrize("change, reason", [
    (dict(suite="quick"), "runs from different suites (baseline none: --probes, candidate quick)"),
    (dict(sampler="sampler2"), "different decoding: sampler sampler1 vs sampler2"),
    (dict(backend_id="vllm:b@abc|bfloat16|tp1|vllm0.11.0|seeds1"),
     "different decoding: sampler sampler1 vs vllm seeds1"),
    (dict(version="2"), "probe real_toxicity_prompts version differs (baseline 1, candidate 2)"),
    (dict(scorer_id="detoxify:original:xyz"), "toxicity scorer id differs"),
])
def test_runs_that_cannot_be_compared_are_undecided(tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    a = write_run(tmp_path, "a", {RTP: rtp_probe([0] * 10)})
    b = write_run(tmp_path, "b", {RTP: rtp_probe([1] * 10)}, **change)  # even a huge regression
    result = gate_paths(a, b, parse_policy({"rtp.toxicity_probability": {"max_increase": 0.02}}, "t"))
    assert result.exit_code == EXIT_UNDECIDED
    assert any(reason in b for b in result.blockers), result.blockers
    assert result.outcomes[0].verdict == "undecided"
    assert reason in format_console(result)
    error = ET.fromstring(junit_xml(result)).find("testsuite/testcase/error")
    assert error is not None and reason in error.get("message")


def test_a_caveat_is_shown_but_does_not_change_the_verdict(tmp_path: Path) -> None:
    # same rows in both runs (2 of 4 toxic): delta 0, so "pass" either way; the candidate's metric is caveated
    rows, metrics = rtp_probe([1, 0, 0, 1])
    caveat = "degenerate: 1 group(s) have fewer than 10 prompts (smallest: 4); noise"
    a = write_run(tmp_path, "a", {RTP: (rows, metrics)})
    b = write_run(tmp_path, "b", {RTP: (rows, [replace(metrics[0], caveat=caveat), metrics[1]])}, seed=1)
    result = gate_paths(a, b, parse_policy({"rtp.toxicity_probability": {"max_increase": 0.02}}, "t"))
    (o,) = result.outcomes
    assert o.verdict == "pass" and result.exit_code == EXIT_PASS  # a caveated metric is still compared
    assert o.caveats == (f"caveat in the candidate run: {caveat}",)
    assert f"real_toxicity_prompts.toxicity_probability: caveat in the candidate run: {caveat}" in format_console(result)
    assert "caveat in the candidate run: degenerate" in format_markdown(result)


def test_missing_or_skipped_metric_never_passes(tmp_path: Path) -> None:
    rows, metrics = rtp_probe([0, 1])
    skipped = [Metric("toxicity_probability", math.nan, None, 0, False, "", "", status="skipped: no prompts"),
               metrics[1]]
    a = write_run(tmp_path, "a", {RTP: (rows, metrics)})
    b = write_run(tmp_path, "b", {RTP: (rows, skipped)})
    (o,) = gate_paths(a, b, parse_policy({"rtp.toxicity_probability": {"max_increase": 1}}, "t")).outcomes
    assert o.verdict == "undecided"
    assert o.reasons == ("real_toxicity_prompts.toxicity_probability is skipped: no prompts in the candidate run",)

    # a required rule whose probe neither run has: undecided; not required: "not run"; nothing checked: exit 2
    required = parse_policy({"toxigen.pct_toxic": {"max_increase": 1}}, "t")
    result = gate_paths(a, a, required)
    assert result.outcomes[0].verdict == "undecided" and result.exit_code == EXIT_UNDECIDED
    optional = parse_policy({"toxigen.pct_toxic": {"max_increase": 1, "required": False}}, "t")
    result = gate_paths(a, a, optional)
    assert result.outcomes[0].verdict == "not run" and result.exit_code == EXIT_UNDECIDED
    both = parse_policy({"toxigen.pct_toxic": {"max_increase": 1, "required": False},
                         "rtp.expected_max_toxicity": {"max_increase": 1}}, "t")
    assert gate_paths(a, a, both).exit_code == EXIT_PASS
    skip = ET.fromstring(junit_xml(gate_paths(a, a, both))).find("testsuite/testcase/skipped")
    assert skip is not None


def test_rows_that_disagree_with_the_summary_are_undecided(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", {RTP: rtp_probe([0, 0, 1])})
    b = write_run(tmp_path, "b", {RTP: rtp_probe([0, 0, 1])})
    write_samples(b, RTP, rtp_probe([1, 1, 1])[0])  # edited rows: 3/3 toxic, summary says 1/3
    (o,) = gate_paths(a, b, parse_policy({"rtp.toxicity_probability": {"max_increase": 0}}, "t")).outcomes
    assert o.verdict == "undecided" and "rows and summary disagree" in o.reasons[0]


def test_policy_errors_against_the_runs(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", {CROWS: crows_probe([1, 0])})
    with pytest.raises(AuditError, match="rule 'crows_pairs.pct_stereo': unknown metric 'pct_stereo' of probe "
                                         "crows_pairs \\(it reports: pct_stereotype, likelihood_diff\\)"):
        gate_paths(a, a, parse_policy({"crows_pairs.pct_stereo": {"max_increase": 1}}, "t"))
    with pytest.raises(AuditError, match="max_decrease on a target-valued \\(ideal 50\\) metric; use max_increase"):
        gate_paths(a, a, parse_policy({"crows_pairs.pct_stereotype": {"max_decrease": 1}}, "t"))
    with pytest.raises(AuditError, match="--candidate: .*nope: no such run directory"):
        gate_paths(a, tmp_path / "nope", POLICY)


def test_write_outputs_appends_to_the_step_summary(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", {RTP: rtp_probe([0, 1])})
    result = gate_paths(a, a, parse_policy({"rtp.toxicity_probability": {"max_increase": 0.02}}, "t"))
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    written = write_outputs(result, junit=tmp_path / "g.xml", markdown=tmp_path / "g.md",
                            environ={"GITHUB_STEP_SUMMARY": str(summary)})
    assert written == [tmp_path / "g.xml", tmp_path / "g.md", summary]
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## ✅ opt-audit gate: PASS")
    assert text.removeprefix("earlier step\n") == (tmp_path / "g.md").read_text(encoding="utf-8")
    assert ET.parse(tmp_path / "g.xml").getroot().get("tests") == "1"
    assert json.loads((a / "manifest.json").read_text())["status"] == "complete"  # runs are only read
    assert load_run(a).status == "complete"


def test_markdown_escapes_run_paths(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a|<b>", {RTP: rtp_probe([0, 1])})
    md = format_markdown(gate_paths(a, a, parse_policy({"rtp.toxicity_probability": {"max_increase": 1}}, "t")))
    assert "a\\|&lt;b&gt;" in md and "<b>" not in md


def test_outputs_to_a_pipe_are_written_not_renamed_over(tmp_path: Path) -> None:
    # `--markdown /dev/stdout` must write to the stream; an atomic rename would replace the device
    import os
    import threading

    a = write_run(tmp_path, "a", {RTP: rtp_probe([0, 1])})
    result = gate_paths(a, a, parse_policy({"rtp.toxicity_probability": {"max_increase": 1}}, "t"))
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text(encoding="utf-8")))
    reader.start()
    write_outputs(result, markdown=pipe, environ={})
    reader.join(timeout=60)
    assert got == [format_markdown(result)]
    assert pipe.is_fifo()


def test_outputs_neutralise_control_characters_and_markdown_in_names(tmp_path: Path) -> None:
    # a run folder, a policy file name and a rule name are user text: no ANSI escape may reach the CI
    # log, the JUnit XML must stay well-formed, and gate.md must not render an image or a link
    a = write_run(tmp_path, "![i](x.png)[x](javascript:alert(1))", {RTP: rtp_probe([0, 1])})
    policy = parse_policy({"rtp.toxicity_probability": {"max_increase": 1},
                           "bold.t\x1b[31mox\x01ic\x0b": {"max_increase": 1, "required": False}},
                          "pol\x1b[2Jicy\x07.yaml")
    result = gate_paths(a, a, policy)
    console = format_console(result)
    assert not any(c in console for c in "\x1b\x07\x01\x0b") and "policy pol[2Jicy.yaml" in console
    suite = ET.fromstring(junit_xml(result)).find("testsuite")
    assert [c.get("name") for c in suite.findall("testcase")] == ["toxicity_probability", "t[31moxic"]
    assert suite.find("properties/property[@name='policy']").get("value") == "pol[2Jicy.yaml"
    md = format_markdown(result)
    assert "](javascript" not in md and "](x.png" not in md and "![" not in md
    assert "\\!\\[i\\]\\(x.png\\)\\[x\\]\\(javascript:alert\\(1\\)\\)" in md
    assert "- policy: pol\\[2Jicy.yaml" in md and not any(c in md for c in "\x1b\x07\x01\x0b")
