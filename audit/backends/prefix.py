"""Shared-context log-likelihood: each distinct context is run once, and its options are scored from
its KV cache.

Multiple-choice probes (TruthfulQA, BBQ, ETHOS) score several continuations after one long context:
a TruthfulQA context (six-shot primer and question) is ~165 tokens and its 2-24 options ~10-25, so
scoring each option as its own row spends ~90% of the work recomputing the context. Here a group
of options that share a context is run as:

    prefill  context[:-1]                       once per group   (left-padded, use_cache=True)
    expand   the group's KV cache to one row per option           (Cache.batch_select_indices)
    tails    [context[-1]] + continuation[:-1]  one row per option (right-padded, positions
             continuing the context's)

Tail position j sees the whole context and continuation[:j], so it predicts continuation[j]: these
are the logits that the unshared row (context + continuation[:-1], one pass) has at its last
len(continuation) positions, equal up to float rounding of the different shapes. Starting the tail
at the context's last token, rather than stitching the prefill's last logits in front of it, keeps
every scored position in one tensor.

Right-padding the tails keeps a real query from ever seeing a pad after it, and holds for
FlashAttention-2's bottom-right causal alignment as for SDPA's explicit mask. Tails run in chunks of
similar length (`length_chunks`), each from its own selection of the prefill cache, because padded
positions cost as much as real ones in the model body (and at the LM head, for a model whose head
cannot be split off: audit.backends.lmhead); and in chunks whose expanded cache (a copy of
the context per option) holds no more tokens than the batch plan paid for, so that memory still
follows the token budget.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from audit.backends.decode import new_cache
from audit.backends.lmhead import SplitHead, scoring_states
from audit.backends.logprobs import ContinuationScore, score_continuations
from audit.backends.padding import left_pad

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class SharedGroup:
    """Options scored after one context: the context is computed once for all of them."""

    context: tuple[int, ...]  # the context's tokens (at least 2; the last one starts every tail)
    continuations: tuple[tuple[int, ...], ...]  # one per option, each non-empty


def shared_scores(model: "PreTrainedModel", groups: Sequence[SharedGroup], pad_id: int, max_positions: int,
                  split: SplitHead | None = None) -> list[ContinuationScore]:
    """The score of every option (groups in order, options in order). `max_positions` bounds the
    position ids given to padding. With `split` (audit.backends.lmhead) the prefill skips the LM head
    and the tails' real positions alone reach it; without, the model's own logits are scored."""
    dev = model.device
    prefixes = [g.context[:-1] for g in groups]
    ids, mask, positions = left_pad(prefixes, pad_id)  # (G, W) each
    width = ids.shape[1]
    owner = [i for i, g in enumerate(groups) for _ in g.continuations]  # group of each option row
    conts = [c for g in groups for c in g.continuations]
    tails = [(g.context[-1],) + c[:-1] for g in groups for c in g.continuations]

    out: dict[int, ContinuationScore] = {}  # option row -> its score
    with torch.inference_mode():
        cache = new_cache(model)
        prefill = split.body if split is not None else model  # its logits are not needed
        prefill(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                cache=cache, use_cache=True, **({} if split is not None else {"logits_to_keep": 1}))
        chunks = tail_chunks([len(t) for t in tails], len(groups), width)
        for k, chunk in enumerate(chunks):
            rows = torch.tensor([owner[r] for r in chunk])
            mine = cache if k == len(chunks) - 1 else copy.deepcopy(cache)  # the last chunk may consume it
            mine.batch_select_indices(rows)  # (G, ...) -> (R, ...): each option gets its context (CPU
            # indices: with device_map="auto" the layers live on different devices)
            t_width = len(tails[chunk[0]])  # the chunk's longest tail
            t_ids = torch.full((len(chunk), t_width), pad_id, dtype=torch.long)  # (R, T) right-padded
            t_mask = torch.zeros((len(chunk), t_width), dtype=torch.long)
            for j, r in enumerate(chunk):
                t_ids[j, :len(tails[r])] = torch.tensor(tails[r])
                t_mask[j, :len(tails[r])] = 1
            starts = torch.tensor([len(prefixes[owner[r]]) for r in chunk])  # each tail's first position
            t_positions = (starts[:, None] + torch.arange(t_width)[None, :]).clamp(max=max_positions - 1)
            step = scoring_states(model, split, 0, input_ids=t_ids.to(dev),
                                 attention_mask=torch.cat([mask[rows], t_mask], dim=1).to(dev),
                                 position_ids=t_positions.to(dev), cache=mine, use_cache=True)
            scores = score_continuations(step.states, [conts[r] for r in chunk], [0] * len(chunk),
                                         head=step.head, vocab=step.vocab)  # right padding is never scored
            for r, score in zip(chunk, scores):
                out[r] = score
    return [out[r] for r in range(len(tails))]  # every row is in exactly one chunk


def tail_chunks(lengths: Sequence[int], groups: int, width: int, ratio: float = 2 / 3) -> list[list[int]]:
    """The tails' passes: rows of similar length (`length_chunks`), cut so that no pass's expanded
    cache, a copy of the `width`-token prefill per row, holds more tokens than the batch plan paid
    for: each context once and each tail once (audit.batching)."""
    paid = groups * width + len(lengths) * max(lengths)
    out: list[list[int]] = []
    for chunk in length_chunks(lengths, ratio):
        rows = max(1, paid // (width + lengths[chunk[0]]))
        out.extend(chunk[i:i + rows] for i in range(0, len(chunk), rows))
    return out


def length_chunks(lengths: Sequence[int], ratio: float = 2 / 3) -> list[list[int]]:
    """Indices grouped for right-padded passes, longest first: a row joins a chunk while it is at least
    `ratio` of the chunk's longest, so no chunk pays more than 1/ratio of its real positions.

    Every padded position runs through the body (and, for a model whose head is not split off, the
    LM head, which for a small model with a 50k vocabulary costs more than the rest of the network):
    one pass over a TruthfulQA batch would pad its options to ~2.1x their real tokens, chunks of 2/3
    to ~1.2x (measured on the 817 questions)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    chunks: list[list[int]] = []
    for i in order:
        if not chunks or lengths[i] < ratio * lengths[chunks[-1][0]]:
            chunks.append([])
        chunks[-1].append(i)
    return chunks

