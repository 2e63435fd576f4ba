"""reports.render: files, errors, and the content of every section (HTML and Markdown)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from audit.errors import AuditError
from audit.store import load_run
from reports.render import write_report
from reports.view import build_view

SCORER_LINE = "toxicity by embedded scorer (sha256 61ed2bd42dd1…): HateCheck accuracy 0.66; ETHOS ROC-AUC 0.72; " \
              "weakest on slur_reclaimed_nh 0.02, counter_quote_nh 0.06, counter_ref_nh 0.15"


def _chart_json(page: str) -> dict[str, dict]:
    blocks = re.findall(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', page, re.S)
    return {cid: json.loads(body) for cid, body in blocks}


def test_default_output_is_the_run_directory(tmp_path: Path) -> None:
    from report_fixtures import build_run

    run = build_run(tmp_path / "run")
    paths = write_report(run)
    assert paths == [run / "report.html", run / "report.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert write_report(run, formats=["md"], out=tmp_path / "x" / "audit.html") == [tmp_path / "x" / "audit.md"]
    assert write_report(run, formats="html,md", out=tmp_path / "y") == [tmp_path / "y" / "report.html",
                                                                          tmp_path / "y" / "report.md"]


def test_errors_are_one_line(tmp_path: Path) -> None:
    from report_fixtures import build_run

    run = build_run(tmp_path / "run")
    with pytest.raises(AuditError, match=r"^--format pdf: unknown report format \(choose from html, md\)$"):
        write_report(run, formats=("html", "pdf"))
    running = build_run(tmp_path / "running", status="running")
    with pytest.raises(AuditError, match="run is 'running', not complete"):
        write_report(running)
    with pytest.raises(AuditError, match="no such run directory"):
        write_report(tmp_path / "missing")
    assert not (run / "report.html").exists()


def test_html_is_self_contained(rendered: dict[str, str]) -> None:
    page = rendered["html"]
    assert page.count("<script>") == 2  # plotly.js once, then the bootstrap
    assert "<script src" not in page and "cdn." not in page.split("<script>")[0]
    assert "Content-Security-Policy" in page and "default-src &#39;none&#39;" in page
    assert re.search(r"<link\b", page) is None


def test_every_chart_is_plotly_json(rendered: dict[str, str], fixture_run: Path) -> None:
    charts = _chart_json(rendered["html"])
    view = build_view(load_run(fixture_run))
    assert list(charts) == [c.data.id for c in view.charts]
    titles = [c["layout"]["title"]["text"] for c in charts.values()]
    assert "Stereotype preference per bias category (50% = no preference)" in titles
    assert "LMS, SS and ICAT per domain" in titles
    assert "Mean toxicity of continuations by prompt-toxicity bucket" in titles
    assert "Loop rate per domain: greedy vs nucleus sampling" in titles
    assert "MC1 and MC2 per category" in titles
    assert all(len(c["data"]) >= 1 for c in charts.values())
    # CrowS: bars with asymmetric CI error bars, the 50% line, and the paper's value as a marker
    crows = charts["chart-probe-crows-pairs-0"]
    bars, *markers = crows["data"]
    assert bars["type"] == "bar" and bars["error_y"]["array"][0] == pytest.approx(11.2)
    assert [m["name"] for m in markers] == ["OPT-175B (paper)", "Davinci (paper)"]
    assert markers[0]["y"] == [None, None, 65.7, None]  # only gender has a published row
    assert crows["layout"]["shapes"][0]["y0"] == 50.0
    # RTP buckets are sorted, whatever the summary's order
    rtp = charts["chart-probe-real-toxicity-prompts-0"]
    assert rtp["data"][0]["x"] == ["0.0-0.1", "0.4-0.5", "0.9-1.0"]
    # StereoSet: LMS, SS and ICAT side by side
    assert [t["name"] for t in charts["chart-probe-stereoset-0"]["data"]] == ["LMS", "SS", "ICAT"]


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_run_facts_and_limitations(rendered: dict[str, str], fmt: str) -> None:
    text = rendered[fmt] if fmt == "html" else rendered[fmt].replace("\\", "")
    text = html.unescape(text)
    for needle in ("tiny-opt is random: scores exercise the pipeline only", "OPTForCausalLM",
                   "sha256:51200278522aa3d8", "3.35 M", "float32", "sdpa", "embedded:v1:head-61ed2bd42dd10934",
                   "transformers", "5.23.0", "60.1 s", "opt-audit run --model tiny-opt --suite quick --out runs",
                   "Seed", "quick", SCORER_LINE, "It is a small offline classifier",
                   "Skipped metrics: crows_pairs.pct_stereotype_by_direction (skipped: no antistereo pairs"):
        assert needle in text, needle


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_every_metric_and_probe_is_shown(rendered: dict[str, str], fixture_run: Path, fmt: str) -> None:
    text = html.unescape(rendered[fmt].replace("\\", "") if fmt == "md" else rendered[fmt])
    run = load_run(fixture_run)
    for name, summary in run.probes.items():
        assert summary.info.title in text
        assert summary.info.data_license in text
        assert summary.info.citation in text
        for m in summary.metrics:
            assert m.name in text
    assert "skipped: no antistereo pairs in this subset" in text
    assert "44.3" in text and "38.7 – 49.9" in text and "→ 50" in text and "↑" in text and "↓" in text


def test_markdown_headline_rows(rendered: dict[str, str]) -> None:
    md = rendered["md"]
    assert "| crows_pairs | pct_stereotype | 44.3 | 38.7 – 49.9 | → 50 | 300 | % |  |" in md
    assert "| real_toxicity_prompts | expected_max_toxicity | 0.483 | 0.333 – 0.633 | ↓ | 8 |  | toxicity · embedded |" in md
    assert "| repetition | distinct_2 | 0.077 | — | ↑ | 20 |  |  |" in md
    assert "| crows_pairs | pct_stereotype_by_direction | skipped: no antistereo pairs in this subset |" in md


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_reference_rows_beside_ours(rendered: dict[str, str], fmt: str) -> None:
    text = rendered[fmt]
    assert "Published reference numbers" in text
    row = "| pct_stereotype | gender | 48.1 | 36.9 – 59.3 | 65.7 | 62.6 | Table 4 |"
    if fmt == "md":
        assert row in text
        assert "| pct_stereotype | overall | 44.3 | 38.7 – 49.9 | 69.5 | 67.2 | Table 4 |" in text
    else:
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
        joined = "|".join(cells)
        assert "pct_stereotype|gender|48.1|36.9 – 59.3|65.7|62.6|Table 4" in joined


def test_loop_examples_highlight_the_loop(rendered: dict[str, str]) -> None:
    from report_fixtures import LOOP_START, LOOP_TEXT

    page = rendered["html"]
    head, loop = LOOP_TEXT[:LOOP_START], LOOP_TEXT[LOOP_START:]
    expected = f'<p class="gen">{html.escape(head, quote=True)}<mark>{html.escape(loop[:200].rstrip(), quote=True)}…</mark></p>'
    assert expected.replace("&#x27;", "&#39;") in page
    assert "<mark>" in page and "loop from character 39" in page
    md = rendered["md"]
    assert "Continuation: The actor was born in a small town and **\\[click\\]\\(javascript:alert\\(1\\)\\)" in md


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_most_toxic_generations_behind_a_content_warning(rendered: dict[str, str], fmt: str) -> None:
    text = rendered[fmt]
    warnings = text.count("Content warning: the ")
    assert warnings == 4  # one per probe with toxicity scores: real_toxicity_prompts, toxigen, bold, custom_prompts
    assert text.count("<details class=\"cw\">" if fmt == "html" else "<details>\n<summary>Content warning") == warnings
    # RTP: the most toxic first (0.910, 0.880, 0.860, 0.840), the None score skipped
    rtp = text[text.index("RealToxicityPrompts"):]
    rtp = rtp[rtp.index("Content warning"):]
    scores = re.findall(r"\b0\.\d{3}\b", rtp[:rtp.index("</details>\n") if fmt == "md" else rtp.index("</table>")])
    assert scores[:4] == ["0.910", "0.880", "0.860", "0.840"]


def test_compare_section(tmp_path: Path, fixture_run: Path) -> None:
    from report_fixtures import build_run

    base = build_run(tmp_path / "base", shift=-20.0, seed=1)
    html_path, md_path = write_report(fixture_run, compare=base, out=tmp_path / "out")
    md = md_path.read_text(encoding="utf-8")
    assert "## Comparison with baseline" in md
    assert "Settings that differ: seed: 1 → 0." in md
    # The fixture's summary values are made up (shifted by 20) and its rows are not: the gate's paired
    # engine checks that rows reproduce summary.json and, here, refuses to test instead of guessing.
    # pct_stereotype's one fixture row is stereotyped (100%), the shifted summary says 24.3.
    assert ("| crows_pairs | pct_stereotype | 24.3 | 18.7 – 29.9 | 44.3 | 38.7 – 49.9 | +20.0 | — | not tested: the "
            "baseline rows give crows_pairs.pct_stereotype = 100, not summary.json's 24.3 \\(rows and summary "
            "disagree: was the run edited, or the probe changed?\\) | better |") in md
    assert ("| repetition | distinct_2 | 0.077 | — | 0.077 | — | 0 | — | not tested: no per-item statistic for "
            "this metric, so no paired test \\(and no unpaired guess\\) | same |") in md
    assert "not tested: baseline skipped: no antistereo pairs in this subset; candidate skipped" in md
    assert "0 of 0 tested metrics changed significantly." in md
    page = html_path.read_text(encoding="utf-8")
    assert 'id="comparison"' in page and "<th>Verdict</th>" in page


def test_section_ids_are_unique_and_safe() -> None:
    from reports.view import _anchors

    assert _anchors(["a_b", "a-b", "<x>"]) == {"a_b": "probe-a-b", "a-b": "probe-a-b-2", "<x>": "probe-x"}
