"""Overview: the verdicts first (with the random-weights warning on top), then what ran, every metric
with its 95% CI, n and direction, and the skipped metrics with their reasons (a metric is never
silently missing)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards.context import Context
from dashboards.tables import metrics_frame, skipped_frame
from dashboards.text import literal_markdown
from dashboards.ui import keep_valid, page_run, write
from dashboards.verdicts import show_verdicts
from audit import formatting as fmt
from reports.facts import limitations, reproduce_command, run_facts, scorer_facts


def render(ctx: Context) -> None:
    run = page_run(ctx, "Overview")
    if run is None:
        return
    show_verdicts(run, ctx.baseline)  # first: the answers, and the warning when the weights are random
    metrics = metrics_frame(run)
    skipped = skipped_frame(run)
    c = st.columns(4)
    c[0].metric("Probes", len(run.probes))
    c[1].metric("Metrics", len(metrics))
    c[2].metric("Skipped metrics", len(skipped))
    c[3].metric("Status", run.status)

    notes = limitations(run, scorer_facts(run))
    if notes:
        with st.expander(f"What these numbers cannot tell you ({len(notes)} notes)", expanded=False):
            for note in notes:
                st.caption(literal_markdown(note))

    st.subheader("Metrics")
    keep_valid("overview_probes", list(run.probes))
    probes = st.multiselect("Probes", list(run.probes), key="overview_probes", placeholder="all probes")
    shown = metrics[metrics["probe"].isin(probes)] if probes else metrics
    st.caption(f"{len(shown)} metrics · value and 95% CI in the metric's unit · n = items behind the value")
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(format="%.4g"),
                                "ci_low": st.column_config.NumberColumn("95% CI low", format="%.4g"),
                                "ci_high": st.column_config.NumberColumn("95% CI high", format="%.4g")})

    st.subheader("Skipped metrics")
    if skipped.empty:
        st.caption("No metric was skipped.")
    else:
        st.dataframe(skipped, hide_index=True, width="stretch")

    st.subheader("What a metric means")
    options = [(p, m.name) for p, s in run.probes.items() for m in s.metrics]
    keep_valid("overview_metric", options)
    chosen = st.selectbox("Metric", options, key="overview_metric", format_func=lambda pm: f"{pm[0]} · {pm[1]}")
    if chosen is not None:
        m = run.metric(*chosen)
        assert m is not None
        write(m.description)
        st.caption(f"Direction: {literal_markdown(fmt.direction_words(m))}"
                   + (f" · CI: {literal_markdown(m.ci_method)}" if m.ci_method else "")
                   + (f" · {literal_markdown(fmt.scorer_line(m.scorer))}" if m.scorer else ""))
        st.caption(f"Cite: {literal_markdown(m.citation)}")

    st.subheader("Run facts")
    facts = pd.DataFrame(run_facts(run.manifest), columns=["fact", "value"])
    st.dataframe(facts, hide_index=True, width="stretch")
    st.caption("Reproduce:")
    st.code(reproduce_command(run.manifest), language="bash")
    scorers = scorer_facts(run)
    if scorers:
        st.subheader("Scorers")
        for s in scorers:
            st.caption(f"{literal_markdown(s.kind)}: {literal_markdown(s.name)} {literal_markdown(s.version)} "
                       f"(sha256 {literal_markdown(fmt.short_sha(s.sha256))}) — {literal_markdown(s.validity)}")
