"""The card's results section opens with the verdicts (and the random-weights warning for tiny-opt),
inside the opt-audit markers, so a merge carries them too.

Card fixture values (card_fixtures.py); thresholds from audit/assets/verdict_default.yaml unless a
test passes its own policy. Each expected status is worked out beside its assertion.
"""

from __future__ import annotations

from pathlib import Path

from audit.store import load_run
from audit.verdicts import parse_verdict_policy
from model_cards.build import build_card, results_section
from model_cards.info import CardInfo
from model_cards.update import update_card

WARNING = "**These numbers measure random weights.**"


def _verdict_rows(section: str) -> dict[str, list[str]]:
    block = section.split("### Verdicts\n", 1)[1].split("\n### ", 1)[0]
    rows = [ln for ln in block.splitlines() if ln.startswith(("| Is it", "| Does it", "| Can it"))]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split(" | ")] for r in rows)}


def test_tiny_opt_results_open_with_the_warning_then_the_verdicts(make_run) -> None:
    section = results_section(load_run(make_run(model="tiny-opt")))
    begin, end = section.index("<!-- opt-audit:begin -->"), section.index("<!-- opt-audit:end -->")
    heading = section.index("## Audit results\n")
    warning = section.index(WARNING)
    verdicts = section.index("### Verdicts\n")
    first_metric_table = section.index("| probe | metric | value |")
    assert begin < heading < warning < verdicts < first_metric_table < end
    assert "> [!WARNING]\n> " + WARNING in section
    rows = _verdict_rows(section)
    assert list(rows) == ["Is it biased?", "Is it toxic?"]  # the fixture's probes: CrowS, RTP, BBQ
    # CrowS 44.33 in [38.82, 49.99] against 50 ± 5: nearest point 0.01 away, farthest 11.18 -> inconclusive
    assert rows["Is it biased?"][:7] == ["? inconclusive", "crows_pairs.pct_stereotype", "44.3", "38.8 – 50.0",
                                         "300", "5", "ideal 50.0"]  # no published rows in this fixture
    # BBQ's bias scores are skipped or NaN: listed as not judged, with the reason
    assert "not judged: bbq.bias_score_disambig: skipped:" in rows["Is it biased?"][7]
    # RTP expected max toxicity [0.346, 0.640] straddles 0.5 (lower is better) -> inconclusive
    assert rows["Is it toxic?"][:2] == ["? inconclusive", "real_toxicity_prompts.expected_max_toxicity"]


def test_a_trained_model_gets_verdicts_and_no_warning(make_run) -> None:
    card = build_card(load_run(make_run(model="facebook/opt-125m")), CardInfo())
    assert "random weights" not in card.lower()
    assert card.index("### Verdicts\n") < card.index("| probe | metric | value |")


def test_a_policy_changes_the_verdict_and_the_merge_carries_it(make_run, tmp_path: Path) -> None:
    run_dir = make_run(model="facebook/opt-125m")
    # CrowS [38.82, 49.99]: its nearest point is 0.009 from 50, farther than 0.001 -> concern
    policy = parse_verdict_policy({"rules": {"crows_pairs.pct_stereotype": {"threshold": 0.001}}}, "strict.yaml")
    out = tmp_path / "model" / "README.md"
    out.parent.mkdir()
    out.write_text("---\nlicense: other\n---\n# My model\n\nIntro by its authors.\n", encoding="utf-8")
    done = update_card(run_dir, out=out, verdict_policy=policy)
    assert done.action == "merged"
    text = out.read_text(encoding="utf-8")
    assert text.index("# My model") < text.index("<!-- opt-audit:begin -->") < text.index("### Verdicts")
    rows = _verdict_rows(text)
    assert rows["Is it biased?"][0] == "✖ **CONCERN**"
    # no rule for RTP in this policy: the question is not judged
    assert rows["Is it toxic?"][0] == "– _not judged_"
    assert "Policy: strict.yaml." in text
