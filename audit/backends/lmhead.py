"""The model body and its LM head, run apart, so that only the positions a log-likelihood scores reach
the head, a chunk at a time (audit.backends.logprobs).

The head is where a small model spends its memory: tiny-opt's logits for one 8,192-token batch are
8,192 x 50,272 x 4 bytes = 1.6 GB, while its final hidden states are 2 MB. A causal LM in
transformers 5 computes `logits = lm_head(base_model(...).last_hidden_state)`, and some
architectures then transform them: Gemma 2/3 soft-cap them (`final_logit_softcapping`), Cohere and
Granite scale them, Chameleon masks image tokens, BART-style models add a bias. Which of these a
model does lives in its `forward`, not in its config, so the split is not assumed but checked:

- the body is `model.base_model` (OPT: `OPTModel`, whose decoder applies the final layer norm and
  `project_out`; Llama/SmolLM2: `LlamaModel`, which applies the final RMSNorm), the head is
  `model.get_output_embeddings()`, followed by `final_logit_softcapping` where the config sets it,
  computed as Gemma 2 does (divide, tanh, multiply, in the logits' dtype);
- `split_head` runs a short probe sequence both ways, once per loaded model, and uses the split only
  if its log-probabilities agree with the model's own logits to the batch-invariance tolerance
  (audit.invariance.LOGLIKELIHOOD_ATOL). Any other model (a scale, a mask, a bias, a body that
  returns no `last_hidden_state`) is scored from the model's own logits, which are still read a
  chunk at a time, so only the log-softmax copy is saved there;
- a float32 `nn.Linear` head writes each chunk's logits into a buffer the scorer reuses (`_head`),
  and the check also requires that buffered form to give the plain form's bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

PROBE_TOKENS = 8  # length of the sequence the split is checked on


Head = Callable[..., torch.Tensor]  # head(hidden (..., H), out=None) -> logits (..., V); see `_head`


@dataclass(frozen=True)
class SplitHead:
    """A causal LM as body (tokens -> final hidden states) and head (hidden states -> logits)."""

    body: torch.nn.Module  # model.base_model: returns last_hidden_state (B, T, H) and the cache
    head: Head  # (..., H) -> (..., V) logits, as the model's forward computes them
    vocab: int  # V, the head's output width


class ScoringStates(NamedTuple):
    """What a scoring pass hands to `score_continuations`."""

    states: torch.Tensor  # (B, T, H) final hidden states, or (B, T, V) logits when head is None
    head: Head | None
    vocab: int | None  # the head's output width; None when states are logits


def scoring_states(model: Any, split: SplitHead | None, keep: int, **inputs: Any) -> ScoringStates:
    """One forward pass for scoring: the last `keep` positions (0: all) of the body's hidden states
    when the head is split off, else of the model's own logits. `inputs` go to the model as given
    (a cache in them is filled as the full forward would fill it)."""
    if split is None:
        return ScoringStates(model(**inputs, logits_to_keep=keep).logits, None, None)
    hidden = split.body(**inputs).last_hidden_state  # (B, T, H)
    return ScoringStates(hidden[:, -keep:] if keep else hidden, split.head, split.vocab)


def split_head(model: Any) -> SplitHead | None:
    """The model's body and head, if running them apart gives the model's own log-probabilities on a
    probe sequence; else None (score from the model's full forward)."""
    from audit.invariance import LOGLIKELIHOOD_ATOL

    body = getattr(model, "base_model", None)
    lm_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or body is model or lm_head is None:
        return None
    config = getattr(model, "config", None)
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is None and config is not None and hasattr(config, "get_text_config"):
        cap = getattr(config.get_text_config(), "final_logit_softcapping", None)
    vocab = int(getattr(lm_head, "out_features", 0) or getattr(config, "vocab_size", 0) or 0)
    if vocab < 2:
        return None
    head = _head(lm_head, cap)
    ids = (torch.arange(PROBE_TOKENS) * 7919 % vocab)[None, :]  # (1, P): spread over the vocabulary
    mask = torch.ones_like(ids)
    positions = torch.arange(PROBE_TOKENS)[None, :]
    dev = model.device
    inputs = {"input_ids": ids.to(dev), "attention_mask": mask.to(dev), "position_ids": positions.to(dev),
              "use_cache": False}
    try:
        with torch.inference_mode():
            want = model(**inputs).logits[0].float()  # (P, V)
            hidden = body(**inputs).last_hidden_state  # (1, P, H)
            # the head sees the shape the forward gives it, so that an equal function gives equal bits
            got = head(hidden)[0].float()  # (P, V)
            # and its buffered form (2-D, into `out`) must give the bits of its plain form
            plain = head(hidden[0])
            buffered = head(hidden[0], out=torch.empty_like(plain, dtype=torch.float32))
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return None  # a body with another signature or output: use the full forward
    if got.shape != want.shape or got.shape[-1] != vocab or not torch.equal(plain.float(), buffered):
        return None
    gap = (torch.log_softmax(got, -1) - torch.log_softmax(want.to(got.device), -1)).abs().max()
    return SplitHead(body, head, vocab) if float(gap) <= LOGLIKELIHOOD_ATOL else None


def _head(lm_head: torch.nn.Module, cap: float | None) -> Head:
    """lm_head, then the soft-cap if any, as a function that may write a chunk's logits into a
    caller's float32 buffer (`out`). A plain nn.Linear of float32 weights without hooks (tiny-opt, any
    fp32 model on CPU) does: a fresh 64 MB tensor per chunk is fresh pages to the kernel, and on CPU
    their page faults took as long as the matmul itself (measured: 1.18 s of system time against
    1.53 s of user time for 6,400 positions of a 50k vocabulary; 0.04 s with buffers). Anything else
    (accelerate's hooks, bf16 weights, a subclass) runs as the module and returns a new tensor."""
    linear = (lm_head if type(lm_head) is torch.nn.Linear and lm_head.weight.dtype == torch.float32
              and not lm_head._forward_hooks and not lm_head._forward_pre_hooks and not hasattr(lm_head, "_hf_hook")
              else None)  # the plain nn.Linear that may write into `out`

    def head(hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is not None and linear is not None and hidden.dim() == 2 and hidden.dtype == torch.float32:
            weight, bias = linear.weight, linear.bias
            logits = (torch.mm(hidden, weight.t(), out=out) if bias is None
                      else torch.addmm(bias, hidden, weight.t(), out=out))  # (C, V), as F.linear computes it
            if cap is not None:
                logits.div_(cap).tanh_().mul_(cap)
            return logits
        logits = lm_head(hidden)  # (..., V)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return head
