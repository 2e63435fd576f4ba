"""Degeneration (the "Repetition" page): the probes on the degeneration axis, or whose samples record
loops, each read from its own description in the run. Its headline metrics under each setting it
measures (greedy and nucleus decoding, say), every metric measured under several settings side by side,
its charts, and its generations with the loop span highlighted, filterable to looping samples only.

The settings come from the probe's chart hints: a chart of one metric under several settings
(`loop_rate`, `loop_rate_nucleus`, labelled greedy and nucleus) names each setting and the suffix its
metrics carry. A loop probe added tomorrow appears here with no change to this module.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import pandas as pd
import streamlit as st

from audit import formatting as fmt
from audit.store import Run
from audit.types import Metric, ProbeInfo
from dashboards.context import RUN_ALL_PROBES, Context
from dashboards.figures import charts_of
from dashboards.filtering import get_page
from dashboards.runs import probe_samples
from dashboards.samples import reading
from dashboards.text import literal_markdown, loop_markdown
from dashboards.ui import keep_valid, page_run, samples_listed, show_chart, write

AXIS = "degeneration"
PER_PAGE = 10
ALL = "all groups"


class Setting(NamedTuple):
    """One setting a probe measures its metrics under: its label and the suffix of its metric names."""

    label: str  # "greedy", "nucleus"
    suffix: str  # "" for the plain names, "_nucleus"


def degeneration_probes(run: Run) -> list[str]:
    """The run's probes on the degeneration axis, or whose sample reading highlights loops."""
    return [p for p, s in run.probes.items()
            if s.info.axis == AXIS or (s.info.reading is not None and s.info.reading.loops)]


def settings(info: ProbeInfo) -> tuple[Setting, ...]:
    """The settings of the probe's first chart of one metric under several settings (its first metric
    plain, the others that name plus "_<suffix>"); one unnamed setting when it has no such chart."""
    for hint in info.charts:
        base, labels = (hint.metrics[0] if hint.metrics else ""), hint.labels or hint.metrics
        suffixes = [m[len(base):] for m in hint.metrics]
        if len(suffixes) > 1 and all(m.startswith(base) for m in hint.metrics) \
                and all(s.startswith("_") for s in suffixes[1:]):
            return tuple(Setting(label, suffix) for label, suffix in zip(labels, suffixes))
    return (Setting("value", ""),)


def _family(name: str, suffixes: Sequence[str]) -> str:
    """A metric's name without its setting's suffix."""
    return next((name.removesuffix(s) for s in suffixes if s and name.endswith(s)), name)


def setting_table(metrics: Sequence[Metric], kinds: Sequence[Setting]) -> pd.DataFrame:
    """Each metric once per setting, side by side (greedy beside nucleus): the metrics measured under more
    than one setting, or every metric when the probe has one setting."""
    by_name = {m.name: m for m in metrics}
    families = dict.fromkeys(_family(m.name, [k.suffix for k in kinds]) for m in metrics)
    columns = ["metric", *(c for k in kinds for c in (k.label, f"{k.label} 95% CI"))]
    rows = []
    for family in families:
        found = [by_name.get(family + k.suffix) for k in kinds]
        if sum(m is not None for m in found) < min(2, len(kinds)):
            continue
        row: dict[str, object] = {"metric": family}
        for k, m in zip(kinds, found):
            if m is not None and m.ok:
                row[k.label], row[f"{k.label} 95% CI"] = m.value, fmt.interval(m.ci)
            else:
                row[k.label], row[f"{k.label} 95% CI"] = math.nan, m.status if m is not None else "—"
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _flag(x: object) -> bool:
    """True only for a real True (pandas' nullable booleans come back as NA or numpy bools)."""
    return x is not None and not pd.isna(x) and bool(x)


def _count(x: object) -> str:
    """A recorded count as the run wrote it: 9, 4.5, or "—"."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return f"{x:g}"
    return "—"


def _headline(run: Run, probe: str, kinds: Sequence[Setting]) -> None:
    """The probe's headline metrics under each setting, as metric tiles."""
    summary = run.probes[probe]
    by_name = {m.name: m for m in summary.metrics}
    tiles = [(h.metric.replace("_", " ").capitalize() + (f", {k.label}" if len(kinds) > 1 else ""),
              by_name[h.metric + k.suffix]) for h in summary.info.headline for k in kinds
             if h.metric + k.suffix in by_name]
    for col, (label, m) in zip(st.columns(max(1, len(tiles))), tiles):
        value = f"{fmt.number(m.value)}{' ' + m.unit if m.unit else ''}" if m.ok else "skipped"
        col.metric(label, value, help=f"95% CI {fmt.interval(m.ci)}, n = {m.n}" if m.ok else m.status)


def render(ctx: Context) -> None:
    run = page_run(ctx, "Repetition")  # the name it has always had: bookmarks use it
    if run is None:
        return
    probes = degeneration_probes(run)
    if not probes:
        st.info("This run has no degeneration probe (a probe whose axis is degeneration, or whose samples "
                f"record loops). Run one with `{RUN_ALL_PROBES}`.")
        return
    keep_valid("rep_probe", probes)
    probe = st.selectbox("Probe", probes, key="rep_probe", format_func=lambda p: f"{run.probes[p].info.title} ({p})")
    info = run.probes[probe].info
    kinds = settings(info)
    _headline(run, probe, kinds)
    st.dataframe(setting_table(run.probes[probe].metrics, kinds), hide_index=True, width="stretch",
                 column_config={k.label: st.column_config.NumberColumn(format="%.4g") for k in kinds})
    for chart in charts_of(run, probe):
        show_chart(chart, f"rep_chart_{chart.id}")

    st.subheader("Generations")
    loaded = probe_samples(run, probe)
    if not samples_listed(loaded, f"This run wrote no samples file for {literal_markdown(probe)}."):
        return
    how = reading(probe, info)
    frame = loaded.frame
    c1, c2, c3 = st.columns([2, 2, 1])
    variants = sorted(frame["variant"].unique())
    keep_valid("rep_decoding", variants)
    groups = [ALL, *sorted(frame["group"].unique())]
    keep_valid("rep_group", groups)
    variant_name = info.reading.variant if info.reading is not None and info.reading.variant else "variant"
    chosen = c1.multiselect(variant_name.replace("_", " ").capitalize(), variants, key="rep_decoding",
                            placeholder="all")
    group = c2.selectbox("Group", groups, key="rep_group")
    loops_only = c3.checkbox("Looping only", key="rep_loops_only")
    rows = frame
    if chosen:
        rows = rows[rows["variant"].isin(chosen)]
    if group and group != ALL:
        rows = rows[rows["group"] == group]
    n_loops = int(rows["loop"].fillna(False).sum()) if "loop" in rows else 0
    if loops_only:
        rows = rows[rows["loop"].fillna(False)] if "loop" in rows else rows.iloc[0:0]
    number = st.pagination(max(1, math.ceil(len(rows) / PER_PAGE)), key="rep_page")
    page = get_page(rows, number, PER_PAGE)
    st.caption(f"Showing {page.first}–{page.last} of {page.total} generations ({n_loops} looping before the "
               f"looping-only filter) · the highlighted span is the loop")
    score_name = literal_markdown(how.score_name.replace("_", "-"))
    for row in page.rows.itertuples(index=False):
        loop = _flag(getattr(row, "loop", None))
        start = getattr(row, "loop_char_start", None)
        start = None if start is None or pd.isna(start) else int(start)
        with st.container(border=True):
            detail = "no loop"
            if loop:
                detail = (f"loop from character {start}, period {_count(getattr(row, 'loop_period', None))} "
                          f"tokens × {_count(getattr(row, 'loop_repeats', None))}")
            st.caption(f"{literal_markdown(row.id)} · {literal_markdown(row.variant)} · "
                       f"{literal_markdown(row.group)} · {score_name} {fmt.number(row.score)} · {detail}")
            write(f"Prompt: {row.context}")
            st.markdown(loop_markdown(row.text, start if loop else None))
