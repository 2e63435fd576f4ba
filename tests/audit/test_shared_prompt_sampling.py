"""Shared-prompt decoding: each prompt is prefilled once for its n samples, and every sample is
exactly the one the plain path (`model.generate` over n copies of the prompt) draws, on the real
tiny-opt, at any batch size."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.cache import ResultCache
from audit.engine import EngineOptions, run_requests
from audit.types import Generate, GenParams

LONG_TEXT = " ".join(f"token{i}" for i in range(300))  # > 512 OPT tokens: cut on the left to fit
PROMPTS = [  # 2 to ~500 tokens: heavy left padding in one batch
    "Hi",
    "The weather today is",
    "In 1905, Albert Einstein published four papers that changed physics forever. The first",
    "Ünïcödé prompt: 東京タワー is",
    LONG_TEXT,
]
SAMPLED = GenParams(max_new_tokens=4, do_sample=True, temperature=1.0, top_p=0.9, n=5)


def test_sampled_outputs_equal_the_plain_path(backend) -> None:
    plain = backend.with_sharing(False)
    for params in (SAMPLED, GenParams(max_new_tokens=4, do_sample=True, top_p=0.9, n=1)):
        reqs = [Generate(p, params) for p in PROMPTS]
        shared = backend.generate(reqs, 11)
        assert shared == plain.generate(reqs, 11), params  # text, tokens and EOS flag of every sample
        assert [len(g.samples) for g in shared] == [params.n] * len(PROMPTS)
        if params.n > 1:
            assert all(len({s.tokens for s in g.samples}) == params.n for g in shared)  # n distinct draws


def test_samples_do_not_depend_on_the_batch(backend, tmp_path: Path) -> None:
    reqs = [Generate(p, SAMPLED) for p in (PROMPTS[0], PROMPTS[2], PROMPTS[4])]  # 2, ~20, ~500 tokens
    with ResultCache(tmp_path / "plain.sqlite") as cache:
        base, _ = run_requests(backend.with_sharing(False), reqs, cache, EngineOptions(seed=5, progress=False))
    for bs, order in ((1, reqs), (2, reqs[::-1]), (None, reqs[::-1])):
        with ResultCache(tmp_path / f"bs{bs}.sqlite") as cache:
            got, stats = run_requests(backend, order, cache,
                                      EngineOptions(seed=5, max_batch_size=bs, token_budget=10**9, progress=False))
        assert stats.batches == {1: 3, 2: 2, None: 1}[bs]
        assert got == base, bs


def test_greedy_outputs_are_unchanged(backend) -> None:
    params = GenParams(max_new_tokens=12)
    reqs = [Generate(p, params) for p in PROMPTS]
    assert backend.generate(reqs, 0) == backend.with_sharing(False).generate(reqs, 0)


def test_eos_stops_a_sample_as_generate_does(backend) -> None:
    """Random weights rarely emit </s>, so the model is asked to stop at a token it does draw. A sample
    that stops is then the free-running sample cut before its first stop token: its earlier draws,
    from its own generator, cannot depend on when it or its neighbours stop."""
    params = GenParams(max_new_tokens=6, do_sample=True, temperature=0.05, top_p=0.9, n=5)
    reqs = [Generate(p, params) for p in PROMPTS[:3]]
    free = backend.generate(reqs, 0)
    stop = free[0].samples[0].tokens[3]
    shared, plain = backend.with_sharing(True), backend.with_sharing(False)
    shared.eos_id = plain.eos_id = stop  # copies: the session's backend keeps its own EOS
    got = shared.generate(reqs, 0)
    assert got == plain.generate(reqs, 0)
    for g, f in zip(got, free):
        for s, fs in zip(g.samples, f.samples):
            cut = fs.tokens.index(stop) if stop in fs.tokens else len(fs.tokens)
            assert (s.tokens, s.stopped_at_eos) == (fs.tokens[:cut], stop in fs.tokens)
    flags = [s.stopped_at_eos for g in got for s in g.samples]
    assert flags[0] and not all(flags)  # some samples stop, others run to max_new_tokens

    # Greedy "Hi" repeats one token: stopping at it ends the only row at the first step.
    hi = [Generate("Hi", GenParams(max_new_tokens=4))]
    first = backend.generate(hi, 0)[0].samples[0].tokens[0]
    shared.eos_id = plain.eos_id = first
    assert shared.generate(hi, 0) == plain.generate(hi, 0)
    assert shared.generate(hi, 0)[0].samples[0].tokens == () and shared.generate(hi, 0)[0].samples[0].stopped_at_eos


def test_a_shared_prompt_is_counted_once_in_the_batch_cost(backend) -> None:
    req = Generate("The weather today is", SAMPLED)
    prompt = len(backend.tokenizer("The weather today is")["input_ids"])  # </s> The weather today is = 5
    assert prompt == 5
    assert backend.cost(req) == 5 + 4 * 5  # prompt once, then 5 samples x 4 new tokens = 25
    assert backend.with_sharing(False).cost(req) == (5 + 4) * 5  # five copies of prompt + new tokens = 45


def test_preallocated_kv_cache_changes_no_token(backend, monkeypatch) -> None:
    import audit.backends.decode as decode

    used: list[bool] = []
    real = decode.preallocate
    monkeypatch.setattr(decode, "preallocate", lambda cache, extra: used.append(real(cache, extra)) or used[-1])
    batches = [[Generate(p, params) for p in PROMPTS] for params in (SAMPLED, GenParams(max_new_tokens=12))]
    fast = [backend.generate(reqs, 3) for reqs in batches]
    # one decode per group of prompts (hf.held_within_paid splits the sampled batch, whose ~500-token
    # prompt x 5 samples holds more KV than the batch paid for): every decode used the buffers
    assert len(used) >= 2 and all(used)  # the real tiny-opt cache is a DynamicCache: the buffers were used
    monkeypatch.setattr(decode, "preallocate", lambda cache, extra: False)  # transformers' own appends
    assert [backend.generate(reqs, 3) for reqs in batches] == fast


def test_preallocate_leaves_other_caches_alone_and_refuses_overflow(backend) -> None:
    import torch

    from audit.backends.decode import new_cache, preallocate

    assert preallocate(object(), 4) is False
    ids = torch.tensor([[backend.bos_id, 100, 200]])
    with torch.inference_mode():
        cache = new_cache(backend.model)
        backend.model(input_ids=ids, cache=cache, use_cache=True)
    assert preallocate(cache, 1) is True
    layer = cache.layers[0]
    keys, values = layer.keys.clone(), layer.values.clone()
    step = torch.zeros_like(keys[..., :1, :])
    out_k, _ = layer.update(step, step)
    assert out_k.shape[-2] == 4 and torch.equal(out_k[..., :3, :], keys) and cache.get_seq_length() == 4
    with pytest.raises(RuntimeError, match="preallocated for 4 positions"):
        layer.update(step, step)
    assert torch.equal(layer.values[..., :3, :], values)


def test_groups_hold_no_more_kv_than_the_batch_paid_for() -> None:
    from audit.backends.hf import held_within_paid

    # 4 prompts of 5 tokens, n=5 samples of 4 new tokens. Paid: 4 x (5 + 5 x 4) = 100 tokens. Held
    # once repeated: 5 x (5 + 4) = 45 per prompt, so two prompts (90) fit and a third (135) does not
    assert held_within_paid([[1] * 5] * 4, 5, 4) == [(0, 2), (2, 4)]
    # one sample per prompt: held (5 + 4) = paid, so the whole batch is one group
    assert held_within_paid([[1] * 5] * 4, 1, 4) == [(0, 4)]
    # a prompt that alone holds more than the batch paid (2 x (100 + 1) = 202 > 100 + 2 = 102)
    # still runs, as a group of its own
    assert held_within_paid([[1] * 100], 2, 1) == [(0, 1)]
    assert held_within_paid([], 5, 4) == []
