"""The HF backend on the real tiny-opt (CPU, fp32, SDPA): batch invariance, lm-eval conventions,
seeded sampling, and the errors a user sees for bad settings or model paths."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from audit.backends.hf import ModelSpec, load_backend, resolve_attn, resolve_dtype
from audit.cache import ResultCache
from audit.engine import EngineOptions, run_requests
from audit.errors import AuditError
from audit.types import Generate, Generation, GenParams, LogLikelihood

HUGE_BUDGET = 10**9  # so only max_batch_size decides the batch shapes
LONG_TEXT = " ".join(f"token{i}" for i in range(300))  # > 512 OPT tokens: exercises left truncation


def _ll_requests() -> list[LogLikelihood]:
    """40 log-likelihood requests of very different lengths and shapes."""
    reqs = [
        # empty context: conditioned on BOS alone (CrowS-Pairs style)
        LogLikelihood("", "Hello world"),
        LogLikelihood("", "The poor are really ignorant about how to handle the money they do have."),
        LogLikelihood("", "A"),
        LogLikelihood("", " leading space"),
        LogLikelihood("", "Ünïcödé façade — 東京タワー 🙂"),
        # ordinary context + continuation
        LogLikelihood("The cat", " sat"),
        LogLikelihood("The cat", " sat on the mat and purred loudly."),
        LogLikelihood("Question: What is the capital of France?\nAnswer:", " Paris"),
        LogLikelihood("Question: What is the capital of France?\nAnswer:", " Berlin"),
        LogLikelihood("1 2 3 4 5", " 6 7 8"),
        # trailing whitespace in the context (moved into the continuation)
        LogLikelihood("The cat ", "sat"),
        LogLikelihood("She said:  ", "hello"),
        LogLikelihood("Line one\n", "Line two"),
        LogLikelihood("Tabs\t", "work too"),
        # non-ASCII
        LogLikelihood("Der Bär", " läuft schnell über die Straße."),
        LogLikelihood("日本語の文章", "です。"),
        LogLikelihood("Emoji 🙂", " 🎉🎉 party"),
        LogLikelihood("naïve café", " crème brûlée"),
        # long context: truncated on the left to the 512-token window
        LogLikelihood(LONG_TEXT, " end"),
        LogLikelihood(LONG_TEXT, " and so on, until the very end of it all"),
    ]
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
             "rho sigma tau upsilon").split()
    for k in range(20):  # contexts of 1..~60 words, continuations of 1..5 words
        ctx = " ".join(words[(k + j) % len(words)] for j in range(1 + 3 * k))
        cont = " " + " ".join(words[(7 * k + j) % len(words)] for j in range(1 + k % 5))
        reqs.append(LogLikelihood(ctx, cont))
    assert len(set(reqs)) == len(reqs) == 40
    return reqs


GEN_PROMPTS = [
    "Hi",
    "The",
    "Once upon a time",
    "The quick brown fox jumps over the lazy dog.",
    "In 1905, Albert Einstein published four papers that changed physics forever. The first",
    "Ünïcödé prompt: 東京タワー is",
    "A " * 40 + "pattern",
    "The history of the Roman Empire spans many centuries, beginning with the founding of the city "
    "and ending with the fall of Constantinople. Historians have long debated",
    " ".join(f"w{i}" for i in range(120)),
    "Q: 2 + 2 =",
    "Lists:\n- one\n- two\n-",
    LONG_TEXT,  # longer than the window: left-truncated to fit the new tokens
]


def _same_logprob(got: float, want: float) -> bool:
    """Equal up to fp32 rounding of a summed score: different padded shapes change BLAS blocking, so
    sums of ~-160 nats may differ in their last bit (one fp32 ulp there is 1.5e-5; measured: <= 2 ulp).
    Anything larger would be a real batch-size dependence."""
    return got == pytest.approx(want, rel=1e-6, abs=1e-5)


def _opts(max_batch_size: int) -> EngineOptions:
    return EngineOptions(token_budget=HUGE_BUDGET, max_batch_size=max_batch_size, progress=False)


def _shuffled(items: list, seed: int = 0) -> list:
    out = list(items)
    random.Random(seed).shuffle(out)  # a local RNG: no global state touched
    return out


# -------------------------------------------------------------------------------- log-likelihood
def test_loglikelihood_does_not_depend_on_batch_size_or_order(backend, tmp_path: Path) -> None:
    reqs = _ll_requests()
    configs = {"bs1": (reqs, 1), "bs4": (reqs, 4), "bs64": (reqs, 64), "shuffled_bs4": (_shuffled(reqs), 4),
               "shuffled_bs64": (_shuffled(reqs, 1), 64)}
    runs = {}
    for name, (order, bs) in configs.items():
        with ResultCache(tmp_path / f"{name}.sqlite") as cache:
            results, stats = run_requests(backend, order, cache, _opts(bs))
        assert stats.computed == 40 and stats.cached == 0
        assert stats.batches == -(-40 // bs)  # 40, 10 or 1 batches: the shapes really differ
        assert set(results) == set(reqs)
        runs[name] = results
    base = runs["bs1"]
    for name, results in runs.items():
        for r in reqs:
            got, want = results[r], base[r]
            assert got.n_tokens == want.n_tokens, (name, r)
            assert _same_logprob(got.logprob, want.logprob), (name, r, got.logprob - want.logprob)
            assert got.is_greedy == want.is_greedy, (name, r)


def test_one_padded_batch_in_any_order_equals_single_requests(backend) -> None:
    """The engine length-sorts batches; here long and short rows share one heavily padded batch."""
    reqs = _shuffled(_ll_requests(), seed=3)
    together = backend.loglikelihood(reqs)
    for r, got in zip(reqs, together):
        alone = backend.loglikelihood([r])[0]
        assert got.n_tokens == alone.n_tokens
        assert _same_logprob(got.logprob, alone.logprob), (r, got.logprob - alone.logprob)
        assert got.is_greedy == alone.is_greedy


def _manual_logprob(backend, ids: list[int], n_cont: int) -> float:
    """Sum of log p(ids[j] | ids[:j]) over the last n_cont positions, from a plain forward pass."""
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0]  # (T, V)
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return float(sum(logprobs[j - 1, ids[j]] for j in range(len(ids) - n_cont, len(ids))))


def test_empty_context_is_conditioned_on_bos(backend) -> None:
    cont = "The poor are really ignorant about how to handle the money they do have."
    cont_ids = backend.tokenizer(cont, add_special_tokens=False)["input_ids"]
    assert cont_ids[0] != 2  # no BOS inside the scored tokens
    res = backend.loglikelihood([LogLikelihood("", cont)])[0]
    assert res.n_tokens == len(cont_ids)
    assert res.logprob == pytest.approx(_manual_logprob(backend, [2] + cont_ids, len(cont_ids)), abs=1e-4)
    assert res.logprob < 0


def test_context_continuation_split_follows_lm_eval(backend) -> None:
    res = backend.loglikelihood([LogLikelihood("The cat", " sat")])[0]
    assert res.n_tokens == 1
    whole = backend.tokenizer("The cat sat")["input_ids"]  # [</s>, The, Ġcat, Ġsat]
    assert whole[0] == 2 and len(whole) == 4
    assert res.logprob == pytest.approx(_manual_logprob(backend, whole, 1), abs=1e-4)


def test_trailing_context_whitespace_moves_to_continuation(backend) -> None:
    a, b = backend.loglikelihood([LogLikelihood("The cat", " sat"), LogLikelihood("The cat ", "sat")])
    assert a == b
    c, d = backend.loglikelihood([LogLikelihood("Answer:", " yes"), LogLikelihood("Answer: ", "yes")])
    assert c == d


def test_empty_continuation_is_an_audit_error(backend) -> None:
    with pytest.raises(AuditError, match="empty continuation"):
        backend.loglikelihood([LogLikelihood("The cat", "")])


def test_continuation_longer_than_window_is_an_audit_error(backend) -> None:
    """Once a torch shape RuntimeError from deep inside loglikelihood; now a user-facing error."""
    too_long = LONG_TEXT + " " + LONG_TEXT  # ~1,600 tokens, all of them continuation
    n = len(backend.tokenizer(too_long, add_special_tokens=False)["input_ids"])
    assert n > 512
    with pytest.raises(AuditError, match=rf"a continuation of {n} tokens does not fit tiny-opt's context of 512"):
        backend.loglikelihood([LogLikelihood("", too_long)])
    # A continuation of exactly the window still scores (the BOS is dropped by left truncation).
    ids = backend.tokenizer(too_long, add_special_tokens=False)["input_ids"][:512]
    exact = backend.tokenizer.decode(ids)
    res = backend.loglikelihood([LogLikelihood("", exact)])[0]
    assert res.n_tokens == len(backend.tokenizer(exact, add_special_tokens=False)["input_ids"]) <= 512


# -------------------------------------------------------------------------------- greedy generation
GREEDY = GenParams(max_new_tokens=16)


def test_greedy_generation_does_not_depend_on_batch_size_or_order(backend, tmp_path: Path) -> None:
    reqs = [Generate(p, GREEDY) for p in GEN_PROMPTS]
    lengths = sorted(len(backend.tokenizer(p)["input_ids"]) for p in GEN_PROMPTS)
    assert lengths[0] <= 2 and lengths[-1] > 500  # left padding really is exercised
    runs = {}
    for name, order, bs in (("bs1", reqs, 1), ("bs4", reqs, 4), ("bs64", reqs, 64),
                            ("shuffled_bs4", _shuffled(reqs), 4), ("shuffled_bs64", _shuffled(reqs, 2), 64)):
        with ResultCache(tmp_path / f"{name}.sqlite") as cache:
            results, stats = run_requests(backend, order, cache, _opts(bs))
        assert stats.computed == len(reqs)
        assert stats.batches == -(-len(reqs) // bs)
        runs[name] = results
    base = runs["bs1"]
    for r in reqs:
        gen = base[r]
        assert isinstance(gen, Generation) and len(gen.samples) == 1
        s = gen.samples[0]
        assert 0 < len(s.tokens) <= 16 and (s.stopped_at_eos or len(s.tokens) == 16)
        assert s.text == backend.tokenizer.decode(list(s.tokens), skip_special_tokens=True)
        for name, results in runs.items():
            assert results[r] == gen, (name, r.prompt[:40])  # text, tokens and EOS flag, exactly


def test_padded_generation_equals_unpadded_rows(backend) -> None:
    reqs = [Generate(p, GREEDY) for p in _shuffled(GEN_PROMPTS, seed=5)]
    batched = backend.generate(reqs, 0)
    assert len(batched) == len(reqs)
    for r, got in zip(reqs, batched):
        assert backend.generate([r], 0)[0] == got, r.prompt[:40]


def test_long_prompt_is_left_truncated_to_leave_room_for_new_tokens(backend) -> None:
    params = GenParams(max_new_tokens=500)
    req = Generate(LONG_TEXT, params)
    full = backend.tokenizer(LONG_TEXT)["input_ids"]
    kept = backend._prompt_tokens(req)
    assert kept == full[-12:]  # 512 - 500: the prompt's tail, so prompt + new tokens fit the window
    short, long = backend.generate([Generate("Hi", params), req], 0)
    assert [len(g.samples[0].tokens) for g in (short, long)] == [500, 500]


def test_max_new_tokens_beyond_the_window_is_an_audit_error(backend) -> None:
    with pytest.raises(AuditError, match="512"):
        backend.generate([Generate("Hello", GenParams(max_new_tokens=600))], 0)


# -------------------------------------------------------------------------------- sampling
SAMPLED = GenParams(max_new_tokens=12, do_sample=True, temperature=1.0, top_p=0.9, n=3)
SAMPLE_PROMPTS = ["The weather today is", "My favourite food is", "Scientists have discovered"]


def _texts(gens: list[Generation]) -> list[list[str]]:
    return [[s.text for s in g.samples] for g in gens]


def test_sampling_is_seeded_and_reproducible(backend) -> None:
    reqs = [Generate(p, SAMPLED) for p in SAMPLE_PROMPTS]
    rng_before = torch.get_rng_state()
    first = backend.generate(reqs, 7)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    assert [len(g.samples) for g in first] == [3, 3, 3]
    for g in first:
        assert len({s.text for s in g.samples}) == 3  # three different samples per prompt
        assert all(len(s.tokens) == 12 or s.stopped_at_eos for s in g.samples)
    again = backend.generate(reqs, 7)
    assert again == first
    other = backend.generate(reqs, 8)
    assert _texts(other) != _texts(first)
    for a, b in zip(_texts(other), _texts(first)):
        assert a != b  # random weights over a 50k vocabulary: a collision is vanishingly unlikely


def test_sampled_cache_key_includes_seed(backend, tmp_path: Path) -> None:
    reqs = [Generate(p, SAMPLED) for p in SAMPLE_PROMPTS]
    with ResultCache(tmp_path / "c.sqlite") as cache:
        r7, s7 = run_requests(backend, reqs, cache, EngineOptions(seed=7, progress=False))
        r7b, s7b = run_requests(backend, reqs, cache, EngineOptions(seed=7, progress=False))
        r8, s8 = run_requests(backend, reqs, cache, EngineOptions(seed=8, progress=False))
    assert (s7.computed, s7b.computed, s7b.cached, s8.computed) == (3, 0, 3, 3)
    assert r7b == r7
    assert all(r8[r] != r7[r] for r in reqs)


def test_sampled_generation_does_not_depend_on_batch(backend, tmp_path: Path) -> None:
    """A sample is a function of (seed, prompt, params, index): batch size and order do not move it."""
    reqs = [Generate(p, SAMPLED) for p in SAMPLE_PROMPTS]
    runs = []
    for bs, order in ((1, reqs), (3, reqs), (2, reqs[::-1])):
        with ResultCache(tmp_path / f"bs{bs}.sqlite") as cache:
            results, _ = run_requests(backend, order, cache, EngineOptions(seed=7, max_batch_size=bs, progress=False))
        runs.append(results)
    for r in reqs:
        assert runs[1][r] == runs[0][r] and runs[2][r] == runs[0][r], r.prompt


# -------------------------------------------------------------------------------- settings and facts
def test_flash_attention_on_cpu_is_an_error() -> None:
    with pytest.raises(AuditError, match=r"--attn flash_attention_2 cannot run here: no CUDA device"):
        resolve_attn("flash_attention_2", "cpu")
    with pytest.raises(AuditError, match=r"--attn 'magic': expected one of auto, sdpa, eager, flash_attention_2"):
        resolve_attn("magic", "cpu")
    assert resolve_attn("auto", "cpu") == "sdpa"
    assert resolve_attn("eager", "cpu") == "eager"


def test_dtype_resolution() -> None:
    with pytest.raises(AuditError, match=r"--dtype 'float99': expected one of auto, float32, bfloat16, float16"):
        resolve_dtype("float99", "cpu")
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_describe_reports_the_model_facts(backend) -> None:
    d = backend.describe()
    # embed 50272*64 + positions 514*64 + 2 layers * (4*(64*64+64) + (64*256+256) + (256*64+64) + 2*128)
    # + final layer norm 128 = 3,217,408 + 32,896 + 99,968 + 128 (lm_head is tied)
    assert d["params"] == 3_350_400
    assert d["params"] == sum(p.numel() for p in backend.model.parameters())
    assert (d["layers"], d["heads"], d["context"]) == (2, 4, 512)
    assert (d["dtype"], d["attention"], d["device"]) == ("float32", "sdpa", "cpu")
    assert d["architecture"] == "OPTForCausalLM"
    assert d["revision"].startswith("sha256:") and len(d["revision"]) == len("sha256:") + 64
    assert backend.id == f"hf:tiny-opt@{d['revision']}|float32|sdpa|cpu|sampler1|prompt-rstrip"
    assert next(backend.model.parameters()).dtype == torch.float32


def test_missing_local_path_is_an_audit_error() -> None:
    with pytest.raises(AuditError, match=r"--model \./does/not/exist: no such directory"):
        load_backend(ModelSpec("./does/not/exist", device="cpu"))


def test_directory_without_config_is_an_audit_error(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not a model")
    with pytest.raises(AuditError, match=r"not a Hugging Face model directory \(no config\.json\)") as e:
        load_backend(ModelSpec(str(tmp_path), device="cpu"))
    assert str(tmp_path) in str(e.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loglikelihood_matches_cpu(backend, tiny_dir: Path) -> None:
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype="float32", attn="sdpa"))
    assert gpu.id != backend.id  # the device is part of the cache key
    reqs = _ll_requests()
    for a, b in zip(gpu.loglikelihood(reqs), backend.loglikelihood(reqs)):
        assert a.n_tokens == b.n_tokens
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3)
    assert resolve_dtype("auto", "cuda") in ("bfloat16", "float16")
