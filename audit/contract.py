"""The run contract: what a run was asked to do (the specs) and what it recorded (`Manifest`).

    RunSpec(ModelSpec, probes, ..., ScorerSpec, backend, VLLMOptions)   -> manifest.json "spec"
    Manifest: the RunSpec plus facts, status and timings                  <-> manifest.json

Why one module: the specs are written into manifest.json and read back by the gate (to rerun a
baseline with another model), by comparisons and by the views. With the specs scattered over the
runner, the backends and the scorers, and the manifest an untyped dict read by string key in nine
files, a renamed field broke readers silently. Here each field is declared once, with a comment, and
the JSON keys appear only in `to_json`/`from_json`.

Compatibility: `schema_version` 1. A manifest written before the `sampler` field existed still reads:
the sampler is then derived from the backend id (`legacy_sampler`), the rule the readers used before.
A value this version cannot type (a hand-written manifest, a key from a newer opt-audit) is kept as it
was read, in `Manifest.extra`, and written back unchanged; typed readers see the field's default.
This module imports no torch (presentation reads manifests through it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping as AbcMapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from audit.errors import AuditError
from audit.types import SCHEMA_VERSION, canonical_json

# --------------------------------------------------------------------------------------------
# Specs: what the user asked for (frozen, hashed into the run directory's name)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for; the backend turns "auto" values into concrete ones."""

    model: str  # hub id, local directory, or "tiny-opt"
    revision: str | None = None  # hub branch, tag or commit
    dtype: str = "auto"
    attn: str = "auto"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N"
    trust_remote_code: bool = False  # run the model's own Python (auto_map); only with --trust-remote-code
    chat_template: bool = False  # wrap generation prompts in the tokenizer's chat template (--chat-template)


@dataclass(frozen=True)
class ScorerSpec:
    """What the user asked for (`--scorer`, `--scorer-checkpoint`, `--scorer-config`)."""

    name: str = "auto"
    checkpoint: str | None = None  # a Detoxify .ckpt the user named (torch pickle: trusted paths only)
    config_dir: str | None = None  # local HF config + tokenizer directory for offline Detoxify
    device: str = "auto"

    def __post_init__(self) -> None:
        # Absolute path strings: the spec is JSON in the manifest and part of the run's hash.
        for name in ("checkpoint", "config_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(Path(value).expanduser().resolve()))


@dataclass(frozen=True)
class VLLMOptions:
    """vLLM engine settings; those that can change a number are part of the backend id."""

    tensor_parallel_size: int = 1  # GPUs one model is split over (a divisor of the head count)
    distributed_executor: Optional[str] = None  # None: vLLM's choice; "ray" for multi-node, "mp" for one node
    gpu_memory_utilization: float = 0.90  # share of each GPU vLLM may take for weights + KV cache
    max_model_len: Optional[int] = None  # None: the model's own context length
    enforce_eager: bool = False  # True: no CUDA graphs (slower; for debugging)
    # Off by default: with vLLM's prefix cache on, prompt log-probabilities have been reported to depend on
    # request order (vllm-project/vllm#42019), and V1 releases before mid-2025 refused prompt_logprobs with
    # it. On, it stores a prompt's KV cache once for its k samples: turn it on for generation-only runs.
    prefix_caching: bool = False

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise AuditError(f"--tensor-parallel-size must be >= 1, got {self.tensor_parallel_size}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise AuditError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.distributed_executor not in (None, "ray", "mp"):
            raise AuditError(f"distributed_executor must be 'ray', 'mp' or None, got {self.distributed_executor!r}")


@dataclass(frozen=True)
class BackendSpec:
    """A backend by registry name with its options (audit.backends.registry loads it).

    `options` is None for a backend that takes none (hf), else the options dataclass its registry
    entry declares (vllm: `VLLMOptions`).
    """

    name: str = "hf"
    options: object | None = None


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run's results; recorded verbatim in manifest.json."""

    model: ModelSpec
    probes: tuple[str, ...]
    suite: str | None = None
    limit: int | None = None  # items per probe (a fixed subset, the same for every seed)
    seed: int = 0  # the run's one seed: sampled requests draw from it, and it keys their cache entries
    data: tuple[tuple[str, str], ...] = ()  # (probe, user data path) overrides
    scorer: ScorerSpec = ScorerSpec()  # the toxicity classifier (--scorer, --scorer-checkpoint, ...)
    backend: str = "hf"  # a name in audit.backends.registry (--backend)
    vllm: VLLMOptions = VLLMOptions()  # vLLM engine settings; must stay default unless backend is vllm
    label: str | None = None  # a classifier's label of interest (--label); None: "positive", else its last label

    def __post_init__(self) -> None:
        # a manifest must never record a vLLM setting that did not happen
        if self.backend == "hf" and self.vllm != VLLMOptions():
            raise AuditError("vLLM options (--tensor-parallel-size, --max-model-len, ...) were given without "
                             "--backend vllm")

    @property
    def backend_spec(self) -> BackendSpec:
        """The backend and its options, as the registry loads them (the vLLM options only under vllm)."""
        return BackendSpec(self.backend, self.vllm if self.backend == "vllm" else None)

    def result_hash(self) -> str:
        """Short hash of the output-relevant fields: the run directory's suffix.

        The backend fields enter only when vLLM is used, and `trust_remote_code` and `chat_template`
        only when set, so every hf run keeps the name it had before they existed; of vLLM's settings
        only those that can change a number count (memory share and executor only place the work).
        """
        payload = asdict(self)
        for flag in ("trust_remote_code", "chat_template"):  # a default keeps the names runs had before the flag
            if not payload["model"].get(flag):
                payload["model"].pop(flag, None)
        if payload.get("label") is None:  # the default keeps the names runs had before --label
            payload.pop("label", None)
        if self.backend == "hf":
            del payload["backend"], payload["vllm"]
        else:
            for resource_only in ("gpu_memory_utilization", "distributed_executor"):
                del payload["vllm"][resource_only]
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:10]

    def run_name(self) -> str:
        """`<model>_<suite or probes>_<hash>`, filesystem-safe."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(self.model.model).name if os.sep in self.model.model
                       else self.model.model.replace("/", "--")).strip("-") or "model"
        what = self.suite or "+".join(self.probes)
        return f"{model}_{re.sub(r'[^A-Za-z0-9._+-]+', '-', what)}_{self.result_hash()}"

    def to_json(self) -> dict[str, Any]:
        """The manifest's "spec": every field, verbatim, as JSON values (tuples become lists)."""
        out = json.loads(json.dumps(asdict(self)))
        if out.get("label") is None:  # only a run given --label records one
            out.pop("label", None)
        return out  # type: ignore[no-any-return]

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "RunSpec":
        """A RunSpec from manifest.json's "spec"; KeyError, TypeError, ValueError or AuditError when it is
        not one (the caller names the file)."""
        return RunSpec(model=ModelSpec(**d["model"]), probes=tuple(str(p) for p in d["probes"]),
                       suite=d.get("suite"), limit=d.get("limit"), seed=int(d.get("seed", 0)),
                       data=tuple((str(p), str(path)) for p, path in d.get("data") or ()),
                       scorer=ScorerSpec(**(d.get("scorer") or {})), backend=str(d.get("backend", "hf")),
                       vllm=VLLMOptions(**(d.get("vllm") or {})),
                       label=None if d.get("label") is None else str(d["label"]))


# --------------------------------------------------------------------------------------------
# The manifest: the RunSpec plus what the run found out and how it went
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """The backend's description of the loaded model (`Backend.describe()`); the fields every reader
    compares are typed, the rest (size, shape, pinned files, vLLM settings) is kept in `details`."""

    model: str | None = None  # the model as asked for (hub id, folder, tiny-opt)
    revision: str | None = None  # resolved: a commit, or sha256 over a local folder's files
    dtype: str | None = None
    attention: str | None = None
    device: str | None = None
    backend: str | None = None  # hf, vllm
    details: Mapping[str, Any] = field(default_factory=dict)  # every other fact, as the backend wrote it

    _TYPED = ("backend", "model", "revision", "dtype", "attention", "device")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self._TYPED if getattr(self, k) is not None}
        return {**out, **self.details}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "ModelFacts":
        typed = {k: (None if d.get(k) is None else str(d[k])) for k in ModelFacts._TYPED}
        return ModelFacts(**typed, details={k: v for k, v in d.items() if k not in ModelFacts._TYPED})


@dataclass(frozen=True)
class ProbeRecord:
    """One probe of the run as the manifest records it."""

    version: str | None = None
    # of the data the probe read (bundled or --data): one file's sha256, or file name -> sha256 for several
    data_sha256: str | Mapping[str, str] | None = None
    requests: int | None = None  # requests it asked

    def to_json(self) -> dict[str, Any]:
        sha = self.data_sha256
        out: dict[str, Any] = {"version": self.version,
                               "data_sha256": dict(sha) if isinstance(sha, Mapping) else sha}
        return out if self.requests is None else {**out, "requests": self.requests}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "ProbeRecord":
        requests, sha = d.get("requests"), d.get("data_sha256")
        data: str | Mapping[str, str] | None = (
            None if sha is None else {str(k): str(v) for k, v in sha.items()} if isinstance(sha, Mapping) else str(sha))
        return ProbeRecord(None if d.get("version") is None else str(d["version"]), data,
                           int(requests) if isinstance(requests, int) else None)


@dataclass(frozen=True)
class EngineRecord:
    """How the engine batched: the token budget (and why that one) and the row cap."""

    token_budget: int | None = None
    token_budget_reason: str | None = None
    max_batch_size: int | None = None


@dataclass(frozen=True)
class Attempt:
    """A failed (or killed) attempt at the run, kept so a rerun never hides it."""

    attempt: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Rerun:
    """A rerun of a complete run while it runs (the manifest stays `complete` meanwhile)."""

    attempt: int | None = None
    status: str | None = None
    started_at: str | None = None


def legacy_sampler(backend_id: str) -> str | None:
    """The sampler of a manifest written before `sampler` was a field: 'sampler<N>' from an hf backend
    id, 'vllm seeds<N>' from a vLLM one (later fields, such as the prompt rule, follow it)."""
    fields_ = backend_id.split("|")[1:]
    if backend_id.startswith("vllm:"):
        found = next((f for f in fields_ if f.startswith("seeds")), None)
        return f"vllm {found}" if found else None
    return next((f for f in fields_ if f.startswith("sampler")), None)


_MAPPINGS = ("versions", "hardware", "truncation", "scorers", "requests", "timings_s")


@dataclass(frozen=True)
class Manifest(AbcMapping[str, Any]):
    """manifest.json, typed. Written by the runner only (`audit.store.write_manifest`), read by the gate,
    comparisons, exports and the views (`audit.store.load_run`).

    `status` is "running", "complete" or "failed" (with `error`); a failed rerun of a complete run
    leaves it complete and appends to `failed_attempts`. Read-only Mapping access (`m["spec"]`) gives
    the JSON form, for readers not yet moved to the fields; new code reads the fields.
    """

    schema_version: int = SCHEMA_VERSION
    run_id: str | None = None  # the run directory's name
    status: str | None = None  # running, complete, failed
    command: str = ""  # the command line, to reproduce the run
    spec: RunSpec | None = None  # None: the manifest has no full spec (a hand-written one)
    model: ModelFacts | None = None
    backend_id: str = ""  # part of every cache key: model, revision, dtype, attention, sampler, prompt rule
    sampler: str | None = None  # the random stream samples were drawn from ('sampler1', 'vllm seeds1')
    probes: Mapping[str, ProbeRecord] = field(default_factory=dict)
    engine: EngineRecord | None = None
    versions: Mapping[str, str] | None = None  # library versions
    hardware: Mapping[str, Any] | None = None
    started_at: str | None = None
    attempts: int | None = None
    truncation: Mapping[str, Any] | None = None  # prompts cut to fit the context (audit.runner)
    input_warnings: tuple[str, ...] = ()  # input repaired rather than refused
    failed_attempts: tuple[Attempt, ...] = ()
    rerun: Rerun | None = None
    scorers: Mapping[str, Mapping[str, Any]] | None = None  # score kind -> the scorer's provenance
    finished_at: str | None = None
    requests: Mapping[str, int] | None = None  # audit.engine.EngineStats
    timings_s: Mapping[str, float] | None = None
    error: str | None = None  # why the run failed
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not type, as read

    # ------------------------------------------------------------ derived facts
    @property
    def suite(self) -> str | None:
        return self.spec.suite if self.spec is not None else self._partial_spec.get("suite")

    @property
    def seed(self) -> int | None:
        return self.spec.seed if self.spec is not None else self._partial_spec.get("seed")

    @property
    def limit(self) -> int | None:
        return self.spec.limit if self.spec is not None else self._partial_spec.get("limit")

    @property
    def _partial_spec(self) -> Mapping[str, Any]:
        """A "spec" that is not a full RunSpec (kept in `extra`): only its suite, seed and limit are read."""
        spec = self.extra.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def prompt_rule(self) -> str:
        """How generation prompts were tokenized ('prompt-rstrip', '... |chat'), from the backend id; runs
        made before the rule was recorded kept trailing whitespace."""
        fields_ = self.backend_id.split("|")[1:]
        rule = next((f for f in fields_ if f.startswith("prompt-")), "prompt-as-given")
        return rule + ("|chat" if "chat" in fields_ else "")

    @property
    def facts(self) -> ModelFacts:
        return self.model or ModelFacts()

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The manifest.json object (without keys whose value is absent)."""
        out: dict[str, Any] = {"schema_version": self.schema_version, "run_id": self.run_id, "status": self.status,
                               "command": self.command}
        if self.spec is not None:
            out["spec"] = self.spec.to_json()
        if self.model is not None:
            out["model"] = self.model.to_json()
        out["backend_id"] = self.backend_id
        if self.sampler is not None:
            out["sampler"] = self.sampler
        out["probes"] = {name: p.to_json() for name, p in self.probes.items()}
        if self.engine is not None:
            out["engine"] = asdict(self.engine)
        for key in ("versions", "hardware", "started_at", "attempts", "truncation"):
            out[key] = getattr(self, key)
        if self.input_warnings:
            out["input_warnings"] = list(self.input_warnings)
        if self.failed_attempts:
            out["failed_attempts"] = [asdict(a) for a in self.failed_attempts]
        if self.rerun is not None:
            out["rerun"] = asdict(self.rerun)
        for key in ("scorers", "finished_at", "requests", "timings_s", "error"):
            out[key] = getattr(self, key)
        out = {k: v for k, v in out.items() if v is not None}
        return {**out, **self.extra}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "Manifest":
        """Read a manifest object leniently: a field of the wrong type keeps its default (and its value
        stays in `extra`), so any run directory this version wrote, or an older one, reads."""
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise AuditError(f"manifest schema_version {version!r} is not supported "
                             f"(this opt-audit reads version {SCHEMA_VERSION})")
        extra: dict[str, Any] = {}
        kw: dict[str, Any] = {}

        def take(key: str, ok: bool, value: Any) -> None:
            if key not in d:
                return
            if ok:
                kw[key] = value
            else:
                extra[key] = d[key]

        def opt_str(key: str) -> None:
            v = d.get(key)
            take(key, v is None or isinstance(v, str), v)

        for key in ("run_id", "status", "started_at", "finished_at", "error", "sampler"):
            opt_str(key)
        take("command", isinstance(d.get("command"), str), d.get("command"))
        take("backend_id", isinstance(d.get("backend_id"), str), d.get("backend_id"))
        attempts = d.get("attempts")
        take("attempts", attempts is None or (isinstance(attempts, int) and not isinstance(attempts, bool)),
             attempts)
        spec = d.get("spec")
        if "spec" in d:
            try:
                kw["spec"] = RunSpec.from_json(spec) if isinstance(spec, Mapping) else None
            except (KeyError, TypeError, ValueError, AuditError):
                kw["spec"] = None
            if kw["spec"] is None:
                extra["spec"] = spec
        model = d.get("model")
        take("model", isinstance(model, Mapping), ModelFacts.from_json(model) if isinstance(model, Mapping) else None)
        probes = d.get("probes")
        take("probes", isinstance(probes, Mapping) and all(isinstance(p, Mapping) for p in probes.values()),
             {str(k): ProbeRecord.from_json(v) for k, v in probes.items()} if isinstance(probes, Mapping)
             and all(isinstance(p, Mapping) for p in probes.values()) else None)
        engine = d.get("engine")
        take("engine", isinstance(engine, Mapping) and set(engine) <= {f.name for f in fields(EngineRecord)},
             EngineRecord(**engine) if isinstance(engine, Mapping)
             and set(engine) <= {f.name for f in fields(EngineRecord)} else None)
        for key in _MAPPINGS:
            v = d.get(key)
            take(key, v is None or isinstance(v, Mapping), v)
        warnings_ = d.get("input_warnings")
        take("input_warnings", isinstance(warnings_, list), tuple(str(w) for w in warnings_ or ())
             if isinstance(warnings_, list) else ())
        take("failed_attempts", _records_ok(d.get("failed_attempts"), Attempt),
             tuple(Attempt(**a) for a in d.get("failed_attempts") or ())
             if _records_ok(d.get("failed_attempts"), Attempt) else ())
        rerun = d.get("rerun")
        take("rerun", rerun is None or _records_ok([rerun], Rerun),
             Rerun(**rerun) if isinstance(rerun, Mapping) and _records_ok([rerun], Rerun) else None)
        known = {f.name for f in fields(Manifest)} - {"extra"}
        extra.update({k: v for k, v in d.items() if k not in known})
        if "sampler" not in kw:  # written before `sampler` was a field (schema 1 as first released)
            kw["sampler"] = legacy_sampler(kw.get("backend_id", ""))
        return Manifest(**kw, extra=extra)

    def with_changes(self, **changes: Any) -> "Manifest":
        """A copy with some fields replaced (the manifest is written whole, each time)."""
        return replace(self, **changes)

    # ------------------------------------------------------------ read-only Mapping view of the JSON
    @cached_property
    def _json(self) -> dict[str, Any]:
        return self.to_json()

    def __getitem__(self, key: str) -> Any:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)


def _records_ok(value: Any, kind: type) -> bool:
    """A JSON list of objects whose keys are all fields of `kind` (Attempt, Rerun)."""
    names = {f.name for f in fields(kind)}
    return isinstance(value, list) and all(isinstance(v, Mapping) and set(v) <= names for v in value)
