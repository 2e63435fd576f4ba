"""The verdict block on a Streamlit page: the random-weights warning, then one line per question.

The rows come from `reports.verdicts` (the same text the report and the model card open with);
this module only lays them out. Every value from the run (metric names, reasons) goes through
`literal_markdown`, so a crafted summary.json cannot turn into links or coloured spans; the status
badges are this module's own constants. Both pieces live in keyed containers (CSS classes
`st-key-random-weights` and `st-key-verdicts`) so the browser test can find them.
"""

from __future__ import annotations

import streamlit as st

from audit.store import Run
from dashboards.text import literal_markdown
from reports.verdicts import (POLICY_NOTE, RANDOM_WEIGHTS_TEXT, RANDOM_WEIGHTS_TITLE, VerdictBlock, VerdictRow,
                              verdict_block)

# status key -> a Streamlit badge (colour and text are constants: never run data)
BADGES = {"concern": ":red-badge[✖ concern]", "inconclusive": ":orange-badge[? inconclusive]",
          "clear": ":green-badge[✓ no concern detected]", "unjudged": ":gray-badge[– not judged]"}


def random_weights_warning(block: VerdictBlock) -> None:
    """The warning a random-weights run opens with, in the open (never in an expander)."""
    if block.random_weights:
        with st.container(key="random-weights"):
            st.error(f"**⚠ {literal_markdown(RANDOM_WEIGHTS_TITLE)}** {literal_markdown(RANDOM_WEIGHTS_TEXT)}")


def _row_markdown(r: VerdictRow) -> str:
    line = f"**{literal_markdown(r.question)}** {BADGES[r.key]}"
    if r.metric:
        line += (f" · {literal_markdown(r.metric)} = **{literal_markdown(r.value)}** "
                 f"{literal_markdown(f'(95% CI {r.ci}, n {r.n}, threshold {r.threshold})')}")
    if r.references:
        line += f" · {literal_markdown(r.references)}"
    return line


def show_verdicts(run: Run, baseline: Run | None = None) -> VerdictBlock:
    """Draw the warning (when the model has random weights) and the verdict block; returns the block."""
    block = verdict_block(run, baseline=baseline)
    random_weights_warning(block)
    with st.container(key="verdicts", border=True):
        st.subheader("Verdicts")
        st.caption(literal_markdown(f"{block.summary}. {POLICY_NOTE} Policy: {block.policy}."))
        if not block.rows:
            st.caption("No probe of this run answers a question (none declares an axis).")
        for r in block.rows:
            st.markdown(_row_markdown(r))
            notes = [r.reason, *(f"not judged: {u}" for u in r.unjudged)]
            st.caption(literal_markdown("\n".join(notes)))
    return block
