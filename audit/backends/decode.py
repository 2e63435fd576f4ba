"""Decoding with one prefill per prompt: the n samples of a prompt grow from one copy of its KV cache.

`model.generate(num_return_sequences=n)` (or n copies of the prompt in the batch, as before) runs the
prompt n times. Here each prompt is prefilled once, its cache is repeated to its n sample rows, and
the samples decode together. This is a plain loop over the model's KV cache rather than `generate`
with a pre-filled cache, whose handling of left padding and positions differs between transformers
releases; the loop keeps `generate`'s semantics for the settings opt-audit uses:

- the scores of a step are the last position's logits in float32, passed through the logits
  processor (the per-sample `SeededSampler`, or none for greedy), then argmax;
- once a row has produced EOS it receives the pad token, and decoding stops when every row has
  stopped or after max_new_tokens;
- prompts are left-padded; position ids count real tokens only, so padding never shifts a row.

Rows are request-major (prompt 0's samples 0..n-1, then prompt 1's, ...), the order in which the
caller seeds the sampler's generators, so a sample's row, seed and draws are those of the plain path.

The KV cache is preallocated for the whole decode (`preallocate`): transformers' dynamic cache
appends with `torch.cat`, copying every layer's keys and values at each step (18% of a 64-row
greedy decode of an opt-125m shape on CPU). Attention still sees exactly the filled positions,
so the numbers are unchanged (tested: identical tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from audit.backends.padding import left_pad

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.cache_utils import DynamicCache

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def new_cache(model: "PreTrainedModel") -> "DynamicCache":
    """An empty KV cache for `model`, passed in as `cache=` (transformers >= 5.24; the old
    `past_key_values` argument goes in 5.40) and filled in place by the forward pass."""
    from transformers.cache_utils import DynamicCache

    return DynamicCache(config=model.config)


def preallocate(cache: object, extra: int) -> bool:
    """Give each layer of a prefilled transformers `DynamicCache` room for `extra` more positions,
    appended in place. False (the cache left as it is) for any other cache or layer type."""
    import types

    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer or not torch.is_tensor(getattr(layer, "keys", None))
                         for layer in layers):
        return False
    for layer in layers:
        filled = layer.keys.shape[-2]
        shape = (*layer.keys.shape[:-2], filled + extra, layer.keys.shape[-1])
        layer._opt_audit_buffers = (layer.keys.new_empty(shape), layer.values.new_empty(shape))
        layer._opt_audit_buffers[0][..., :filled, :] = layer.keys
        layer._opt_audit_buffers[1][..., :filled, :] = layer.values
        layer._opt_audit_filled = filled
        layer.keys, layer.values = (b[..., :filled, :] for b in layer._opt_audit_buffers)
        layer.update = types.MethodType(_append_in_place, layer)
    return True


def _append_in_place(layer: Any, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                     **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`DynamicLayer.update` without the copy: write into the buffers, return views of the filled part."""
    start = layer._opt_audit_filled
    end = start + key_states.shape[-2]
    keys, values = layer._opt_audit_buffers
    if end > keys.shape[-2]:
        raise RuntimeError(f"KV cache preallocated for {keys.shape[-2]} positions, asked for {end}")
    keys[..., start:end, :] = key_states
    values[..., start:end, :] = value_states
    layer._opt_audit_filled = end
    layer.keys, layer.values = keys[..., :end, :], values[..., :end, :]
    return layer.keys, layer.values


def decode(model: "PreTrainedModel", prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int, pad_id: int,
           eos_id: int | None, processor: LogitsProcessor | None = None) -> list[list[int]]:
    """The new tokens of len(prompts) * n rows (request-major); a row that stopped is padded after
    its EOS. Prompts must leave room for max_new_tokens in the model's positions."""
    dev = model.device
    ids, mask, positions = left_pad(prompts, pad_id)  # (B, W) each
    ids, mask, positions = ids.to(dev), mask.to(dev), positions.to(dev)

    with torch.inference_mode():
        cache = new_cache(model)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                    logits_to_keep=1)
        logits = out.logits[:, -1, :]  # (B, V)
        if n > 1:  # one prefill, n sample rows
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)  # (B * n, V)
            ids = ids.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
        rows = ids.shape[0]
        preallocate(cache, max_new_tokens)
        next_pos = mask.sum(-1, keepdim=True)  # (B * n, 1): the position of each row's next token
        running = torch.ones(rows, dtype=torch.bool, device=dev)
        seq = ids  # prompt + tokens so far: what a logits processor is shown
        new: list[torch.Tensor] = []
        ones = torch.ones((rows, 1), dtype=mask.dtype, device=dev)
        for step in range(max_new_tokens):
            scores = logits.to(device=dev, dtype=torch.float32)  # float32 on the inputs' device, as generate
            if processor is not None:
                scores = processor(seq, scores)
            token = scores.argmax(dim=-1)  # (B * n,)
            if eos_id is not None:
                token = torch.where(running, token, torch.full_like(token, pad_id))
                running = running & (token != eos_id)
            new.append(token)
            seq = torch.cat([seq, token[:, None]], dim=1)
            if step + 1 == max_new_tokens or not bool(running.any()):
                break
            mask = torch.cat([mask, ones], dim=1)
            logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=next_pos,
                           cache=cache, use_cache=True).logits[:, -1, :]
            next_pos = next_pos + 1
    rows_out: list[list[int]] = torch.stack(new, dim=1).tolist()  # (B * n, steps)
    return rows_out
