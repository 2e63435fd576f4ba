"""Backends by short name: `hf` (transformers, the default) and `vllm` (optional, for scale).

The name is a plain value a RunSpec records; nothing is wired by dotted class paths, and no
backend's heavy imports happen until it is loaded. Adding a backend is one module (a class that
satisfies `audit.types.Backend`) and one entry in `REGISTRY`; the CLI's `--backend` choices come
from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from audit.contract import BackendSpec, ModelSpec, VLLMOptions
from audit.errors import AuditError
from audit.types import Backend


@dataclass(frozen=True)
class BackendEntry:
    """How to load one backend, and the options dataclass it takes (None: it takes none)."""

    load: Callable[[ModelSpec, Any], Backend]  # (model, options or None) -> a loaded backend
    options: type | None
    help: str  # one line for `--backend`'s help


def _load_hf(spec: ModelSpec, options: object | None) -> Backend:
    from audit.backends.heads import CAUSAL_LM, HeadBackend, model_family
    from audit.backends.hf import HFBackend

    family = model_family(spec)  # the checkpoint's head picks the AutoModel class
    if family != CAUSAL_LM:
        return HeadBackend(spec, family)
    return HFBackend(spec)


def _load_vllm(spec: ModelSpec, options: object | None) -> Backend:
    from audit.backends.vllm import VLLMBackend

    assert isinstance(options, VLLMOptions)
    return VLLMBackend(spec, options)


REGISTRY: dict[str, BackendEntry] = {
    "hf": BackendEntry(_load_hf, None, "transformers; runs everywhere"),
    "vllm": BackendEntry(_load_vllm, VLLMOptions, "vLLM; needs a GPU and the vllm extra"),
}
BACKENDS = tuple(REGISTRY)


def load_backend(spec: ModelSpec, backend: str | BackendSpec = "hf", vllm: VLLMOptions = VLLMOptions()) -> Backend:
    """Load `spec` on the named backend (a name with `vllm`'s options, or a BackendSpec).

    Options given to a backend that takes none are an error rather than silently ignored, so a
    run's manifest never claims a tensor-parallel setting that did not happen.
    """
    chosen = backend if isinstance(backend, BackendSpec) else BackendSpec(backend, vllm)
    entry = REGISTRY.get(chosen.name)
    if entry is None:
        raise AuditError(f"--backend {chosen.name!r}: expected one of {', '.join(BACKENDS)}")
    options = chosen.options
    if entry.options is None:
        if options is not None and options != VLLMOptions():
            raise AuditError(f"vLLM options ({options}) were given, but --backend is {chosen.name}; "
                             "use --backend vllm")
        return entry.load(spec, None)
    if options is None:
        options = entry.options()
    if not isinstance(options, entry.options):
        raise AuditError(f"--backend {chosen.name}: expected {entry.options.__name__}, got {type(options).__name__}")
    return entry.load(spec, options)
