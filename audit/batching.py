"""Length-sorted, token-budgeted batching: the only place in opt-audit that reorders requests.

Sorting by length keeps padding small; a token budget (rather than a fixed count) keeps memory
flat whether prompts are 10 or 1,000 tokens long. `restore` undoes the permutation, and checks
that every slot was filled exactly once, so a batching bug can never shuffle scores between items.

Items that share a prefix (the options of one multiple-choice question) are planned next to each
other, so that they land in one batch, where the backend computes the prefix once; their footprint
counts the prefix once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Hashable, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """Indices into the caller's list, longest first (a shared group together, where its longest
    member falls), and the padded token footprint."""

    indices: tuple[int, ...]
    padded_tokens: int  # rows x longest row; a shared prefix counts once per batch (see plan_batches)


@dataclass(frozen=True)
class SharedPrefix:
    """An item's first `tokens` tokens are computed once for all items of the same `key` in a batch."""

    key: Hashable
    tokens: int


def plan_batches(
    costs: Sequence[int],
    token_budget: int,
    max_batch_size: int | None = None,
    groups: Sequence[Hashable] | None = None,
    shared: Sequence[SharedPrefix | None] | None = None,
) -> list[Batch]:
    """Group items into batches whose padded size (rows x longest row) fits `token_budget`.

    Items are sorted longest first (stable on ties, so the plan is deterministic), which makes
    the first batch the largest: an out-of-memory error shows up at once rather than at the end.
    An item longer than the budget gets a batch of its own rather than being dropped. Items of
    different `groups` (e.g. different decoding parameters) never share a batch.

    With `shared`, items of one key (at least two of them) are planned consecutively, their group
    placed by its longest item, and a batch's footprint is
        plain rows x longest plain row + keys x longest prefix + shared rows x longest remainder
    (remainder = cost - prefix): the prefix is computed once per key. A group that does not fit what
    is left of a batch continues in the next one, which computes its prefix again.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be >= 1, got {token_budget}")
    if max_batch_size is not None and max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if shared is not None and len(shared) != len(costs):
        raise ValueError(f"{len(shared)} shared prefixes for {len(costs)} items")
    if groups is not None:
        if len(groups) != len(costs):
            raise ValueError(f"{len(groups)} group labels for {len(costs)} items")
        by_group: dict[Hashable, list[int]] = {}
        for i, g in enumerate(groups):
            by_group.setdefault(g, []).append(i)
        planned: list[Batch] = []
        for members in by_group.values():
            sub = None if shared is None else [shared[i] for i in members]
            for b in plan_batches([costs[i] for i in members], token_budget, max_batch_size, shared=sub):
                planned.append(Batch(tuple(members[j] for j in b.indices), b.padded_tokens))
        return planned
    eff = [max(1, int(c)) for c in costs]
    prefix = _shared_prefixes(shared, len(costs))
    batches: list[Batch] = []
    current: list[int] = []
    keys: set[Hashable] = set()  # shared keys in the current batch
    fill = _Fill()
    for i in _order(costs, prefix):
        p = prefix[i]
        grown = fill.plus(eff[i], p, new_key=p is not None and p.key not in keys)
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (grown.tokens() > token_budget or full):
            batches.append(Batch(tuple(current), fill.tokens()))
            current, keys = [], set()
            grown = _Fill().plus(eff[i], p, new_key=p is not None)
        current.append(i)
        if p is not None:
            keys.add(p.key)
        fill = grown
    if current:
        batches.append(Batch(tuple(current), fill.tokens()))
    return batches


def _shared_prefixes(shared: Sequence[SharedPrefix | None] | None, n: int) -> list[SharedPrefix | None]:
    """Each item's shared prefix, kept only where another item has the same key: alone, an item
    shares nothing and is planned (and run) as a plain row."""
    if shared is None:
        return [None] * n
    count: dict[Hashable, int] = {}
    for s in shared:
        if s is not None:
            count[s.key] = count.get(s.key, 0) + 1
    return [s if s is not None and count[s.key] > 1 else None for s in shared]


def _order(costs: Sequence[int], prefix: Sequence[SharedPrefix | None]) -> list[int]:
    """Longest first, ties in index order; the members of a shared key run together, placed where
    their longest member would be."""
    units: dict[Hashable, list[int]] = {}
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        p = prefix[i]
        key = ("item", i) if p is None else ("shared", p.key)
        units.setdefault(key, []).append(i)  # dict order: by each unit's longest (first) member
    return [i for members in units.values() for i in members]


@dataclass(frozen=True)
class _Fill:
    """The footprint of a batch being filled (see `plan_batches`)."""

    plain_rows: int = 0
    plain_width: int = 0
    shared_keys: int = 0
    prefix_width: int = 0  # longest shared prefix
    shared_rows: int = 0
    rest_width: int = 0  # longest remainder of a shared row after its prefix

    def tokens(self) -> int:
        return (self.plain_rows * self.plain_width + self.shared_keys * self.prefix_width
                + self.shared_rows * self.rest_width)

    def plus(self, cost: int, prefix: SharedPrefix | None, new_key: bool) -> "_Fill":
        """This batch with one more item."""
        if prefix is None:
            return replace(self, plain_rows=self.plain_rows + 1, plain_width=max(self.plain_width, cost))
        tokens = min(prefix.tokens, cost - 1)  # at least one token of the row is its own
        return replace(self, shared_keys=self.shared_keys + int(new_key),
                       prefix_width=max(self.prefix_width, tokens), shared_rows=self.shared_rows + 1,
                       rest_width=max(self.rest_width, cost - tokens))


def restore(n: int, batches: Sequence[Batch], outputs: Sequence[Sequence[T]]) -> list[T]:
    """Put batch outputs back in the caller's order; fail loudly on a missing or doubled slot."""
    if len(batches) != len(outputs):
        raise RuntimeError(f"{len(batches)} batches but {len(outputs)} outputs")
    slots: list[T | None] = [None] * n
    filled = [False] * n
    for batch, out in zip(batches, outputs):
        if len(out) != len(batch.indices):
            raise RuntimeError(f"batch of {len(batch.indices)} returned {len(out)} outputs")
        for i, value in zip(batch.indices, out):
            if filled[i]:
                raise RuntimeError(f"slot {i} filled twice")
            slots[i] = value
            filled[i] = True
    missing = [i for i, f in enumerate(filled) if not f]
    if missing:
        raise RuntimeError(f"{len(missing)} slots never filled, first {missing[:5]}")
    return slots  # type: ignore[return-value]
