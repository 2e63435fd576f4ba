"""Metrics, groups and comparisons as DataFrames for `st.dataframe`, numbers kept as numbers.

A table keeps numeric columns numeric (so a reader can sort them) and puts the report's words
beside them: the direction as `audit.formatting.direction_words` says it, the scorer as
`audit.formatting.scorer_short` names it. A skipped metric keeps its row with an empty value
and its reason, so nothing disappears from a table.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd

from audit.compare import Comparison, MetricChange
from audit.store import Run
from audit.types import Metric
from dashboards.runs import RunEntry
from audit import formatting as fmt


def _num(x: float | None) -> float:
    return math.nan if x is None or not math.isfinite(x) else float(x)


def _ci(ci: tuple[float, float] | None) -> tuple[float, float]:
    return (math.nan, math.nan) if ci is None else (_num(ci[0]), _num(ci[1]))


def runs_frame(entries: Sequence[RunEntry]) -> pd.DataFrame:
    """The Runs table: one row per run folder, its headline metrics as columns."""
    headline_cols = list(dict.fromkeys(k for e in entries for k, _ in e.headline))
    rows = []
    for e in entries:
        values = dict(e.headline)
        rows.append({"run": e.id, "model": e.model, "suite": e.suite, "started": e.started, "status": e.status,
                     "probes": e.probes, "problem": e.problem,
                     **{k: _num(values.get(k)) for k in headline_cols}})
    columns = ["run", "model", "suite", "started", "status", "probes", "problem", *headline_cols]
    return pd.DataFrame(rows, columns=columns)


def metrics_frame(run: Run, probes: Iterable[str] | None = None) -> pd.DataFrame:
    """Every metric of the run (or of `probes`): value, 95% CI, n, unit, direction, status, caveat, scorer."""
    wanted = list(run.probes) if probes is None else [p for p in probes if p in run.probes]
    rows = []
    for probe in wanted:
        for m in run.probes[probe].metrics:
            lo, hi = _ci(m.ci) if m.ok else (math.nan, math.nan)
            rows.append({"probe": probe, "metric": m.name, "value": _num(m.value) if m.ok else math.nan,
                         "ci_low": lo, "ci_high": hi, "n": m.n, "unit": m.unit, "better": fmt.direction_words(m),
                         "status": m.status, "caveat": m.caveat, "scorer": fmt.scorer_short(m.scorer)})
    return pd.DataFrame(rows, columns=["probe", "metric", "value", "ci_low", "ci_high", "n", "unit", "better",
                                       "status", "caveat", "scorer"])


def skipped_frame(run: Run) -> pd.DataFrame:
    """The metrics that were not computed, with the reason each one gives."""
    rows = [{"probe": p, "metric": m.name, "reason": m.status.removeprefix("skipped:").strip()}
            for p, s in run.probes.items() for m in s.metrics if not m.ok]
    return pd.DataFrame(rows, columns=["probe", "metric", "reason"])


def group_values(metrics: Sequence[Metric], group: str) -> pd.DataFrame:
    """One group's value of every metric that has it: value, 95% CI and n, beside the overall value."""
    rows = []
    for m in metrics:
        g = m.groups.get(group)
        if g is None:
            continue
        lo, hi = _ci(g.ci)
        rows.append({"metric": m.name, "value": _num(g.value), "ci_low": lo, "ci_high": hi, "n": g.n,
                     "overall": _num(m.value) if m.ok else math.nan, "unit": m.unit,
                     "better": fmt.direction_words(m)})
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "n", "overall", "unit", "better"])


def groups_of(metrics: Sequence[Metric]) -> list[str]:
    """Every group any of these metrics is broken down by, in first-seen order."""
    return list(dict.fromkeys(g for m in metrics for g in m.groups))


def significance_word(c: MetricChange) -> str:
    """The shared engine's verdict in the report's words: "worse, beyond tolerance 5", "better",
    "no significant change", "not tested: <reason>"..."""
    return c.verdict_text


def changes_frame(comparison: Comparison) -> pd.DataFrame:
    """Baseline vs candidate per metric: values, delta, the paired test's p and verdict, the direction,
    the items paired and both 95% CIs (as "lo – hi" text, so the table stays narrow). `significant` is
    "yes" for a significant change (worse beyond tolerance, better, higher, lower), "no", or "not tested"."""
    rows = []
    for c in comparison.changes:
        significant = "not tested" if c.significant is None else ("yes" if c.significant else "no")
        rows.append({"probe": c.probe, "metric": c.metric, "baseline": _num(c.baseline),
                     "candidate": _num(c.candidate), "delta": _num(c.delta), "p": _num(c.p),
                     "verdict": significance_word(c), "significant": significant, "direction": c.direction or "",
                     "paired items": math.nan if c.n is None else float(c.n),
                     "baseline 95% CI": fmt.interval(c.baseline_ci),
                     "candidate 95% CI": fmt.interval(c.candidate_ci), "unit": c.unit})
    return pd.DataFrame(rows, columns=["probe", "metric", "baseline", "candidate", "delta", "p", "verdict",
                                       "significant", "direction", "paired items", "baseline 95% CI",
                                       "candidate 95% CI", "unit"])
