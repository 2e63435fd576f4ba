"""Left padding for decoder-only batches: every row ends at the last column, so the next token of
every row is predicted at the same place and generation can append to all rows at once.

Position ids count real tokens only (padding gets 0), so a row's positions, and with them its
logits, are those it would have alone: batch shape never changes a score.
"""

from __future__ import annotations

from typing import Sequence

import torch


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention mask, position ids), each (len(seqs), longest) long tensors on the CPU."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions
