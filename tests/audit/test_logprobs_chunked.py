"""Log-likelihood without full-vocabulary tensors: the chunked scorer (audit.backends.logprobs) and
the split-off LM head (audit.backends.lmhead), against lm-evaluation-harness's formula on real models."""

from __future__ import annotations

import math

import pytest
import torch

from audit.backends.lmhead import scoring_states, split_head
from audit.backends.logprobs import chunk_positions, score_continuations
from audit.invariance import LOGLIKELIHOOD_ATOL
from audit.types import LogLikelihood

REQUESTS = [
    LogLikelihood("", "The poor are really ignorant about how to handle the money they do have."),
    LogLikelihood("", "Hello world"),
    LogLikelihood("The cat", " sat"),
    LogLikelihood("The cat", " sat on the mat and purred loudly."),
    LogLikelihood("Question: What is the capital of France?\nAnswer:", " Paris"),
    LogLikelihood("Question: What is the capital of France?\nAnswer:", " Berlin"),
    LogLikelihood("Der Bär", " läuft schnell über die Straße."),
    LogLikelihood("1 2 3 4 5", " 6 7 8"),
]


def _lm_eval(model, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    """lm-eval 0.4.13's formula on one unpadded row: float32 log-softmax over the full vocabulary,
    the continuation's log-probabilities summed, greedy when each token is its position's argmax."""
    ids = torch.tensor([ctx + cont[:-1]])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, -len(cont):]  # (len(cont), V)
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    target = torch.tensor(cont)
    return (float(logprobs.gather(-1, target[:, None]).sum()),
            bool((logprobs.argmax(-1) == target).all()))


def test_chunk_positions_bound_the_logits_of_a_chunk() -> None:
    # 64 MiB / (50,272 x 4 bytes) = 67,108,864 / 201,088 = 333.7 -> 333 positions (OPT)
    assert chunk_positions(50272) == 333
    # 67,108,864 / (49,152 x 4) = 341.3 -> 341 (SmolLM2)
    assert chunk_positions(49152) == 341
    # a vocabulary larger than the chunk still scores one position at a time
    assert chunk_positions(10**9) == 1


def test_hidden_states_through_a_head_score_by_hand_in_any_chunk_size() -> None:
    # A head of 3 tokens over 2 hidden units: logits = [h0, h1, 0] (returned as a new tensor, as a
    # head that cannot write into the scorer's buffer does).
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])

    def head(hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return hidden @ weight.T  # (C, 3)
    # Position 0: h = (ln 2, 0), logits [ln 2, 0, 0], Z = 2 + 1 + 1 = 4: log p(0) = ln 2 - ln 4 = -0.693147,
    #   token 0 is the argmax.
    # Position 1: h = (0, 0), logits all 0: log p(any) = -ln 3 = -1.098612; a three-way tie that argmax
    #   (and so lm-eval's is_greedy) breaks to token 0.
    states = torch.tensor([[[math.log(2), 0.0], [0.0, 0.0]]] * 3)  # (3, 2, 2)
    conts, starts = [[0, 0], [0, 1], [1]], [0, 0, 1]
    for chunk in (1, 2, 3, None):
        got = score_continuations(states, conts, starts, head=head, vocab=3, chunk=chunk)
        # [0, 0]: -0.693147 - 1.098612 = -1.791759, every token the argmax
        assert got[0].logprob == pytest.approx(-1.791759, abs=1e-6) and got[0].greedy
        # [0, 1]: the same sum, but token 1 loses position 1's tie to token 0
        assert got[1].logprob == pytest.approx(-1.791759, abs=1e-6) and not got[1].greedy
        # [1] at position 1 only (position 0 is padding, never scored): -ln 3, not the argmax
        assert got[2].logprob == pytest.approx(-1.098612, abs=1e-6) and not got[2].greedy
    with pytest.raises(ValueError, match="vocabulary size"):
        score_continuations(states, conts, starts, head=head)


def test_only_scored_positions_reach_the_head_a_chunk_at_a_time(backend) -> None:
    """tiny-opt's own head, watched: it sees every continuation token once, never a padded
    position, and never more positions at once than a chunk."""
    split = split_head(backend.model)
    seen: list[int] = []

    def watched(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        seen.append(x.shape[0])
        logits = split.head(x, out=out)
        assert logits.data_ptr() == out.data_ptr()  # fp32 nn.Linear: written into the scorer's buffer
        return logits

    conts = [list(range(100 + 7 * r, 100 + 7 * r + n)) for r, n in enumerate((40, 3, 17, 29))]  # 89 tokens
    ids = torch.full((4, 40), 5)  # any tokens: the scores only need to agree below
    with torch.inference_mode():
        hidden = split.body(input_ids=ids).last_hidden_state  # (4, 40, 64)
    starts = [40 - len(c) for c in conts]
    got = score_continuations(hidden, conts, starts, head=watched, vocab=split.vocab, chunk=25)
    assert sum(seen) == 40 + 3 + 17 + 29 and max(seen) <= 25  # 89 positions in chunks 25, 25, 25, 14
    assert seen == [25, 25, 25, 14]
    with torch.inference_mode():
        logits = backend.model(input_ids=ids).logits  # (4, 40, V): the full tensor, as lm-eval has it
    want = score_continuations(logits, conts, starts)
    for g, w in zip(got, want):
        assert g.logprob == pytest.approx(w.logprob, abs=LOGLIKELIHOOD_ATOL) and g.greedy == w.greedy


def test_tiny_opt_splits_its_head_and_scores_as_lm_eval(backend) -> None:
    """OPT's body (OPTModel: final layer norm, project_out) and lm_head give the model's own logits;
    both log-likelihood paths (plain rows, shared contexts) then match lm-eval's full log-softmax."""
    assert split_head(backend.model) is not None
    for sharing in (False, True):
        got = backend.with_sharing(sharing).loglikelihood(REQUESTS)
        for req, res in zip(REQUESTS, got):
            ctx, cont = backend._ll_tokens(req)
            want, greedy = _lm_eval(backend.model, ctx, cont)
            assert res.logprob == pytest.approx(want, abs=LOGLIKELIHOOD_ATOL), (sharing, req)
            assert res.is_greedy == greedy


def test_split_and_full_forward_paths_agree(backend) -> None:
    """The fallback (the model's own logits, for a head that cannot be split off) and the split path
    give the same scores on both log-likelihood paths."""
    for sharing in (False, True):
        b = backend.with_sharing(sharing)
        split = b.loglikelihood(REQUESTS)
        b._split = (b.model, None)  # as for a model whose check failed
        full = b.loglikelihood(REQUESTS)
        for s, f in zip(split, full):
            assert s.logprob == pytest.approx(f.logprob, abs=1e-5) and s.is_greedy == f.is_greedy


def _random_model(config):
    """A small real transformers model with weights drawn from a local generator (no global RNG);
    std 0.5 makes logits large enough that a missing soft-cap or scale would show."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager").eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def _check_scores(model, split) -> None:
    """Scores through `scoring_states` (split or not) equal lm-eval's formula on the model's logits."""
    ids = [[3, 17, 42, 9, 88, 5], [7, 7, 21, 60]]
    ctx_cont = [(row[:2], row[2:]) for row in ids]
    width = max(len(c) + len(k) - 1 for c, k in ctx_cont)
    rows = torch.zeros((2, width), dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for r, (c, k) in enumerate(ctx_cont):
        seq = c + k[:-1]
        rows[r, width - len(seq):] = torch.tensor(seq)  # left-padded, as the backend pads
        mask[r, width - len(seq):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keep = max(len(k) for _, k in ctx_cont)
    with torch.inference_mode():
        out = scoring_states(model, split, keep, input_ids=rows, attention_mask=mask, position_ids=positions,
                             use_cache=False)
        got = score_continuations(out.states, [k for _, k in ctx_cont], [keep - len(k) for _, k in ctx_cont],
                                  head=out.head, vocab=out.vocab)
    for (c, k), g in zip(ctx_cont, got):
        want, greedy = _lm_eval(model, c, k)
        assert g.logprob == pytest.approx(want, abs=LOGLIKELIHOOD_ATOL) and g.greedy == greedy


def test_a_soft_capped_head_is_split_with_its_cap() -> None:
    """Gemma 2 soft-caps its logits (tanh(logits / cap) x cap) after the head: the split applies
    the cap, passes its check, and scores as the model does. A cap of 0.5 squeezes every logit into
    (-0.5, 0.5), far from the uncapped logits, so a split without it could not pass."""
    from transformers import Gemma2Config

    config = Gemma2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, final_logit_softcapping=0.5,
                          max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = _random_model(config)
    split = split_head(model)
    assert split is not None and split.vocab == 128
    _check_scores(model, split)


def test_a_head_the_split_does_not_know_falls_back_to_the_full_forward() -> None:
    """Cohere multiplies its logits by `logit_scale` after the head, which the split does not do: its
    check fails, so the model's own logits are scored, still matching lm-eval."""
    from transformers import CohereConfig

    config = CohereConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, logit_scale=4.0,
                          max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = _random_model(config)
    assert split_head(model) is None
    _check_scores(model, None)


def test_a_llama_with_tied_embeddings_splits_its_head() -> None:
    """SmolLM2's architecture (LlamaForCausalLM: final RMSNorm in the body, lm_head tied to the input
    embeddings, no logit transform), small and random: the split passes its check and scores as lm-eval."""
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = _random_model(config)
    split = split_head(model)
    assert split is not None and split.vocab == 128
    _check_scores(model, split)
