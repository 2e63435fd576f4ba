"""The HTML report's layout at a laptop's width: the Scorers table wraps instead of scrolling sideways.

Uses Debian's /usr/bin/chromium through Python playwright (fixtures in conftest.py), headless, at a
1280 x 1000 viewport, on the fixture run of tests/reports (its toxicity scorer has a 64-character
sha256 and a long validity summary, the two cells that used to push the table wider than the page).
"""

from __future__ import annotations

from pathlib import Path


def test_scorers_table_and_its_validity_caveat_fit_a_1280px_viewport(chromium, report_fixtures,
                                                                      tmp_path: Path) -> None:
    from reports.render import write_report

    run = report_fixtures.build_run(tmp_path / "tiny-opt_quick_fixture")
    html_path, = write_report(run, formats=("html",), out=tmp_path / "out")
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page.goto(html_path.resolve().as_uri(), wait_until="load")

    table = page.locator("h3:text-is('Scorers') + table")
    assert table.count() == 1
    widths = table.evaluate("t => ({scroll: t.scrollWidth, client: t.clientWidth,"
                            " page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth})")
    assert widths["scroll"] <= widths["client"], widths
    assert widths["page"] <= widths["view"], widths  # the page itself does not scroll sideways
    right = table.evaluate("t => t.getBoundingClientRect().right")
    assert right <= 1280, right

    caveat = page.get_by_text(report_fixtures.VALIDITY["summary"], exact=True)
    assert caveat.count() == 1
    caveat.scroll_into_view_if_needed()
    box = caveat.bounding_box()
    assert box is not None
    assert 0 <= box["x"] and box["x"] + box["width"] <= 1280, box
    sha = table.locator("code").first.bounding_box()
    assert sha is not None and sha["x"] + sha["width"] <= 1280, sha
