"""Metrics of the head audits (counterfactual classifier, extractive-QA bias) on hand-worked fixtures."""

from __future__ import annotations

import math

import pytest

from audit.backends.heads import best_span, candidate_score, family_of_architectures
from audit.errors import AuditError
from probes.counterfactual_classifier import group_gaps, label_of_interest, permutation_p
from probes.qa_bias import f1_score, normalize_answer, sign_flip_p, two_way


def test_group_gaps_hand_worked() -> None:
    # item 1: scores a=0.2, b=0.6 -> mean 0.4 -> centred a=-0.2, b=+0.2
    # item 2: scores a=0.1, b=0.5, c=0.9 -> mean 0.5 -> centred a=-0.4, b=0.0, c=+0.4
    # gap_a = (-0.2 - 0.4) / 2 = -0.3; gap_b = (0.2 + 0.0) / 2 = 0.1; gap_c = 0.4; worst |gap| = 0.4
    gaps = group_gaps([[0.2, 0.6], [0.1, 0.5, 0.9]], [["a", "b"], ["a", "b", "c"]])
    assert gaps.gaps == pytest.approx({"a": -0.3, "b": 0.1, "c": 0.4})
    assert gaps.worst == pytest.approx(0.4)


def test_permutation_p_two_variants_is_a_sign_flip() -> None:
    # 3 items, 2 variants, "a" always lower: observed worst |gap| = mean(0.4, 0.3, 0.2) = 0.3. Permuting
    # labels within an item flips the sign of its difference; |gap| reaches 0.3 only when all three signs
    # agree: 2 of the 8 patterns, exact p = 0.25 (Monte Carlo with 9999 draws: within 0.02 of it).
    p = permutation_p([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]], [["a", "b"]] * 3)
    assert abs(p - 0.25) < 0.02
    # mixed signs: a's centred scores are -0.4, +0.3, -0.2, so |gap| = |-0.3| / 3 = 0.1. A permutation
    # gives |(+-0.4 +- 0.3 +- 0.2)| / 3, which is >= 0.1 when the sum is 0.9, 0.5 or 0.3 in absolute value
    # (6 of the 8 sign patterns; only +-0.1 falls short) -> exact p = 0.75
    p = permutation_p([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], [["a", "b"]] * 3)
    assert abs(p - 0.75) < 0.02


def test_permutation_p_floor_for_a_consistent_effect() -> None:
    # 20 items, "a" always lowest by 0.5: exact p = 2 x 2^-20 (the two all-same-sign patterns) = 1.9e-6;
    # 9999 draws almost surely hit neither, so p is the Monte Carlo floor 1 / (1 + 9999) = 0.0001
    p = permutation_p([[0.0, 0.5]] * 20, [["a", "b"]] * 20)
    assert p == pytest.approx(1e-4)


def test_label_of_interest() -> None:
    assert label_of_interest(("negative", "positive"), None) == 1  # a label named positive
    assert label_of_interest(("POSITIVE", "NEGATIVE"), None) == 0  # case-insensitive
    assert label_of_interest(("toxic", "severe", "ok"), None) == 2  # else the last label
    assert label_of_interest(("negative", "positive"), "Negative") == 0
    with pytest.raises(AuditError, match="the model's labels are negative, positive"):
        label_of_interest(("negative", "positive"), "neutral")


def test_sign_flip_p_exact() -> None:
    # [1, 1, 1]: |mean| = 1 is reached by the 2 all-same-sign patterns of 8 -> p = 0.25
    assert sign_flip_p([1.0, 1.0, 1.0]) == pytest.approx(0.25)
    # [1, -1]: |mean| = 0, every pattern reaches it -> p = 1
    assert sign_flip_p([1.0, -1.0]) == pytest.approx(1.0)
    assert math.isnan(sign_flip_p([]))


def test_two_way_probability_difference() -> None:
    # softmax over (2, 0): p = e^2 / (e^2 + 1) = 0.8808; difference 2p - 1 = 0.7616 = tanh(1)
    assert two_way(2.0, 0.0) == pytest.approx(0.761594, abs=1e-6)
    assert two_way(0.0, 0.0) == 0.0


def test_squad_normalisation_and_f1() -> None:
    assert normalize_answer("The Grandson!") == "grandson"
    assert f1_score("the grandson", "grandson") == 1.0
    # prediction "old grandson friend" (3 tokens) vs gold "grandson" (1): overlap 1, P = 1/3, R = 1,
    # F1 = 2 * (1/3) / (4/3) = 0.5
    assert f1_score("old grandson friend", "grandson") == pytest.approx(0.5)
    assert f1_score("grandfather", "grandson") == 0.0


def test_best_span_respects_order_and_length() -> None:
    # start = [0, 3, 1], end = [5, 0, 2]: s <= e forbids (1, 0) = 3 + 5 = 8; the allowed sums are
    # (0,0)=5 (0,1)=0 (0,2)=2 (1,1)=3 (1,2)=5 (2,2)=3: a tie at 5, which goes to the first pair (0, 0)
    assert best_span([0.0, 3.0, 1.0], [5.0, 0.0, 2.0], 30) == (0, 0, 5.0)
    start, end = [0.0, 3.0, 1.0], [0.0, 0.0, 4.0]
    # sums (0,0)=0 (0,1)=0 (0,2)=4 (1,1)=3 (1,2)=7 (2,2)=5: best (1, 2) = 3 + 4 = 7
    assert best_span(start, end, 30) == (1, 2, 7.0)
    # at most 1 token: only s == e, (0,0)=0 (1,1)=3 (2,2)=5 -> (2, 2) = 1 + 4 = 5
    assert best_span(start, end, 1) == (2, 2, 5.0)
    assert best_span([], [], 30) is None


def test_candidate_score_best_occurrence() -> None:
    # context "a cat and a cat", tokens at chars [0,1) [1,5) [5,9) [9,11) [11,15)
    offsets = [(0, 1), (1, 5), (5, 9), (9, 11), (11, 15)]
    start, end = [0.0, 1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0, 0.5]
    # "cat" occurs at 2..5 (token 1: 1 + 1 = 2) and 12..15 (token 4: 2 + 0.5 = 2.5) -> 2.5
    assert candidate_score("a cat and a cat", "CAT", offsets, start, end) == pytest.approx(2.5)
    assert candidate_score("a cat and a cat", "dog", offsets, start, end) is None


def test_family_of_architectures() -> None:
    assert family_of_architectures(["OPTForCausalLM"]) == "causal-lm"
    assert family_of_architectures(["OPTForSequenceClassification"]) == "sequence-classification"
    assert family_of_architectures(["RobertaForQuestionAnswering"]) == "question-answering"
    assert family_of_architectures([]) == "causal-lm"
