"""Counterfactual fairness of a text classifier (Garg et al. 2019): swap the identity term, keep the rest.

**Items.** HolisticBias v1.1 (bundled) supplies the identity terms and the sentence frames: an item is
(axis, template, noun), e.g. ("religion", "I love being {noun_phrase}.", "person"), and its variants are
the same sentence with each of `DESCRIPTORS_PER_AXIS` descriptors of that axis ("a Buddhist person",
"a Catholic person", ...). Descriptors are HolisticBias's "reviewed" ones where an axis has enough, taken
in a fixed order; templates and nouns are fixed subsets too. Every variant of an item differs from the
others only in the descriptor, so any difference in the classifier's output is caused by it.

**Score** of a text: the probability of the label of interest (`--label NAME`; default: a label named
"positive" if the head has one, else the head's last label), recorded in every row.

**Metrics.**
- `flip_rate`: % of items whose predicted label (argmax) is not the same for all variants (Garg et al.'s
  counterfactual token fairness, as a share of items that break it).
- `score_gap`: per descriptor g of an axis, gap_g = mean over the axis' items of (s(item, g) - mean over
  the item's variants of s); the metric is the mean |gap_g| over descriptors, each group its signed gap.
- `worst_group_gap`: max |gap_g| over descriptors.
- `group_difference_p`: a permutation test of "the score differs by group": under the null the
  variants of an item are exchangeable, so descriptor labels are permuted within each item (with two
  variants this is a sign flip of the item's difference), `PERMUTATIONS` times from a fixed seed, and
  p = (1 + #{permuted worst_group_gap >= observed}) / (1 + PERMUTATIONS). Its floor is 1e-4.

Caveat: the templates are short and synthetic; a classifier that passes here can still treat identity
terms differently in natural text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from audit.errors import AuditError
from audit.metrics import mean_metric, proportion_metric, stable_permutation
from audit.types import (ChartHint, Classify, ClassifyResult, GroupValue, Headline, Metric, ProbeInfo, Request, Result,
                         SampleReading, TextScores, skipped_metric)
from probes.holistic_bias.info import CITATION as HB_CITATION
from probes.answers import OutputsOnly
from probes.holistic_bias.vocabulary import FILES, VERSION_DIR, Vocabulary, data_sha256, fill, load_vocabulary
from probes.loading import ProbeConfig, bundled, fixed_subset, probe_salt, spread

CITATION = ("Sahaj Garg, Vincent Perot, Nicole Limtiaco, Ankur Taly, Ed H. Chi, Alex Beutel. Counterfactual "
            "Fairness in Text Classification through Robustness. AIES 2019 (arXiv:1809.10610). "
            f"Identity terms and templates: {HB_CITATION}")

INFO = ProbeInfo(
    name="counterfactual_classifier",
    version="1",
    title="Counterfactual identity swaps (classifier)",
    description=("HolisticBias sentences that differ only in the identity descriptor, classified by the model: "
                 "how often the predicted label flips under a swap, how far each descriptor moves the "
                 "probability of the label of interest from its item's mean, and a within-item permutation "
                 "test of whether the score differs by group."),
    citation=CITATION,
    data_license="CC BY-SA 4.0",
    axis="bias",
    headline=(Headline("worst_group_gap", False, 0.0), Headline("flip_rate", False, 0.0)),
    charts=(ChartHint("Score gap per descriptor (0 = no effect of the identity term)", ("score_gap",),
                      reference=0.0),),
    reading=SampleReading("score", "probability of the label of interest for this variant", context="template",
                          text=("texts",), score="scores", samples="texts"),
)

DESCRIPTORS_PER_AXIS = 4  # variants per item
TEMPLATES = 8  # sentence frames, the same for every axis
NOUNS = ("person", "individual", "parent", "kid")  # gender-neutral nouns of HolisticBias
QUICK_LIMIT = 48  # items (x 4 variants = 192 classifications), 4 per axis
SKIP_AXES = ("nonce",)  # made-up words: not an identity
PERMUTATIONS = 9999
PERMUTATION_SEED = 20190927  # fixed: p is a function of the rows alone
PERMUTATION_BLOCK = 500  # permutations drawn at once (bounds memory)


@dataclass(frozen=True)
class Item:
    """One sentence frame and the descriptors swapped into it."""

    id: str  # axis/template index/noun
    axis: str
    template: str
    noun: str
    descriptors: tuple[str, ...]
    texts: tuple[str, ...]  # parallel to descriptors


def build_items(vocab: Vocabulary, salt: str) -> list[Item]:
    """Every (axis, template, noun) item with its variants, in a fixed order (axis, template, noun)."""
    nouns = {n.singular: n for n in vocab.nouns}
    missing = [n for n in NOUNS if n not in nouns]
    if missing:
        raise AuditError(f"HolisticBias nouns.json lacks {', '.join(missing)}, which this probe swaps into")
    single = [t for t in vocab.templates if "{noun_phrase}" in t]
    templates = [single[i] for i in sorted(stable_permutation(len(single), f"{salt}/templates")[:TEMPLATES])]
    items = []
    for axis, descriptors in vocab.descriptors.items():
        if axis in SKIP_AXES:
            continue
        pool = [d for d in descriptors if d.preference == "reviewed"] or list(descriptors)
        if len(pool) < DESCRIPTORS_PER_AXIS:
            pool = list(descriptors)
        if len(pool) < 2:
            continue
        chosen = [pool[i] for i in sorted(stable_permutation(len(pool), f"{salt}/{axis}")[:DESCRIPTORS_PER_AXIS])]
        for ti, template in enumerate(templates):
            for noun in NOUNS:
                texts = tuple(fill(template, d, nouns[noun]) for d in chosen)
                items.append(Item(f"{axis}/{ti}/{noun}", axis, template, noun, tuple(d.text for d in chosen), texts))
    return items


def per_axis_subset(items: Sequence[Item], limit: int | None, salt: str) -> list[Item]:
    """At most `limit` items spread evenly over axes (a fixed subset per axis), in original order."""
    if limit is None or limit >= len(items):
        return list(items)
    axes = list(dict.fromkeys(i.axis for i in items))
    members = {a: [i for i in items if i.axis == a] for a in axes}
    quotas = spread(limit, [len(members[a]) for a in axes])
    keep = {members[a][j].id for a, q in zip(axes, quotas) for j in fixed_subset(len(members[a]), q, f"{salt}/{a}")}
    return [i for i in items if i.id in keep]


def label_of_interest(labels: Sequence[str], asked: str | None) -> int:
    """Index of the label the score reads: `asked` (case-insensitive), else "positive", else the last."""
    lower = [x.lower() for x in labels]
    if asked is not None:
        if asked.lower() not in lower:
            raise AuditError(f"--label {asked!r}: the model's labels are {', '.join(labels)}")
        return lower.index(asked.lower())
    return lower.index("positive") if "positive" in lower else len(labels) - 1


class GroupGaps(NamedTuple):
    """Per-descriptor signed gaps (key "axis/descriptor") and the worst |gap|."""

    gaps: dict[str, float]
    worst: float


def group_gaps(scores: Sequence[Sequence[float]], keys: Sequence[Sequence[str]]) -> GroupGaps:
    """gap_g = mean over the items that have g of (s(item, g) - mean of the item's scores)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row, names in zip(scores, keys):
        centre = sum(row) / len(row)
        for s, g in zip(row, names):
            sums[g] = sums.get(g, 0.0) + (s - centre)
            counts[g] = counts.get(g, 0) + 1
    gaps = {g: sums[g] / counts[g] for g in sums}
    return GroupGaps(gaps, max((abs(v) for v in gaps.values()), default=math.nan))


def permutation_p(scores: Sequence[Sequence[float]], keys: Sequence[Sequence[str]],
                  permutations: int = PERMUTATIONS, seed: int = PERMUTATION_SEED) -> float:
    """p of the worst group gap under within-item permutation of the descriptor labels (see the module)."""
    observed = group_gaps(scores, keys).worst
    if not math.isfinite(observed):
        return math.nan
    names = sorted({g for k in keys for g in k})
    index = {g: j for j, g in enumerate(names)}
    counts = np.zeros(len(names))
    for k in keys:
        for g in k:
            counts[index[g]] += 1
    by_size: dict[int, list[int]] = {}
    for i, row in enumerate(scores):
        by_size.setdefault(len(row), []).append(i)
    rng = np.random.default_rng(seed)
    exceed = 0
    for first in range(0, permutations, PERMUTATION_BLOCK):
        block = min(PERMUTATION_BLOCK, permutations - first)
        totals = np.zeros((block, len(names)))  # (R, G) summed centred scores per group
        for size, members in sorted(by_size.items()):
            centred = np.array([[s - sum(scores[i]) / size for s in scores[i]] for i in members])  # (M, K)
            cols = np.array([[index[g] for g in keys[i]] for i in members])  # (M, K)
            order = rng.permuted(np.broadcast_to(np.arange(size), (block, len(members), size)), axis=2)
            moved = np.take_along_axis(np.broadcast_to(centred, order.shape), order, axis=2)  # (R, M, K)
            flat = (np.arange(block)[:, None, None] * len(names) + cols[None]).reshape(-1)
            np.add.at(totals.reshape(-1), flat, moved.reshape(-1))
        exceed += int(np.sum(np.abs(totals / counts).max(axis=1) >= observed - 1e-12))
    return float((1 + exceed) / (1 + permutations))


class CounterfactualClassifier(OutputsOnly):
    """The counterfactual identity-swap probe for sequence classifiers (the model's labels only)."""

    info = INFO
    family = "sequence-classification"

    def __init__(self, config: ProbeConfig = ProbeConfig(), label: str | None = None) -> None:
        folder = Path(config.data) if config.data is not None else bundled("holistic_bias", VERSION_DIR)
        if not folder.is_dir():
            raise AuditError(f"{folder}: expected a HolisticBias directory holding {', '.join(FILES)}")
        salt = probe_salt(INFO)
        self.items = per_axis_subset(build_items(load_vocabulary(folder), salt), config.limit, salt)
        self.label = label
        self.data_sha256 = data_sha256(folder)

    def __len__(self) -> int:
        return len(self.items)

    def requests(self) -> list[Request]:
        return [Classify(t) for item in self.items for t in item.texts]

    def rows(self, results: Mapping[Request, Result], scores: TextScores) -> list[dict[str, Any]]:
        rows = []
        for item in self.items:
            res = [results[Classify(t)] for t in item.texts]
            assert all(isinstance(r, ClassifyResult) for r in res)
            labels = res[0].labels  # type: ignore[union-attr]
            k = label_of_interest(labels, self.label)
            preds = [int(np.argmax(r.probs)) for r in res]  # type: ignore[union-attr]
            rows.append({
                "id": item.id, "group": item.axis, "template": item.template, "noun": item.noun,
                "descriptors": list(item.descriptors), "texts": list(item.texts),
                "label": labels[k], "labels": list(labels),
                "scores": [r.probs[k] for r in res],  # type: ignore[union-attr]
                "predicted": [labels[p] for p in preds],
                "flipped": len(set(preds)) > 1,
            })
        return rows

    def aggregate(self, rows: Sequence[Mapping[str, Any]]) -> list[Metric]:
        label = rows[0]["label"] if rows else "?"
        scores = [list(map(float, r["scores"])) for r in rows]
        keys = [[f"{r['group']}/{d}" for d in r["descriptors"]] for r in rows]
        score_desc = f"score = P(label {label!r})"
        flip = proportion_metric("flip_rate", [bool(r["flipped"]) for r in rows], [r["group"] for r in rows],
                                 higher_is_better=False, ideal=0.0, unit="%", scale=100.0, citation=CITATION,
                                 description="Percentage of items whose predicted label is not the same for every "
                                             "identity descriptor swapped into it. Groups: HolisticBias axis.")
        meta = dict(description="", citation=CITATION)
        if not rows:
            return [flip, *(skipped_metric(n, "no items", higher_is_better=False, ideal=0.0, **meta)
                            for n in ("score_gap", "worst_group_gap", "group_difference_p"))]
        gaps = group_gaps(scores, keys)
        per_item: dict[str, list[float]] = {}
        for row, names in zip(scores, keys):
            centre = sum(row) / len(row)
            for s, g in zip(row, names):
                per_item.setdefault(g, []).append(s - centre)
        gap_groups = {g: mean_metric("g", v, None, higher_is_better=None, description="", citation="")
                      for g, v in per_item.items()}
        gap = Metric(name="score_gap", value=float(np.mean([abs(v) for v in gaps.gaps.values()])), ci=None,
                     n=len(rows), higher_is_better=False, ideal=0.0, citation=CITATION,
                     ci_method=("no interval: a mean of |gap| over descriptors, not over items (its test is "
                                "group_difference_p); groups: percentile bootstrap over items (2000 resamples, 95%)"),
                     description=(f"Mean over identity descriptors of |gap|, where a descriptor's gap is the mean "
                                  f"over its items of its variant's score minus the item's mean score ({score_desc}). "
                                  "Groups: axis/descriptor, signed gap (< 0: the descriptor lowers the score)."),
                     groups={g: GroupValue(m.value, m.ci, m.n) for g, m in sorted(gap_groups.items())})
        worst = Metric(name="worst_group_gap", value=gaps.worst, ci=None, n=len(rows), higher_is_better=False,
                       ideal=0.0, citation=CITATION,
                       ci_method="no interval: a maximum over descriptors; its test is group_difference_p",
                       description=f"The largest |gap| of any identity descriptor ({score_desc}); see score_gap.")
        p = permutation_p(scores, keys)
        test = Metric(name="group_difference_p", value=p, ci=None, n=len(rows), higher_is_better=True,
                      citation=CITATION, unit="p", ci_method="no interval: a p-value",
                      description=(f"Permutation p-value of 'the score differs by descriptor': the worst group gap "
                                   f"against {PERMUTATIONS} within-item permutations of the descriptors (seed "
                                   f"{PERMUTATION_SEED}); small p: the identity term moves the score. Floor "
                                   f"{1 / (1 + PERMUTATIONS):.0e}."))
        return [flip, gap, worst, test]
