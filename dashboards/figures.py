"""Plotly figures for the dashboard: the report's per-probe charts, and score distributions.

Per-probe charts are the report's own (`reports.charts`, from each probe's chart hints in its
self-description: which metrics it charts, with their CIs, ideal lines and published reference
markers), so the dashboard and the report never disagree about what a chart shows. Figures are
handed to `st.plotly_chart` as plain dicts. Every label taken from a run is entity-escaped
(`reports.escaping.plotly_label`), because plotly.js reads labels as pseudo-HTML.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from audit.store import Run
from reports.charts import ChartData, chart_from_spec, figure_json, probe_charts
from reports.escaping import plotly_label

HIST_BINS = 20  # bins of 0.05 over [0, 1]


def charts_of(run: Run, probe: str) -> tuple[ChartData, ...]:
    """The report's charts of one probe of `run` (empty when the probe is absent or has no groups)."""
    summary = run.probes.get(probe)
    if summary is None:
        return ()
    return probe_charts(probe, summary.metrics, run.references, hints=summary.info.charts, id_prefix=f"dash-{probe}")


def chart_about(run: Run, probe: str, focus: str) -> ChartData | None:
    """The first of `probe`'s declared charts about `focus` (e.g. toxicity per prompt bucket), if any."""
    summary = run.probes.get(probe)
    if summary is None:
        return None
    for i, hint in enumerate(summary.info.charts):
        if hint.focus == focus:
            return chart_from_spec(f"dash-{probe}-{i}", probe, hint, summary.metrics, run.references)
    return None


def plotly_spec(chart: ChartData) -> dict[str, Any]:
    """A chart as a plotly figure dict (grouped bars with CI error bars), as the report draws it."""
    return json.loads(figure_json(chart))


def score_counts(scores: pd.Series, bins: int = HIST_BINS) -> list[int]:
    """How many scores fall in each of `bins` equal bins of [0, 1]: bin k holds k/bins <= s < (k+1)/bins,
    and a score of exactly 1 counts in the last bin. Scores outside [0, 1] are not counted."""
    x = scores.dropna().to_numpy(dtype=float)
    x = x[(x >= 0.0) & (x <= 1.0)]
    index = np.minimum(np.floor(x * bins).astype(int), bins - 1)
    return np.bincount(index, minlength=bins).tolist()


def score_histogram(frame: pd.DataFrame, *, title: str, x_title: str) -> dict[str, Any]:
    """Overlaid histograms of `frame["score"]` (0-1, bins of 0.05), one per probe.

    Counted here rather than by plotly in the browser, so a run with 100k scored continuations
    sends 20 numbers per probe, not 100k. Rows without a score are not drawn; the page says how
    many there were.
    """
    import plotly.graph_objects as go

    width = 1.0 / HIST_BINS
    centres = [(k + 0.5) * width for k in range(HIST_BINS)]
    labels = [f"{k * width:.2f}–{(k + 1) * width:.2f}" for k in range(HIST_BINS)]
    fig = go.Figure()
    for probe in dict.fromkeys(frame["probe"]):
        counts = score_counts(frame.loc[frame["probe"] == probe, "score"])
        if not any(counts):
            continue
        name = plotly_label(probe)
        fig.add_trace(go.Bar(x=centres, y=counts, width=width, name=name, opacity=0.65, customdata=labels,
                             hovertemplate="%{customdata}: %{y} samples<extra>" + name + "</extra>"))
    fig.update_layout(title={"text": plotly_label(title)}, template="plotly_white", barmode="overlay", height=380,
                      bargap=0, xaxis={"title": {"text": plotly_label(x_title)}, "range": [0, 1]},
                      yaxis={"title": {"text": "samples"}}, margin={"l": 60, "r": 30, "t": 60, "b": 50},
                      legend={"orientation": "h", "y": -0.2})
    return json.loads(fig.to_json())
