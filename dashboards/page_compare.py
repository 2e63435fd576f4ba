"""Compare: the baseline against the selected run, per metric (delta, CIs, and the verdict of
`audit.compare`, the engine `opt-audit gate` and `report --compare` share), then item by item where
both runs scored the same items: the paired mean change and the items that changed most."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from audit.compare import SIGNIFICANCE_RULE, Comparison, compare_runs
from audit.store import load_run
from dashboards.context import Context
from dashboards.pairing import paired_summary, top_changes
from dashboards.runs import Fingerprint, fingerprint, probe_samples
from dashboards.tables import changes_frame
from dashboards.text import literal_markdown
from dashboards.ui import keep_valid, page_run
from reports.describe import described
from audit import formatting as fmt

TOP_ITEMS = 10


def _number() -> object:
    return st.column_config.NumberColumn(format="%.4g")


@st.cache_data(show_spinner="Testing every metric item by item…", max_entries=16)
def _cached_comparison(base_path: str, base_fp: Fingerprint, cand_path: str, cand_fp: Fingerprint) -> Comparison:
    """`compare_runs` (permutation tests over every metric's items), cached on both runs' fingerprints."""
    return compare_runs(described(load_run(Path(base_path))), described(load_run(Path(cand_path))))


def comparison_of(base_path: Path, cand_path: Path) -> Comparison:
    """The comparison of two run directories, recomputed only when either run's files change."""
    return _cached_comparison(str(base_path), fingerprint(base_path), str(cand_path), fingerprint(cand_path))


def render(ctx: Context) -> None:
    run, base = page_run(ctx, "Compare"), ctx.baseline
    if run is None:
        return
    assert ctx.entry is not None
    if base is None or ctx.baseline_entry is None:
        st.info("Choose a baseline to compare this run against: 'Compare with' in the sidebar, or pick two "
                "runs on the Runs page (the second one is the baseline).")
        return
    comparison = comparison_of(base.path, run.path)
    st.markdown(f"Baseline **{literal_markdown(ctx.baseline_entry.id)}** → candidate "
                f"**{literal_markdown(ctx.entry.id)}**")
    for note in comparison.notes:
        st.caption(f"Differs: {literal_markdown(note)}")
    table = changes_frame(comparison)
    if not comparison.comparable:
        st.error("These runs are not comparable metric by metric, because:\n\n"
                 + "\n".join(f"- {literal_markdown(r)}" for r in comparison.reasons)
                 + "\n\nA difference here could come from the data, probe version or scorer rather than the "
                   "model. Re-run both with the same probes, versions and scorer.")
        with st.expander("The values side by side anyway (nothing tested: not a valid comparison)"):
            st.dataframe(table[["probe", "metric", "baseline", "candidate", "delta", "unit"]], hide_index=True,
                         width="stretch")
        return

    sig = comparison.significant
    better = sum(1 for c in sig if c.direction == "better")
    worse = sum(1 for c in sig if c.direction == "worse")
    untested = sum(1 for c in comparison.changes if not c.testable)
    cols = st.columns(4)
    cols[0].metric("Metrics", len(comparison.changes))
    cols[1].metric("Significantly better", better)
    cols[2].metric("Significantly worse", worse)
    cols[3].metric("Not tested", untested)
    st.caption(f"{SIGNIFICANCE_RULE} Policy: {comparison.policy}.")
    only_sig = st.toggle("Significant changes only", key="compare_sig_only")
    shown = table[table["significant"] == "yes"] if only_sig else table
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={c: _number() for c in ("baseline", "candidate", "delta", "p")})

    st.subheader("Item by item")
    probes = [p for p in run.probes if p in base.probes]
    keep_valid("compare_probe", probes)
    probe = st.selectbox("Probe", probes, key="compare_probe")
    if probe is None:
        return
    b, c = probe_samples(base, probe), probe_samples(run, probe)
    for problem in (b.problem, c.problem):
        if problem:
            st.warning(literal_markdown(problem))
    if b.missing or c.missing:
        st.caption("One of the runs wrote no samples file for this probe, so its items cannot be paired.")
    if b.problem or c.problem or b.missing or c.missing:
        return
    s = paired_summary(b.frame, c.frame, probe)
    if not s.shared:
        st.info("The two runs share no scored item of this probe, so there is nothing to pair.")
        return
    cols = st.columns(4)
    cols[0].metric("Shared items", s.shared)
    cols[1].metric("Items that changed", s.changed)
    cols[2].metric(f"Mean change in {s.score_name}", fmt.signed(s.mean_delta),
                   help=f"candidate - baseline over shared items; 95% CI {fmt.interval(s.ci)} "
                        "(mean ± 1.96·sd/√n, paired)")
    cols[3].metric("95% CI of the mean change", fmt.interval(s.ci))
    if s.only_baseline or s.only_candidate:
        st.caption(f"Not paired: {s.only_baseline} items only in the baseline, {s.only_candidate} only in the "
                   "candidate.")
    top = top_changes(b.frame, c.frame, probe, TOP_ITEMS)
    if top.empty:
        st.caption("No shared item changed its score.")
        return
    st.caption(f"The {len(top)} items that changed most (largest |candidate - baseline| first)")
    st.dataframe(top, hide_index=True, width="stretch",
                 column_config={"baseline": _number(), "candidate": _number(), "delta": _number(),
                                "baseline_text": st.column_config.TextColumn(width="large"),
                                "candidate_text": st.column_config.TextColumn(width="large")})
