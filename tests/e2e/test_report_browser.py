"""The HTML report in a real browser: charts draw, nothing loads from outside, payloads stay text.

Uses Debian's /usr/bin/chromium through Python playwright (never `playwright install`), headless.
The report is rendered from the hostile fixture run of tests/reports (with a baseline, so the
comparison section is drawn too) and opened from disk. A screenshot is left in
test-artifacts/report.png for a human to look at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def test_report_renders_offline_and_inert(chromium, xss_trap, report_fixtures, tmp_path: Path) -> None:
    from audit.store import load_run
    from reports.render import write_report
    from reports.view import build_view

    fx = report_fixtures
    run = fx.build_run(tmp_path / "tiny-opt_quick_fixture")
    base = fx.build_run(tmp_path / "baseline", shift=-20.0, seed=1)
    html_path, = write_report(run, compare=base, formats=("html",), out=tmp_path / "out")
    n_figures = len(build_view(load_run(run)).charts)
    assert n_figures >= 10
    url = html_path.resolve().as_uri()

    console: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    blocked: list[str] = []
    dialogs: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(xss_trap)
    page = context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    def refuse(route) -> None:
        blocked.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^(?!file:).*"), refuse)
    page.goto(url, wait_until="load")

    # before any click: the random-weights warning is on screen, then the verdicts, then every other table
    banner = page.locator("#random-weights")
    assert banner.is_visible() and "Random weights" in banner.inner_text()
    verdicts = page.locator("#verdicts").bounding_box()
    first_table = page.locator("main table:not(.verdicts)").first.bounding_box()
    warning = banner.bounding_box()
    assert verdicts is not None and first_table is not None and warning is not None
    assert warning["y"] + warning["height"] <= verdicts["y"] < first_table["y"]
    assert warning["y"] < 1000  # inside the first screen (the viewport is 1000 px high)
    assert page.locator("#verdicts .status-inconclusive").count() == 3  # report_fixtures: see test_report_verdicts
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figures}",
                           timeout=20_000)

    plots = page.evaluate("""() => Array.from(document.querySelectorAll('div.chart')).map(d => ({
        plotly: d.classList.contains('js-plotly-plot'),
        svg: d.querySelectorAll('.main-svg').length,
        traces: d.querySelectorAll('.trace').length}))""")
    assert len(plots) == n_figures
    assert all(p["plotly"] and p["svg"] >= 1 and p["traces"] >= 1 for p in plots), plots
    assert page.locator(".js-plotly-plot").count() == n_figures

    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    text = page.inner_text("body")
    for payload in fx.PAYLOADS:
        assert payload in text, payload
    # the hostile group name is printed literally on the custom probe's chart axis
    axis = page.inner_text("#chart-probe-custom-prompts-0")
    assert fx.HOSTILE_GROUP in axis
    hostile = page.evaluate("""() => ({
        imgs: document.querySelectorAll('img').length,
        handlers: Array.from(document.querySelectorAll('*')).filter(
            e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
        scripts: document.querySelectorAll('script:not([type="application/json"])').length,
        marks: document.querySelectorAll('mark').length})""")
    assert hostile == {"imgs": 0, "handlers": 0, "scripts": 2, "marks": 1}
    assert page.evaluate("() => window.__xss") == []

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = false; })")
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    assert dialogs == []
    assert page_errors == []
    assert console == []
    assert blocked == []
    assert requests == [url], requests
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
