"""Degeneration statistics on token sequences: seq-rep-n, distinct-n and loop detection.

Pure functions on lists of token ids, so each can be checked by hand on tiny sequences.

A loop is told apart by its period. A single token repeated ("play play play", period 1) is the
stutter that even a random-weight model falls into on almost every greedy prompt; a repeated
multi-token phrase (period >= 2) is the degeneration Holtzman et al. (2020, Fig. 1) show, where a
trained model copies its own sentence over and over. Counting both as one "loop" lets a model that
trades stutter for phrase loops look no worse, so `Loop.kind` names which one a tail is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from audit.metrics import Z95

MAX_PERIOD = 16  # longest repeated phrase (in tokens) the loop detector looks for
MIN_REPEATS = 3  # a phrase must occur at least this many times in a row at the end
TOKEN_LOOP = "token"  # period 1: one token repeated (stutter)
PHRASE_LOOP = "phrase"  # period >= 2: a multi-token phrase repeated


def ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """All contiguous n-grams, in order."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def seq_rep_n(tokens: Sequence[int], n: int) -> float | None:
    """Welleck et al. (2019) seq-rep-n: 1 - |unique n-grams| / |n-grams| of one continuation.

    None when the continuation has fewer than n tokens (the ratio is undefined, not 0).
    """
    grams = ngrams(tokens, n)
    if not grams:
        return None
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(corpus: Sequence[Sequence[int]], n: int) -> float | None:
    """Li et al. (2016) distinct-n: distinct n-grams over all continuations / total tokens.

    This is the paper's corpus-level definition ("the number of distinct unigrams and bigrams
    divided by total number of generated words"), not the per-sentence or per-n-gram variant.
    None when no tokens were generated at all.
    """
    total = sum(len(t) for t in corpus)
    if total == 0:
        return None
    unique = {g for t in corpus for g in ngrams(t, n)}
    return len(unique) / total


def distinct_n_jackknife_ci(corpus: Sequence[Sequence[int]], n: int) -> tuple[float, float] | None:
    """95% CI of `distinct_n` from the leave-one-continuation-out jackknife standard error.

    A bootstrap would be biased here: resampling with replacement duplicates continuations,
    which add tokens but no new n-grams, so every resample understates diversity. Leaving one
    continuation out is exact and cheap: it removes the n-grams only it contains and its tokens.
    """
    k = len(corpus)
    if k < 2:
        return None
    owners: dict[tuple[int, ...], set[int]] = {}
    for d, t in enumerate(corpus):
        for g in set(ngrams(t, n)):
            owners.setdefault(g, set()).add(d)
    unique = len(owners)
    total = sum(len(t) for t in corpus)
    exclusive = np.zeros(k)
    for docs in owners.values():
        if len(docs) == 1:
            exclusive[next(iter(docs))] += 1
    lengths = np.array([len(t) for t in corpus], dtype=np.float64)
    remaining = total - lengths
    if np.any(remaining <= 0):
        return None
    loo = (unique - exclusive) / remaining  # distinct-n without continuation i
    se = float(np.sqrt((k - 1) / k * np.sum((loo - loo.mean()) ** 2)))
    value = unique / total
    return (value - Z95 * se, value + Z95 * se)


@dataclass(frozen=True)
class Loop:
    """A repetition loop at the end of a generation."""

    period: int  # tokens in the repeated phrase
    start: int  # onset: index of the first token of the periodic tail
    repeats: float  # tail length / period (may end mid-phrase, e.g. 3.5)

    @property
    def kind(self) -> str:
        """TOKEN_LOOP for one repeated token (period 1), PHRASE_LOOP for a repeated phrase (period >= 2)."""
        return TOKEN_LOOP if self.period == 1 else PHRASE_LOOP


def detect_loop(tokens: Sequence[int], max_period: int = MAX_PERIOD,
                min_repeats: int = MIN_REPEATS) -> Loop | None:
    """The shortest phrase that the generation's tail repeats >= `min_repeats` times in a row.

    In the manner of Holtzman et al. (2020), who count generations that end in a repetition
    loop: the tail is periodic with period p when tokens[i] == tokens[i + p] throughout it.
    Trying p = 1, 2, ... returns the primitive (shortest) period.
    """
    n = len(tokens)
    for p in range(1, min(max_period, n // min_repeats) + 1):
        i = n - 1 - p
        while i >= 0 and tokens[i] == tokens[i + p]:
            i -= 1
        length = n - 1 - i  # tokens[i + 1:] is periodic with period p
        if length >= min_repeats * p:
            return Loop(period=p, start=n - length, repeats=length / p)
    return None


def loop_char_start(text: str, min_repeats: int = MIN_REPEATS, max_period: int = 256) -> int | None:
    """Character index where the text's repeating tail begins, for highlighting a detected loop.

    Reports and the dashboard cannot re-tokenize (they never load a model), so the token loop is
    located again in characters: of all periods p <= `max_period`, take the longest suffix that
    is periodic with period p and spans >= `min_repeats` periods (shortest p on ties). A token
    loop repeats the same decoded string, so its span is such a suffix.
    """
    n = len(text)
    best: tuple[int, int] | None = None  # (suffix length, period)
    for p in range(1, min(max_period, n // min_repeats) + 1):
        i = n - 1 - p
        while i >= 0 and text[i] == text[i + p]:
            i -= 1
        length = n - 1 - i
        if length >= min_repeats * p and (best is None or length > best[0]):
            best = (length, p)
    return None if best is None else n - best[0]
