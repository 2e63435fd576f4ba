"""Shared pieces of the browser tests: Debian's chromium through Python playwright, and the XSS trap.

Playwright drives /usr/bin/chromium through `executable_path` and never downloads a browser
(`make browser` installs Debian's chromium). Without either, the tests skip with the reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

# Installed before any page script runs: a payload that executes calls alert/confirm/prompt or
# sets window.__xss, and either is recorded instead of opening a dialog.
XSS_TRAP = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (msg) => { window.__xss.push(name + ":" + String(msg)); };
}
"""


@pytest.fixture()
def chromium() -> Iterator[object]:
    """A launched headless Chromium (playwright Browser), closed after the test."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (make browser installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("python playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def xss_trap() -> str:
    return XSS_TRAP


@pytest.fixture(scope="session")
def report_fixtures() -> ModuleType:
    """tests/reports/report_fixtures.py (hostile fixture runs), loaded by path: tests/ is not a package."""
    spec = importlib.util.spec_from_file_location("report_fixtures_for_browser",
                                                  REPO / "tests" / "reports" / "report_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
