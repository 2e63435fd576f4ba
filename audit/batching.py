"""Length-sorted, token-budgeted batching: the only place in opt-audit that reorders requests.

Sorting by length keeps padding small; a token budget (rather than a fixed count) keeps memory
flat whether prompts are 10 or 1,000 tokens long. `restore` undoes the permutation, and checks
that every slot was filled exactly once, so a batching bug can never shuffle scores between items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """Indices into the caller's list, longest first, and the padded token footprint."""

    indices: tuple[int, ...]
    padded_tokens: int  # len(indices) * longest cost in the batch


def plan_batches(
    costs: Sequence[int],
    token_budget: int,
    max_batch_size: int | None = None,
    groups: Sequence[Hashable] | None = None,
) -> list[Batch]:
    """Group items into batches whose padded size (rows x longest row) fits `token_budget`.

    Items are sorted longest first (stable on ties, so the plan is deterministic), which makes
    the first batch the largest: an out-of-memory error shows up at once rather than at the end.
    An item longer than the budget gets a batch of its own rather than being dropped. Items of
    different `groups` (e.g. different decoding parameters) never share a batch.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be >= 1, got {token_budget}")
    if max_batch_size is not None and max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if groups is not None:
        if len(groups) != len(costs):
            raise ValueError(f"{len(groups)} group labels for {len(costs)} items")
        by_group: dict[Hashable, list[int]] = {}
        for i, g in enumerate(groups):
            by_group.setdefault(g, []).append(i)
        planned: list[Batch] = []
        for members in by_group.values():
            for b in plan_batches([costs[i] for i in members], token_budget, max_batch_size):
                planned.append(Batch(tuple(members[j] for j in b.indices), b.padded_tokens))
        return planned
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    batches: list[Batch] = []
    current: list[int] = []
    longest = 0
    for i in order:
        c = max(1, int(costs[i]))
        width = max(longest, c)
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (width * (len(current) + 1) > token_budget or full):
            batches.append(Batch(tuple(current), longest * len(current)))
            current, width = [], c
        current.append(i)
        longest = width
    if current:
        batches.append(Batch(tuple(current), longest * len(current)))
    return batches


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
