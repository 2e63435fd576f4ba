"""Runs: every run in the folder (model, seed, headline metrics per question, suite, status, date), filterable; pick
one run to explore, or two to compare (the second is the baseline)."""

from __future__ import annotations

import streamlit as st

from dashboards.context import Context
from dashboards.runs import runs_table
from dashboards.text import literal_markdown
from dashboards.ui import BASELINE_KEY, NO_BASELINE, RUN_KEY, empty_folder

PICK_KEY = "runs_pick"


def _picked() -> None:
    """The pick widget changed: the first pick is the run, a second one the baseline."""
    picked = list(st.session_state.get(PICK_KEY) or [])
    if picked:
        st.session_state[RUN_KEY] = picked[0]
    st.session_state[BASELINE_KEY] = picked[1] if len(picked) > 1 else NO_BASELINE


def reset_pick() -> None:
    """The sidebar changed the selection: the pick widget starts again from it."""
    st.session_state.pop(PICK_KEY, None)


def render(ctx: Context) -> None:
    st.header("Runs")
    st.caption(f"Folder: {literal_markdown(str(ctx.runs_dir.resolve()))}")
    if not ctx.entries:
        empty_folder(ctx)
        return
    usable = [e.id for e in ctx.usable]
    bad = [e for e in ctx.entries if not e.usable]
    if usable:
        if PICK_KEY not in st.session_state:
            current = [st.session_state.get(RUN_KEY, usable[0])]
            base = st.session_state.get(BASELINE_KEY, NO_BASELINE)
            if base not in (NO_BASELINE, current[0]):
                current.append(base)
            st.session_state[PICK_KEY] = [r for r in current if r in usable]
        st.multiselect("Open a run (pick a second one to compare against it as the baseline)", usable,
                       key=PICK_KEY, max_selections=2, on_change=_picked)

    c1, c2 = st.columns([3, 2])
    query = c1.text_input("Filter runs", key="runs_filter", placeholder="model, suite or run id")
    statuses = sorted({e.status for e in ctx.entries})
    shown_status = c2.multiselect("Status", statuses, key="runs_status")
    entries = [e for e in ctx.entries
               if (not shown_status or e.status in shown_status)
               and (not query.strip() or query.strip().casefold() in f"{e.id} {e.model} {e.suite}".casefold())]
    st.caption(f"{len(entries)} of {len(ctx.entries)} runs shown · {len(usable)} open · {len(bad)} with a problem")
    st.dataframe(runs_table(entries), hide_index=True, width="stretch",
                 column_config={"problem": st.column_config.TextColumn("problem", width="large")})
    if bad:
        st.subheader("Runs that cannot be opened")
        for e in bad:
            st.warning(f"{literal_markdown(e.id)} ({literal_markdown(e.status)}): {literal_markdown(e.problem)}")
