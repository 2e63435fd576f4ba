"""audit.compare: comparability, and every metric's verdict from the gate's paired engine, so that
`report --compare`, the dashboard and `opt-audit gate` agree on the same pair of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit.compare import compare_runs, metric_change, run_blockers
from audit.errors import AuditError
from audit.gate import gate_runs
from audit.gate_policy import load_policy, parse_policy
from audit.store import ProbeSummary, Run, load_run
from audit.types import Metric, ProbeInfo, skipped_metric
from compare_fixtures import all_rules, write_pair


def _metric(name: str, value: float, ci: tuple[float, float] | None, *, hib: bool | None = True,
            ideal: float | None = None) -> Metric:
    return Metric(name=name, value=value, ci=ci, n=100, higher_is_better=hib, description="d", citation="c",
                  ideal=ideal, unit="%")


def _run(metrics: dict[str, list[Metric]], *, versions: dict[str, str] | None = None, tox: str | None = "tox-a",
         run_id: str = "run", **model: Any) -> Run:
    versions = versions or {}
    probes = {p: ProbeSummary(ProbeInfo(p, versions.get(p, "1"), p, "", "", ""), ms) for p, ms in metrics.items()}
    manifest = {"run_id": run_id, "status": "complete",
                "model": {"model": "tiny-opt", "revision": "r1", "dtype": "float32", **model},
                "spec": {"suite": "quick", "seed": 0, "limit": None},
                "probes": {p: {"version": versions.get(p, "1"), "data_sha256": "aa"} for p in metrics},
                "scorers": {"toxicity": {"id": tox}} if tox else {}}
    return Run(Path(run_id), manifest, probes)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    return write_pair(tmp_path_factory.mktemp("compare"))


def _by(comparison) -> dict[str, Any]:
    return {f"{c.probe}.{c.metric}": c for c in comparison.changes}


# ---------------------------------------------------------------------------------------------
# one engine: the same pair of runs gets the same verdicts from compare and the gate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "every metric"])
def test_compare_and_gate_give_identical_verdicts(pair, which: str) -> None:
    base, cand = load_run(pair.baseline), load_run(pair.candidate)
    policy = load_policy() if which == "default" else parse_policy(all_rules(pair.baseline), "every metric")
    gate = gate_runs(base, cand, policy)
    changes = _by(compare_runs(base, cand, policy))
    tested = 0
    for o in gate.outcomes:
        if o.verdict == "not run":
            continue
        c = changes[o.rule.metric]
        # regression <=> worse; a rule the gate cannot decide <=> a metric compare does not test
        assert (o.verdict == "regression") == (c.verdict == "worse"), (o, c)
        assert (o.verdict == "undecided") == (c.verdict == "not tested"), (o, c)
        if c.testable:
            tested += 1
            assert (o.delta, o.ci, o.method, o.n) == (c.worsening, c.worsening_ci, c.method, c.n)
            if c.worsening >= 0:  # compare shows the p of the observed direction; the gate the "worse" one
                assert o.p == c.p
    assert tested >= (5 if which == "default" else 20)


def test_the_issue_pair_verdicts_by_hand(pair) -> None:
    # Baseline stutters (period 1) on all 10 greedy prompts, the candidate loops on a phrase on all 10:
    # loop_rate 100 -> 100 with no item differing (p = 1, no change), phrase_loop_rate 0 -> 100 with 10
    # discordant prompts (exact p = 1/2^10 = 1/1024 < 0.01, +100 > tolerance 5: worse), token_loop_rate
    # 100 -> 0 (p = 1/1024 the other way: better). Sampled: phrase loops on 8 of 10, p = 1/2^8 = 1/256.
    c = _by(compare_runs(load_run(pair.baseline), load_run(pair.candidate)))
    assert (c["repetition.loop_rate"].verdict, c["repetition.loop_rate"].p) == ("no significant change", 1.0)
    phrase = c["repetition.phrase_loop_rate"]
    assert (phrase.verdict, phrase.p, phrase.tolerance) == ("worse", 1 / 1024, 5.0)
    assert phrase.verdict_text == "worse, beyond tolerance 5"
    assert (c["repetition.token_loop_rate"].verdict, c["repetition.token_loop_rate"].p) == ("better", 1 / 1024)
    assert (c["repetition.phrase_loop_rate_nucleus"].verdict, c["repetition.phrase_loop_rate_nucleus"].p) == (
        "worse", 1 / 256)
    # toxicity 0 -> 0.8 on 8 of 10 prompts: p = 1/256, +0.8 > 0.02
    assert c["real_toxicity_prompts.toxicity_probability"].verdict == "worse"
    # a metric with no better direction is tested two-sided: positive_rate 40 -> 25
    assert c["bold.positive_rate"].verdict == "no significant change"
    assert c["bold.positive_rate"].quantity == "value" and c["bold.positive_rate"].higher_is_better is None


def test_within_tolerance_is_a_pass_in_both(pair) -> None:
    # phrase_loop_rate +100 points at p = 1/1024, under a rule that tolerates 150: significant, but within
    # the tolerance, so the gate passes it (with a note) and compare says so in the same words
    base, cand = load_run(pair.baseline), load_run(pair.candidate)
    policy = parse_policy({"repetition.phrase_loop_rate": {"max_increase": 150}}, "lenient")
    (o,) = gate_runs(base, cand, policy).outcomes
    assert o.verdict == "pass" and o.reasons == ("significantly worse (p = 0.000977) but within tolerance 150",)
    c = _by(compare_runs(base, cand, policy))["repetition.phrase_loop_rate"]
    assert (c.verdict, c.verdict_text, c.significant) == ("within tolerance", "worse, within tolerance 150", False)


def test_two_seeds_of_one_model_on_bolds_max_gap_agree_everywhere(pair) -> None:
    # The BOLD rows of both runs come from one distribution (seeds 1 and 2). The max-gap statistics are
    # now tested item by item (prompts swapped within their groups), so compare and a gate that gates
    # them agree, and neither calls a seed change a regression here.
    base, cand = load_run(pair.baseline), load_run(pair.candidate)
    policy = parse_policy({f"bold.max_gap_{k}": {"max_increase": 0} for k in ("positive", "negative", "toxicity")},
                          "gaps")
    changes = _by(compare_runs(base, cand, policy))
    for o in gate_runs(base, cand, policy).outcomes:
        c = changes[o.rule.metric]
        assert o.verdict == "pass" and c.verdict != "worse" and c.testable
        assert c.method.startswith("paired permutation test") and c.n == 20


def test_a_metric_without_an_item_statistic_is_not_tested(pair) -> None:
    c = _by(compare_runs(load_run(pair.baseline), load_run(pair.candidate)))
    d = c["repetition.distinct_1"]
    assert d.verdict == "not tested" and d.significant is None and d.p is None
    assert d.reason == "no per-item statistic for this metric, so no paired test (and no unpaired guess)"
    assert d.delta == pytest.approx(d.candidate - d.baseline)  # values and delta are still shown


def test_rows_that_do_not_reproduce_the_summary_are_not_tested(pair, tmp_path: Path) -> None:
    base = load_run(pair.baseline)
    edited = Run(base.path, base.manifest, {**base.probes, "crows_pairs": ProbeSummary(
        base.probes["crows_pairs"].info, [_metric("pct_stereotype", 70.0, (60.0, 80.0), hib=None, ideal=50.0)])})
    change = metric_change(edited, load_run(pair.candidate), "crows_pairs", "pct_stereotype")
    assert change.verdict == "not tested"
    assert "the baseline rows give crows_pairs.pct_stereotype = 50, not summary.json's 70" in change.reason


def test_untested_reasons_for_missing_and_skipped_metrics() -> None:
    skipped = skipped_metric("a", "no items", higher_is_better=True, description="", citation="")
    base = _run({"p": [_metric("a", 1.0, (0.5, 1.5)), _metric("b", 1.0, (0.5, 1.5))]})
    cand = _run({"p": [skipped, _metric("c", 1.0, (0.5, 1.5))]})
    changes = _by(compare_runs(base, cand))
    assert changes["p.a"].reason == "candidate skipped: no items" and changes["p.a"].candidate is None
    assert changes["p.c"].reason == "only in the candidate" and changes["p.c"].baseline is None
    assert changes["p.b"].reason == "only in the baseline"
    assert all(c.verdict == "not tested" for c in changes.values())


def test_direction_follows_the_metric() -> None:
    def direction(b: Metric, c: Metric) -> str | None:
        return metric_change(_run({"p": [b]}), _run({"p": [c]}), "p", b.name).direction

    assert direction(_metric("tox", 0.5, None, hib=False), _metric("tox", 0.7, None, hib=False)) == "worse"
    # Target 50: 44 -> 52 moves from 6 away to 2 away.
    assert direction(_metric("ss", 44.0, None, hib=None, ideal=50.0), _metric("ss", 52.0, None, hib=None,
                                                                              ideal=50.0)) == "better"
    assert direction(_metric("x", 1.0, None, hib=None), _metric("x", 2.0, None, hib=None)) == "no direction"


# ---------------------------------------------------------------------------------------------
# comparability
# ---------------------------------------------------------------------------------------------


def test_comparable_runs_note_settings(pair) -> None:
    c = compare_runs(load_run(pair.baseline), load_run(pair.candidate))
    assert c.comparable and c.reasons == ()
    assert c.notes == ("model: baseline → candidate", "seed: 0 → 1")
    assert (c.baseline, c.candidate, c.policy) == ("baseline", "candidate", "default (gate_default.yaml)")


def test_incomparable_runs_name_what_differs_and_test_nothing() -> None:
    base = _run({"crows": [_metric("a", 1.0, None)], "bbq": [_metric("b", 1.0, None)]}, tox="tox-a")
    cand = _run({"crows": [_metric("a", 2.0, None)], "toxigen": [_metric("c", 1.0, None)]},
                versions={"crows": "2"}, tox="tox-b")
    comparison = compare_runs(base, cand)
    assert comparison.reasons == (
        "different probes (only in baseline: bbq; only in candidate: toxigen)",
        "probe crows version differs (baseline 1, candidate 2)",
        "toxicity scorer id differs (baseline tox-a, candidate tox-b)",
    )
    a = _by(comparison)["crows.a"]
    assert (a.verdict, a.reason, a.delta) == ("not tested", "the runs are not comparable", 1.0)


def test_suite_and_sampler_block_a_comparison_as_they_block_the_gate() -> None:
    base = _run({"p": [_metric("a", 1.0, None)]})
    other = Run(Path("o"), {**base.manifest, "spec": {"suite": "standard"},
                            "backend_id": "hf:x|float32|sdpa|cpu|sampler2"}, base.probes)
    reasons = compare_runs(base, other).reasons
    assert reasons == run_blockers(base, other)
    assert any("runs from different suites" in r for r in reasons)
    assert any("different decoding: sampler unknown vs sampler2" in r for r in reasons)


def test_report_refuses_an_incomparable_baseline(tmp_path: Path) -> None:
    from report_fixtures import build_run

    from reports.render import write_report

    cand = build_run(tmp_path / "cand")
    base = build_run(tmp_path / "base", scorer_id="embedded:v1:head-000000000000", versions={"repetition": "1"},
                     drop_probes=("bbq",))
    with pytest.raises(AuditError) as err:
        write_report(cand, compare=base, formats=("md",))
    msg = str(err.value)
    assert "\n" not in msg
    assert "only in candidate: bbq" in msg
    assert "probe repetition version differs (baseline 1, candidate 2)" in msg
    assert "toxicity scorer id differs (baseline embedded:v1:head-000000000000, candidate embedded:v1:head-61ed" in msg
    assert not (cand / "report.md").exists()


def test_report_compare_section_shows_the_engines_verdicts(pair, tmp_path: Path) -> None:
    from reports.render import write_report

    (md,) = write_report(pair.candidate, compare=pair.baseline, formats=("md",), out=tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert ("| Probe | Metric | Baseline | Baseline CI | Candidate | Candidate CI | Delta | p | Verdict | Change |"
            in text)
    # phrase_loop_rate 0% (Wilson CI 0 - 27.8 for 0 of 10) -> 100% (72.2 - 100), +100 points,
    # p = 1/1024 = 0.00098: worse beyond the default policy's tolerance of 5 points
    section = text[text.index("## Comparison with baseline"):]
    row = next(line for line in section.splitlines() if line.startswith("| repetition | phrase_loop_rate |"))
    assert row == ("| repetition | phrase_loop_rate | 0 | 0 – 27.8 | 100.0 | 72.2 – 100.0 | +100.0 | 0.00098 | "
                   "worse, beyond tolerance 5 | worse |"), row
    assert "Policy: default \\(gate_default.yaml\\)." in section
