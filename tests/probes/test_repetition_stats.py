"""probes.repetition_stats: seq-rep-n, distinct-n (+ jackknife CI) and the loop detector,
each checked by hand on sequences of a few tokens."""

from __future__ import annotations

import pytest

from audit.metrics import Z95
from probes.repetition_stats import (PHRASE_LOOP, TOKEN_LOOP, Loop, detect_loop, distinct_n, distinct_n_jackknife_ci,
                                     loop_char_start, ngrams, seq_rep_n)


def test_ngrams() -> None:
    assert ngrams([1, 2, 3], 2) == [(1, 2), (2, 3)]
    assert ngrams([1, 2, 3], 3) == [(1, 2, 3)]
    assert ngrams([1, 2], 3) == []


# ---------------------------------------------------------------------------------------------
# seq_rep_n (Welleck et al. 2019): 1 - unique n-grams / n-grams, per continuation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens, n, expected", [
    ([1, 2, 3, 4], 1, 0.0),  # 4 unigrams, 4 unique -> 1 - 4/4 = 0
    ([5, 5, 5, 5], 1, 0.75),  # 4 unigrams, 1 unique -> 1 - 1/4
    ([1, 2, 1, 2], 2, 1 / 3),  # (1,2) (2,1) (1,2): 3 bigrams, 2 unique -> 1 - 2/3
    ([1, 2, 1, 2, 1, 2], 2, 0.6),  # 5 bigrams, 2 unique -> 1 - 2/5
    ([1, 2, 3, 1, 2, 3], 3, 0.25),  # 4 trigrams, 3 unique -> 1 - 3/4
    ([7], 1, 0.0),  # 1 unigram, 1 unique
])
def test_seq_rep_n(tokens: list[int], n: int, expected: float) -> None:
    assert seq_rep_n(tokens, n) == pytest.approx(expected)


@pytest.mark.parametrize("tokens, n", [([], 1), ([1], 2), ([1, 2, 3], 4)])
def test_seq_rep_n_undefined_when_too_short(tokens: list[int], n: int) -> None:
    assert seq_rep_n(tokens, n) is None  # undefined, not 0


# ---------------------------------------------------------------------------------------------
# distinct_n (Li et al. 2016, corpus level): distinct n-grams / total tokens
# ---------------------------------------------------------------------------------------------


def test_distinct_n_corpus_level() -> None:
    corpus = [[1, 2, 3], [1, 2, 4]]
    # unigrams {1,2,3,4} = 4 distinct, 6 tokens -> 4/6
    assert distinct_n(corpus, 1) == pytest.approx(4 / 6)
    # bigrams {(1,2),(2,3),(2,4)} = 3 distinct, still over 6 tokens (not over 4 bigrams) -> 0.5
    assert distinct_n(corpus, 2) == pytest.approx(0.5)


def test_distinct_n_counts_tokens_of_short_continuations() -> None:
    # [9] has no bigram but its token counts: bigrams {(1,1)} = 1 over 3 + 1 = 4 tokens
    assert distinct_n([[1, 1, 1], [9]], 2) == pytest.approx(0.25)
    # an empty continuation adds nothing: {(1,1)} over 3 tokens
    assert distinct_n([[1, 1, 1], []], 2) == pytest.approx(1 / 3)


def test_distinct_n_no_tokens_is_none() -> None:
    assert distinct_n([], 1) is None
    assert distinct_n([[], []], 1) is None


# ---------------------------------------------------------------------------------------------
# distinct_n_jackknife_ci
# ---------------------------------------------------------------------------------------------

A, B, C = [1, 2], [2, 3], [4, 4, 4, 4]


def test_jackknife_leave_one_out_values_by_hand() -> None:
    # Full corpus: distinct unigrams {1,2,3,4} = 4 over 2+2+4 = 8 tokens -> 0.5
    # Without A: B+C {2,3,4} = 3 over 6 -> 0.5 (A's "2" survives in B; only "1" leaves)
    # Without B: A+C {1,2,4} = 3 over 6 -> 0.5
    # Without C: A+B {1,2,3} = 3 over 4 -> 0.75
    assert distinct_n([A, B, C], 1) == 0.5
    assert distinct_n([B, C], 1) == 0.5
    assert distinct_n([A, C], 1) == 0.5
    assert distinct_n([A, B], 1) == 0.75


def test_jackknife_ci_by_hand() -> None:
    # leave-one-out values (above) 0.5, 0.5, 0.75, mean 7/12
    # deviations -1/12, -1/12, +2/12 -> squares sum (1 + 1 + 4) / 144 = 1/24
    # se = sqrt((k-1)/k * 1/24) = sqrt(2/3 * 1/24) = sqrt(1/36) = 1/6
    # CI = 0.5 -/+ 1.959964 / 6 = 0.5 -/+ 0.3266607 -> (0.1733393, 0.8266607)
    lo, hi = distinct_n_jackknife_ci([A, B, C], 1)
    assert lo == pytest.approx(0.5 - Z95 / 6, abs=1e-12)
    assert hi == pytest.approx(0.5 + Z95 / 6, abs=1e-12)
    assert lo == pytest.approx(0.1733393, abs=1e-7)


def test_jackknife_ci_contains_the_point_estimate() -> None:
    corpus = [[1, 2, 3, 2, 1], [4, 4, 4], [1, 5, 6, 7], [8, 1, 2, 3, 9, 9]]
    for n in (1, 2):
        value = distinct_n(corpus, n)
        lo, hi = distinct_n_jackknife_ci(corpus, n)
        assert lo <= value <= hi
        assert lo < hi


def test_jackknife_identical_continuations_have_zero_width() -> None:
    # Full: {1,2} over 4 tokens = 0.5; without either copy: {1,2} over 2 = 1.0 both times,
    # so the leave-one-out values do not spread: se = 0 and the interval is the point 0.5.
    lo, hi = distinct_n_jackknife_ci([[1, 2], [1, 2]], 1)
    assert (lo, hi) == (0.5, 0.5)


@pytest.mark.parametrize("corpus", [[], [[1, 2, 3]]])
def test_jackknife_needs_two_continuations(corpus: list[list[int]]) -> None:
    assert distinct_n_jackknife_ci(corpus, 1) is None


def test_jackknife_none_when_leaving_one_out_empties_the_corpus() -> None:
    # Without [1, 2] there are no tokens left, so that leave-one-out value is undefined.
    assert distinct_n_jackknife_ci([[1, 2], []], 1) is None


# ---------------------------------------------------------------------------------------------
# detect_loop
# ---------------------------------------------------------------------------------------------


def test_loop_period_one() -> None:
    # tail 3,3,3 from index 2: period 1, 3 repeats
    assert detect_loop([1, 2, 3, 3, 3]) == Loop(period=1, start=2, repeats=3.0)


def test_loop_period_two() -> None:
    # 5 | 1 2 | 1 2 | 1 2 : the periodic tail starts at index 1, 6 tokens / 2 = 3 repeats
    assert detect_loop([5, 1, 2, 1, 2, 1, 2]) == Loop(period=2, start=1, repeats=3.0)


def test_loop_tail_ending_mid_phrase() -> None:
    # 9 | 1 2 3 | 1 2 3 | 1 2 3 | 1 : tail of 10 tokens (index 1..10) with period 3 -> 10/3 repeats
    loop = detect_loop([9, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    assert loop is not None
    assert (loop.period, loop.start) == (3, 1)
    assert loop.repeats == pytest.approx(10 / 3)


def test_loop_whole_sequence() -> None:
    assert detect_loop([4, 4, 4, 4, 4, 4]) == Loop(period=1, start=0, repeats=6.0)


@pytest.mark.parametrize("tokens", [
    [], [1], [7, 7], [1, 2, 3, 4, 5, 6, 7],
    [1, 2, 1, 2, 3],  # ends in a non-repeating token
    [3, 3, 1, 2],  # a repeat at the start only
    [1, 2, 1, 2, 5],
])
def test_no_loop(tokens: list[int]) -> None:
    assert detect_loop(tokens) is None


def test_primitive_period_is_chosen() -> None:
    # [1,2,1,2,1,2,1,2] is also periodic with 4, but 2 is the shortest period.
    assert detect_loop([1, 2, 1, 2, 1, 2, 1, 2]) == Loop(period=2, start=0, repeats=4.0)
    # [8,8,8,8,8,8] is periodic with 1, 2 and 3: period 1 wins.
    assert detect_loop([8] * 6).period == 1


def test_min_repeats_is_respected() -> None:
    seq = [1, 2, 1, 2, 1, 2]  # 3 repeats of (1, 2)
    assert detect_loop(seq, min_repeats=3) == Loop(period=2, start=0, repeats=3.0)
    assert detect_loop(seq, min_repeats=4) is None
    # two 3s at the end are too few by default (need 3), enough with min_repeats=2
    assert detect_loop([1, 2, 3, 3]) is None
    assert detect_loop([1, 2, 3, 3], min_repeats=2) == Loop(period=1, start=2, repeats=2.0)


def test_max_period_is_respected() -> None:
    phrase = list(range(100, 117))  # 17 distinct tokens
    seq = [0] + phrase * 3
    assert detect_loop(seq) is None  # default max_period is 16
    assert detect_loop(seq, max_period=17) == Loop(period=17, start=1, repeats=3.0)
    assert detect_loop([0] + list(range(100, 116)) * 3) == Loop(period=16, start=1, repeats=3.0)


def test_loop_kind_tells_stutter_from_phrase_loops() -> None:
    # "3 3 3": one token repeated (period 1) is stutter; "1 2 1 2 1 2" (period 2) and a 7-token phrase
    # (period 7) are phrase loops; a phrase with a doubled token inside ("a a b" x 3) has period 3, since
    # no shorter period explains the whole tail.
    assert detect_loop([1, 2, 3, 3, 3]).kind == TOKEN_LOOP == "token"
    assert detect_loop([5, 1, 2, 1, 2, 1, 2]).kind == PHRASE_LOOP == "phrase"
    assert detect_loop([9] + list(range(10, 17)) * 3).period == 7
    loop = detect_loop([4, 4, 5] * 3)
    assert (loop.period, loop.start, loop.kind) == (3, 0, PHRASE_LOOP)


def test_loop_char_start_finds_the_repeating_tail() -> None:
    # "Once upon" + " the end" x 3: the tail " the end the end the end" (period 8, 24 chars) starts at 9
    assert loop_char_start("Once upon the end the end the end") == 9
    # the longest periodic tail wins over a short one inside it: "ab" x 4 also has period-1 runs nowhere,
    # and "xaaaa" has period 1 from index 1 (4 >= 3 repeats)
    assert loop_char_start("zabababab") == 1
    assert loop_char_start("xaaaa") == 1
    # fewer than 3 repeats is no loop
    assert loop_char_start("hello hello") is None
    assert loop_char_start("") is None
