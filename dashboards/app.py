"""The dashboard's wiring: the sidebar (page, run, baseline) and one page function per page.

`streamlit run app.py -- --runs DIR` (the repository's app.py calls `main`), or
`opt-audit dashboard DIR`. The selected page, run and baseline live in the URL (`?page=Samples&
run=...`), so a view can be bookmarked or shared.
"""

from __future__ import annotations

from typing import Callable, Mapping

import streamlit as st

from dashboards import (page_bias, page_card, page_compare, page_degeneration, page_overview, page_runs,
                        page_samples, page_toxicity)
from dashboards.context import Context
from dashboards.location import current_runs_dir
from dashboards.runs import RunEntry, discover, open_run
from dashboards.ui import BASELINE_KEY, NO_BASELINE, RUN_KEY, keep_valid

PAGES: Mapping[str, Callable[[Context], None]] = {
    "Runs": page_runs.render,
    "Overview": page_overview.render,
    "Bias": page_bias.render,
    "Toxicity": page_toxicity.render,
    "Repetition": page_degeneration.render,
    "Samples": page_samples.render,
    "Compare": page_compare.render,
    "Model card": page_card.render,
}
PAGE_KEY = "page"


def _sidebar(entries: tuple[RunEntry, ...]) -> tuple[str, RunEntry | None, RunEntry | None]:
    """Draw the sidebar; return the page, the selected run and the baseline (None when not chosen)."""
    usable = {e.id: e for e in entries if e.usable}
    with st.sidebar:
        st.title("opt-audit")
        keep_valid(PAGE_KEY, list(PAGES))
        page = st.radio("Page", list(PAGES), key=PAGE_KEY, bind="query-params")
        if not usable:
            return page, None, None
        ids = list(usable)
        keep_valid(RUN_KEY, ids)
        run_id = st.selectbox("Run", ids, key=RUN_KEY, bind="query-params", on_change=page_runs.reset_pick)
        others = [NO_BASELINE, *(i for i in ids if i != run_id)]
        keep_valid(BASELINE_KEY, others)
        base_id = st.selectbox("Compare with (baseline)", others, key=BASELINE_KEY, bind="query-params",
                               on_change=page_runs.reset_pick)
        st.caption("Read-only: the dashboard never runs a model or writes into a run.")
    return page, usable.get(run_id), usable.get(base_id) if base_id != NO_BASELINE else None


def main() -> None:
    """Render one view of the dashboard (Streamlit runs this top to bottom on every interaction)."""
    st.set_page_config(page_title="opt-audit dashboard", layout="wide")
    runs_dir = current_runs_dir()
    entries = discover(runs_dir)
    page, entry, base_entry = _sidebar(entries)
    ctx = Context(runs_dir=runs_dir, entries=entries, run=open_run(entry) if entry else None, entry=entry,
                  baseline=open_run(base_entry) if base_entry else None, baseline_entry=base_entry)
    PAGES[page or "Runs"](ctx)


if __name__ == "__main__":  # `streamlit run dashboards/app.py` works too (an installed package has no app.py)
    main()
