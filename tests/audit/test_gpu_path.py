"""The hf backend's GPU path on the real tiny-opt: fp16/bf16 loading, SDPA (and its flash kernel) or
FlashAttention-2, log-likelihoods against fp32 on CPU within a stated tolerance, out-of-memory back-off
on a real CUDA OOM, and models split over devices by accelerate's device_map.

Every test carries `@pytest.mark.gpu` and skips with its reason where CUDA (or, for the device_map
tests, accelerate or a second GPU) is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from audit.backends.hf import (ModelSpec, flash_attn_available, is_out_of_memory, load_backend, resolve_attn,
                               resolve_dtype)
from audit.cache import ResultCache
from audit.engine import EngineOptions, run_requests
from audit.errors import AuditError
from audit.types import LogLikelihood

CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs a CUDA device")]
BF16 = CUDA and torch.cuda.is_bf16_supported()
ACCELERATE = importlib.util.find_spec("accelerate") is not None

# Per continuation token, |logprob(half, CUDA) - logprob(fp32, CPU)|. Measured on CPU for tiny-opt:
# bf16 vs fp32 <= 0.002 nats/token; fp16 keeps 3 more significand bits (about 8x finer). The bounds
# leave a 10x margin for GPU kernels that round differently.
HALF_TOL_PER_TOKEN = {"bfloat16": 0.02, "float16": 0.005}
HALF_DTYPES = ["float16", pytest.param("bfloat16", marks=pytest.mark.skipif(
    not BF16, reason="no bf16 on this GPU" if CUDA else "needs a CUDA device"))]

LL_REQUESTS = [
    LogLikelihood("", "Hello world"),
    LogLikelihood("The cat", " sat on the mat and purred loudly."),
    LogLikelihood("The cat ", "sat"),
    LogLikelihood("Question: What is the capital of France?\nAnswer:", " Paris"),
    LogLikelihood("Der Bär", " läuft schnell über die Straße."),
    LogLikelihood(" ".join(f"token{i}" for i in range(300)), " end"),  # longer than the 512-token window
] + [LogLikelihood(" ".join(["alpha"] * (1 + 3 * k)), " beta" * (1 + k % 5)) for k in range(10)]


def _per_token_gaps(got, want) -> list[float]:
    assert [g.n_tokens for g in got] == [w.n_tokens for w in want]  # the same tokenization on any device
    return [abs(g.logprob - w.logprob) / w.n_tokens for g, w in zip(got, want)]


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_loads_and_is_in_the_id(dtype: str) -> None:
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype=dtype))
    assert next(gpu.model.parameters()).dtype == getattr(torch, dtype)
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert gpu.describe()["dtype"] == dtype and f"|{dtype}|" in gpu.id and gpu.id.split("|")[3] == "cuda"


def test_auto_resolves_to_bf16_and_the_fastest_attention_here() -> None:
    assert resolve_dtype("auto", "cuda") == ("bfloat16" if BF16 else "float16")
    want = "flash_attention_2" if flash_attn_available() else "sdpa"
    assert resolve_attn("auto", "cuda") == want
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda"))
    assert gpu.attn == want and gpu.model.config._attn_implementation == want


def test_flash_attention_2_loads_where_installed_else_says_why() -> None:
    dtype = "bfloat16" if BF16 else "float16"
    if not flash_attn_available():
        with pytest.raises(AuditError, match="the flash_attn package is not installed"):
            load_backend(ModelSpec("tiny-opt", device="cuda", dtype=dtype, attn="flash_attention_2"))
        return
    fa2 = load_backend(ModelSpec("tiny-opt", device="cuda", dtype=dtype, attn="flash_attention_2"))
    sdpa = load_backend(ModelSpec("tiny-opt", device="cuda", dtype=dtype, attn="sdpa"))
    assert fa2.id != sdpa.id  # the attention kernel is part of the cache key
    # FA2 un-pads left-padded rows, SDPA masks them: the same numbers within half-precision rounding
    assert max(_per_token_gaps(fa2.loglikelihood(LL_REQUESTS), sdpa.loglikelihood(LL_REQUESTS))) \
        <= HALF_TOL_PER_TOKEN[dtype]


def test_sdpa_uses_its_flash_kernel_on_unpadded_batches() -> None:
    """Rows of equal length need no mask, so transformers calls SDPA with is_causal and the flash
    kernel can run (checked on CPU: attn_mask None). Restricting SDPA to that kernel must still work and
    give the same numbers. Left-padded batches need a mask and use the memory-efficient kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = "bfloat16" if BF16 else "float16"
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype=dtype, attn="sdpa"))
    same_length = [LogLikelihood("The cat sat on the", " mat"), LogLikelihood("The dog ran in the", " park")]
    assert gpu.cost(same_length[0]) == gpu.cost(same_length[1])  # no padding in this batch
    default = gpu.loglikelihood(same_length)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises "No available kernel" if flash cannot run
        flash = gpu.loglikelihood(same_length)
    assert max(_per_token_gaps(flash, default)) <= HALF_TOL_PER_TOKEN[dtype]


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_loglikelihood_matches_fp32_on_cpu(backend, dtype: str) -> None:
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype=dtype))
    gaps = _per_token_gaps(gpu.loglikelihood(LL_REQUESTS), backend.loglikelihood(LL_REQUESTS))
    assert max(gaps) <= HALF_TOL_PER_TOKEN[dtype], gaps


def test_out_of_memory_halves_the_batch_and_loses_nothing(tmp_path: Path) -> None:
    """A real CUDA OOM: the process is capped at what it holds + 96 MiB (100.7 MB). 64 requests with
    41-token continuations score 2,624 positions in chunks of 333 (audit.backends.logprobs), whose two
    fp32 buffers (logits, log-probabilities) take 2 x 333 x 50,272 x 4 = 134 MB: over the cap, so the
    engine must halve, down to 4 rows (164 positions: 66 MB), and still return every result; a token
    budget that fits from the start needs no split and gives the same numbers."""
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype="float32"))
    reqs = [LogLikelihood(f"Item {i}:", " word" * 40 + f" {i}") for i in range(64)]
    small = EngineOptions(token_budget=200, progress=False)  # about 4 requests of ~45 tokens per batch
    huge = EngineOptions(token_budget=10**9, progress=False)
    with ResultCache(tmp_path / "small.sqlite") as cache:
        want, stats_small = run_requests(gpu, reqs, cache, small, is_oom=is_out_of_memory)
    assert stats_small.oom_splits == 0 and stats_small.batches > 1  # about 4 requests per batch
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + (96 << 20)) / total)
    try:
        with ResultCache(tmp_path / "huge.sqlite") as cache:
            got, stats = run_requests(gpu, reqs, cache, huge, is_oom=is_out_of_memory)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert stats.batches == 1 and stats.oom_splits >= 1 and stats.computed == 64
    for r in reqs:  # other batch shapes: equal up to fp32 kernel rounding (as the CUDA-vs-CPU test)
        assert got[r].n_tokens == want[r].n_tokens
        assert got[r].logprob == pytest.approx(want[r].logprob, abs=1e-3)


@pytest.mark.skipif(not ACCELERATE, reason="device_map needs the accelerate package")
def test_forward_code_runs_on_a_model_split_over_devices(backend, tiny_dir: Path) -> None:
    """What device_map="auto" produces for a model larger than one GPU: layers on different devices,
    joined by accelerate's hooks. Here layer 1 sits on the CPU (or on a second GPU where there is one),
    and the hf backend's own log-likelihood code runs on that split model."""
    from transformers import AutoModelForCausalLM

    second = 1 if torch.cuda.device_count() > 1 else "cpu"
    split = {"model.decoder.embed_tokens": 0, "model.decoder.embed_positions": 0,
             "model.decoder.layers.0": 0, "model.decoder.layers.1": second,
             "model.decoder.final_layer_norm": 0, "lm_head": 0}
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32, device_map=split)
    assert set(model.hf_device_map.values()) == {0, second}
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype="float32"))
    gpu.model = model.eval()  # the backend's forward pass, on the split model
    gaps = _per_token_gaps(gpu.loglikelihood(LL_REQUESTS), backend.loglikelihood(LL_REQUESTS))
    assert max(gaps) <= 1e-4  # fp32 on both sides: kernel rounding only


@pytest.mark.skipif(not (ACCELERATE and torch.cuda.device_count() > 1), reason="needs 2+ GPUs and accelerate")
def test_several_gpus_load_with_device_map_auto(backend) -> None:
    gpu = load_backend(ModelSpec("tiny-opt", device="cuda", dtype="float32"))
    assert getattr(gpu.model, "hf_device_map", None)  # loaded through device_map="auto"
    assert max(_per_token_gaps(gpu.loglikelihood(LL_REQUESTS), backend.loglikelihood(LL_REQUESTS))) <= 1e-4
