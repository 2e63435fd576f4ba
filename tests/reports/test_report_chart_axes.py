"""Every chart in the HTML report names both its axes (the bars' groups, and the value with its unit)."""

from __future__ import annotations

import html
import json
import re

from report_fixtures import build_run  # tests/reports is on sys.path (rootdir conftest, no __init__.py)

_FIGURE = re.compile(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', re.S)


def _figures(page: str) -> dict[str, dict]:
    return {cid: json.loads(body) for cid, body in _FIGURE.findall(page)}


def test_every_chart_has_x_and_y_axis_titles(tmp_path) -> None:
    from reports.render import write_report

    run = build_run(tmp_path / "tiny-opt_quick_fixture")
    html_path, = write_report(run, formats=("html",), out=tmp_path / "out")
    figures = _figures(html_path.read_text(encoding="utf-8"))
    assert len(figures) >= 10  # the fixture run draws a dozen charts (tests/e2e/test_report_browser.py)
    for cid, fig in figures.items():
        layout = fig["layout"]
        x = html.unescape(((layout.get("xaxis") or {}).get("title") or {}).get("text") or "")
        y = html.unescape(((layout.get("yaxis") or {}).get("title") or {}).get("text") or "")
        assert x.strip() and y.strip(), (cid, x, y)


def test_the_value_axis_title_carries_the_metric_unit(tmp_path) -> None:
    from audit.types import ChartHint, GroupValue, Metric
    from reports.charts import chart_from_spec, figure_json

    # CrowS-style per-category chart: unit "%", 2 categories -> vertical bars, value axis = y
    m = Metric(name="pct_stereotype", value=55.0, ci=(50.0, 60.0), n=10, higher_is_better=None, unit="%",
               description="d", citation="c",
               groups={"race": GroupValue(60.0, (50.0, 70.0), 5), "age": GroupValue(50.0, (40.0, 60.0), 5)})
    chart = chart_from_spec("c", "crows_pairs", ChartHint("per category", ("pct_stereotype",)), [m])
    assert chart is not None
    layout = json.loads(figure_json(chart))["layout"]
    assert layout["yaxis"]["title"]["text"] == "pct_stereotype (%)"
    assert layout["xaxis"]["title"]["text"] == "group"
    # a unitless metric still gets a title: its name alone
    bare = Metric(name="icat", value=70.0, ci=(65.0, 75.0), n=10, higher_is_better=True, unit="",
                  description="d", citation="c",
                  groups={"race": GroupValue(70.0, (60.0, 80.0), 5)})
    chart = chart_from_spec("d", "stereoset", ChartHint("ICAT", ("icat",)), [bare])
    assert chart is not None
    assert json.loads(figure_json(chart))["layout"]["yaxis"]["title"]["text"] == "icat"
