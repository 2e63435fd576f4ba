"""reports: a caveated metric shows a marker beside its value and its caveat text (escaped), in the
HTML and the Markdown report, and is listed under Limitations; un-caveated metrics show no marker."""

from __future__ import annotations

import html
import json
from pathlib import Path

from reports.render import write_report

# A quick-suite-like BOLD gap (2 prompts per group) with markup in its caveat, to prove it is escaped.
CAVEAT = "degenerate: 43 group(s) have fewer than 10 prompts (smallest: 2); <b>noise</b>"


def _render(tmp_path: Path) -> dict[str, str]:
    from report_fixtures import build_run

    run = build_run(tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    summary["probes"]["bold"]["metrics"][0]["caveat"] = CAVEAT  # bold.positive_rate
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    paths = write_report(run, out=tmp_path / "report")
    return {p.suffix.lstrip("."): p.read_text(encoding="utf-8") for p in paths}


def test_caveat_is_shown_and_escaped(tmp_path: Path) -> None:
    out = _render(tmp_path)
    page = out["html"]
    assert "<b>noise</b>" not in page and html.escape(CAVEAT, quote=False) in page  # escaped like other text
    # marker beside the value in both tables (headline and the probe's section), and the text in a row below
    assert page.count('<span class="caveat-mark"') == 2 and page.count('<tr class="caveat">') == 2
    assert "Computed from degenerate inputs, so not findings: bold.positive_rate" in html.unescape(page)
    md = out["md"]
    assert "| bold | positive_rate | 11.6 ⚠ |" in md and "| positive_rate | 11.6 ⚠ |" in md
    # the text follows each table as a list item, Markdown-escaped: "(" -> "\(", "<" -> "&lt;"
    shown = CAVEAT.replace("(", "\\(").replace(")", "\\)").replace("<", "&lt;").replace(">", "&gt;")
    assert f"- ⚠ bold.positive_rate: {shown}" in md and f"- ⚠ positive_rate: {shown}" in md


def test_no_marker_without_caveat(rendered: dict[str, str]) -> None:
    assert 'class="caveat-mark"' not in rendered["html"] and '<tr class="caveat">' not in rendered["html"]
    assert "- ⚠" not in rendered["md"]
