"""The default token budget: as many padded tokens per batch as the free memory holds for this model.

A fixed default (it was 8,192 on CPU and 65,536 on CUDA) is too much for a large model on a small
machine, which then swaps or runs out of memory, and says nothing about why. Here the budget is
derived, once per run, from the memory available after the model has loaded and from the model's
shape; `--token-budget` still overrides it, and the manifest records the number and how it was chosen.

The footprint of one batch token (bytes), for a model of `layers` x `hidden` with an MLP of
`intermediate`, key/value width `kv_width` (hidden x kv heads / heads), vocabulary `vocab` and
weights of `dtype_bytes`:

    dtype_bytes x (2 x layers x kv_width      the KV cache of every layer (generation, shared contexts)
                   + 8 x hidden                one layer's transient activations: residual, norm,
                                               q/k/v, attention output, projection, ...
                   + 2 x intermediate)         the MLP's up-projection and its activation
    + vocab                                    a generation row's vocabulary-wide float32 scores,
                                               sorted with int64 indices for nucleus sampling
                                               (~16 bytes per entry), per row of at least 16 tokens

Activations of earlier layers are freed as the forward pass goes (inference mode), so only one
layer's transients count, while the KV cache holds every layer. Log-likelihood logits are not per
token: only one chunk of scored positions reaches the LM head at a time (audit.backends.logprobs),
a fixed 3 x CHUNK_BYTES (the chunk's logits, logsumexp's temporary, the head's output).

    budget = (MEMORY_FRACTION x available - fixed) / bytes per token

rounded down to a multiple of 256 and clamped to the device's range: half the free memory leaves
room for what the formula leaves out (attention scores of kernels that materialise them, the
allocator's slack, the scorers). The CUDA ceiling is the old default, the largest measured there.

On CPU a batch stops running faster long before memory runs out: its matmuls are already large at
a few thousand tokens, and what more tokens add is page faults and peak RSS. So the CPU ceiling is
the smaller of the old default (8,192 tokens) and what CPU_ACTIVATION_BYTES (512 MiB) of batch
activations hold. Measured on SmolLM2-135M (125,952 bytes per token, so 4,096 tokens), the quick
suite's ETHOS probe on 2 cores: 8,192 tokens took 74 s at 2.2 GB peak RSS, 4,096 tokens 63 s at
1.6 GB. A small-vocabulary-bound model such as tiny-opt (55,392 bytes) keeps 8,192.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.backends.logprobs import CHUNK_BYTES

MEMORY_FRACTION = 0.5  # of the available memory that batches may use
CPU_RANGE = (512, 8192)  # tokens: the floor keeps a nearly full machine moving; the ceiling, the old default
CPU_ACTIVATION_BYTES = 512 * 2**20  # on CPU, batch activations beyond this add memory, not speed
CUDA_RANGE = (1024, 65536)
VLLM_BUDGET = 65536  # vLLM sizes its own memory (--gpu-memory-utilization); the budget only groups requests
ROUND = 256
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a causal LM that set its memory per batch token."""

    layers: int
    hidden: int  # d_model
    intermediate: int  # MLP width (4 x hidden where the config does not say)
    kv_width: int  # hidden x key/value heads / attention heads (smaller than hidden under GQA)
    vocab: int
    dtype_bytes: int  # bytes per activation (4 for float32, 2 for bf16/fp16)


@dataclass(frozen=True)
class TokenBudget:
    """A batch size in padded tokens, and why it is that (recorded in the manifest)."""

    tokens: int
    reason: str


def bytes_per_token(shape: ModelShape) -> int:
    """Memory one batch token occupies at the peak of a forward pass (the module docstring's formula)."""
    per_layer = 2 * shape.layers * shape.kv_width + 8 * shape.hidden + 2 * shape.intermediate
    return shape.dtype_bytes * per_layer + shape.vocab


def default_token_budget(shape: ModelShape, device: str, available_bytes: int) -> TokenBudget:
    """The most padded tokens per batch that fit MEMORY_FRACTION of `available_bytes`, clamped to
    the device's range (see the module docstring)."""
    low, high = CUDA_RANGE if device.startswith("cuda") else CPU_RANGE
    fixed = 3 * CHUNK_BYTES
    per_token = bytes_per_token(shape)
    if not device.startswith("cuda"):  # the CPU ceiling: no more than CPU_ACTIVATION_BYTES of activations
        high = max(low, min(high, CPU_ACTIVATION_BYTES // per_token // ROUND * ROUND))
    fits = max(0, int(MEMORY_FRACTION * available_bytes) - fixed) // per_token
    tokens = min(high, max(low, fits // ROUND * ROUND))
    bound = "the ceiling" if tokens == high else "the floor" if tokens == low else "memory"
    reason = (f"auto on {device.split(':')[0]}: {MEMORY_FRACTION:.0%} of {available_bytes / 2**30:.1f} GiB "
              f"available, less {fixed / 2**20:.0f} MiB for LM-head chunks, at {per_token:,} bytes per token "
              f"fits {fits:,} tokens; set by {bound} of [{low:,}, {high:,}]")
    return TokenBudget(tokens, reason)


def model_shape(config: Any, dtype: str) -> ModelShape:
    """The sizes of a transformers config (a multimodal config's text part), by the names the common
    architectures use (OPT: ffn_dim; Llama and most others: intermediate_size, num_key_value_heads)."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 0)
    if hidden < 1 or layers < 1:
        raise ValueError(f"{type(config).__name__} names no hidden_size / num_hidden_layers")
    heads = int(getattr(config, "num_attention_heads", 0) or 1)
    kv_heads = int(getattr(config, "num_key_value_heads", 0) or heads)
    intermediate = int(getattr(config, "intermediate_size", 0) or getattr(config, "ffn_dim", 0) or 4 * hidden)
    return ModelShape(layers=layers, hidden=hidden, intermediate=intermediate,
                      kv_width=hidden * kv_heads // heads, vocab=int(getattr(config, "vocab_size", 0) or 0),
                      dtype_bytes=DTYPE_BYTES.get(dtype, 4))


def choose_token_budget(requested: int | None, backend: Any) -> TokenBudget:
    """The run's token budget: `--token-budget` when given; else derived from the loaded model and
    the memory left beside it (hf), or fixed where the backend manages its own memory (vLLM)."""
    if requested is not None:
        return TokenBudget(requested, "set by --token-budget")
    model = getattr(backend, "model", None)
    device = str(getattr(backend, "device", "cpu"))
    if getattr(backend, "id", "").startswith("vllm") or model is None:
        return TokenBudget(VLLM_BUDGET if device.startswith("cuda") else CPU_RANGE[1],
                           "fixed: the backend manages its own memory")
    shape = model_shape(model.config, str(getattr(backend, "dtype", "float32")))
    return default_token_budget(shape, device, available_memory(device))


def available_memory(device: str) -> int:
    """Bytes free for batches now: on CUDA the least free memory of the visible devices (torch's own
    cached blocks count as free); on CPU the kernel's MemAvailable, capped by a cgroup limit."""
    if device.startswith("cuda"):
        import torch

        free = []
        indices = [int(device.split(":")[1])] if ":" in device else range(torch.cuda.device_count())
        for i in indices:
            device_free, _ = torch.cuda.mem_get_info(i)
            free.append(device_free + torch.cuda.memory_reserved(i) - torch.cuda.memory_allocated(i))
        return min(free)
    found = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return min(found) if found else 8 * 2**30  # neither readable (not Linux): assume 8 GiB


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (the kernel's estimate of memory usable without swapping)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The cgroup's limit less its usage (v2: memory.max, memory.current; v1: memory/limit_in_bytes,
    usage_in_bytes), counting inactive page cache as free, as the kernel would reclaim it; None
    without a limit."""
    for limit_file, usage_file, stat_file, inactive in (
            ("memory.max", "memory.current", "memory.stat", "inactive_file"),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
             "total_inactive_file")):
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2**60:  # v1 writes ~2^63 for "none"
            return None
        return max(0, int(limit) - usage + _stat(root / stat_file, inactive))
    return None


def _stat(path: Path, key: str) -> int:
    """One counter of a cgroup memory.stat file (0 when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0
