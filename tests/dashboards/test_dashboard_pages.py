"""Every dashboard page through Streamlit's AppTest (the real app.py, in this process), on the runs of
dash_fixtures.py: widgets are exercised, and values, table contents and chart specs are asserted.

Fixture values (tests/reports/report_fixtures.py) are `value ± half` intervals; group intervals are
twice as wide; a group's n is n // number of groups. Expected numbers are worked out beside each
assertion.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from dash_fixtures import (BAD_SAMPLES, BASELINE, BROKEN, CANDIDATE, INCOMPARABLE, OTHER_SCORER, RUNNING,
                           report_fixtures)
from dashboards.text import literal_markdown, loop_markdown

REPO = Path(__file__).resolve().parents[2]
PAGES = ("Runs", "Overview", "Bias", "Toxicity", "Repetition", "Samples", "Compare", "Model card")


def plain(markdown: str) -> str:
    """Undo literal_markdown's escapes, to read a caption as the reader sees it."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u00a0", " ")


def captions(at) -> list[str]:
    """The main area's captions, unescaped (the sidebar's are left out)."""
    return [plain(c.value) for c in at.main.caption]


def charts(at) -> list[dict]:
    """The plotly figures on the page, read from each element's proto as JSON."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


# ---------------------------------------------------------------------------------------------- Runs


def test_runs_page_lists_every_run_with_its_problem(folder, open_app) -> None:
    at = open_app(folder.root)
    assert [h.value for h in at.header] == ["Runs"]
    table = at.dataframe[0].value
    # newest first by start time; the unreadable run has no start time and comes last
    assert list(table["run"]) == [CANDIDATE, BASELINE, INCOMPARABLE, BAD_SAMPLES, RUNNING, BROKEN]
    assert list(table["status"]) == ["complete"] * 4 + ["running", "unreadable"]
    assert list(table["model"][:2]) == ["tiny-opt", "opt-baseline"]
    # one headline column per question: crows pct_stereotype 44.3 in the candidate, 44.3 - 20 = 24.3 in
    # the baseline; the loop rate 95 under degeneration
    assert "crows_pairs.pct_stereotype 44.3" in table["bias"][0]
    assert "crows_pairs.pct_stereotype 24.3" in table["bias"][1]
    assert "repetition.loop_rate 95" in table["degeneration"][0]
    assert "6 of 6 runs shown · 4 open · 2 with a problem" in captions(at)
    problems = [plain(w.value) for w in at.warning]
    assert any(p.startswith(f"{RUNNING} (running): ") and "run is 'running', not complete" in p for p in problems)
    assert any(p.startswith(f"{BROKEN} (unreadable): ") and "manifest.json: not valid JSON" in p for p in problems)
    assert table["problem"][0] == ""

    at.text_input(key="runs_filter").set_value("baseline").run()
    assert list(at.dataframe[0].value["run"]) == [BASELINE]
    at.text_input(key="runs_filter").set_value("").run()
    at.multiselect(key="runs_status").select("running").run()
    assert list(at.dataframe[0].value["run"]) == [RUNNING]
    assert "1 of 6 runs shown · 4 open · 2 with a problem" in captions(at)


def test_picking_two_runs_selects_the_run_and_its_baseline(folder, open_app) -> None:
    at = open_app(folder.root)
    pick = at.multiselect(key="runs_pick")
    assert pick.value == [CANDIDATE]  # the newest run that opens is selected at start
    assert pick.options == [CANDIDATE, BASELINE, INCOMPARABLE, BAD_SAMPLES]  # only runs that open
    pick.unselect(CANDIDATE).run()
    at.multiselect(key="runs_pick").select(INCOMPARABLE).select(BASELINE).run()
    assert at.selectbox(key="run").value == INCOMPARABLE
    assert at.selectbox(key="baseline").value == BASELINE
    at.radio(key="page").set_value("Compare").run()
    assert any(f"Baseline **{literal_markdown(BASELINE)}**" in m.value for m in at.markdown)
    assert f"Run {INCOMPARABLE} · model tiny-opt · suite quick" in captions(at)


def test_empty_folder_shows_the_command_that_makes_a_run(tmp_path, open_app) -> None:
    empty = tmp_path / "runs"
    empty.mkdir()
    at = open_app(empty)
    command = f"opt-audit run --model tiny-opt --suite quick --out {empty}"
    for page in PAGES:
        at.radio(key="page").set_value(page).run()
        assert not at.exception
        assert [i.value for i in at.info] == [f"The runs folder {literal_markdown(str(empty))} has no runs yet. "
                                              "Create a run with:"], page
        assert [c.value for c in at.code] == [command], page
    missing = open_app(tmp_path / "nowhere")
    assert "does not exist" in plain(missing.info[0].value)


# ---------------------------------------------------------------------------------------------- Overview


def test_overview_lists_every_metric_with_ci_and_the_skipped_ones(folder, open_app) -> None:
    at = open_app(folder.root, page="Overview", run=CANDIDATE)
    metrics, skipped, facts = (d.value for d in at.dataframe)
    # 3 crows + 3 stereoset + 4 bbq + 3 rtp + 2 toxigen + 3 bold + 2 truthfulqa + 3 repetition + 1 custom
    assert len(metrics) == 24
    assert [m.value for m in at.metric] == ["9", "24", "1", "complete"]
    row = metrics[(metrics["probe"] == "crows_pairs") & (metrics["metric"] == "pct_stereotype")].iloc[0]
    # 44.3 ± 5.6 -> [38.7, 49.9], n 300, ideal 50
    assert (row["value"], row["ci_low"], row["ci_high"], row["n"]) == pytest.approx((44.3, 38.7, 49.9, 300))
    assert row["better"] == "closer to 50 is better" and row["unit"] == "%"
    tox = metrics[metrics["metric"] == "expected_max_toxicity"].iloc[0]
    assert tox["scorer"] == "toxicity · embedded" and tox["better"] == "lower is better"
    # the skipped metric keeps its row, with no value, and is listed with its reason
    by_dir = metrics[metrics["metric"] == "pct_stereotype_by_direction"].iloc[0]
    assert math.isnan(by_dir["value"]) and by_dir["status"].startswith("skipped")
    assert skipped.to_dict("records") == [{"probe": "crows_pairs", "metric": "pct_stereotype_by_direction",
                                           "reason": "no antistereo pairs in this subset"}]
    assert dict(zip(facts["fact"], facts["value"]))["Seed"] == "0"

    at.multiselect(key="overview_probes").select("bbq").run()
    assert list(at.dataframe[0].value["metric"]) == ["accuracy_ambig", "accuracy_disambig", "bias_score_ambig",
                                                     "bias_score_disambig"]
    at.selectbox(key="overview_metric").set_value(("custom_prompts", "expected_max_toxicity")).run()
    # the planted description is shown as text: its payload is escaped, not markup
    assert any(m.value == literal_markdown("Expected maximum toxicity. </details><script>alert(3)</script>")
               for m in at.markdown)


# ---------------------------------------------------------------------------------------------- Bias


def test_bias_page_charts_groups_with_cis_and_drills_into_one(folder, open_app) -> None:
    at = open_app(folder.root, page="Bias", run=CANDIDATE)
    assert at.selectbox(key="bias_probe").options == ["CrowS-Pairs (crows_pairs)", "StereoSet (stereoset)",
                                                      "BBQ (Bias Benchmark for QA) (bbq)",
                                                      "BOLD: sentiment and toxicity across groups (bold)"]
    bars, opt, davinci = charts(at)[0]["data"]
    assert bars["x"] == ["age", "disability", "gender", "race-color"]
    assert bars["y"] == pytest.approx([60.9, 27.3, 48.1, 46.5])
    # group CIs are value ± 2 · 5.6 = ± 11.2: the error bars are 11.2 up and down
    assert bars["error_y"]["array"] == pytest.approx([11.2] * 4)
    assert bars["error_y"]["arrayminus"] == pytest.approx([11.2] * 4)
    assert opt["y"] == [None, None, 65.7, None] and davinci["y"] == [None, None, 62.6, None]  # OPT paper, gender

    at.selectbox(key="bias_group_crows_pairs").set_value("race-color").run()
    numbers, items = at.dataframe[0].value, at.dataframe[1].value
    row = numbers[numbers["metric"] == "pct_stereotype"].iloc[0]
    # 46.5 ± 11.2 -> [35.3, 57.7]; n = 300 // 4 groups = 75; overall 44.3
    assert (row["value"], row["ci_low"], row["ci_high"], row["n"], row["overall"]) == \
        pytest.approx((46.5, 35.3, 57.7, 75, 44.3))
    assert items.to_dict("records")[0]["id"] == "3"
    fx = report_fixtures()
    assert items["text"][0] == fx.PAYLOADS[0] and items["context"][0] == fx.PAYLOADS[1]
    # score = ll_more - ll_less = -227.7 - (-227.9) = 0.2
    assert items["score"][0] == pytest.approx(0.2)
    assert any(c.startswith("1 items in race-color · score = ll_more - ll_less") for c in captions(at))

    at.selectbox(key="bias_probe").set_value("bold").run()
    at.selectbox(key="bias_group_bold").set_value("gender/American_actors").run()
    assert list(at.dataframe[1].value["id"]) == ["gender/American_actors/Nick_Sandow/0"]
    sentiment = charts(at)[0]["data"]
    assert [t["name"] for t in sentiment] == ["positive", "negative"]


# ---------------------------------------------------------------------------------------------- Toxicity


def test_toxicity_page_distribution_buckets_and_content_warning(folder, open_app) -> None:
    at = open_app(folder.root, page="Toxicity", run=CANDIDATE)
    # scored continuations: RTP 0.91 0.88 0.02 0.86 0.84 (one None), ToxiGen 0.87 0.01, BOLD 0.85, custom 0.95 0.1
    assert "10 scored continuations · 1 without a score" in captions(at)
    hist, buckets, toxigen, bold = charts(at)
    # counted in bins of 0.05 (bin k = [k/20, (k+1)/20)): RTP 0.02 -> 0, 0.84 -> 16, 0.86 0.88 -> 17, 0.91 -> 18
    counts = {t["name"]: {round(x, 3): y for x, y in zip(t["x"], t["y"]) if y} for t in hist["data"]}
    assert counts == {"real_toxicity_prompts": {0.025: 1, 0.825: 1, 0.875: 2, 0.925: 1},
                      "toxigen": {0.025: 1, 0.875: 1},  # 0.01, 0.87
                      "bold": {0.875: 1},  # 0.85 * 20 = 17.0 -> bin 17
                      "custom_prompts": {0.125: 1, 0.975: 1}}  # 0.1 * 20 = 2.0 -> bin 2; 0.95 -> 19
    assert buckets["data"][0]["x"] == ["0.0-0.1", "0.4-0.5", "0.9-1.0"]  # OPT Fig. 5 buckets, in order
    assert buckets["data"][0]["y"] == pytest.approx([0.109, 0.087, 0.100])
    assert [t["name"] for t in toxigen["data"]] == ["hateful prompts", "neutral prompts"]
    assert bold["data"][0]["x"] == ["gender/American_actors", "race/Asian_Americans"]

    fx = report_fixtures()
    page_text = " ".join(m.value for m in at.markdown)
    assert "alert" not in page_text  # the toggle is off: no continuation is on the page
    at.toggle(key="tox_show").set_value(True).run()
    assert at.warning[0].value.startswith("Content warning")
    scores = [c.split(" · ")[0] for c in captions(at) if re.match(r"toxicity \d", c)]
    assert scores == ["toxicity 0.950", "toxicity 0.910", "toxicity 0.880", "toxicity 0.870", "toxicity 0.860",
                      "toxicity 0.850", "toxicity 0.840", "toxicity 0.100", "toxicity 0.020", "toxicity 0.010"]
    texts = [m.value for m in at.markdown]
    assert literal_markdown(f"{fx.PAYLOADS[0]} yes") in texts  # the most toxic one, as literal text
    assert literal_markdown(f"Prompt: The new neighbours {fx.PAYLOADS[2]}") in texts
    at.slider(key="tox_k").set_value(3).run()
    assert len([c for c in captions(at) if re.match(r"toxicity \d", c)]) == 3


# ---------------------------------------------------------------------------------------------- Repetition


def test_repetition_page_highlights_the_loop_and_filters_to_loops(folder, open_app) -> None:
    fx = report_fixtures()
    at = open_app(folder.root, page="Repetition", run=CANDIDATE)
    assert [(m.label, m.value) for m in at.metric] == [("Loop rate, greedy", "95.0 %"),
                                                       ("Loop rate, nucleus", "5.00 %")]
    table = at.dataframe[0].value
    assert table.to_dict("records")[0] == {"metric": "loop_rate", "greedy": 95.0, "greedy 95% CI": "84.0 – 106.0",
                                           "nucleus": 5.0, "nucleus 95% CI": "-3.00 – 13.0"}
    greedy, nucleus = charts(at)[0]["data"]
    assert greedy["y"] == pytest.approx([100.0, 90.0, 80.0, 70.0, 60.0])  # 100 - 10·i per domain
    assert "Showing 1–2 of 2 generations (1 looping before the looping-only filter)" in " ".join(captions(at))
    highlighted = loop_markdown(fx.LOOP_TEXT, fx.LOOP_START)
    assert highlighted in [m.value for m in at.markdown]
    assert ":orange-background[" in highlighted and highlighted.startswith(
        literal_markdown("The actor was born in a small town and "))

    at.checkbox(key="rep_loops_only").check().run()
    assert "Showing 1–1 of 1 generations" in " ".join(captions(at))
    assert any("loop from character 39, period 9 tokens × 4" in c for c in captions(at))
    at.checkbox(key="rep_loops_only").uncheck().run()
    at.multiselect(key="rep_decoding").select("nucleus").run()
    assert any(plain(m.value).strip() == "starred in many films." for m in at.markdown)
    assert "Showing 1–1 of 1 generations (0 looping" in " ".join(captions(at))


# ---------------------------------------------------------------------------------------------- Samples


def test_samples_page_filters_by_probe_group_score_and_text(folder, open_app) -> None:
    at = open_app(folder.root, page="Samples", run=CANDIDATE)
    # crows 1 + RTP 4 + 2 continuations + ToxiGen 2 + BOLD 1 + repetition 2 + custom 2 = 14 samples
    assert "14 of 14 samples match · showing 1–14" in captions(at)
    page = at.dataframe[0].value
    assert list(page.columns) == ["probe", "id", "group", "variant", "score", "score_name", "context", "text"]
    fx = report_fixtures()
    for payload in fx.PAYLOADS:  # every planted payload is in the table as a plain string
        assert any(payload in t for t in page["text"].tolist() + page["context"].tolist()), payload
    assert at.download_button(key="samples_csv").label == "Download 14 matching samples (CSV)"

    at.multiselect(key="samples_probes").select("toxigen").run()
    assert list(at.dataframe[0].value["id"]) == ["hate_asian_1k:620", "neutral_jewish_1k:3"]
    at.multiselect(key="samples_probes").unselect("toxigen").run()

    at.text_input(key="samples_text").set_value("AUSTRIA").run()  # case-insensitive, in the prompt
    assert list(at.dataframe[0].value["variant"]) == ["sample 1", "sample 2"]
    at.text_input(key="samples_text").set_value("").run()

    at.multiselect(key="samples_groups").select("toxic").run()
    assert "4 of 14 samples match · showing 1–4" in captions(at)
    at.multiselect(key="samples_groups").unselect("toxic").run()

    # one slider per kind of score, never across scales; the toxicity one spans the toxicity rows only
    slider = next(s for s in at.slider if s.label == "Score range (toxicity)")
    assert slider.value == pytest.approx((0.01, 0.95))  # lowest ToxiGen score, highest custom-prompts score
    slider.set_value((0.85, 0.95)).run()
    # toxicity scores in [0.85, 0.95]: RTP 0.91 0.88 0.86, ToxiGen 0.87, BOLD 0.85, custom 0.95
    shown = at.dataframe[0].value
    toxicity = shown[shown["score_name"] == "toxicity"]
    assert sorted(toxicity["score"].tolist()) == pytest.approx([0.85, 0.86, 0.87, 0.88, 0.91, 0.95])


def test_samples_page_pages_through_many_rows(many, open_app) -> None:
    at = open_app(many, page="Samples")
    at.multiselect(key="samples_probes").select("crows_pairs").run()
    assert "130 of 130 samples match · showing 1–50" in captions(at)
    pager = at.get("pagination")[0]
    assert pager.num_pages == 3  # ceil(130 / 50)
    pager.set_value(3).run()
    assert "130 of 130 samples match · showing 101–130" in captions(at)
    assert at.dataframe[0].value["id"].tolist() == [str(i) for i in range(100, 130)]
    at.selectbox(key="samples_size").set_value(25).run()
    assert at.get("pagination")[0].num_pages == 6  # ceil(130 / 25)


def test_a_corrupt_samples_file_is_reported_and_the_rest_still_shows(folder, open_app) -> None:
    at = open_app(folder.root, page="Samples", run=BAD_SAMPLES)
    problems = [plain(w.value) for w in at.warning]
    assert len(problems) == 1 and problems[0].endswith("samples/toxigen.jsonl:3: not valid JSON "
                                                       "(Expecting property name enclosed in double quotes)")
    # the 14 samples less ToxiGen's 2
    assert "12 of 12 samples match · showing 1–12" in captions(at)
    at.radio(key="page").set_value("Toxicity").run()
    assert not at.exception and len(at.warning) == 1


# ---------------------------------------------------------------------------------------------- Compare


def test_compare_page_metric_verdicts_and_paired_items(folder, open_app) -> None:
    at = open_app(folder.root, page="Compare", run=CANDIDATE, baseline=BASELINE)
    table = at.dataframe[0].value
    row = table[(table["probe"] == "crows_pairs") & (table["metric"] == "pct_stereotype")].iloc[0]
    # baseline 24.3, candidate 44.3: delta 20; |44.3 - 50| < |24.3 - 50| is better. The fixture's summaries
    # are made up, and its one CrowS-Pairs row (stereotyped: 100%) does not reproduce 24.3, so the gate's
    # engine does not test it: "not tested" with the reason, never a guess from the two CIs.
    assert (row["baseline"], row["candidate"], row["delta"]) == pytest.approx((24.3, 44.3, 20.0))
    assert row["verdict"].startswith("not tested: the baseline rows give crows_pairs.pct_stereotype = 100, "
                                     "not summary.json's 24.3")
    assert (row["significant"], row["direction"]) == ("not tested", "better")
    assert math.isnan(row["p"]) and row["baseline 95% CI"] == "18.7 – 29.9"
    same = table[table["metric"] == "bias_score_disambig"].iloc[0]
    assert (same["delta"], same["direction"]) == (0.0, "same")
    assert same["verdict"] == "not tested: no per-item statistic for this metric, so no paired test (and no " \
                              "unpaired guess)"
    skipped = table[table["metric"] == "pct_stereotype_by_direction"].iloc[0]
    assert skipped["verdict"].startswith("not tested: baseline skipped")
    assert any("Differs: model: opt-baseline → tiny-opt" == c for c in captions(at))
    assert {m.label: m.value for m in at.metric}["Not tested"] == str(len(table))

    at.toggle(key="compare_sig_only").set_value(True).run()
    assert at.dataframe[0].value.empty  # nothing was tested, so nothing is significant

    at.selectbox(key="compare_probe").set_value("real_toxicity_prompts").run()
    metrics = {m.label: m.value for m in at.metric}
    # per prompt, the max toxicity: toxic:119 0.5 -> 0.91 (+0.41); nontoxic:920 0.2 -> 0.84 (+0.64)
    # mean 0.525; sd = |0.64 - 0.41| / sqrt(2) = 0.16263; half = 1.96 · 0.16263 / sqrt(2) = 0.2254
    assert metrics["Shared items"] == "2" and metrics["Items that changed"] == "2"
    assert metrics["Mean change in toxicity"] == "+0.525"
    assert metrics["95% CI of the mean change"] == "0.300 – 0.750"
    top = at.dataframe[1].value
    assert top["item"].tolist() == ["decodingtrust_nontoxic:920", "decodingtrust_toxic:119"]
    assert top["delta"].tolist() == pytest.approx([0.64, 0.41])
    fx = report_fixtures()
    assert top["candidate_text"].tolist() == [f" {fx.PAYLOADS[2]}", f" {fx.PAYLOADS[1]} and more"]


def test_compare_explains_why_runs_are_not_comparable(folder, open_app) -> None:
    at = open_app(folder.root, page="Compare", run=CANDIDATE, baseline=INCOMPARABLE)
    error = plain(at.error[0].value)
    assert error.startswith("These runs are not comparable metric by metric, because:")
    assert f"toxicity scorer id differs (baseline {OTHER_SCORER}, candidate embedded:v1:head-61ed2bd42dd10934)" \
        in error
    assert not at.metric  # no significance is claimed
    at.selectbox(key="baseline").set_value("(none)").run()
    assert "Choose a baseline" in at.info[0].value


def test_compare_page_gives_the_gates_verdicts(tmp_path, open_app) -> None:
    # Two runs whose summaries follow from their rows (tests/reports/compare_fixtures.py): the page's
    # verdicts are the gate's, metric by metric, under the default policy.
    import importlib.util

    from audit.gate import gate_paths
    from audit.gate_policy import load_policy

    path = REPO / "tests" / "reports" / "compare_fixtures.py"
    spec = importlib.util.spec_from_file_location("compare_fixtures_for_dashboard", path)
    cf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cf)
    root = tmp_path / "runs"
    pair = cf.write_pair(root)
    (root / "data").rename(tmp_path / "data")  # only runs in the folder
    at = open_app(root, page="Compare", run="candidate", baseline="baseline")
    table = at.dataframe[0].value
    verdicts = {f"{r.probe}.{r.metric}": r.verdict for r in table.itertuples()}
    # phrase loops 0 -> 100 of greedy continuations: worse (p = 1/1024), as the gate's regression
    assert verdicts["repetition.phrase_loop_rate"] == "worse, beyond tolerance 5"
    assert verdicts["repetition.loop_rate"] == "no significant change"
    for o in gate_paths(pair.baseline, pair.candidate, load_policy()).outcomes:
        if o.verdict != "not run":
            assert (o.verdict == "regression") == verdicts[o.rule.metric].startswith("worse, beyond"), o
    metrics = {m.label: m.value for m in at.metric}
    # worse: phrase_loop_rate, loop_rate_nucleus, phrase_loop_rate_nucleus, seq_rep_1..4_nucleus, and
    # RTP's toxicity_probability and expected_max_toxicity
    assert metrics["Significantly worse"] == "9"
    assert not at.exception


# ---------------------------------------------------------------------------------------------- Model card


def test_model_card_page_previews_the_card_and_offers_downloads(folder, open_app) -> None:
    from audit.store import load_run
    from model_cards.build import build_card
    from model_cards.info import CardInfo

    at = open_app(folder.root, page="Model card", run=CANDIDATE)
    card = build_card(load_run(folder.run(CANDIDATE)), CardInfo())
    # the Markdown source tab is the card `opt-audit card` writes (st.code drops the final newline)
    assert at.code[-1].value == card.rstrip("\n")
    assert "model-index:" in at.code[0].value  # front matter
    assert any(m.value.startswith("# Model card: tiny-opt") for m in at.markdown)
    labels = [b.label for b in at.download_button]
    assert labels == ["Download model card (README.md)", "Download HTML report"]

    at.get("file_uploader")[0].upload("card.yaml", b"model_details:\n  developers: Example Lab\n",
                                      "application/x-yaml").run()
    assert "Example Lab" in at.code[-1].value and not at.error
    at.get("file_uploader")[0].set_value(("bad.yaml", b"intended_uses: typo\n", "application/x-yaml")).run()
    assert "bad.yaml" in plain(at.error[0].value) and "intended_uses" in plain(at.error[0].value)
    assert at.code[-1].value == card.rstrip("\n")  # the card without the bad file's facts is still shown


def test_no_page_breaks_on_any_run(folder, open_app) -> None:
    """Every page over the other runs that open (the candidate is in the next test), including the one
    with a corrupt samples file and the one compared with an incomparable baseline."""
    for run in (BASELINE, INCOMPARABLE, BAD_SAMPLES):
        at = open_app(folder.root, run=run, baseline=CANDIDATE if run == INCOMPARABLE else None)
        for page in PAGES:
            at.radio(key="page").set_value(page).run()
            assert not at.exception, (run, page, [e.value for e in at.exception])


NO_TORCH = """
import os, sys
from pathlib import Path
from streamlit.testing.v1 import AppTest
from dashboards.page_card import report_html
from dashboards.runs import fingerprint
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.query_params["run"], at.query_params["baseline"] = sys.argv[3], sys.argv[4]
at.run()
for page in sys.argv[5:]:
    at.radio(key="page").set_value(page).run()
    assert not at.exception, (page, [e.value for e in at.exception])
run = Path(sys.argv[2]) / sys.argv[3]
html = report_html(str(run), fingerprint(run)).decode("utf-8")
assert html.startswith("<!DOCTYPE html>") and sys.argv[3] in html
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "detoxify"))
print("heavy:", heavy)
"""


def test_every_page_and_the_report_download_run_without_torch(folder, cli_env) -> None:
    """Presentation never imports torch: a fresh process renders every page and the HTML report."""
    import subprocess
    import sys
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "app.py"
    env = dict(cli_env, OPT_AUDIT_RUNS=str(folder.root))
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(app), str(folder.root), CANDIDATE, BASELINE, *PAGES],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "heavy: []"
