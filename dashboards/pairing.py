"""Baseline versus candidate item by item: which shared items changed, and by how much on average.

`audit.compare` gives each metric its verdict (the gate's paired permutation test). This module is
for reading, not deciding: where both runs scored the same items (same probe, same `item` key in
`dashboards.samples`), it shows the mean per-item change of the probe's main score, with a paired
95% interval, and the items that moved most, which is where an auditor reads next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from audit.metrics import Z95
from dashboards.samples import item_scores, reading


@dataclass(frozen=True)
class PairedProbe:
    """One probe's shared items in two runs, summarised."""

    probe: str
    score_name: str
    shared: int  # items scored in both runs
    only_baseline: int
    only_candidate: int
    changed: int  # shared items whose score differs
    mean_delta: float | None  # mean of candidate - baseline over shared items
    ci: tuple[float, float] | None  # 95%: mean ± 1.96 · sd / sqrt(n) (normal approximation, paired)


def paired_deltas(base: pd.DataFrame, cand: pd.DataFrame, probe: str) -> pd.DataFrame:
    """Per shared item of `probe`: baseline score, candidate score and delta = candidate - baseline.

    Indexed by item, in the candidate's item order.
    """
    b, c = item_scores(base, probe), item_scores(cand, probe)
    shared = c.index.intersection(b.index, sort=False)
    out = pd.DataFrame({"baseline": b.reindex(shared), "candidate": c.reindex(shared)})
    out["delta"] = out["candidate"] - out["baseline"]
    out.index.name = "item"
    return out


def paired_summary(base: pd.DataFrame, cand: pd.DataFrame, probe: str) -> PairedProbe:
    """The paired change of one probe: shared items, how many changed, mean delta and its 95% CI.

    The interval is the normal approximation for a mean of paired differences,
    mean ± 1.96 · s / sqrt(n) with s the sample standard deviation (ddof 1); it needs n >= 2.
    """
    deltas = paired_deltas(base, cand, probe)["delta"]
    b, c = item_scores(base, probe), item_scores(cand, probe)
    n = len(deltas)
    mean = float(deltas.mean()) if n else None
    ci = None
    if n >= 2 and mean is not None:
        half = Z95 * float(deltas.std(ddof=1)) / math.sqrt(n)
        ci = (mean - half, mean + half)
    return PairedProbe(probe=probe, score_name=reading(probe).score_name, shared=n,
                       only_baseline=len(b.index.difference(c.index)), only_candidate=len(c.index.difference(b.index)),
                       changed=int((deltas != 0).sum()), mean_delta=mean, ci=ci)


def top_changes(base: pd.DataFrame, cand: pd.DataFrame, probe: str, k: int = 10) -> pd.DataFrame:
    """The `k` shared items whose score moved most (largest |delta| first), with each run's text.

    Columns: item, group, baseline, candidate, delta, baseline_text, candidate_text. For items
    with several samples the text is the highest-scoring sample's (the one behind a max score).
    """
    deltas = paired_deltas(base, cand, probe)
    deltas = deltas[deltas["delta"] != 0]
    order = deltas["delta"].abs().sort_values(ascending=False, kind="stable").index[:k]
    top = deltas.loc[order].reset_index()

    def texts(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[(frame["probe"] == probe) & frame["item"].isin(top["item"])]
        best = rows.sort_values("score", ascending=False, kind="stable").drop_duplicates("item")
        return best.set_index("item")[["group", "text"]]

    tb, tc = texts(base), texts(cand)
    top["group"] = top["item"].map(tc["group"])
    top["baseline_text"] = top["item"].map(tb["text"])
    top["candidate_text"] = top["item"].map(tc["text"])
    return top[["item", "group", "baseline", "candidate", "delta", "baseline_text", "candidate_text"]]
