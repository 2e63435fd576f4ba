"""Repetition: loop rate and seq-rep-n for greedy and nucleus decoding, and the generations
themselves with the loop span highlighted, filterable to looping samples only."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboards.context import Context
from dashboards.figures import charts_of, plotly_spec
from dashboards.filtering import get_page
from dashboards.runs import probe_samples
from dashboards.text import literal_markdown, loop_markdown
from dashboards.ui import keep_valid, needs_run, run_title, write
from audit import formatting as fmt

PROBE = "repetition"
PER_PAGE = 10
FAMILIES = ("loop_rate", "seq_rep_1", "seq_rep_2", "seq_rep_3", "seq_rep_4", "distinct_1", "distinct_2", "empty_rate")
ALL = "all groups"


def decoding_table(metrics_by_name: dict) -> pd.DataFrame:
    """Each metric family once per decoding: greedy (the plain name) beside nucleus (`_nucleus`)."""
    rows = []
    for family in FAMILIES:
        g, n = metrics_by_name.get(family), metrics_by_name.get(f"{family}_nucleus")
        if g is None and n is None:
            continue
        row = {"metric": family}
        for label, m in (("greedy", g), ("nucleus", n)):
            ok = m is not None and m.ok
            row[label] = m.value if ok else math.nan
            row[f"{label} 95% CI"] = fmt.interval(m.ci) if ok else (m.status if m is not None else "—")
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "greedy", "greedy 95% CI", "nucleus", "nucleus 95% CI"])


def _flag(x: object) -> bool:
    """True only for a real True (pandas' nullable booleans come back as NA or numpy bools)."""
    return x is not None and not pd.isna(x) and bool(x)


def _count(x: object) -> str:
    """A recorded count as the run wrote it: 9, 4.5, or "—"."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return f"{x:g}"
    return "—"


def render(ctx: Context) -> None:
    run_title(ctx, "Repetition")
    if needs_run(ctx):
        return
    run = ctx.run
    assert run is not None
    if PROBE not in run.probes:
        st.info("This run has no repetition probe. Run it with `opt-audit run --model M --probes repetition`.")
        return
    by_name = {m.name: m for m in run.probes[PROBE].metrics}
    cols = st.columns(3)
    for col, name, label in zip(cols, ("loop_rate", "loop_rate_nucleus", "loop_rate_reduction"),
                                ("Loop rate, greedy", "Loop rate, nucleus", "Reduction by sampling")):
        m = by_name.get(name)
        if m is None:
            continue
        value = f"{fmt.number(m.value)}{' ' + m.unit if m.unit and m.ok else ''}" if m.ok else "skipped"
        col.metric(label, value, help=f"95% CI {fmt.interval(m.ci)}, n = {m.n}" if m.ok else m.status)
    st.dataframe(decoding_table(by_name), hide_index=True, width="stretch",
                 column_config={"greedy": st.column_config.NumberColumn(format="%.4g"),
                                "nucleus": st.column_config.NumberColumn(format="%.4g")})
    for chart in charts_of(run, PROBE):
        st.plotly_chart(plotly_spec(chart), key=f"rep_chart_{chart.id}", config={"displaylogo": False})

    st.subheader("Generations")
    loaded = probe_samples(run, PROBE)
    if loaded.problem or loaded.missing:
        if loaded.problem:
            st.warning(literal_markdown(loaded.problem))
        else:
            st.caption("This run wrote no samples file for the repetition probe.")
        return
    frame = loaded.frame
    c1, c2, c3 = st.columns([2, 2, 1])
    decodings = sorted(frame["variant"].unique())
    keep_valid("rep_decoding", decodings)
    groups = [ALL, *sorted(frame["group"].unique())]
    keep_valid("rep_group", groups)
    chosen = c1.multiselect("Decoding", decodings, key="rep_decoding", placeholder="all")
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
                       f"{literal_markdown(row.group)} · seq-rep-4 {fmt.number(row.score)} · {detail}")
            write(f"Prompt: {row.context}")
            st.markdown(loop_markdown(row.text, start if loop else None))
