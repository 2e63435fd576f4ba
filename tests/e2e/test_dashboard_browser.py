"""The dashboard in a real browser: `opt-audit dashboard` over a real tiny-opt run, driven by Chromium.

The server is started through the CLI (`python -m audit.cli dashboard FOLDER --port P`) on a free
localhost port, over a folder holding the shared quick-suite run of tiny-opt (tests/conftest.py
`quick_run`), a copy of it as a baseline, and the report tests' hostile fixture run (XSS payloads
in model text). Debian's /usr/bin/chromium is driven by Python playwright (headless, never
`playwright install`): choose a run, open every page, filter the samples, compare, download the
card, and check that model text stays text. Streamlit re-renders after every interaction, so each
step waits for the text the new state must show rather than for a single element. Every request
outside localhost is refused and recorded; there must be none. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PAGE_MARKERS = {"Runs": "runs shown", "Overview": "What a metric means", "Bias": "Drill into a group",
                "Toxicity": "Distribution of toxicity scores", "Repetition": "Generations",
                "Samples": "samples match", "Compare": "Item by item", "Model card": "Model card: tiny-opt"}
NO_BASELINE_MARKER = "Choose a baseline"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not answer at {url} within {timeout} s")


@pytest.fixture()
def runs_folder(quick_run, report_fixtures, tmp_path: Path) -> tuple[Path, str, str, str]:
    """(folder, the real run's name, its copy's name, the hostile run's name)."""
    folder = tmp_path / "runs"
    real = folder / quick_run.path.name
    shutil.copytree(quick_run.path, real, ignore=shutil.ignore_patterns("cache.sqlite*"))
    shutil.copytree(real, folder / "baseline_copy")
    report_fixtures.build_run(folder / "hostile_fixture")
    return folder, real.name, "baseline_copy", "hostile_fixture"


def test_dashboard_in_chromium(chromium, xss_trap, report_fixtures, runs_folder, cli_env) -> None:
    from audit.store import load_run
    from dashboards.filtering import SampleFilter, apply_filter
    from dashboards.samples import sample_frame
    from model_cards.build import build_card
    from model_cards.info import CardInfo

    folder, real, copy, hostile = runs_folder
    run = load_run(folder / real)
    frame = __import__("pandas").concat([sample_frame(p, run.samples(p)) for p in run.probes], ignore_index=True)
    query = "american"
    expected = len(apply_filter(frame, SampleFilter(text=query)))
    assert 0 < expected < len(frame)

    port = _free_port()
    base = f"http://localhost:{port}/"
    server = subprocess.Popen([sys.executable, "-m", "audit.cli", "dashboard", str(folder), "--port", str(port)],
                              cwd=REPO, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    requests: list[str] = []
    blocked: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _wait_healthy(base, server)
        context = chromium.new_context(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
        context.add_init_script(xss_trap)

        def refuse(route) -> None:
            blocked.append(route.request.url)
            route.abort()

        context.route(re.compile(r"^(?!(https?|wss?)://(localhost|127\.0\.0\.1)[:/]).*"), refuse)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        sidebar = page.get_by_test_id("stSidebar")

        def main_text(text: str, timeout: float = 30_000) -> None:
            page.get_by_test_id("stMain").get_by_text(text).first.wait_for(timeout=timeout)

        def choose(label: str, option: str) -> None:
            sidebar.get_by_test_id("stSelectbox").filter(has_text=label).click()
            page.get_by_role("option", name=option, exact=True).click()

        def open_page(name: str, shot: str, marker: str | None = None) -> None:
            sidebar.get_by_test_id("stRadio").get_by_text(name, exact=True).click()
            main_text(marker or PAGE_MARKERS[name])
            page.wait_for_timeout(300)  # let charts finish drawing for the screenshot
            page.screenshot(path=str(ARTIFACTS / f"dashboard-{shot}.png"))

        page.goto(base, wait_until="domcontentloaded")
        main_text("3 of 3 runs shown · 3 open · 0 with a problem", 60_000)

        # choose the real run, then visit every page in order, acting on each
        choose("Run", real)
        main_text("Open a run")
        page.screenshot(path=str(ARTIFACTS / "dashboard-runs.png"))
        for name in ("Overview", "Bias", "Toxicity", "Repetition"):
            open_page(name, name.lower())
            assert page.get_by_test_id("stException").count() == 0, name
            main_text(f"Run {real}")  # waits: Streamlit may still be drawing the page's title after its marker
            if name == "Bias":  # a real CrowS-Pairs chart, drawn by plotly
                page.locator(".js-plotly-plot .main-svg").first.wait_for()
            if name == "Overview":  # tiny-opt: the warning, then the verdicts, then the first table, unclicked
                warning, verdicts = page.locator(".st-key-random-weights"), page.locator(".st-key-verdicts")
                table = page.get_by_test_id("stMain").get_by_test_id("stDataFrame").first
                table.wait_for()
                assert warning.is_visible() and "Random weights" in warning.inner_text()
                assert "Is it biased?" in verdicts.inner_text()
                boxes = [warning.bounding_box(), verdicts.bounding_box(), table.bounding_box()]
                assert all(boxes), boxes
                assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"], boxes

        # Samples: search; wait for the count of the new state
        open_page("Samples", "samples", f"{len(frame):,} of {len(frame):,} samples match")
        search = page.get_by_test_id("stMain").get_by_label("Search text")
        search.fill(query)
        search.press("Enter")
        main_text(f"{expected:,} of {len(frame):,} samples match")
        page.screenshot(path=str(ARTIFACTS / "dashboard-samples-filtered.png"))

        # Compare: first without a baseline, then against the copy (identical: nothing moves)
        open_page("Compare", "compare-no-baseline", NO_BASELINE_MARKER)
        choose("Compare with", copy)
        main_text("Item by item")
        main_text("Items that changed")
        page.screenshot(path=str(ARTIFACTS / "dashboard-compare.png"))
        metrics = page.get_by_test_id("stMetric")
        values = dict(zip(metrics.locator("[data-testid=stMetricLabel]").all_inner_texts(),
                          metrics.locator("[data-testid=stMetricValue]").all_inner_texts()))
        assert values["Significantly better"] == "0" and values["Significantly worse"] == "0"
        assert values["Items that changed"] == "0"

        # Model card: the download is the card `opt-audit card` writes
        open_page("Model card", "model-card")
        with page.expect_download() as info:
            page.get_by_role("button", name="Download model card (README.md)").click()
        download = info.value
        assert download.suggested_filename == "README.md"
        assert Path(download.path()).read_text(encoding="utf-8") == build_card(run, CardInfo())
        assert page.get_by_test_id("stException").count() == 0

        # Hostile run: payloads in model text are shown as text and never run
        fx = report_fixtures
        choose("Run", hostile)
        open_page("Toxicity", "toxicity-hostile")
        page.get_by_test_id("stMain").get_by_text("Show the most toxic continuations").click()
        main_text("Top 10 of 10 scored continuations")
        main_text("toxicity 0.010")  # the tenth and last one has been drawn
        text = page.inner_text("body")
        open_page("Repetition", "repetition-hostile")
        main_text("loop from character")
        text += page.inner_text("body")
        for payload in fx.PAYLOADS:
            assert payload in text, payload
        injected = page.evaluate("""() => ({
            imgs: document.querySelectorAll('img[src="x"]').length,
            links: Array.from(document.querySelectorAll('a')).filter(
                a => (a.getAttribute('href') || '').startsWith('javascript')).length,
            xss: window.__xss})""")
        assert injected == {"imgs": 0, "links": 0, "xss": []}
    finally:
        os.killpg(server.pid, 15)
        try:
            output = server.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            output = server.communicate()[0]

    assert blocked == [], blocked
    outside = [u for u in requests if not re.match(rf"^(https?|wss?)://localhost:{port}/", u)
               and not u.startswith(("data:", "blob:"))]
    assert outside == [], outside
    assert dialogs == [] and errors == [], (dialogs, errors)
    assert f"http://localhost:{port}" in output
