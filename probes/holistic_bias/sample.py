"""The seeded HolisticBias sample: how many descriptors, templates and nouns a run takes, and which.

Every choice is a fixed permutation seeded by a salt (the probe name and version), never by the run
seed or a global RNG, so runs with different seeds audit the same sentences and the gate can pair them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from audit.metrics import stable_permutation
from probes.holistic_bias.vocabulary import Descriptor, Noun, Vocabulary, fill

DESCRIPTORS_PER_AXIS = 10  # full run: descriptors sampled per axis (all when an axis has fewer)
TEMPLATES = 6  # full run: templates, the same for every axis
MIN_NOUNS = 8  # a smaller limit keeps >= 8 nouns (8 vs 8 can reach p ~ 0.0002) before dropping descriptors
MIN_DESCRIPTORS = 3  # ... and >= 3 descriptors per axis (3 pairs) before going below 8 nouns
# 13 axes x 5 descriptors x 1 template x 8 nouns = 520 sentences: 10 pairs per axis, 8 vs 8 each.
QUICK_LIMIT = 520


class Design(NamedTuple):
    """How many descriptors (per axis), templates and nouns the sample takes."""

    descriptors: int
    templates: int
    nouns: int


def design_for_limit(limit: int | None, n_axes: int, n_templates: int, n_nouns: int) -> Design:
    """The largest design within `limit` sentences: shrink templates, then nouns to MIN_NOUNS, then
    descriptors to MIN_DESCRIPTORS, then nouns and descriptors down to 1."""
    d, t, k = DESCRIPTORS_PER_AXIS, min(TEMPLATES, n_templates), n_nouns
    if limit is None:
        return Design(d, t, k)
    budget = max(1, limit // max(1, n_axes))  # sentences per axis
    t = max(1, min(t, budget // (d * k)))
    if d * t * k > budget:
        k = max(min(k, MIN_NOUNS), budget // (d * t))
    if d * t * k > budget:
        d = max(MIN_DESCRIPTORS, budget // k)
    if d * t * k > budget:
        k = max(1, budget // d)
    if d * t * k > budget:
        d = max(1, budget // k)
    return Design(d, t, k)


def permutation(n: int, salt: str) -> list[int]:
    """A fixed permutation of range(n) that depends only on `salt` (own Generator, no global RNG)."""
    return [int(i) for i in stable_permutation(n, salt)]


def noun_order(nouns: Sequence[Noun], salt: str) -> list[Noun]:
    """Nouns in a fixed order that alternates genders, so any prefix is gender-balanced."""
    by_gender: dict[str, list[Noun]] = defaultdict(list)
    for n in nouns:
        by_gender[n.gender].append(n)
    queues = [[ns[i] for i in permutation(len(ns), f"{salt}/nouns/{g}")] for g, ns in sorted(by_gender.items())]
    order = []
    for i in range(max(len(q) for q in queues)):
        order.extend(q[i] for q in queues if i < len(q))
    return order


@dataclass(frozen=True)
class Sentence:
    id: str  # "<axis>/<descriptor>/<noun>/<template number in sentence_templates.json>"
    descriptor: Descriptor
    noun: Noun
    template_no: int
    template: str
    text: str


def sample_sentences(vocab: Vocabulary, design: Design, salt: str) -> list[Sentence]:
    """Per axis: the first `design.descriptors` of a seeded descriptor order, crossed with the first
    `design.templates` templates and `design.nouns` nouns of seeded orders shared by all axes."""
    template_nos = sorted(permutation(len(vocab.templates), f"{salt}/templates")[:design.templates])
    nouns = noun_order(vocab.nouns, salt)[:design.nouns]
    nouns.sort(key=vocab.nouns.index)
    out = []
    for axis, descriptors in vocab.descriptors.items():
        chosen = sorted(permutation(len(descriptors), f"{salt}/descriptors/{axis}")[:design.descriptors])
        for di in chosen:
            d = descriptors[di]
            for t in template_nos:
                template = vocab.templates[t]
                for n in nouns:
                    out.append(Sentence(f"{axis}/{d.text}/{n.singular}/{t}", d, n, t, template, fill(template, d, n)))
    return out

