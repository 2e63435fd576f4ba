"""The dashboard's pure pieces: the sample table, filters and pages, item pairing, literal Markdown,
run discovery with its cache keys, and the launcher. No Streamlit script runs here."""

from __future__ import annotations

import math
import re
import socket

import pandas as pd
import pytest

from dash_fixtures import BASELINE, BROKEN, CANDIDATE, RUNNING, report_fixtures
from dashboards.filtering import SampleFilter, apply_filter, get_page, page_count, rows_in_group, score_bounds, to_csv
from dashboards.location import runs_dir_from
from dashboards.pairing import paired_deltas, paired_summary, top_changes
from dashboards.samples import COLUMNS, item_scores, sample_frame
from dashboards.text import literal_markdown, loop_markdown


def frame_of(probe: str) -> pd.DataFrame:
    return sample_frame(probe, report_fixtures().samples()[probe])


# ---------------------------------------------------------------------------------------------- samples


def test_rtp_rows_become_one_sample_per_continuation() -> None:
    f = frame_of("real_toxicity_prompts")
    assert list(f.columns) == list(COLUMNS)
    assert len(f) == 6  # 4 + 2 continuations
    assert f["variant"].tolist() == ["sample 1", "sample 2", "sample 3", "sample 4", "sample 1", "sample 2"]
    assert f["item"].tolist() == ["decodingtrust_toxic:119"] * 4 + ["decodingtrust_nontoxic:920"] * 2
    assert f["score"].tolist()[:5] == [0.91, 0.88, 0.02, 0.86, 0.84] and math.isnan(f["score"][5])
    assert set(f["score_name"]) == {"toxicity"}
    # item score = the highest toxicity of the prompt's continuations (expected-maximum toxicity)
    assert item_scores(f, "real_toxicity_prompts").to_dict() == {"decodingtrust_toxic:119": 0.91,
                                                                 "decodingtrust_nontoxic:920": 0.84}


def test_repetition_items_are_keyed_by_decoding_and_keep_loop_fields() -> None:
    fx = report_fixtures()
    f = frame_of("repetition")
    assert f["item"].tolist() == ["gender/American_actors/Harris_Yulin/0 · greedy",
                                  "gender/American_actors/Harris_Yulin/0 · nucleus"]
    assert f["loop"].tolist() == [True, False]
    assert f["loop_char_start"][0] == fx.LOOP_START and pd.isna(f["loop_char_start"][1])
    assert f["loop_period"][0] == 9.0


def test_likelihood_probes_read_as_their_sentences_and_a_signed_score() -> None:
    fx = report_fixtures()
    crows = frame_of("crows_pairs").iloc[0]
    # more stereotypical sentence as text, the other as context; -227.7 - (-227.9) = 0.2 nats
    assert (crows["text"], crows["context"], crows["variant"]) == (fx.PAYLOADS[0], fx.PAYLOADS[1], "stereo")
    assert crows["score"] == pytest.approx(0.2)
    generic = sample_frame("new_probe", [{"id": "a", "group": "g", "prompt": "p", "continuation": "c",
                                          "score": 3}, {"id": "b", "text": "t", "toxicity": 0.5}])
    assert generic[["context", "text", "score", "score_name"]].values.tolist() == [["p", "c", 3.0, "score"],
                                                                                   ["", "t", 0.5, "score"]]
    assert len(sample_frame("crows_pairs", [])) == 0


# ---------------------------------------------------------------------------------------------- filtering


def test_filters_combine_and_text_search_ignores_case() -> None:
    f = pd.concat([frame_of(p) for p in ("real_toxicity_prompts", "toxigen", "bold")], ignore_index=True)
    assert len(apply_filter(f, SampleFilter())) == 9  # 6 + 2 + 1
    assert len(apply_filter(f, SampleFilter(probes=("toxigen", "bold")))) == 3
    assert len(apply_filter(f, SampleFilter(groups=("toxic", "asian")))) == 5  # 4 RTP + 1 ToxiGen
    # [0.85, 0.9]: RTP 0.88 0.86 (0.91 is out), ToxiGen 0.87, BOLD 0.85; the unscored sample is out
    assert sorted(apply_filter(f, SampleFilter(score_range=(0.85, 0.9)))["score"]) == [0.85, 0.86, 0.87, 0.88]
    assert apply_filter(f, SampleFilter(text="HARMLESS"))["text"].tolist() == [" harmless words"]
    assert len(apply_filter(f, SampleFilter(text="asian_1k"))) == 1  # ids are searched too
    assert score_bounds(f) == (0.01, 0.91)
    assert score_bounds(f.iloc[5:6]) is None  # only the unscored sample


def test_pages_are_clamped_and_count_from_one() -> None:
    f = pd.DataFrame({"x": range(130)})
    assert page_count(130, 50) == 3 and page_count(0, 50) == 1
    last = get_page(f, 3, 50)
    assert (last.number, last.pages, last.total, last.first, last.last) == (3, 3, 130, 101, 130)
    assert get_page(f, 99, 50).number == 3 and get_page(f, 0, 50).first == 1
    empty = get_page(f.iloc[0:0], 1, 50)
    assert (empty.first, empty.last, empty.total) == (0, 0, 0)


def test_metric_groups_find_their_rows() -> None:
    f = pd.DataFrame({"group": ["gender/actors", "gender/actresses", "race/asian", "ability", "ability"],
                      "variant": ["", "", "", "aphasic", "deaf"]})
    assert rows_in_group(f, "gender").index.tolist() == [0, 1]  # BOLD domain gap -> its groups' rows
    assert rows_in_group(f, "race/asian").index.tolist() == [2]  # exact
    assert rows_in_group(f, "ability/deaf").index.tolist() == [4]  # HolisticBias axis/descriptor


def test_csv_has_every_row_and_defuses_formulas() -> None:
    f = pd.DataFrame({"id": ["a", "b"], "text": ["=HYPERLINK(\"http://x\")", "plain, with comma"], "score": [-1.5, 2]})
    lines = to_csv(f).decode("utf-8").splitlines()
    assert lines == ["id,text,score", "a,\"'=HYPERLINK(\"\"http://x\"\")\",-1.5", "b,\"plain, with comma\",2.0"]


def test_score_counts_bin_edges() -> None:
    from dashboards.figures import score_counts

    # 0 -> bin 0; 0.049 -> 0; 0.05 -> 1; 0.5 -> 10; 1.0 -> the last bin (19); NaN and 1.2 are not counted
    counts = score_counts(pd.Series([0.0, 0.049, 0.05, 0.5, 1.0, math.nan, 1.2]))
    assert len(counts) == 20 and sum(counts) == 5
    assert (counts[0], counts[1], counts[10], counts[19]) == (2, 1, 1, 1)


# ---------------------------------------------------------------------------------------------- pairing


def _scores(probe: str, values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"probe": probe, "item": list(values), "group": "g", "score": list(values.values()),
                         "text": [f"text {k}" for k in values]})


def test_paired_summary_by_hand() -> None:
    base = _scores("bold", {"a": 0.1, "b": 0.5, "c": 0.2, "only_base": 0.3})
    cand = _scores("bold", {"a": 0.4, "b": 0.5, "c": 0.0, "only_cand": 0.9})
    # deltas a +0.3, b 0, c -0.2: mean 0.1/3 = 0.033333; sd = sqrt(((0.26667)² + (0.03333)² + (0.23333)²) / 2)
    # = sqrt(0.126667 / 2) = 0.251661; half = 1.959964 · 0.251661 / sqrt(3) = 0.284776
    s = paired_summary(base, cand, "bold")
    assert (s.shared, s.changed, s.only_baseline, s.only_candidate) == (3, 2, 1, 1)
    assert s.mean_delta == pytest.approx(0.033333, abs=1e-6)
    assert s.ci == pytest.approx((0.033333 - 0.284776, 0.033333 + 0.284776), abs=1e-5)
    assert paired_deltas(base, cand, "bold")["delta"].round(6).tolist() == [0.3, 0.0, -0.2]
    top = top_changes(base, cand, "bold", k=5)
    assert top["item"].tolist() == ["a", "c"]  # |0.3| > |-0.2|; the unchanged item is left out
    assert top[["baseline_text", "candidate_text"]].values.tolist() == [["text a", "text a"], ["text c", "text c"]]
    one = paired_summary(base.iloc[:1], cand.iloc[:1], "bold")
    assert (one.shared, one.ci) == (1, None)  # one pair: no interval


# ---------------------------------------------------------------------------------------------- text


def test_literal_markdown_escapes_every_construct() -> None:
    fx = report_fixtures()
    for payload in fx.PAYLOADS:
        md = literal_markdown(payload)
        assert not re.search(r"(?<!\\)[<>\[\]()]", md), md  # every bracket is escaped
    assert literal_markdown("a $x$ :red[b] *c*") == "a \\$x\\$ \\:red\\[b\\] \\*c\\*"
    assert literal_markdown("one\n    two") == "one  \n\u00a0\u00a0\u00a0\u00a0two"  # no code block, line kept
    assert literal_markdown(None) == ""


def test_loop_markdown_highlights_from_the_loop_start() -> None:
    assert loop_markdown("ab cd cd cd ", 3) == "ab :orange-background[cd cd cd]"
    assert loop_markdown("ab\ncd\ncd", 3) == "ab  \n:orange-background[cd ⏎ cd]"
    assert loop_markdown("x a] a] a]", 2) == "x :orange-background[a\\] a\\] a\\]]"  # a bracket cannot close the span
    assert loop_markdown("abc", None) == "abc" and loop_markdown("abc", 3) == "abc"


# ---------------------------------------------------------------------------------------------- runs


def test_runs_dir_comes_from_the_flag_then_the_environment() -> None:
    assert str(runs_dir_from(["--runs", "a/"], {"OPT_AUDIT_RUNS": "b"})) == "a"
    assert str(runs_dir_from(["--runs=c"], {})) == "c"
    assert str(runs_dir_from(["tests/", "-q"], {"OPT_AUDIT_RUNS": "b"})) == "b"  # a test runner's args are ignored
    assert str(runs_dir_from([], {})) == "runs"


def test_discovery_lists_problems_and_reloads_a_rewritten_run(folder, tmp_path) -> None:
    import shutil

    from audit.store import load_run, write_summary
    from dashboards.runs import discover, open_run

    entries = {e.id: e for e in discover(folder.root)}
    assert entries[CANDIDATE].usable and not entries[RUNNING].usable and not entries[BROKEN].usable
    assert entries[BROKEN].status == "unreadable"
    copy = tmp_path / "runs"
    shutil.copytree(folder.run(BASELINE), copy / BASELINE)
    first, = discover(copy)
    assert dict(first.headline)["crows_pairs.pct_stereotype"] == pytest.approx(24.3)
    assert open_run(first).metric("crows_pairs", "pct_stereotype").value == pytest.approx(24.3)
    # rewrite the summary with the candidate's values: the cache key (size, mtime) changes
    fx = report_fixtures()
    write_summary(copy / BASELINE, fx.probes(0.0, fx.TOX_ID, {}), references=load_run(copy / BASELINE).references)
    again, = discover(copy)
    assert dict(again.headline)["crows_pairs.pct_stereotype"] == pytest.approx(44.3)
    assert open_run(again).metric("crows_pairs", "pct_stereotype").value == pytest.approx(44.3)
    assert discover(tmp_path / "nowhere") == ()
    # one run directory given as the folder is shown as that run
    assert [e.id for e in discover(copy / BASELINE)] == [BASELINE]


# ---------------------------------------------------------------------------------------------- launcher


def test_streamlit_command_is_private_and_names_the_folder(tmp_path) -> None:
    from dashboards.launch import streamlit_command

    cmd = streamlit_command(tmp_path, 8600)
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app.py")
    assert flags["--server.address"] == "localhost" and flags["--browser.gatherUsageStats"] == "false"
    assert flags["--browser.serverAddress"] == "localhost" and flags["--server.headless"] == "true"
    assert cmd[-5:] == ["--server.port", "8600", "--", "--runs", str(tmp_path.resolve())]


def test_config_toml_keeps_streamlit_offline() -> None:
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["browser"] == {"gatherUsageStats": False, "serverAddress": "localhost"}
    assert config["server"] == {"address": "localhost", "headless": True}


def test_dashboard_command_refuses_a_missing_folder(cli, tmp_path) -> None:
    missing = cli("dashboard", str(tmp_path / "nope"), timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"opt-audit: error: {tmp_path / 'nope'}: no such folder (create a run with: "
        f"opt-audit run --model tiny-opt --suite quick --out {tmp_path / 'nope'})")


def test_launch_refuses_a_busy_port_a_file_and_a_bad_port(tmp_path) -> None:
    from audit.errors import AuditError
    from dashboards.launch import check_args

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AuditError, match=rf"^--port {port}: already in use on localhost"):
            check_args(tmp_path, port)
    with pytest.raises(AuditError, match="--port 70000: must be between 1 and 65535"):
        check_args(tmp_path, 70000)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AuditError, match="file: not a folder"):
        check_args(tmp_path / "file", None)
    check_args(tmp_path, None)  # an empty folder is fine: the dashboard shows how to make a run


def test_a_row_that_is_not_an_object_is_named(tmp_path) -> None:
    from audit.store import Run
    from dashboards.runs import probe_samples

    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "bold.jsonl").write_text('{"id": "a", "toxicity": 0.5}\n[1, 2]\n', encoding="utf-8")
    loaded = probe_samples(Run(tmp_path, {}, {}), "bold")
    assert loaded.problem == f"{tmp_path / 'samples' / 'bold.jsonl'}: row 2 is a JSON list, not an object"
    assert len(loaded.frame) == 0 and not loaded.missing
    assert probe_samples(Run(tmp_path, {}, {}), "toxigen").missing
