"""The verdict block as every view shows it: one row per question, first, as strings.

The report, the dashboard's Overview and the model card all open with the same answers (is the
model biased, toxic, degenerate, untruthful; can it detect hate speech?), computed by
`audit.verdicts` from the run's own probe descriptions and a threshold policy. This module turns
those verdicts into formatted rows once, so the three views lay out the same text and cannot
disagree. Text stays raw here; each view escapes it (HTML autoescape, Markdown escaping, literal
Markdown in Streamlit).

A run of tiny-opt (or of an organism built from it) gets the random-weights warning, whatever it
scores: its verdicts exercise the pipeline and say nothing about a trained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from audit import formatting as fmt
from audit.store import Run
from audit.types import Metric, ProbeInfo
from audit.verdicts import (Verdict, VerdictPolicy, is_random_name, load_verdict_policy, question,
                            run_verdicts)
from reports.describe import described
from reports.facts import model_id

StatusKey = Literal["concern", "inconclusive", "clear", "unjudged"]

RANDOM_WEIGHTS_TITLE = "Random weights: these results say nothing about any real model."
RANDOM_WEIGHTS_TEXT = ("This model is tiny-opt (or built from it): a randomly initialised OPT that opt-audit "
                       "builds to test its pipeline offline. The verdicts and numbers below exercise the "
                       "pipeline only.")
POLICY_NOTE = ("A verdict reads the question's headline metrics through their 95% confidence intervals against "
               "the policy's thresholds: concern when the whole interval is on the wrong side, no concern "
               "detected when it is all on the right side, inconclusive when it straddles the threshold; the "
               "worst metric decides.")

# status -> (a stable key for styling, a symbol that carries the status without colour)
STATUS_STYLE: dict[str, tuple[StatusKey, str]] = {
    "concern": ("concern", "✖"),
    "inconclusive": ("inconclusive", "?"),
    "no concern detected": ("clear", "✓"),
    "not judged": ("unjudged", "–"),
}


@dataclass(frozen=True)
class VerdictRow:
    """One question's answer, formatted: the deciding metric, its numbers and why."""

    axis: str
    question: str  # "Is it biased?"
    status: str  # concern, inconclusive, no concern detected, not judged
    key: StatusKey  # the status as a CSS class / colour key
    symbol: str  # ✖ ? ✓ –: readable without colour
    metric: str  # the deciding metric as probe.metric ('' when not judged)
    value: str
    ci: str
    n: str
    threshold: str
    reason: str
    references: str  # "ideal 50; OPT-175B 69.5; Davinci 67.2; baseline 61.0" ('' when none)
    judged: int  # metrics judged for this question
    unjudged: tuple[str, ...]  # headline metrics not judged, each with why


@dataclass(frozen=True)
class VerdictBlock:
    """What every view puts first: the random-weights warning (when it applies) and the rows."""

    rows: tuple[VerdictRow, ...]
    random_weights: bool
    policy: str  # where the thresholds came from

    @property
    def summary(self) -> str:
        """One line: how many questions raise a concern, are inconclusive, or are clear."""
        counts = {s: sum(r.status == s for r in self.rows) for s in STATUS_STYLE}
        parts = [f"{counts[s]} {s}" for s in STATUS_STYLE if counts[s]]
        return f"{len(self.rows)} question{'' if len(self.rows) == 1 else 's'}: " + (", ".join(parts) or "none")


def _probes(run: Run) -> dict[str, tuple[ProbeInfo, list[Metric]]]:
    return {p: (s.info, list(s.metrics)) for p, s in described(run).probes.items()}


def verdict_row(v: Verdict) -> VerdictRow:
    """Format one verdict: the deciding (worst) metric's value, interval, n, threshold and references."""
    key, symbol = STATUS_STYLE[v.status]
    head = v.headline
    if head is None:
        return VerdictRow(v.axis, question(v.axis), v.status, key, symbol, "", fmt.MISSING, fmt.MISSING,
                          fmt.MISSING, fmt.MISSING, "no headline metric could be judged", "", 0, v.unjudged)
    refs = "; ".join(f"{r.label} {fmt.number(r.value)}" for r in head.references)
    return VerdictRow(v.axis, question(v.axis), v.status, key, symbol, head.key, fmt.number(head.value),
                      fmt.interval(head.ci), str(head.n), f"{head.threshold:g}", head.reason, refs,
                      len(v.metrics), v.unjudged)


def verdict_block(run: Run, policy: VerdictPolicy | None = None, baseline: Run | None = None) -> VerdictBlock:
    """The verdicts of a run under `policy` (default: the bundled one), with `baseline`'s values as a
    reference point when given."""
    policy = policy if policy is not None else load_verdict_policy()
    verdicts = run_verdicts(_probes(run), policy, published=run.references,
                            baseline=_probes(baseline) if baseline is not None else None)
    return VerdictBlock(tuple(verdict_row(v) for v in verdicts), is_random_name(model_id(run.manifest)), policy.source)
