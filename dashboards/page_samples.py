"""Samples: every sample of every probe, searched and filtered by probe, group, score range and
text; paged (only the current page is sent to the browser) with a CSV download of all matches."""

from __future__ import annotations

import hashlib

import streamlit as st

from dashboards.context import Context
from dashboards.filtering import PAGE_SIZES, SampleFilter, apply_filter, get_page, page_count, score_bounds, to_csv
from dashboards.runs import samples_of
from dashboards.samples import reading
from dashboards.text import literal_markdown
from dashboards.ui import keep_valid, page_run, show_sample_problems

SHOWN_COLUMNS = ["probe", "id", "group", "variant", "score", "score_name", "context", "text"]


def render(ctx: Context) -> None:
    run = page_run(ctx, "Samples")
    if run is None:
        return
    available = list(run.probes)
    keep_valid("samples_probes", available)
    probes = st.multiselect("Probes", available, key="samples_probes", placeholder="all probes")
    wanted = probes or available
    loaded = samples_of(run, wanted)  # only the chosen probes' files are read
    frame = loaded.frame
    show_sample_problems(loaded)

    c1, c2 = st.columns([3, 2])
    text = c1.text_input("Search text", key="samples_text", placeholder="words in the prompt, output, id or group")
    group_options = sorted(frame["group"].unique())
    keep_valid("samples_groups", group_options)
    groups = c2.multiselect("Groups", group_options, key="samples_groups", placeholder="all groups")
    # One slider per kind of score: a toxicity, a log-likelihood difference and a seq-rep share are
    # on different scales, so one range across them would mean nothing. Each slider's range changes
    # with the probes chosen, so its state is keyed by that selection too.
    slot = hashlib.sha256("\0".join(wanted).encode()).hexdigest()[:12]
    ranges: dict[str, tuple[float, float]] = {}
    for name in sorted(frame["score_name"].unique()):
        bounds = score_bounds(frame[frame["score_name"] == name])
        if bounds is None or not bounds[0] < bounds[1]:
            continue
        key = f"samples_score_{slot}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        lo, hi = st.slider(f"Score range ({name})", bounds[0], bounds[1], bounds, key=key)
        if (lo, hi) != bounds:
            ranges[name] = (lo, hi)
    f = SampleFilter(probes=tuple(probes), groups=tuple(groups), text=text)
    matches = apply_filter(frame, f)
    for name, (lo, hi) in ranges.items():  # a kind's range hides only rows of that kind
        of_kind = matches["score_name"] == name
        matches = matches[~of_kind | matches["score"].between(lo, hi, inclusive="both")]
    score_range = bool(ranges)

    c3, c4 = st.columns([1, 4])
    size = c3.selectbox("Rows per page", PAGE_SIZES, index=1, key="samples_size")
    number = st.pagination(page_count(len(matches), size), key="samples_page", max_visible_pages=9)
    page = get_page(matches, number, size)
    c4.caption(f"{page.total:,} of {len(frame):,} samples match · showing {page.first:,}–{page.last:,}"
               + (" · scores outside their kind's range and their unscored rows hidden" if score_range else ""))
    st.dataframe(page.rows[SHOWN_COLUMNS], hide_index=True, width="stretch",
                 column_config={"score": st.column_config.NumberColumn(format="%.4g"),
                                "text": st.column_config.TextColumn(width="large"),
                                "context": st.column_config.TextColumn(width="medium")})
    st.download_button(f"Download {page.total:,} matching samples (CSV)", data=lambda: to_csv(matches),
                       file_name=f"{run.path.name}_samples.csv", mime="text/csv", key="samples_csv",
                       on_click="ignore", disabled=page.total == 0)
    with st.expander("What the score means, per probe"):
        for p in wanted:
            how = reading(p, run.probes[p].info)
            st.caption(f"{literal_markdown(p)}: {literal_markdown(how.score_name)} — "
                       f"{literal_markdown(how.score_meaning)}")
