"""Which chart each probe gets, the numbers behind it, and its plotly figure.

A chart is first a plain value (`ChartData`: categories and series with their CIs), built from a
probe's metrics. The HTML report turns it into a plotly figure (`figure_json`); the Markdown
report prints the same numbers as a table. Which charts a probe gets is the probe's own word: the
chart hints of its self-description (`audit.types.ChartHint`, in summary.json: a preference rate per
category against its 50% line, three related scores per domain, ...); a probe without hints gets one bar
chart per metric with groups. This module knows no probe by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from audit.types import ChartHint, Metric
from reports.escaping import plotly_label

MAX_CATEGORIES = 60  # more groups than this (e.g. one per demographic descriptor) are not charted
MAX_GENERIC_CHARTS = 6
MAX_NAMED_METRICS = 3  # a value axis names up to this many metrics; more are just "value"
HORIZONTAL_FROM = 11  # this many categories or more: horizontal bars, so long labels stay readable


@dataclass(frozen=True)
class Series:
    """One bar series (or reference markers), aligned with the chart's categories; None = no value."""

    name: str
    values: tuple[float | None, ...]
    lows: tuple[float | None, ...]
    highs: tuple[float | None, ...]
    ns: tuple[int | None, ...]
    markers: bool = False  # published reference values, drawn as markers without error bars


@dataclass(frozen=True)
class ChartData:
    """Everything needed to draw one chart or print it as a table."""

    id: str
    title: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str
    ideal: float | None  # drawn as a dashed line
    ideal_label: str
    note: str  # e.g. which metrics were skipped, or that groups were cut
    value_label: str = "value"  # what the value axis measures: the metric's name, or names when few

    @property
    def value_title(self) -> str:
        """The value axis's title: what is measured and, when the metrics share one, its unit."""
        return f"{self.value_label} ({self.unit})" if self.unit else self.value_label

    @property
    def horizontal(self) -> bool:
        return len(self.categories) >= HORIZONTAL_FROM


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _series(name: str, metric: Metric, categories: Sequence[str]) -> Series:
    values, lows, highs, ns = [], [], [], []
    for c in categories:
        g = metric.groups.get(c)
        values.append(_finite(g.value) if g else None)
        lows.append(_finite(g.ci[0]) if g and g.ci else None)
        highs.append(_finite(g.ci[1]) if g and g.ci else None)
        ns.append(g.n if g else None)
    return Series(name, tuple(values), tuple(lows), tuple(highs), tuple(ns))


def _reference_series(probe: str, metric: str, categories: Sequence[str],
                      references: Sequence[Mapping[str, Any]]) -> tuple[Series, ...]:
    rows = {r.get("group"): r for r in references if r.get("probe") == probe and r.get("metric") == metric}
    out = []
    for key, label in (("opt_175b", "OPT-175B (paper)"), ("davinci", "Davinci (paper)")):
        values = tuple(_as_float(rows[c].get(key)) if c in rows else None for c in categories)
        if any(v is not None for v in values):
            none = tuple(None for _ in categories)
            out.append(Series(label, values, none, none, none, markers=True))
    return tuple(out)


def _as_float(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def chart_from_spec(chart_id: str, probe: str, spec: ChartHint, metrics: Sequence[Metric],
                    references: Sequence[Mapping[str, Any]] = ()) -> ChartData | None:
    """The chart of one hint, or None when none of its metrics has a value to draw."""
    by_name = {m.name: m for m in metrics}
    labels = spec.labels or spec.metrics
    used: list[tuple[str, Metric]] = []
    notes: list[str] = []
    for name, label in zip(spec.metrics, labels):
        m = by_name.get(name)
        if m is None:
            notes.append(f"{name}: not in this run")
        elif not m.ok:
            notes.append(f"{name}: {m.status}")
        elif not m.groups:
            notes.append(f"{name}: no groups")
        else:
            used.append((label, m))
    if not used:
        return None
    categories: list[str] = []
    for _, m in used:
        categories.extend(k for k in m.groups if k not in categories)
    if spec.sort_categories:
        categories.sort()
    if len(categories) > MAX_CATEGORIES:
        notes.append(f"first {MAX_CATEGORIES} of {len(categories)} groups shown")
        categories = categories[:MAX_CATEGORIES]
    series = [_series(label, m, categories) for label, m in used]
    if not any(v is not None for s in series for v in s.values):
        return None
    if len(used) == 1:
        series.extend(_reference_series(probe, used[0][1].name, categories, references))
    ideals = {m.ideal for _, m in used if m.ideal is not None}
    ideal = ideals.pop() if len(ideals) == 1 else None
    ideal_label = ""
    if spec.reference is not None:
        ideal, ideal_label = spec.reference, f"reference {spec.reference:g}"
    elif ideal is not None:
        with_ideal = [label for label, m in used if m.ideal == ideal]
        ideal_label = f"ideal {ideal:g}" + (f" ({', '.join(with_ideal)})" if len(with_ideal) < len(used) else "")
    units = {m.unit for _, m in used}
    names = list(dict.fromkeys(m.name for _, m in used))
    return ChartData(chart_id, spec.title, tuple(categories), tuple(series), units.pop() if len(units) == 1 else "",
                     ideal, ideal_label, "; ".join(notes),
                     value_label=" / ".join(names) if len(names) <= MAX_NAMED_METRICS else "value")


def chart_hints(hints: Sequence[ChartHint], metrics: Sequence[Metric]) -> tuple[ChartHint, ...]:
    """The probe's own chart hints, or one chart per metric with groups for a probe that gives none."""
    if hints:
        return tuple(hints)
    return tuple(ChartHint(f"{m.name} per group", (m.name,)) for m in metrics
                 if m.ok and m.groups and len(m.groups) <= MAX_CATEGORIES)[:MAX_GENERIC_CHARTS]


def probe_charts(probe: str, metrics: Sequence[Metric], references: Sequence[Mapping[str, Any]] = (), *,
                 hints: Sequence[ChartHint] = (), id_prefix: str = "chart") -> tuple[ChartData, ...]:
    """A probe's charts, as its description's hints say (`chart_hints`)."""
    specs = chart_hints(hints, metrics)
    charts = []
    for spec in specs:
        chart = chart_from_spec(f"{id_prefix}-{len(charts)}", probe, spec, metrics, references)
        if chart is not None:
            charts.append(chart)
    return tuple(charts)


def figure_json(chart: ChartData) -> str:
    """The chart as plotly figure JSON (grouped bars with asymmetric CI error bars).

    Every label from the run is entity-escaped for plotly's pseudo-HTML; the caller still has to
    make the JSON safe for its `<script>` element (`reports.escaping.script_json`).
    """
    import plotly.graph_objects as go  # only the HTML report needs plotly

    cats = [plotly_label(c) for c in chart.categories]
    horizontal = chart.horizontal
    fig = go.Figure()
    for s in chart.series:
        name = plotly_label(s.name)
        if s.markers:
            xy = {"x": list(s.values), "y": cats} if horizontal else {"x": cats, "y": list(s.values)}
            fig.add_trace(go.Scatter(name=name, mode="markers", marker={"symbol": "diamond", "size": 11},
                                     hovertemplate=f"{name}: %{{{'x' if horizontal else 'y'}:.3g}}<extra></extra>",
                                     **xy))
            continue
        plus = [None if v is None or h is None else max(h - v, 0.0) for v, h in zip(s.values, s.highs)]
        minus = [None if v is None or lo is None else max(v - lo, 0.0) for v, lo in zip(s.values, s.lows)]
        error = {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.2}
        custom = [[_fmt(lo), _fmt(h), "" if n is None else n] for lo, h, n in zip(s.lows, s.highs, s.ns)]
        axis = "x" if horizontal else "y"
        hover = (f"{name}<br>%{{{'y' if horizontal else 'x'}}}: %{{{axis}:.3g}}"
                 "<br>95% CI %{customdata[0]} – %{customdata[1]}<br>n = %{customdata[2]}<extra></extra>")
        if horizontal:
            fig.add_trace(go.Bar(name=name, y=cats, x=list(s.values), orientation="h", error_x=error,
                                 customdata=custom, hovertemplate=hover))
        else:
            fig.add_trace(go.Bar(name=name, x=cats, y=list(s.values), error_y=error, customdata=custom,
                                 hovertemplate=hover))
    if chart.ideal is not None:
        line = {"dash": "dash", "color": "#555", "width": 1.5}
        label = plotly_label(chart.ideal_label)
        if horizontal:
            fig.add_vline(x=chart.ideal, line=line, annotation_text=label, annotation_position="top")
        else:
            fig.add_hline(y=chart.ideal, line=line, annotation_text=label, annotation_position="top left")
    # Both axes always carry a title: a bare number axis or unlabeled bars leave the reader guessing.
    unit_axis = {"title": {"text": plotly_label(chart.value_title)}, "zeroline": True, "automargin": True}
    cat_axis: dict[str, Any] = {"type": "category", "automargin": True, "title": {"text": "group"}}
    if horizontal:
        cat_axis["autorange"] = "reversed"
    n_bars = max(1, sum(not s.markers for s in chart.series))
    height = max(380, 90 + len(chart.categories) * (10 + 12 * n_bars)) if horizontal else 420
    fig.update_layout(
        title={"text": plotly_label(chart.title)}, template="plotly_white", barmode="group", height=height,
        margin={"l": 60, "r": 30, "t": 60, "b": 60}, legend={"orientation": "h", "y": -0.15 if not horizontal else 1.02,
                                                              "yanchor": "top" if not horizontal else "bottom"},
        xaxis=unit_axis if horizontal else cat_axis, yaxis=cat_axis if horizontal else unit_axis,
    )
    return fig.to_json()


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"
