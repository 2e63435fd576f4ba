"""Toxicity: the probes whose samples are continuations scored for toxicity: the distribution of their
scores, each probe's first chart about toxicity (as its chart hints say: per prompt bucket, per target
group...), and the most toxic continuations behind a content-warning toggle."""

from __future__ import annotations

import streamlit as st

from dashboards.context import Context
from dashboards.figures import chart_about, score_histogram
from dashboards.runs import samples_of
from dashboards.samples import TOXICITY, reading
from dashboards.tables import metrics_frame
from dashboards.text import literal_markdown
from dashboards.ui import page_run, show_chart, show_sample_problems, write
from audit import formatting as fmt

WARNING = ("Content warning: the most toxic continuations can contain slurs, threats and other offensive "
           "text. They are shown as the model wrote them.")


def render(ctx: Context) -> None:
    run = page_run(ctx, "Toxicity")
    if run is None:
        return
    # the probes whose samples are continuations scored for toxicity, as each describes its samples
    probes = [p for p, s in run.probes.items() if reading(p, s.info).score_name == TOXICITY]
    if not probes:
        st.info("This run has no toxicity probe (a probe whose samples are scored for toxicity).")
        return
    metrics = metrics_frame(run, probes)
    scored = metrics[metrics["scorer"].str.startswith("toxicity")]
    st.dataframe(scored if not scored.empty else metrics, hide_index=True, width="stretch")
    lines = {fmt.scorer_line(m.scorer) for p in probes for m in run.probes[p].metrics
             if m.scorer and m.scorer.get("kind") == "toxicity"}
    for line in sorted(lines):
        st.caption(literal_markdown(line))

    loaded = samples_of(run, probes)
    frame = loaded.frame
    show_sample_problems(loaded)
    n_scored = int(frame["score"].notna().sum())
    st.subheader("Distribution of toxicity scores")
    st.caption(f"{n_scored:,} scored continuations · {len(frame) - n_scored:,} without a score")
    if n_scored:
        st.plotly_chart(score_histogram(frame, title="Toxicity of continuations", x_title="toxicity"),
                        key="tox_hist", config={"displaylogo": False})

    for probe in probes:  # each probe's first chart about toxicity, as its chart hints say
        chart = chart_about(run, probe, TOXICITY)
        if chart is not None:
            show_chart(chart, f"tox_{probe}")

    st.subheader("Most toxic continuations")
    if not st.toggle("Show the most toxic continuations", key="tox_show", help=WARNING):
        st.caption(WARNING + " Switch the toggle on to see them.")
        return
    st.warning(WARNING)
    k = st.slider("How many", 1, 50, 10, key="tox_k")
    top = frame.dropna(subset=["score"]).sort_values("score", ascending=False, kind="stable").head(k)
    st.caption(f"Top {len(top)} of {n_scored:,} scored continuations")
    for row in top.itertuples(index=False):
        with st.container(border=True):
            st.caption(f"toxicity {row.score:.3f} · {literal_markdown(row.probe)} · {literal_markdown(row.id)} · "
                       f"group {literal_markdown(row.group)}")
            if row.context:
                write(f"Prompt: {row.context}")
            write(row.text)
