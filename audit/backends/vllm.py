"""The vLLM backend: the same requests and conventions as `hf`, on vLLM's engine, for scale.

Why it exists: vLLM's paged KV cache, continuous batching and tensor parallelism (one model over
several GPUs; over several nodes through Ray) run audits of large models that transformers'
`generate` cannot. It sits behind the same Backend seam, so every probe and metric is unchanged.
It is optional: `vllm` is imported only when this backend is loaded (`pip install 'opt-audit[vllm]'`).

What is the same as `hf`, by construction:
- tokenization: the prompt and (context, continuation) token ids come from the shared `Tokenization`
  code (lm-evaluation-harness 0.4.13 conventions), run on the same tokenizer, and vLLM receives
  token ids, never text. `tests/audit/test_vllm_backend.py` checks the two agree id for id.
- log-likelihood: the summed log-probability of the continuation tokens, read from vLLM's
  `prompt_logprobs`; `is_greedy` from each token's vocabulary rank (rank 1 = the argmax).
- decoding: temperature + nucleus only (no top-k, no penalties), stop at EOS, `max_new_tokens`;
  the model's generation_config.json is ignored (`generation_config="vllm"`), as in `hf`.
- seeds: sample j of a request gets vLLM's per-request seed `row_seed(seed, request, j)`, the
  same seed `hf` gives that sample, so a sample depends on (model, seed, prompt, params, j) only.

What differs, and the stated tolerance (checked by `check_equivalence` where vLLM and a GPU exist):
- numerics: different kernels (paged attention, fused layers) round differently in fp16/bf16.
  Log-likelihoods agree within LL_TOL_PER_TOKEN nats per continuation token; greedy outputs are
  identical or first part at a near-tie (hf's log-probs of the two tokens within GREEDY_TIE_NATS).
- sampling: vLLM draws with its own sampler and random streams, so sampled
  continuations match `hf` **in distribution only**, never token for token. The documented
  tolerance: first-token distributions within total variation SAMPLE_TV_MAX over 1,000 draws, and
  sampled metrics (e.g. RTP expected maximum toxicity) equal within their 95% CIs.
- context window: vLLM must also generate one token after a log-likelihood prompt, so a request
  longer than the model's context keeps one token less of its left context than under `hf`.
  Requests that fit the window (every bundled probe on OPT's 2,048 positions) are unaffected.
- the backend id starts with "vllm:" and carries the vLLM version and the tensor-parallel size,
  so results from the two backends never share a cache entry.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from audit.backends.hf import GENERATION_PROMPT_RULE, config_shape, model_source, resolve_dtype
from audit.backends.tokenization import Tokenization
from audit.backends.tokenization import sample_from_tokens as sample_from_tokens  # cut and decoded as hf does
from audit.contract import ModelSpec, VLLMOptions  # VLLMOptions re-exported here too: its home before audit.contract
from audit.errors import AuditError
from audit.pinning import pin_folder
from audit.types import (Backend, Embed, Embedding, Generate, Generation, GenParams, LogLikelihood, LogLikelihoodResult,
                         Request, Sample)

if TYPE_CHECKING:
    from audit.backends.hf import HFBackend

# The equivalence contract against `hf` on the same model and dtype (fp16/bf16 on one GPU). bf16 keeps
# 8 significand bits: on random OPTs (init std 0.02-0.05), bf16 vs fp32 differs by at most 0.001-0.008
# nats per token (measured on CPU), so 0.02 leaves room for a second kernel family's rounding.
LL_TOL_PER_TOKEN = 0.02  # max |logprob_vllm - logprob_hf| / n_tokens, in nats
IS_GREEDY_AGREE_MIN = 0.95  # share of log-likelihood requests whose is_greedy agrees
# Greedy outputs are identical, or first differ at a near-tie: where hf's log-probs of its own token and
# vLLM's token are within this many nats (measured on CPU, bf16 vs fp32: a divergence at a 0.007 gap).
GREEDY_TIE_NATS = 0.1
SAMPLE_TV_MAX = 0.15  # total variation between first-token distributions, 1,000 draws per backend


def vllm_available() -> bool:
    """True when the vllm package is installed (it is not imported here)."""
    return importlib.util.find_spec("vllm") is not None


# --------------------------------------------------------------------------------------------
# Pure helpers: vLLM's structures in, opt-audit's results out (unit-tested without vLLM)
# --------------------------------------------------------------------------------------------


def ll_prompt(context: Sequence[int], continuation: Sequence[int], max_len: int) -> list[int]:
    """The token ids vLLM scores for one log-likelihood request.

    vLLM reports a log-probability for every prompt token but the first, so the prompt is the
    whole context + continuation. It must leave room for the one token vLLM generates, so at most
    `max_len - 1` tokens are kept, dropping from the left (the continuation is never cut).
    """
    if not continuation:
        raise ValueError("empty continuation")
    keep = max_len - 1
    if len(continuation) > keep - 1:  # at least one context token must precede it
        raise AuditError(f"a continuation of {len(continuation)} tokens does not fit a {max_len}-token "
                         "context under vLLM (one position is kept for the token it generates)")
    return [*context, *continuation][-keep:]


def loglikelihood_from_prompt_logprobs(prompt_logprobs: Sequence[Optional[Mapping[int, Any]]],
                                       prompt_ids: Sequence[int], n_continuation: int) -> LogLikelihoodResult:
    """Sum the log-probabilities of the last `n_continuation` prompt tokens.

    `prompt_logprobs[i]` is vLLM's {token id: Logprob} for prompt position i (None at position 0,
    which nothing predicts); it holds the prompt's own token and the top-ranked ones. A token is
    greedy when its rank is 1, or, where vLLM gave no rank, when no listed token is more likely.
    """
    if len(prompt_logprobs) != len(prompt_ids):
        raise RuntimeError(f"vLLM returned {len(prompt_logprobs)} prompt log-probabilities for "
                           f"{len(prompt_ids)} prompt tokens")
    if not 0 < n_continuation < len(prompt_ids):
        raise ValueError(f"n_continuation={n_continuation} for a prompt of {len(prompt_ids)} tokens")
    total, greedy = 0.0, True
    for pos in range(len(prompt_ids) - n_continuation, len(prompt_ids)):
        entries = prompt_logprobs[pos]
        token = int(prompt_ids[pos])
        if entries is None or token not in entries:
            raise RuntimeError(f"vLLM gave no log-probability for prompt token {token} at position {pos}")
        own = entries[token]
        lp = float(own.logprob)
        total += lp
        rank = getattr(own, "rank", None)
        if rank is not None:
            greedy = greedy and int(rank) == 1
        else:
            greedy = greedy and all(float(e.logprob) <= lp for e in entries.values())
    if not math.isfinite(total):
        raise AuditError(f"vLLM gave a non-finite log-likelihood ({total}): numeric overflow? try --dtype float32")
    return LogLikelihoodResult(total, n_continuation, greedy)


@dataclass(frozen=True)
class SampleSpec:
    """One vLLM request: the SamplingParams fields of one sample of one Generate request."""

    max_tokens: int
    temperature: float  # 0.0 = greedy
    top_p: float
    seed: Optional[int]  # None for greedy (nothing is drawn)

    def sampling_kwargs(self) -> dict[str, Any]:
        """Every field that could change a token is stated, so vLLM's defaults cannot leak in."""
        return {"n": 1, "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": -1, "min_p": 0.0, "seed": self.seed, "repetition_penalty": 1.0,
                "presence_penalty": 0.0, "frequency_penalty": 0.0, "min_tokens": 0, "ignore_eos": False,
                "detokenize": False}


def sample_specs(request: Generate, seed: int) -> list[SampleSpec]:
    """One SampleSpec per sample: greedy is temperature 0; sample j is seeded by `row_seed`.

    Separate requests (rather than vLLM's n) give each sample the seed `hf` gives it; with
    prefix caching on, vLLM still computes the shared prompt once.
    """
    from audit.backends.sampling import row_seed

    p: GenParams = request.params
    if not p.do_sample:
        return [SampleSpec(p.max_new_tokens, 0.0, 1.0, None)]
    return [SampleSpec(p.max_new_tokens, p.temperature, p.top_p, row_seed(seed, request, j)) for j in range(p.n)]


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------


def _HFTokenization(tokenizer: Any, max_length: int, name: str, spec: ModelSpec | None = None) -> Tokenization:
    """The shared tokenization on a tokenizer alone (no model is loaded), as this backend holds it;
    its old name, kept for callers that built it directly."""
    return Tokenization(tokenizer, max_length, name, spec.chat_template if spec is not None else False)


def request_cost(tok: Tokenization, request: Request, prefix_caching: bool) -> int:
    """Tokens of a request's rows (`Tokenization.cost`): with prefix caching vLLM keeps one copy of a
    prompt's KV cache for its n samples, else one per sample."""
    return tok.cost(request, share_prompt=prefix_caching)


def _local_param_count(directory: Path) -> Optional[int]:
    """Parameters in a local safetensors checkpoint, from the file headers (nothing is loaded)."""
    import json
    import struct

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                total += math.prod(meta["shape"])
    return total


class VLLMBackend:
    """A model served by vLLM's offline `LLM` engine behind the Backend seam."""

    def __init__(self, spec: ModelSpec, options: VLLMOptions = VLLMOptions()) -> None:
        if not vllm_available():
            raise AuditError("--backend vllm needs the vllm package: pip install 'opt-audit[vllm]' "
                             "(on a Linux machine with a CUDA GPU)")
        import torch

        if spec.device not in ("auto", "cuda"):
            raise AuditError(f"--device {spec.device}: the vllm backend runs on CUDA GPUs only "
                             "(use auto or cuda; choose GPUs with CUDA_VISIBLE_DEVICES)")
        if not torch.cuda.is_available():
            raise AuditError("--backend vllm: no CUDA device is available")
        if torch.cuda.device_count() < options.tensor_parallel_size and options.distributed_executor != "ray":
            raise AuditError(f"--tensor-parallel-size {options.tensor_parallel_size}: only "
                             f"{torch.cuda.device_count()} GPU(s) here (use Ray for several nodes)")
        if spec.attn != "auto":
            raise AuditError(f"--attn {spec.attn}: the vllm backend chooses its own attention kernels; use auto")
        import vllm
        from transformers import AutoConfig, AutoTokenizer

        self.spec, self.options = spec, options
        self.dtype = resolve_dtype(spec.dtype, "cuda")
        source, local_dir, gguf_file = model_source(spec)
        if gguf_file is not None:
            raise AuditError(f"--model {spec.model}: GGUF files run on the hf backend (--backend hf)")
        rev = None if local_dir is not None else spec.revision
        try:  # the tokenizer is loaded exactly as `hf` loads it, so both see the same ids
            config = AutoConfig.from_pretrained(source, revision=rev, trust_remote_code=spec.trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(source, revision=rev, trust_remote_code=spec.trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AuditError(f"--model {spec.model}: could not load it ({first})") from None
        context = int(getattr(config, "max_position_embeddings", 0) or 2048)
        self.max_length = min(context, options.max_model_len or context)
        self._tok = Tokenization(tokenizer, self.max_length, spec.model, spec.chat_template)
        self.tokenizer = tokenizer
        self.eos_id = self._tok.eos_id
        self.name = spec.model
        self.revision = (pin_folder(local_dir).revision if local_dir is not None  # every file, as in `hf`
                         else getattr(config, "_commit_hash", None) or spec.revision or "unknown")
        self._params = _local_param_count(local_dir) if local_dir is not None else None
        self._config = config
        self.vllm_version = str(getattr(vllm, "__version__", "unknown"))
        kwargs: dict[str, Any] = dict(
            model=source, tokenizer=source, revision=rev, dtype=self.dtype, seed=0,
            tensor_parallel_size=options.tensor_parallel_size,
            gpu_memory_utilization=options.gpu_memory_utilization, max_model_len=self.max_length,
            enforce_eager=options.enforce_eager, enable_prefix_caching=options.prefix_caching,
            generation_config="vllm",  # the checkpoint's generation_config.json must not change decoding
            trust_remote_code=spec.trust_remote_code,
        )
        if options.distributed_executor is not None:
            kwargs["distributed_executor_backend"] = options.distributed_executor
        try:
            self.llm = vllm.LLM(**kwargs)
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AuditError(f"--model {spec.model}: vLLM could not load it ({first})") from None

    # ---------------------------------------------------------------- identity and facts
    @property
    def id(self) -> str:
        from audit.backends.sampling import SAMPLER_VERSION

        cache = "|prefix-cache" if self.options.prefix_caching else ""
        chat = "|chat" if self.spec.chat_template else ""
        return (f"vllm:{self.name}@{self.revision}|{self.dtype}|tp{self.options.tensor_parallel_size}{cache}"
                f"|vllm{self.vllm_version}|seeds{SAMPLER_VERSION}|prompt-{GENERATION_PROMPT_RULE}{chat}")

    @property
    def sampler(self) -> str:
        """vLLM's own random streams, seeded per sample (also in `id`): never paired with hf's samples."""
        from audit.backends.sampling import SAMPLER_VERSION

        return f"vllm seeds{SAMPLER_VERSION}"

    def describe(self) -> dict[str, Any]:
        """Model facts for the manifest, as `hf` reports them, plus the vLLM engine settings."""
        cfg = self._config
        return {
            "backend": "vllm",
            "model": self.name,
            "revision": self.revision,
            "architecture": (getattr(cfg, "architectures", None) or ["unknown"])[0],
            "params": self._params,  # None for hub ids: vLLM does not expose it and nothing is guessed
            **config_shape(cfg),
            "context": self.max_length,
            "dtype": self.dtype,
            "attention": "vllm",
            "device": "cuda",
            "vllm": {"version": self.vllm_version, "tensor_parallel_size": self.options.tensor_parallel_size,
                     "distributed_executor": self.options.distributed_executor,
                     "prefix_caching": self.options.prefix_caching},
        }

    def prompt_truncation(self, request: Generate) -> int:
        """Tokens cut from a generation prompt's start, by hf's rule (the tokenization is hf's)."""
        return self._tok.prompt_truncation(request)

    def cost(self, request: Request) -> int:
        """Tokens a request occupies (`Tokenization.cost`, as under hf), so a token budget means the same on
        both backends; with prefix caching a prompt counts once for its n samples."""
        if isinstance(request, Embed):
            self.embed([request])  # refused before any batch is planned
        return self._tok.cost(request, share_prompt=self.options.prefix_caching)

    def shared_prefix(self, request: Request) -> None:
        """Nothing for the engine to group: vLLM schedules (and, with prefix caching, shares) prompts itself."""
        return None

    # ---------------------------------------------------------------- requests
    def loglikelihood(self, requests: Sequence[LogLikelihood]) -> list[LogLikelihoodResult]:
        """Score every request in one vLLM call; only the prompt log-probabilities are kept."""
        from vllm import SamplingParams

        prompts, conts = [], []
        for r in requests:
            ctx, cont = self._tok.ll_tokens(r)
            prompts.append(ll_prompt(ctx, cont, self.max_length))
            conts.append(len(cont))
        # One throwaway token is generated; prompt_logprobs=1 also returns the top-ranked token.
        params = SamplingParams(max_tokens=1, temperature=1.0, seed=0, prompt_logprobs=1, detokenize=False)
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [loglikelihood_from_prompt_logprobs(o.prompt_logprobs, p, n)
                for o, p, n in zip(outputs, prompts, conts)]

    def embed(self, requests: Sequence[Embed]) -> list[Embedding]:
        """Not supported: vLLM's generation engine does not return hidden states."""
        raise AuditError("hidden-state probes (Embed requests, e.g. seat) are not supported on the vllm "
                         "backend, whose generation engine does not return hidden states; run them with "
                         "--backend hf")

    def generate(self, requests: Sequence[Generate], seed: int) -> list[Generation]:
        """Every sample of every request as its own seeded vLLM request, in one call."""
        from vllm import SamplingParams

        prompts, params, owners = [], [], []
        for i, r in enumerate(requests):
            tokens = self._tok.prompt_tokens(r)
            for spec in sample_specs(r, seed):
                prompts.append({"prompt_token_ids": list(tokens)})
                params.append(SamplingParams(**spec.sampling_kwargs()))
                owners.append(i)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        per_request: list[list[Sample]] = [[] for _ in requests]
        for owner, out in zip(owners, outputs):
            per_request[owner].append(sample_from_tokens(out.outputs[0].token_ids, self.eos_id, self._tok.decode))
        return [Generation(tuple(s)) for s in per_request]


# --------------------------------------------------------------------------------------------
# The equivalence check against another backend (hf) on the same model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Equivalence:
    """How closely a candidate backend reproduces the hf backend on the same requests."""

    n_loglikelihood: int
    max_ll_diff_per_token: float  # max over requests of |delta logprob| / n_tokens, in nats
    is_greedy_agreement: float  # share of requests whose is_greedy agrees
    n_greedy: int
    greedy_identical: float  # share of greedy generations identical token for token (informative)
    max_divergence_gap: float  # max over differing generations of the hf model's log-prob gap between
    #                            its own token and the candidate's at the first difference (0: none differ)

    def failures(self) -> list[str]:
        """The tolerances this comparison breaks (empty: equivalent)."""
        out = []
        if self.max_ll_diff_per_token > LL_TOL_PER_TOKEN:
            out.append(f"log-likelihood differs by {self.max_ll_diff_per_token:.4f} nats/token > {LL_TOL_PER_TOKEN}")
        if self.is_greedy_agreement < IS_GREEDY_AGREE_MIN:
            out.append(f"is_greedy agrees on {self.is_greedy_agreement:.1%} < {IS_GREEDY_AGREE_MIN:.0%}")
        if self.max_divergence_gap > GREEDY_TIE_NATS:
            out.append(f"a greedy output departs at a token {self.max_divergence_gap:.3f} nats less likely than "
                       f"hf's choice (> {GREEDY_TIE_NATS}): not a near-tie")
        return out


def first_difference(a: Sequence[int], b: Sequence[int]) -> Optional[int]:
    """Index of the first position where two token sequences differ (None: identical)."""
    if list(a) == list(b):
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check_equivalence(reference: "HFBackend", candidate: Backend, ll_requests: Sequence[LogLikelihood],
                      greedy_requests: Sequence[Generate]) -> Equivalence:
    """Run the same log-likelihood and greedy requests on hf and a candidate, and measure the gaps.

    Greedy decoding is a chain of argmaxes, so two correct engines part wherever rounding reorders
    two nearly equal logits. Where outputs differ, the hf model itself is asked how close the two
    tokens were at the first difference: a near-tie (within GREEDY_TIE_NATS) is rounding, anything
    wider is a bug.
    """
    import torch

    if any(r.params.do_sample for r in greedy_requests):
        raise ValueError("the equivalence check compares greedy generations only (sampling matches in distribution)")
    ref_ll, cand_ll = reference.loglikelihood(ll_requests), candidate.loglikelihood(ll_requests)
    diffs, agree = [], 0
    for a, b in zip(ref_ll, cand_ll):
        if a.n_tokens != b.n_tokens:
            raise RuntimeError("the backends tokenized a continuation differently "
                               f"({a.n_tokens} vs {b.n_tokens} tokens)")
        diffs.append(abs(a.logprob - b.logprob) / a.n_tokens)
        agree += a.is_greedy == b.is_greedy
    ref_gen = reference.generate(greedy_requests, 0) if greedy_requests else []
    cand_gen = candidate.generate(greedy_requests, 0) if greedy_requests else []
    identical, gaps = 0, [0.0]
    for req, gen_a, gen_b in zip(greedy_requests, ref_gen, cand_gen):
        ta, tb = gen_a.samples[0].tokens, gen_b.samples[0].tokens
        i = first_difference(ta, tb)
        if i is None:
            identical += 1
            continue
        if i >= min(len(ta), len(tb)):  # one stopped at EOS where the other went on: compare with EOS
            eos = reference.eos_id
            assert eos is not None  # only a stop at EOS ends one greedy output before the other
            ta, tb = (*ta, eos), (*tb, eos)
        ids = torch.tensor([reference._prompt_tokens(req) + list(ta[:i])], device=reference.model.device)
        with torch.inference_mode():
            logprobs = torch.log_softmax(reference.model(input_ids=ids).logits[0, -1].float(), dim=-1)  # (V,)
        gaps.append(float(logprobs[ta[i]] - logprobs[tb[i]]))
    n_ll, n_gen = len(ll_requests), len(greedy_requests)
    return Equivalence(
        n_loglikelihood=n_ll,
        max_ll_diff_per_token=max(diffs, default=0.0),
        is_greedy_agreement=agree / n_ll if n_ll else 1.0,
        n_greedy=n_gen,
        greedy_identical=identical / n_gen if n_gen else 1.0,
        max_divergence_gap=max(gaps),
    )


def total_variation(a: Sequence[int], b: Sequence[int]) -> float:
    """Total variation distance between the empirical distributions of two samples of tokens."""
    from collections import Counter

    if not a or not b:
        raise ValueError("total variation needs two non-empty samples")
    ca, cb = Counter(a), Counter(b)
    return 0.5 * sum(abs(ca[k] / len(a) - cb[k] / len(b)) for k in set(ca) | set(cb))
