"""The memory-aware default token budget (audit.backends.budget), with every number worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

from audit.backends.budget import (ModelShape, _cgroup_available, _meminfo_available, bytes_per_token,
                                   choose_token_budget, default_token_budget, model_shape)

GIB = 2**30
FIXED = 3 * 64 * 2**20  # three LM-head chunks of 64 MiB = 201,326,592 bytes

# tiny-opt: 2 layers of 64, MLP 256, full multi-head attention, OPT's vocabulary, float32
TINY = ModelShape(layers=2, hidden=64, intermediate=256, kv_width=64, vocab=50272, dtype_bytes=4)
# SmolLM2-135M: 30 layers of 576, MLP 1536, 9 heads sharing 3 KV heads (kv width 576 x 3 / 9 = 192)
SMOLLM2 = ModelShape(layers=30, hidden=576, intermediate=1536, kv_width=192, vocab=49152, dtype_bytes=4)


def test_bytes_per_token_by_hand() -> None:
    # tiny-opt: 4 x (2 x 2 x 64 + 8 x 64 + 2 x 256) + 50,272 = 4 x (256 + 512 + 512) + 50,272
    #         = 5,120 + 50,272 = 55,392
    assert bytes_per_token(TINY) == 55_392
    # SmolLM2-135M: 4 x (2 x 30 x 192 + 8 x 576 + 2 x 1536) + 49,152 = 4 x (11,520 + 4,608 + 3,072) + 49,152
    #             = 76,800 + 49,152 = 125,952
    assert bytes_per_token(SMOLLM2) == 125_952


def test_budget_is_what_half_the_free_memory_holds_clamped() -> None:
    # SmolLM2 on CPU with 1 GiB free: (536,870,912 - 201,326,592) // 125,952 = 335,544,320 // 125,952
    # = 2,664 tokens, rounded down to a multiple of 256: 2,560 (memory decides)
    b = default_token_budget(SMOLLM2, "cpu", 1 * GIB)
    assert b.tokens == 2560 and "fits 2,664 tokens" in b.reason and "set by memory" in b.reason
    # tiny-opt on CPU with 2 GiB free: (1,073,741,824 - 201,326,592) // 55,392 = 15,749 -> the CPU
    # ceiling, 8,192 (the old fixed default)
    b = default_token_budget(TINY, "cpu", 2 * GIB)
    assert b.tokens == 8192 and "fits 15,749 tokens" in b.reason and "the ceiling" in b.reason
    # 256 MiB free: half of it (128 MiB) is less than the chunks' 192 MiB -> 0 tokens -> the floor, 512
    b = default_token_budget(TINY, "cpu", 256 * 2**20)
    assert b.tokens == 512 and "the floor" in b.reason


def test_cuda_budget_for_a_small_and_a_large_model() -> None:
    # opt-1.3b in bf16: 2 x (2 x 24 x 2048 + 8 x 2048 + 2 x 8192) + 50,272 = 2 x 131,072 + 50,272
    # = 312,416 bytes; 70 GiB free: (37,580,963,840 - 201,326,592) // 312,416 = 119,647 -> the CUDA ceiling
    opt13 = ModelShape(layers=24, hidden=2048, intermediate=8192, kv_width=2048, vocab=50272, dtype_bytes=2)
    assert bytes_per_token(opt13) == 312_416
    assert default_token_budget(opt13, "cuda:0", 70 * GIB).tokens == 65536
    # an 8B Llama in bf16 (32 layers of 4096, MLP 14336, 32 heads over 8 KV heads: kv width 1024,
    # vocabulary 128,256): 2 x (2 x 32 x 1024 + 8 x 4096 + 2 x 14336) + 128,256 = 2 x 126,976 + 128,256
    # = 382,208 bytes; 24 GiB free: (12,884,901,888 - 201,326,592) // 382,208 = 33,185 -> 33,024
    llama8b = ModelShape(layers=32, hidden=4096, intermediate=14336, kv_width=1024, vocab=128256, dtype_bytes=2)
    assert bytes_per_token(llama8b) == 382_208
    assert default_token_budget(llama8b, "cuda", 24 * GIB).tokens == 33024


def test_model_shape_reads_opt_and_llama_configs(backend) -> None:
    from transformers import LlamaConfig

    # tiny-opt's OPTConfig names its MLP ffn_dim and has no KV heads of its own
    assert model_shape(backend.model.config, "float32") == TINY
    smol = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                       num_key_value_heads=3, vocab_size=49152)
    assert model_shape(smol, "float32") == SMOLLM2
    assert model_shape(smol, "bfloat16").dtype_bytes == 2


def test_token_budget_flag_overrides_and_the_loaded_model_decides(backend) -> None:
    assert choose_token_budget(1234, backend).tokens == 1234
    assert choose_token_budget(1234, backend).reason == "set by --token-budget"
    auto = choose_token_budget(None, backend)
    assert 512 <= auto.tokens <= 8192 and auto.reason.startswith("auto on cpu")


def test_memory_files_are_read_in_bytes(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2048 kB\nMemFree:         512 kB\nMemAvailable:   1024 kB\n")
    assert _meminfo_available(meminfo) == 1024 * 1024  # the kernel writes kB
    assert _meminfo_available(tmp_path / "absent") is None

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("1073741824\n")
    (v2 / "memory.current").write_text("536870912\n")
    (v2 / "memory.stat").write_text("anon 400000000\ninactive_file 104857600\n")
    # limit - usage + reclaimable page cache: 1,073,741,824 - 536,870,912 + 104,857,600 = 641,728,512
    assert _cgroup_available(v2) == 641_728_512
    (v2 / "memory.max").write_text("max\n")
    assert _cgroup_available(v2) is None  # no limit

    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("2147483648\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("1073741824\n")
    # no memory.stat: 2,147,483,648 - 1,073,741,824 = 1,073,741,824
    assert _cgroup_available(v1) == GIB
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert _cgroup_available(v1) is None


def test_the_manifest_records_the_budget_and_why(tmp_path: Path) -> None:
    from audit.backends.hf import ModelSpec
    from audit.engine import EngineOptions
    from audit.runner import RunSpec, execute

    spec = RunSpec(model=ModelSpec("tiny-opt"), probes=("crows_pairs",), suite=None, limit=2)
    for budget, out in ((None, tmp_path / "auto"), (777, tmp_path / "flag")):
        run = execute(spec, out, options=EngineOptions(token_budget=budget, progress=False)).run_dir
        engine = json.loads((run / "manifest.json").read_text())["engine"]
        if budget is None:
            assert 512 <= engine["token_budget"] <= 8192 and engine["token_budget_reason"].startswith("auto on cpu")
        else:
            assert engine == {"token_budget": 777, "token_budget_reason": "set by --token-budget",
                              "max_batch_size": None}


def test_the_cpu_ceiling_is_what_512_mib_of_activations_hold() -> None:
    # SmolLM2 on CPU with 16 GiB free: memory fits (8,589,934,592 - 201,326,592) // 125,952 = 66,601
    # tokens, but 512 MiB of activations hold 536,870,912 // 125,952 = 4,262 -> 4,096 (a multiple of
    # 256): the ceiling is 4,096, not 8,192 (larger CPU batches were slower and 0.6 GB bigger)
    b = default_token_budget(SMOLLM2, "cpu", 16 * GIB)
    assert b.tokens == 4096 and "fits 66,601 tokens" in b.reason and "the ceiling" in b.reason
    assert "[512, 4,096]" in b.reason
    # tiny-opt: 536,870,912 // 55,392 = 9,692 -> 9,472, above the old 8,192, which stays the ceiling
    assert default_token_budget(TINY, "cpu", 16 * GIB).tokens == 8192
    # CUDA has no such cap: SmolLM2 with 16 GiB free fits 66,601 -> 66,560, clamped to 65,536
    assert default_token_budget(SMOLLM2, "cuda", 16 * GIB).tokens == 65536
