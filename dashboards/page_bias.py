"""Bias: each bias probe's per-group charts with CIs (as its chart hints say), and one group drilled
into: its numbers and items. A bias probe is one whose self-description names the axis "bias"."""

from __future__ import annotations

import streamlit as st

from dashboards.context import RUN_ALL_PROBES, Context
from dashboards.figures import charts_of
from dashboards.filtering import rows_in_group
from dashboards.runs import probe_samples
from dashboards.samples import reading
from dashboards.tables import group_values, groups_of
from dashboards.text import literal_markdown
from dashboards.ui import keep_valid, page_run, samples_listed, show_chart, write

AXIS = "bias"
ITEM_ROWS = 500  # items listed for one group (the count says how many there are)
ITEM_COLUMNS = ["id", "variant", "score", "context", "text"]


def render(ctx: Context) -> None:
    run = page_run(ctx, "Bias")
    if run is None:
        return
    probes = [p for p, s in run.probes.items() if s.info.axis == AXIS]
    if not probes:
        st.info(f"This run has no bias probe (a probe whose axis is bias). Run one with `{RUN_ALL_PROBES}`.")
        return
    keep_valid("bias_probe", probes)
    probe = st.selectbox("Probe", probes, key="bias_probe",
                         format_func=lambda p: f"{run.probes[p].info.title} ({p})")
    info = run.probes[probe].info
    write(info.description)
    st.caption(f"Cite: {literal_markdown(info.citation)} · data: {literal_markdown(info.data_license)}")

    charts = charts_of(run, probe)
    if not charts:
        st.info("No metric of this probe is broken down by group in this run.")
    for chart in charts:
        show_chart(chart, f"bias_chart_{chart.id}")

    metrics = run.probes[probe].metrics
    groups = groups_of(metrics)
    if not groups:
        return
    st.subheader("Drill into a group")
    keep_valid(f"bias_group_{probe}", groups)
    group = st.selectbox("Group", groups, key=f"bias_group_{probe}")
    if group is None:
        return
    st.dataframe(group_values(metrics, group), hide_index=True, width="stretch")
    loaded = probe_samples(run, probe)
    if not samples_listed(loaded, "This run wrote no samples file for this probe, so its items cannot be listed."):
        return
    items = rows_in_group(loaded.frame, group)
    how = reading(probe, info)
    st.caption(f"{len(items):,} items in {literal_markdown(group)} · score = {literal_markdown(how.score_name)}: "
               f"{literal_markdown(how.score_meaning)}"
               + (f" · first {ITEM_ROWS} shown (all of them on the Samples page)" if len(items) > ITEM_ROWS else ""))
    st.dataframe(items[ITEM_COLUMNS].head(ITEM_ROWS), hide_index=True, width="stretch")
