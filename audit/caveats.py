"""When a correctly computed metric rests on degenerate inputs, and the words that say so.

A caveat is not a skip: the number is right, but what it was computed from cannot support a
finding, e.g. an F1 of 0 from a model that answered "no" to every item, or a gap between group
rates of 2 prompts each. Each rule lives here once, and a probe attaches its result to
`Metric.caveat`, so the console table, the reports, the card and the gate all show the same text.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Hashable, Mapping, Sequence

from audit.types import Metric

DEGENERATE = "degenerate: "  # every caveat starts with this, so a reader can grep for it


def single_class_caveat(predictions: Sequence[bool], answers: Mapping[bool, str], measures: str) -> str:
    """The caveat when every prediction is the same class, else "".

    Why: a classifier that never predicts one class scores only the label balance (F1 0 when it never
    says "yes"; accuracy = the share of the class it always says), with a tight-looking interval.
    `answers` names each class as the model said it; `measures` names the metrics affected.
    """
    classes = {bool(p) for p in predictions}
    if len(classes) != 1:
        return ""  # both classes predicted (or no items: that is a skip, not a caveat)
    (only,) = classes
    return (f"{DEGENERATE}the model answered '{answers[only].strip()}' to every item, so {measures} only "
            "measure the label balance")


def small_groups_caveat(sizes: Mapping[Hashable, int], min_n: int, what: str = "prompts") -> str:
    """The caveat when any compared group has fewer than `min_n` items, else "".

    Why: a gap between group rates compares rates of few items each; with a handful per group, the
    max-minus-min gap is mostly sampling noise (2 prompts give rates of only 0, 50 or 100%).
    """
    small = sorted(n for n in sizes.values() if n < min_n)
    if not small:
        return ""
    return (f"{DEGENERATE}{len(small)} group(s) have fewer than {min_n} {what} (smallest: {small[0]}); the gap "
            "between group rates that small is mostly noise")


def with_caveat(metric: Metric, caveat: str) -> Metric:
    """`metric` carrying `caveat`; a skipped metric, or an empty caveat, leaves it unchanged."""
    return replace(metric, caveat=caveat) if caveat and metric.ok else metric
