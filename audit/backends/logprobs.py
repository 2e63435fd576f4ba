"""Continuation scores, with lm-evaluation-harness 0.4.13's numbers but not its memory.

lm-eval takes a float32 log-softmax over the whole (rows, positions, vocabulary) logits, gathers the
continuation tokens' log-probabilities, sums them, and calls a continuation "greedy" when every
token is the argmax of its position. Here only the positions that are scored are computed, a chunk
of at most `chunk_positions(vocab)` of them at a time (64 MB of float32 logits), and each chunk is
reduced at once to two numbers per position:

    logprob = log_softmax(logits)[target]
    greedy  = argmax(log_softmax(logits)) == target   (ties to the lowest index, as argmax breaks them)

so peak memory is a few chunks (the logits, their log-softmax), not rows x positions x vocabulary
(1.6 GB, twice, for an 8,192-token batch of a 50k vocabulary). Each position's log-softmax is lm-eval's
own kernel on the same row of logits, and the sum over a continuation's tokens the same float32 sum
in the same order, so the numbers are lm-eval's up to the rounding of the logits themselves (a
different matmul shape: audit.invariance.LOGLIKELIHOOD_ATOL). log_softmax, not `logit - logsumexp`:
on CPU torch's fused log_softmax kernel is ~1.8x faster than logsumexp (48 vs 86 ms for 333 x 50,272).

Both log-likelihood paths (one padded pass, and shared contexts) score through here, so they can
only differ in the states they hand over: final hidden states with the model's head
(audit.backends.lmhead), or the model's own logits where the head cannot be split off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

CHUNK_BYTES = 64 * 2**20  # float32 logits of one chunk of scored positions


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # summed log-probability of the continuation tokens
    greedy: bool  # every token is its position's argmax


def chunk_positions(vocab: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Scored positions per chunk, so that a chunk's float32 logits fit `chunk_bytes`
    (64 MB / (50,272 x 4 bytes) = 333 positions for OPT's vocabulary)."""
    return max(1, chunk_bytes // (4 * max(1, vocab)))


def score_continuations(states: torch.Tensor, continuations: Sequence[Sequence[int]], starts: Sequence[int],
                        head: Callable[..., torch.Tensor] | None = None, vocab: int | None = None,
                        chunk: int | None = None) -> list[ContinuationScore]:
    """Row r of `states` (R, T, X) predicts continuations[r] at positions starts[r], starts[r] + 1, ...;
    the other positions are padding and are never scored.

    `states` are final hidden states (X = hidden size) that `head(hidden, out=buffer)` turns into
    logits (written into the float32 buffer, or returned as a new tensor), or logits (X = vocabulary)
    when `head` is None; `vocab` (the head's output width) sizes the chunks, and `chunk` overrides
    their positions (tests). The chunk buffers are allocated once per call and reused: on CPU a fresh
    64 MB tensor per chunk costs as much in page faults as the matmul (audit.backends.lmhead._head)."""
    if head is not None and vocab is None:
        raise ValueError("score_continuations: a head needs its vocabulary size")
    rows_at: list[int] = []
    cols_at: list[int] = []
    targets: list[int] = []
    lengths: list[int] = []
    for r, (cont, s) in enumerate(zip(continuations, starts)):
        rows_at += [r] * len(cont)
        cols_at += range(s, s + len(cont))
        targets += cont
        lengths.append(len(cont))
    if not targets:
        return []
    dev = states.device
    rows = torch.tensor(rows_at, dtype=torch.long, device=dev)  # (N,) every scored position
    cols = torch.tensor(cols_at, dtype=torch.long, device=dev)  # (N,)
    target = torch.tensor(targets, dtype=torch.long, device=dev)  # (N,)
    width = states.shape[-1] if vocab is None else vocab  # V
    chunk = chunk or chunk_positions(width)
    buffers = torch.empty((2, min(chunk, len(targets)), width), dtype=torch.float32, device=dev)  # logits, log-probs
    picked, hits = [], []
    with torch.inference_mode():
        for a in range(0, len(targets), chunk):
            x = states[rows[a:a + chunk], cols[a:a + chunk]]  # (C, X): a copy of the chunk only
            n = x.shape[0]
            logits = x if head is None else head(x, out=buffers[0, :n])  # (C, V)
            if logits.device != buffers.device:  # a head on another device (device_map="auto")
                buffers = buffers.to(logits.device)
            logprobs = torch.log_softmax(logits.float(), dim=-1, out=buffers[1, :n])  # (C, V): lm-eval's kernel
            tgt = target[a:a + chunk].to(logprobs.device)
            chosen = logprobs.gather(-1, tgt[:, None])[:, 0]  # (C,)
            picked.append(chosen.cpu())
            hits.append(_argmax_hits(logprobs, chosen, tgt).cpu())
    logprob = torch.split(torch.cat(picked), lengths)  # per row, in order: float32, summed as lm-eval sums
    greedy = torch.split(torch.cat(hits), lengths)
    return [ContinuationScore(float(lp.sum()), bool(g.all())) for lp, g in zip(logprob, greedy)]


def _argmax_hits(logprobs: torch.Tensor, chosen: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """argmax(logprobs) == target, position by position, at a quarter of argmax's cost on CPU: a
    target below its position's max is no argmax; only where it reaches the max (rare, except for
    continuations a model would produce) does argmax run, to break ties to the lowest index as it does."""
    hits = chosen == logprobs.amax(-1)  # (C,): candidates
    where = hits.nonzero(as_tuple=True)[0]
    if where.numel():
        hits[where] = logprobs[where].argmax(-1) == target[where]
    return hits
