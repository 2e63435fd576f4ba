"""The Hugging Face transformers backend: any causal LM id or local directory.

Conventions that change numbers, stated once here:
- dtype is explicit (fp32 on CPU, bf16 else fp16 on CUDA): transformers 5 would otherwise load an
  fp16 checkpoint as fp16 on CPU, where it is slow and less precise.
- attention is FlashAttention-2 when the package and a CUDA device exist, else SDPA; asking for
  FA2 where it cannot run is an error, never a silent fallback.
- log-likelihood follows lm-evaluation-harness 0.4.13: trailing context whitespace moves to the
  continuation, the context is encoded with the tokenizer's own special tokens (OPT: a leading
  `</s>`), the continuation is the tail of encode(context + continuation), and an empty context
  is conditioned on the BOS token alone with the continuation encoded without special tokens
  (the token is recorded in the manifest: for SmolLM2 it is the chat marker `<|im_start|>`).
  The score is the summed log-probability of the continuation tokens.
- a generation prompt loses its trailing whitespace before it is tokenized: BPE tokens carry their
  leading space, so a prompt ending in " " ends in a lone-space token the model rarely saw before a
  word (SmolLM2 then starts 17 of 20 BOLD continuations with a number; stripped, none). lm-eval
  moves a log-likelihood context's trailing whitespace to the continuation for the same reason;
  here the model generates the space itself. `GENERATION_PROMPT_RULE` is recorded in the manifest.
- an instruct model is audited as plain completion by default (lm-eval's default, and the only
  protocol the papers' numbers use); `--chat-template` wraps each generation prompt in the
  tokenizer's chat template as one user turn instead. Log-likelihood probes never use it.
- generation pads on the left and uses an explicit GenerationConfig, so a checkpoint's
  generation_config.json (top_k=50, repetition penalties, ...) cannot silently change the
  decoding protocol a probe asked for. Sampling is pure temperature + nucleus (no top-k), drawn
  per sample from its own seeded generator (audit.backends.sampling).

Work that several rows would repeat is done once (`share_prefixes`, on by default): options that share
a context are scored from one KV cache of it (audit.backends.prefix), and the n samples of a prompt
decode from one prefill of it (audit.backends.decode). Both give the numbers of the plain path, up to
float rounding of the different shapes, exactly as a different batch size would; so the backend id,
and the cache key, do not depend on it.

Trust: no code from a model folder runs. Configs, tokenizers and models are loaded with
`trust_remote_code=False` unless the user passed `--trust-remote-code` (recorded in the RunSpec, the
backend id and the report), and a local folder whose config.json or tokenizer_config.json has an
`auto_map` is refused before anything loads, naming the file. A local model is pinned by the sha256
of every file in it that can change a result (audit.pinning.pin_folder), so editing its config,
tokenizer or weights never serves cached results of the old model. A GGUF file (`--model x.gguf`,
read through the `gguf` package and dequantized to float on load, never converted through disk) is
pinned by its own sha256. A checkpoint that leaves any weight uninitialised is refused: transformers
would fill it randomly and the audit would describe a random model.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import math
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence, cast

from audit.backends.convert import foreign_checkpoint, load_converted
from audit.batching import SharedPrefix
from audit.backends.tokenization import Tokenization, sample_from_tokens
from audit.contract import ModelSpec  # re-exported here too: its home before audit.contract
from audit.errors import AuditError
from audit.pinning import auto_map_file, first_line, pin_file, pin_folder
from audit.types import Embed, Embedding, Generate, Generation, LogLikelihood, LogLikelihoodResult, Request

if TYPE_CHECKING:
    from audit.backends.lmhead import SplitHead
    from audit.backends.logprobs import ContinuationScore

GENERATION_PROMPT_RULE = "rstrip"  # trailing whitespace removed from generation prompts (see the docstring)
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTENTIONS = ("auto", "sdpa", "eager", "flash_attention_2")
LoadedModel = tuple[Any, dict[str, Any]]  # from_pretrained(..., output_loading_info=True): (model, loading info)


def flash_attn_available() -> bool:
    """FlashAttention-2 needs its package and a CUDA device."""
    import torch

    return importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AuditError(f"--device {device}: no CUDA device is available (torch {torch.__version__})")
    if device != "cpu" and not device.startswith("cuda"):
        raise AuditError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """fp32 on CPU; bf16 on CUDA where supported, else fp16."""
    import torch

    if dtype not in DTYPES:
        raise AuditError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def resolve_attn(attn: str, device: str) -> str:
    """FA2 where it can run, else SDPA; an explicit FA2 request that cannot run is an error."""
    if attn not in ATTENTIONS:
        raise AuditError(f"--attn {attn!r}: expected one of {', '.join(ATTENTIONS)}")
    fa2 = device.startswith("cuda") and flash_attn_available()
    if attn == "auto":
        return "flash_attention_2" if fa2 else "sdpa"
    if attn == "flash_attention_2" and not fa2:
        why = "no CUDA device" if not device.startswith("cuda") else "the flash_attn package is not installed"
        raise AuditError(f"--attn flash_attention_2 cannot run here: {why} "
                         "(install the 'gpu' extra on a CUDA machine, or use --attn sdpa)")
    return attn


class Placement(NamedTuple):
    """Where and how a transformers model runs, each resolved from "auto" and checked."""

    device: str  # "cpu", "cuda" or "cuda:N"
    dtype: str  # a torch dtype name, never "auto"
    attn: str  # transformers' attn_implementation, never "auto"


def resolve_placement(spec: ModelSpec) -> Placement:
    """Device, dtype and attention for `spec`, shared by every transformers backend (hf and heads), so
    one `--device/--dtype/--attn` means the same whatever the model's head; fp16 on CPU is refused."""
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    attn = resolve_attn(spec.attn, device)
    if dtype == "float16" and device == "cpu":
        raise AuditError("--dtype float16 on CPU is unsupported for many kernels; use float32 or bfloat16")
    return Placement(device, dtype, attn)


def config_shape(config: Any) -> dict[str, int | None]:
    """A model config's shape for the manifest (None where the config does not say), read the same way
    by every backend's `describe`."""
    return {
        "layers": getattr(config, "num_hidden_layers", None),
        "heads": getattr(config, "num_attention_heads", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": getattr(config, "vocab_size", None),
    }


def refuse_uninitialised(spec: ModelSpec, model: Any, info: dict[str, Any]) -> None:
    """A checkpoint that leaves any weight to transformers' random init describes a random model: refuse it."""
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise AuditError(f"--model {spec.model}: its weights leave {len(missing)} tensor(s) of "
                         f"{type(model).__name__} uninitialised ({', '.join(missing[:3])}"
                         f"{', ...' if len(missing) > 3 else ''}); transformers would fill them randomly")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA (or MPS) out-of-memory errors, which the engine answers by halving the batch."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).exists() or model.count("/") > 1


def check_local_model(spec: ModelSpec, directory: Path) -> None:
    """Refuse, naming the file, what would run code or fail deep inside transformers: an `auto_map`
    (the folder's own Python) without --trust-remote-code, a config that is not a JSON object, and a
    .safetensors file whose header is unreadable (random bytes, truncated)."""
    try:
        remote = auto_map_file(directory)
    except AuditError as e:
        raise AuditError(f"--model {spec.model}: {e}") from None
    if remote is not None and not spec.trust_remote_code:
        raise AuditError(f"--model {spec.model}: {remote} has an auto_map, which loads Python code from the "
                         "model folder; opt-audit runs no code from a model folder unless you pass "
                         "--trust-remote-code (only for a folder whose code you have read and trust)")
    weights = sorted(p for p in directory.iterdir() if p.suffix == ".safetensors" and p.is_file())
    if weights:
        from safetensors import SafetensorError, safe_open

        for path in weights:
            try:
                with safe_open(str(path), framework="pt"):
                    pass
            except (SafetensorError, OSError) as e:
                raise AuditError(f"--model {spec.model}: {path} is not a readable safetensors file "
                                 f"({first_line(e)}); is it truncated or corrupt?") from None


class HFBackend:
    """A transformers causal LM behind the Backend seam."""

    def __init__(self, spec: ModelSpec, share_prefixes: bool = True) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.device, self.dtype, self.attn = resolve_placement(spec)
        found = model_source(spec)
        source, local_dir = found.source, found.local_dir

        multi_gpu = self.device == "cuda" and torch.cuda.device_count() > 1
        common: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
        if local_dir is None and spec.revision:
            common["revision"] = spec.revision
        if found.gguf_file is not None:
            common["gguf_file"] = found.gguf_file
        kwargs: dict[str, Any] = {
            **common,
            "dtype": getattr(torch, self.dtype),
            "attn_implementation": self.attn,
        }
        if multi_gpu:
            kwargs["device_map"] = "auto"  # shard a model larger than one GPU across all of them
        try:
            with warnings.catch_warnings(), _no_library_bars():
                # torch warns before refusing a protocol-4 pickle: one line only
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                self.tokenizer = AutoTokenizer.from_pretrained(source, **common)
                foreign = None if local_dir is None or found.gguf_file else foreign_checkpoint(spec.model, local_dir)
                if foreign is not None:  # weights only as tf_model.h5 / flax_model.msgpack: converted on load
                    self.model, info = load_converted(spec.model, foreign, kwargs)
                else:
                    # output_loading_info=True returns (model, info); transformers annotates the model alone
                    self.model, info = cast(LoadedModel, AutoModelForCausalLM.from_pretrained(
                        source, output_loading_info=True, **kwargs))
        except load_errors() as e:
            raise load_error(spec, local_dir, e) from None
        refuse_uninitialised(spec, self.model, info)
        if not multi_gpu:
            self.model.to(self.device)
        self.model.eval()
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self.tok = Tokenization(self.tokenizer, self.max_length, spec.model, spec.chat_template)
        self.pad_id, self.eos_id, self.bos_id = self.tok.pad_id, self.tok.eos_id, self.tok.bos_id

        self.files: dict[str, str] = {}  # local model: relative path -> sha256 of every pinned file
        self.format = "gguf" if found.gguf_file is not None else "transformers"
        if found.gguf_file is not None:
            pin = pin_file(Path(source) / found.gguf_file)
            self.revision, self.files = pin.revision, pin.as_dict()
        elif local_dir is not None:
            pin = pin_folder(local_dir)
            self.revision, self.files = pin.revision, pin.as_dict()
        else:
            commit = getattr(self.model.config, "_commit_hash", None)
            self.revision = commit or spec.revision or "unknown"
        self.name = spec.model
        if spec.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise AuditError(f"--chat-template: {spec.model}'s tokenizer has no chat template")
        self.share_prefixes = share_prefixes
        self._split: tuple[Any, SplitHead | None] | None = None  # (model, its split head): `split_head`

    def with_sharing(self, share_prefixes: bool) -> "HFBackend":
        """The same loaded model with prefix sharing on or off (the plain path is the reference the
        shared one is tested and benchmarked against)."""
        other = copy.copy(self)
        other.share_prefixes = share_prefixes
        return other

    # ---------------------------------------------------------------- identity and facts
    @property
    def id(self) -> str:
        remote = "|remote-code" if self.spec.trust_remote_code else ""  # the model folder's own code ran
        chat = "|chat" if self.spec.chat_template else ""  # generation prompts wrapped in the chat template
        return (f"hf:{self.name}@{self.revision}|{self.dtype}|{self.attn}|{self.device.split(':')[0]}"
                f"|{self.sampler}|prompt-{GENERATION_PROMPT_RULE}{remote}{chat}")

    @property
    def sampler(self) -> str:
        """The random stream samples are drawn from (also in `id`); runs pair samples only under the same one."""
        from audit.backends.sampling import SAMPLER_VERSION

        return f"sampler{SAMPLER_VERSION}"

    def describe(self) -> dict[str, Any]:
        """Model facts for the manifest: size, shape, context, precision, attention, pin (with the
        sha256 of every file of a local model, so a reader can check which files were audited)."""
        cfg = self.model.config
        facts: dict[str, Any] = {
            "backend": "hf",
            "model": self.name,
            "revision": self.revision,
            "architecture": (getattr(cfg, "architectures", None) or [type(self.model).__name__])[0],
            "params": int(sum(p.numel() for p in self.model.parameters())),
            **config_shape(cfg),
            "context": self.max_length,
            "dtype": self.dtype,
            "attention": self.attn,
            "device": self.device,
            "trust_remote_code": self.spec.trust_remote_code,
            "format": self.format,
            # protocol choices that move numbers (SmolLM2's CrowS: 55.6 conditioned on <|im_start|>,
            # 53.6 on <|endoftext|>): recorded so a reader can compare like with like
            "empty_context_token": (self.tokenizer.convert_ids_to_tokens(self.bos_id)
                                    if self.bos_id is not None else None),
            "generation_prompt": "trailing whitespace removed before tokenizing",
            "chat_template": "applied to generation prompts (one user turn)" if self.spec.chat_template
                             else "not applied (plain completion)",
        }
        if self.files:
            facts["files"] = dict(self.files)
        return facts

    # ---------------------------------------------------------------- tokenisation (audit.backends.tokenization)
    def _encode(self, text: str, special: bool) -> list[int]:
        return self.tok.encode(text, special)

    def _ll_tokens(self, req: LogLikelihood) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) under lm-evaluation-harness 0.4.13 conventions."""
        return self.tok.ll_tokens(req)

    def _prompt_tokens(self, req: Generate) -> list[int]:
        return self.tok.prompt_tokens(req, self.spec.chat_template)

    def prompt_truncation(self, req: Generate) -> int:
        """Tokens cut from the start of a generation prompt so that it and its new tokens fit the context."""
        return self.tok.prompt_truncation(req, self.spec.chat_template)

    def cost(self, request: Request) -> int:
        """Tokens of the request's row(s); a shared prompt is counted once for its n samples."""
        if isinstance(request, Embed):
            return len(self._embed_tokens(request))
        return self.tok.cost(request, self.share_prefixes, self.spec.chat_template)

    def shared_prefix(self, request: Request) -> SharedPrefix | None:
        """The leading tokens this request computes once with every other request of the same context
        (None: it shares nothing). The engine keeps such requests in one batch."""
        if not self.share_prefixes or not isinstance(request, LogLikelihood):
            return None
        ctx, cont = self._ll_tokens(request)
        if not self.tok.shareable(ctx, cont):
            return None
        return SharedPrefix(key=tuple(ctx), tokens=len(ctx) - 1)

    # ---------------------------------------------------------------- log-likelihood
    def loglikelihood(self, requests: Sequence[LogLikelihood]) -> list[LogLikelihoodResult]:
        """Score a batch: options that share a context in this batch run from one KV cache of it, the
        rest in one left-padded forward pass; only continuation positions reach the LM head."""
        from audit.backends.prefix import SharedGroup, shared_scores

        tokens = [self._ll_tokens(r) for r in requests]
        by_context: dict[tuple[int, ...], list[int]] = {}
        if self.share_prefixes:
            for i, (ctx, cont) in enumerate(tokens):
                if self.tok.shareable(ctx, cont):
                    by_context.setdefault(tuple(ctx), []).append(i)
        shared = [members for members in by_context.values() if len(members) > 1]
        in_group = {i for members in shared for i in members}
        plain = [i for i in range(len(requests)) if i not in in_group]

        scores: dict[int, ContinuationScore] = {}
        if plain:
            scores.update(zip(plain, self._plain_scores([tokens[i] for i in plain])))
        if shared:
            groups = [SharedGroup(context=tuple(tokens[m[0]][0]),
                                  continuations=tuple(tuple(tokens[i][1]) for i in m)) for m in shared]
            order = [i for m in shared for i in m]
            scores.update(zip(order, shared_scores(self.model, groups, self.pad_id, self.max_length,
                                                   split=self.split_head())))
        out = []
        for i, req in enumerate(requests):
            if not math.isfinite(scores[i].logprob):
                raise AuditError(f"{self.name} ({self.dtype}) gave a non-finite log-likelihood for "
                                 f"{req.continuation[:60]!r}: numeric overflow? try --dtype float32")
            out.append(LogLikelihoodResult(scores[i].logprob, len(tokens[i][1]), scores[i].greedy))
        return out

    def _plain_scores(self, tokens: Sequence[tuple[list[int], list[int]]]) -> list[ContinuationScore]:
        """One left-padded forward pass; of its last max(len(cont)) positions, only each row's own
        continuation positions reach the LM head (audit.backends.logprobs)."""
        import torch

        from audit.backends.lmhead import scoring_states
        from audit.backends.logprobs import score_continuations
        from audit.backends.padding import left_pad

        seqs, conts = [], []
        for ctx, cont in tokens:
            full = (ctx + cont)[-(self.max_length + 1):]
            seqs.append(full[:-1])  # position j predicts full[j + 1]
            conts.append(cont)
        keep = max(len(c) for c in conts)
        ids, mask, positions = left_pad(seqs, self.pad_id)  # (B, T) each
        dev = self.model.device
        with torch.inference_mode():
            out = scoring_states(self.model, self.split_head(), keep, input_ids=ids.to(dev),
                                 attention_mask=mask.to(dev), position_ids=positions.to(dev), use_cache=False)
            # out.states: (B, keep, H) hidden states, or (B, keep, V) logits where the head stays on
            return score_continuations(out.states, conts, [keep - len(c) for c in conts],
                                       head=out.head, vocab=out.vocab)

    def split_head(self) -> "SplitHead | None":
        """The model's body and LM head, apart (checked once per model; None: use its full forward).
        Keyed on the model object, so a model swapped in after loading is checked again."""
        from audit.backends.lmhead import split_head

        cached = self._split
        if cached is None or cached[0] is not self.model:
            cached = self._split = (self.model, split_head(self.model))
        return cached[1]

    # ---------------------------------------------------------------- hidden states (Embed)
    def _embed_tokens(self, req: Embed) -> list[int]:
        """BOS, then the text without special tokens: the empty-context convention of log-likelihood,
        so an embedded sentence is read exactly as a scored one is."""
        ids = self._encode(req.text, special=False)
        if not ids:
            raise AuditError(f"an Embed request has no tokens (text {req.text[:60]!r})")
        if self.bos_id is None or len(ids) + 1 > self.max_length:
            raise AuditError(f"{self.name} cannot embed {req.text[:60]!r}: "
                             + ("its tokenizer has no BOS or EOS token" if self.bos_id is None else
                                f"{len(ids)} tokens do not fit its context of {self.max_length}"))
        return [self.bos_id, *ids]

    def embed(self, requests: Sequence[Embed]) -> list[Embedding]:
        """Pooled hidden states from one left-padded pass of the model body (`base_model`: no LM head),
        with `output_hidden_states`. Each request pools its own layer over its text's positions (the BOS
        position is left out: its state is the same for every text) in float32, so padding and batch
        shape do not change a vector beyond float rounding."""
        import torch

        from audit.backends.padding import left_pad

        seqs = [self._embed_tokens(r) for r in requests]
        ids, mask, positions = left_pad(seqs, self.pad_id)  # (B, T) each; every row ends at column T - 1
        body = getattr(self.model, "base_model", None) or self.model
        dev = self.model.device
        with torch.inference_mode():
            out = body(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                       use_cache=False, output_hidden_states=True)
        states = out.hidden_states  # (layers + 1) x (B, T, H): the embedding output, then each layer
        result = []
        for row, (req, seq) in enumerate(zip(requests, seqs)):
            if not -len(states) <= req.layer < len(states):
                raise AuditError(f"Embed layer {req.layer} does not exist in {self.name}: its hidden states "
                                 f"are layers 0..{len(states) - 1} (0: the embedding output; -1: the last)")
            text = states[req.layer][row, -(len(seq) - 1):].float()  # (T_text, H): the text's own positions
            vector = text.mean(0) if req.pooling == "mean" else text[-1]  # (H,)
            if not bool(torch.isfinite(vector).all()):
                raise AuditError(f"{self.name} ({self.dtype}) gave non-finite hidden states for "
                                 f"{req.text[:60]!r}: numeric overflow? try --dtype float32")
            result.append(Embedding(tuple(vector.cpu().tolist()), len(seq) - 1))
        return result

    # ---------------------------------------------------------------- generation
    def generate(self, requests: Sequence[Generate], seed: int) -> list[Generation]:
        """Batched decoding for requests that share one GenParams.

        Greedy rows decode by argmax. Sampled rows are drawn by `SeededSampler`, one generator per
        sample, so every sample is a function of (model, seed, prompt, params, index) alone. With
        prefix sharing each prompt is prefilled once for its n samples (audit.backends.decode);
        without it, `model.generate` runs n copies of it.
        """
        from audit.backends.decode import decode
        from audit.backends.sampling import SeededSampler, row_seed

        params = requests[0].params
        if any(r.params != params for r in requests):
            raise ValueError("a generation batch must share one GenParams")
        n = params.n
        prompts = [self._prompt_tokens(r) for r in requests]
        seeds = [row_seed(seed, r, j) for r in requests for j in range(n)] if params.do_sample else []

        def sampler(a: int, b: int) -> SeededSampler | None:
            """The generators of prompts [a, b)'s sample rows (request-major, as `seeds`); None for greedy."""
            return SeededSampler(params, seeds[a * n:b * n], self.model.device) if params.do_sample else None

        if self.share_prefixes:
            new = []
            for a, b in held_within_paid(prompts, n, params.max_new_tokens):
                new += decode(self.model, prompts[a:b], n, params.max_new_tokens, self.pad_id, self.eos_id,
                              sampler(a, b))
        else:
            new = self._generate_copies([p for p in prompts for _ in range(n)], params.max_new_tokens,
                                        sampler(0, len(prompts)))
        samples = [sample_from_tokens(row, self.eos_id, self.tok.decode) for row in new]  # cut at EOS; pads follow it
        return [Generation(tuple(samples[i * n:(i + 1) * n])) for i in range(len(requests))]

    def _generate_copies(self, prompts: list[list[int]], max_new_tokens: int, sampler: Any) -> list[list[int]]:
        """`model.generate` over one left-padded row per sample: the plain path."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        from audit.backends.padding import left_pad

        ids, mask, _ = left_pad(prompts, self.pad_id)  # (B * n, T) each; generate derives positions
        width = ids.shape[1]
        # explicit: a checkpoint's generation_config.json must not leak in (its __init__ takes untyped **kwargs)
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
            pad_token_id=self.pad_id, eos_token_id=self.eos_id, bos_token_id=self.bos_id,
        )
        dev = self.model.device
        processors = LogitsProcessorList([sampler] if sampler is not None else [])
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                                      generation_config=config, logits_processor=processors)
        new: list[list[int]] = out[:, width:].tolist()  # (B * n, new tokens)
        return new


@contextlib.contextmanager
def _no_library_bars() -> Iterator[None]:
    """Silence the bar transformers' GGUF dequantization draws with a bare tqdm (it ignores
    transformers' own progress-bar switch): the console belongs to opt-audit's bar. The module's
    `tqdm` name is swapped for a disabled one while a model loads, and restored after."""
    import functools

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - an older transformers without GGUF support
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    setattr(gguf_utils, "tqdm", functools.partial(original, disable=True))  # not in the module's exports
    try:
        yield
    finally:
        setattr(gguf_utils, "tqdm", original)


def held_within_paid(prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int) -> list[tuple[int, int]]:
    """Consecutive groups [a, b) of a generation batch's prompts to decode together, so that what
    a group's KV cache holds stays within what the batch plan paid for.

    The plan costs a prompt once for its n samples (`cost`: it is computed once), but once the
    prefill is repeated to its n sample rows each row holds its own copy: n x (prompt + new tokens)
    per prompt against prompt + n x new paid. A batch of 25-sample prompts then held about twice
    the KV cache its token budget allowed (SmolLM2-135M's quick suite: 2,219 MiB peak RSS without
    groups). Each group holds at most the whole batch's payment (one prompt at least; prompts at
    their own lengths), as shared-context scoring does (audit.backends.prefix). Samples are seeded
    per row, so a group is one more batch split under the batch-invariance contract (tested:
    identical samples with and without groups).
    """
    paid = sum(len(p) + n * max_new_tokens for p in prompts)
    groups: list[tuple[int, int]] = []
    start, held = 0, 0
    for i, p in enumerate(prompts):
        rows = n * (len(p) + max_new_tokens)
        if i > start and held + rows > paid:
            groups.append((start, i))
            start, held = i, 0
        held += rows
    if prompts:
        groups.append((start, len(prompts)))
    return groups


def load_backend(spec: ModelSpec, share_prefixes: bool = True) -> HFBackend:
    """Load a model on the transformers backend (`audit.backends.registry.load_backend` picks a backend by name)."""
    return HFBackend(spec, share_prefixes=share_prefixes)


class ModelSource(NamedTuple):
    """Where a model loads from: `source` for from_pretrained, the local folder if any, and the
    file name inside it when the model is one GGUF file."""

    source: str
    local_dir: Path | None
    gguf_file: str | None = None


def model_source(spec: ModelSpec) -> ModelSource:
    """tiny-opt, a local dir, a local .gguf file, or a hub id.

    A local directory is checked (`check_local_model`) and a GGUF file's header read (`check_gguf`)
    before any loader opens it."""
    from audit import tiny

    if spec.model == tiny.TINY_NAME:
        d = tiny.tiny_model_dir()
        check_local_model(spec, d)
        return ModelSource(str(d), d)
    if spec.model.lower().endswith(".gguf") and (_looks_like_path(spec.model) or "/" not in spec.model):
        f = Path(spec.model).expanduser()
        if not f.is_file():
            raise AuditError(f"--model {spec.model}: no such file")
        check_gguf(spec, f)
        return ModelSource(str(f.resolve().parent), f.resolve().parent, f.name)
    if _looks_like_path(spec.model):
        d = Path(spec.model).expanduser()
        if not d.is_dir():
            raise AuditError(f"--model {spec.model}: no such directory")
        if not (d / "config.json").exists():
            raise AuditError(f"--model {spec.model}: not a Hugging Face model directory (no config.json)")
        check_local_model(spec, d)
        return ModelSource(str(d), d)
    return ModelSource(spec.model, None)


GGUF_MAGIC = b"GGUF"


def check_gguf(spec: ModelSpec, path: Path) -> None:
    """Refuse, naming the file, a .gguf that is not one (bad magic) or that transformers cannot read
    without the optional `gguf` package, before anything loads."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise AuditError(f"--model {spec.model}: cannot read it ({e.strerror or e})") from None
    if magic != GGUF_MAGIC:
        raise AuditError(f"--model {spec.model}: not a GGUF file (it does not start with {GGUF_MAGIC!r})")
    if importlib.util.find_spec("gguf") is None:
        raise AuditError(f"--model {spec.model}: reading GGUF needs the gguf package: "
                         "pip install 'opt-audit[gguf]'")


def load_errors() -> tuple[type[BaseException], ...]:
    """What a bad model id or a bad model file raises inside transformers, torch and safetensors."""
    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError,
            SafetensorError)


def load_error(spec: ModelSpec, local_dir: Path | None, exc: BaseException) -> AuditError:
    """One line for a model that would not load, naming the weight file(s) when a pickle was refused.

    A `pytorch_model.bin` holding anything but tensors (e.g. a pickle that would run code) is refused
    by torch's weights_only unpickler; that refusal must read as a clear error, not a traceback.
    """
    why = first_line(exc)
    if local_dir is None:
        return AuditError(f"--model {spec.model}: could not load it ({why}). "
                          "Use a local model directory, 'tiny-opt', or a hub id where the hub is reachable.")
    pickled = sorted(p for p in local_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth") and p.is_file())
    if pickled and (isinstance(exc, pickle.UnpicklingError) or "PytorchStreamReader" in str(exc)):
        return AuditError(f"--model {spec.model}: {', '.join(map(str, pickled))} could not be loaded as plain "
                          f"weights ({why}); opt-audit never unpickles code from a model folder")
    if pickled and isinstance(exc, (KeyError, EOFError, ValueError, TypeError)):
        # corrupt pickled weights fail inside the unpickler with bare messages (a KeyError of a random
        # number, "Ran out of input"): name the files, so the line says what is broken
        return AuditError(f"--model {spec.model}: {', '.join(map(str, pickled))} could not be loaded as plain "
                          f"weights ({type(exc).__name__}: {why}); is the file complete and a torch checkpoint?")
    return AuditError(f"--model {spec.model}: could not load it ({why})")
