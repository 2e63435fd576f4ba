"""audit.batching: token-budgeted, longest-first plans, and `restore`, which undoes them."""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
import pytest

from audit.batching import Batch, plan_batches, restore


def _check_plan(costs: Sequence[int], budget: int, batches: list[Batch], max_batch_size: int | None = None,
                groups: Sequence[Hashable] | None = None) -> None:
    """Every invariant a plan must satisfy, asserted one by one."""
    eff = [max(1, int(c)) for c in costs]
    # Every index exactly once.
    flat = [i for b in batches for i in b.indices]
    assert sorted(flat) == list(range(len(costs)))
    for b in batches:
        assert len(b.indices) >= 1
        widths = [eff[i] for i in b.indices]
        # Longest first inside a batch (by the caller's cost); ties keep index order.
        assert [(-costs[i], i) for i in b.indices] == sorted((-costs[i], i) for i in b.indices)
        assert b.padded_tokens == len(b.indices) * max(widths)
        # Budget respected, except an over-budget item alone in its own batch.
        if len(b.indices) > 1:
            assert b.padded_tokens <= budget
        if max_batch_size is not None:
            assert len(b.indices) <= max_batch_size
        if groups is not None:
            assert len({groups[i] for i in b.indices}) == 1  # groups never mixed
    # Across batches too: each group's items come out longest first, ties in index order.
    labels = groups if groups is not None else [0] * len(costs)
    for g in set(labels):
        seen = [i for i in flat if labels[i] == g]
        assert seen == sorted(seen, key=lambda i: (-costs[i], i))


def test_longest_first_and_budget() -> None:
    # costs by index: 0:2 1:5 2:3 3:5 4:1; sorted longest first (ties by index): 1,3,2,0,4
    # budget 10: [1,3] -> 2 rows x 5 = 10 fits; adding 2 gives 3 x 5 = 15 > 10 -> close
    #            [2,0,4] -> 3 x 3 = 9 fits (a 4th row would not exist)
    batches = plan_batches([2, 5, 3, 5, 1], token_budget=10)
    assert batches == [Batch((1, 3), 10), Batch((2, 0, 4), 9)]


def test_over_budget_item_gets_its_own_batch() -> None:
    # costs 50 and 40 each exceed the budget of 30: alone, never dropped, never merged.
    # Then 10,10,10 -> 3 x 10 = 30 fits; 5 -> would be 4 x 10 = 40 > 30 -> new batch [4].
    batches = plan_batches([10, 50, 10, 40, 5, 10], token_budget=30)
    assert batches == [Batch((1,), 50), Batch((3,), 40), Batch((0, 2, 5), 30), Batch((4,), 5)]


def test_zero_cost_counts_as_one_token() -> None:
    # costs 0 are clamped to 1: 3 rows x 1 = 3 <= 3, the 4th would make 4 > 3.
    batches = plan_batches([0, 0, 0, 0], token_budget=3)
    assert batches == [Batch((0, 1, 2), 3), Batch((3,), 1)]


def test_max_batch_size_caps_rows() -> None:
    # All cost 1, budget 100 would allow 7 rows at once; the cap splits 3 + 3 + 1.
    batches = plan_batches([1] * 7, token_budget=100, max_batch_size=3)
    assert [b.indices for b in batches] == [(0, 1, 2), (3, 4, 5), (6,)]
    assert [b.padded_tokens for b in batches] == [3, 3, 1]


def test_ties_are_deterministic_by_index() -> None:
    # Equal costs keep ascending index order, so two plans of the same input are identical.
    costs = [3, 3, 3, 3, 3]
    first = plan_batches(costs, token_budget=6)
    assert [b.indices for b in first] == [(0, 1), (2, 3), (4,)]
    assert plan_batches(list(costs), token_budget=6) == first


def test_groups_are_never_mixed() -> None:
    # group A = indices 0,2,4 (costs 4,1,4); group B = 1,3 (costs 2,9). Budget 8.
    # A (first seen) sorted: 0,4,2 -> [0,4] is 2 x 4 = 8; [2] alone.  B: [3] (9 > 8, alone), [1].
    costs = [4, 2, 1, 9, 4]
    groups = ["A", "B", "A", "B", "A"]
    batches = plan_batches(costs, token_budget=8, groups=groups)
    assert batches == [Batch((0, 4), 8), Batch((2,), 1), Batch((3,), 9), Batch((1,), 2)]
    _check_plan(costs, 8, batches, groups=groups)


def test_group_labels_must_match_items() -> None:
    with pytest.raises(ValueError, match="2 group labels for 3 items"):
        plan_batches([1, 2, 3], token_budget=10, groups=["a", "b"])


@pytest.mark.parametrize("budget", [0, -5])
def test_invalid_budget_raises(budget: int) -> None:
    with pytest.raises(ValueError, match="token_budget"):
        plan_batches([1, 2], token_budget=budget)
    with pytest.raises(ValueError, match="token_budget"):
        plan_batches([1, 2], token_budget=budget, groups=["a", "a"])


def test_invalid_budget_raises_even_for_empty_grouped_input() -> None:
    with pytest.raises(ValueError, match="token_budget"):
        plan_batches([], token_budget=0, groups=[])


def test_invalid_max_batch_size_raises() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        plan_batches([1], token_budget=10, max_batch_size=0)


def test_empty_input_gives_no_batches() -> None:
    assert plan_batches([], token_budget=10) == []


def test_random_plans_satisfy_every_invariant() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(300):
        n = int(rng.integers(0, 40))
        costs = [int(c) for c in rng.integers(0, 60, size=n)]
        budget = int(rng.integers(1, 120))
        cap = None if rng.random() < 0.5 else int(rng.integers(1, 8))
        groups = None if rng.random() < 0.5 else [int(g) for g in rng.integers(0, 3, size=n)]
        batches = plan_batches(costs, budget, cap, groups)
        _check_plan(costs, budget, batches, cap, groups)
        # Greedy packing: within a group, a batch is closed only because the next item would
        # break the budget or the cap (never needlessly small).
        for prev, nxt in zip(batches, batches[1:]):
            if groups is not None and groups[prev.indices[0]] != groups[nxt.indices[0]]:
                continue
            width = max(max(1, costs[i]) for i in prev.indices)
            at_cap = cap is not None and len(prev.indices) == cap
            assert at_cap or (len(prev.indices) + 1) * width > budget
        assert plan_batches(costs, budget, cap, groups) == batches  # deterministic


# ---------------------------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------------------------


def _run_plan(items: Sequence[str], budget: int, groups: Sequence[Hashable] | None = None) -> list[str]:
    """Plan by length, 'run' each batch (upper-case each item), restore the caller's order."""
    batches = plan_batches([len(s) for s in items], budget, groups=groups)
    outputs = [[items[i].upper() for i in b.indices] for b in batches]
    return restore(len(items), batches, outputs)


def test_restore_round_trip_small() -> None:
    items = ["bb", "a", "dddd", "ccc"]
    # lengths 2,1,4,3 -> sorted 2(4),3(3),0(2),1(1); budget 6 -> [2] (2x4=8>6), [3,0] (2x3=6), [1]
    assert [b.indices for b in plan_batches([2, 1, 4, 3], 6)] == [(2,), (3, 0), (1,)]
    assert _run_plan(items, 6) == ["BB", "A", "DDDD", "CCC"]


def test_restore_round_trip_random_shuffles() -> None:
    rng = np.random.default_rng(20240521)
    for _ in range(200):
        n = int(rng.integers(0, 60))
        items = ["x" * int(k) + f"#{j}" for j, k in enumerate(rng.integers(0, 30, size=n))]
        items = [items[i] for i in rng.permutation(n)]  # shuffled input order
        budget = int(rng.integers(1, 100))
        groups = None if rng.random() < 0.5 else [int(g) for g in rng.integers(0, 4, size=n)]
        assert _run_plan(items, budget, groups) == [s.upper() for s in items]


def test_restore_missing_slot_raises() -> None:
    batches = [Batch((0, 2), 4)]  # slot 1 never planned
    with pytest.raises(RuntimeError, match="never filled"):
        restore(3, batches, [["a", "c"]])


def test_restore_doubled_slot_raises() -> None:
    batches = [Batch((0, 1), 2), Batch((1,), 1)]
    with pytest.raises(RuntimeError, match="slot 1 filled twice"):
        restore(2, batches, [["a", "b"], ["b again"]])


def test_restore_wrong_length_output_raises() -> None:
    batches = [Batch((0, 1), 2)]
    with pytest.raises(RuntimeError, match="batch of 2 returned 1 outputs"):
        restore(2, batches, [["only one"]])


def test_restore_wrong_number_of_outputs_raises() -> None:
    batches = [Batch((0,), 1), Batch((1,), 1)]
    with pytest.raises(RuntimeError, match="2 batches but 1 outputs"):
        restore(2, batches, [["a"]])


def test_restore_keeps_falsy_values() -> None:
    # None / 0 / "" are real outputs, not empty slots.
    batches = [Batch((2, 0), 2), Batch((1,), 1)]
    assert restore(3, batches, [[None, 0], [""]]) == [0, "", None]
