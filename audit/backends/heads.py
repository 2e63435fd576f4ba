"""Models with a task head instead of an LM head: sequence classifiers and extractive QA.

Which family a `--model` belongs to is read from its checkpoint (`model_family`): config.json's
`architectures` (e.g. "OPTForSequenceClassification"), and for a config without them, nothing but
a causal LM is assumed. The family picks the AutoModel class and the probes that apply (a causal-LM
probe asked of a classifier is refused; inside a suite it is a recorded skip, audit.runner).

Conventions that change numbers, stated once here:
- `Classify(text)`: the tokenizer's own encoding of the text (OPT: a leading `</s>`), truncated to the
  model's context from the right; probabilities are the softmax over the head's logits, in label-id
  order, with the checkpoint's id2label.
- `ExtractSpan(question, context)`: the input is `[special tokens] question </s> context` built from
  the tokenizer's own pieces (OPT has no pair template), the context truncated from the right to fit.
  The best span maximises start_logit[s] + end_logit[e] over context tokens with s <= e < s + L
  (L = max_answer_tokens, SQuAD's usual 30), the standard extractive-QA decoding. A candidate's score
  is the same sum at the tokens its characters cover, best over its occurrences (case-insensitive).

Loading follows the hf backend exactly (audit.backends.hf): explicit dtype, no remote code, local
folders pinned by sha256, and a checkpoint that leaves any weight uninitialised is refused.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from audit.contract import ModelSpec
from audit.errors import AuditError
from audit.types import Classify, ClassifyResult, ExtractSpan, Request, SpanResult

if TYPE_CHECKING:
    from audit.backends.hf import ModelSource

CAUSAL_LM = "causal-lm"
SEQUENCE_CLASSIFICATION = "sequence-classification"
QUESTION_ANSWERING = "question-answering"
FAMILIES = (CAUSAL_LM, SEQUENCE_CLASSIFICATION, QUESTION_ANSWERING)
FAMILY_WORDS = {CAUSAL_LM: "a causal language model", SEQUENCE_CLASSIFICATION: "a sequence classifier",
                QUESTION_ANSWERING: "an extractive question-answering model"}


def family_of_architectures(architectures: Sequence[str]) -> str:
    """The audit family of a config's `architectures` (the first that names a head we audit)."""
    for arch in architectures:
        if arch.endswith("ForSequenceClassification"):
            return SEQUENCE_CLASSIFICATION
        if arch.endswith("ForQuestionAnswering"):
            return QUESTION_ANSWERING
    return CAUSAL_LM


def model_family(spec: ModelSpec) -> str:
    """The family of `spec.model`, read from its config.json (a local folder, an embedded tiny model, or
    the hub's config, fetched alone) before any weights load. A model whose config cannot be read is
    left to the loader: it is assumed a causal LM, and the loader gives the error."""
    from audit import tiny

    if spec.model == tiny.TINY_CLASSIFIER_NAME:
        return SEQUENCE_CLASSIFICATION
    if spec.model == tiny.TINY_QA_NAME:
        return QUESTION_ANSWERING
    if spec.model == tiny.TINY_NAME or spec.model.lower().endswith(".gguf"):
        return CAUSAL_LM
    folder = Path(spec.model).expanduser()
    if (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return CAUSAL_LM
        archs = config.get("architectures") if isinstance(config, dict) else None
        return family_of_architectures([str(a) for a in archs or ()])
    if folder.exists() or spec.model.startswith((".", "/", "~")):
        return CAUSAL_LM
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(spec.model, revision=spec.revision, trust_remote_code=False)
    except Exception:  # noqa: BLE001 - unreachable hub, remote code, bad id: the loader reports it
        return CAUSAL_LM
    return family_of_architectures(list(getattr(config, "architectures", None) or ()))


def _head_source(spec: ModelSpec) -> "ModelSource":
    """Where a head model loads from: an embedded tiny head (built on first use), else as the hf backend."""
    from audit import tiny
    from audit.backends.hf import ModelSource, check_local_model, model_source

    if spec.model in (tiny.TINY_CLASSIFIER_NAME, tiny.TINY_QA_NAME):
        d = tiny.tiny_head_dir(spec.model)
        check_local_model(spec, d)
        return ModelSource(str(d), d)
    return model_source(spec)


class HeadBackend:
    """A transformers sequence classifier or extractive-QA model behind the Backend seam."""

    def __init__(self, spec: ModelSpec, family: str) -> None:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

        from audit.backends.hf import load_error, load_errors, refuse_uninitialised, resolve_placement
        from audit.pinning import pin_folder

        if family not in (SEQUENCE_CLASSIFICATION, QUESTION_ANSWERING):
            raise AuditError(f"--model {spec.model}: {family} is not a head model family")
        self.spec, self.family = spec, family
        self.device, self.dtype, self.attn = resolve_placement(spec)
        found = _head_source(spec)
        if found.gguf_file is not None:
            raise AuditError(f"--model {spec.model}: a GGUF file holds a causal LM, not a {family} model")
        common: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
        if found.local_dir is None and spec.revision:
            common["revision"] = spec.revision
        auto = AutoModelForSequenceClassification if family == SEQUENCE_CLASSIFICATION \
            else AutoModelForQuestionAnswering
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                self.tokenizer = AutoTokenizer.from_pretrained(found.source, **common)
                self.model, info = auto.from_pretrained(found.source, output_loading_info=True,
                                                        dtype=getattr(torch, self.dtype),
                                                        attn_implementation=self.attn, **common)
        except load_errors() as e:
            raise load_error(spec, found.local_dir, e) from None
        refuse_uninitialised(spec, self.model, info)
        self.model.to(self.device)
        self.model.eval()
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 512)
        self.files: dict[str, str] = {}
        if found.local_dir is not None:
            pin = pin_folder(found.local_dir)
            self.revision, self.files = pin.revision, pin.as_dict()
        else:
            self.revision = getattr(self.model.config, "_commit_hash", None) or spec.revision or "unknown"
        self.name = spec.model
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.pad_id  # a classifier reads the last non-pad token
        id2label = getattr(self.model.config, "id2label", None) or {}
        n = int(getattr(self.model.config, "num_labels", len(id2label)) or len(id2label))
        self.labels = tuple(str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n))

    # ---------------------------------------------------------------- identity and facts
    @property
    def id(self) -> str:
        remote = "|remote-code" if self.spec.trust_remote_code else ""
        return (f"hf-{self.family}:{self.name}@{self.revision}|{self.dtype}|{self.attn}"
                f"|{self.device.split(':')[0]}{remote}")

    @property
    def sampler(self) -> str:
        """Nothing is sampled: a head's outputs are deterministic."""
        return "none"

    def describe(self) -> dict[str, Any]:
        """Model facts for the manifest, with the head's family and labels."""
        from audit.backends.hf import config_shape

        cfg = self.model.config
        facts: dict[str, Any] = {
            "backend": "hf", "model": self.name, "revision": self.revision,
            "architecture": (getattr(cfg, "architectures", None) or [type(self.model).__name__])[0],
            "family": self.family,
            "params": int(sum(p.numel() for p in self.model.parameters())),
            **config_shape(cfg),
            "context": self.max_length, "dtype": self.dtype, "attention": self.attn, "device": self.device,
            "trust_remote_code": self.spec.trust_remote_code, "format": "transformers",
        }
        if self.family == SEQUENCE_CLASSIFICATION:
            facts["id2label"] = dict(enumerate(self.labels))
        if self.files:
            facts["files"] = dict(self.files)
        return facts

    # ---------------------------------------------------------------- batching
    def _classify_ids(self, req: Classify) -> list[int]:
        return list(self.tokenizer(req.text, add_special_tokens=True)["input_ids"])[: self.max_length]

    def _span_input(self, req: ExtractSpan) -> tuple[list[int], int, list[tuple[int, int]]]:
        """(ids, index of the first context token, character offsets of each kept context token)."""
        lead = list(self.tokenizer("", add_special_tokens=True)["input_ids"])  # OPT: [</s>]
        question = list(self.tokenizer(req.question, add_special_tokens=False)["input_ids"])
        sep = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        enc = self.tokenizer(req.context, add_special_tokens=False, return_offsets_mapping=True)
        prefix = lead + question + sep
        room = max(0, self.max_length - len(prefix))
        ctx_ids = list(enc["input_ids"])[:room]
        offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]][:room]
        return prefix + ctx_ids, len(prefix), offsets

    def cost(self, request: Request) -> int:
        """Tokens of the request's one row."""
        if isinstance(request, Classify):
            return len(self._classify_ids(request))
        if isinstance(request, ExtractSpan):
            return len(self._span_input(request)[0])
        raise AuditError(self._wrong_kind(request))

    def shared_prefix(self, request: Request) -> None:
        """Nothing is shared between rows."""
        return None

    def _wrong_kind(self, request: Any) -> str:
        return (f"{self.name} is {FAMILY_WORDS[self.family]}; it cannot answer "
                f"{type(request).__name__} requests")

    def generate(self, requests: Sequence[Any], seed: int) -> list[Any]:
        raise AuditError(self._wrong_kind(requests[0]))

    def loglikelihood(self, requests: Sequence[Any]) -> list[Any]:
        raise AuditError(self._wrong_kind(requests[0]))

    def embed(self, requests: Sequence[Any]) -> list[Any]:
        raise AuditError(self._wrong_kind(requests[0]))

    # ---------------------------------------------------------------- heads
    def _forward(self, rows: list[list[int]]) -> Any:
        """One right-padded forward pass; returns the model output."""
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, :len(r)] = 1
        with torch.inference_mode():
            return self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device))

    def classify(self, requests: Sequence[Classify]) -> list[ClassifyResult]:
        """Softmax label probabilities of each text (right padding: the head reads the last real token)."""
        if self.family != SEQUENCE_CLASSIFICATION:
            raise AuditError(self._wrong_kind(requests[0]))
        import torch

        rows = [self._classify_ids(r) for r in requests]
        logits = self._forward(rows).logits.float()  # (B, num_labels)
        probs = torch.softmax(logits, dim=-1).cpu().tolist()
        return [ClassifyResult(tuple(p), self.labels) for p in probs]

    def extract_span(self, requests: Sequence[ExtractSpan]) -> list[SpanResult]:
        """Best span and candidate scores of each (question, context)."""
        if self.family != QUESTION_ANSWERING:
            raise AuditError(self._wrong_kind(requests[0]))
        inputs = [self._span_input(r) for r in requests]
        out = self._forward([ids for ids, _, _ in inputs])
        start_all = out.start_logits.float().cpu()  # (B, T)
        end_all = out.end_logits.float().cpu()  # (B, T)
        results = []
        for i, (req, (ids, first, offsets)) in enumerate(zip(requests, inputs)):
            n = len(offsets)
            start = start_all[i, first:first + n].tolist()
            end = end_all[i, first:first + n].tolist()
            best = best_span(start, end, req.max_answer_tokens)
            if best is None:
                raise AuditError(f"{self.name}: the context of {req.question[:60]!r} has no tokens left "
                                 "after the question; shorten the question")
            s, e, score = best
            a, b = offsets[s][0], offsets[e][1]
            cands = tuple(candidate_score(req.context, c, offsets, start, end) for c in req.candidates)
            results.append(SpanResult(req.context[a:b].strip(), a, b, score, cands))
        return results


def best_span(start: Sequence[float], end: Sequence[float], max_len: int) -> tuple[int, int, float] | None:
    """(s, e, start[s] + end[e]) maximising the sum over s <= e < s + max_len; the first such pair on a
    tie (lowest s, then lowest e). None for an empty context."""
    best: tuple[int, int, float] | None = None
    for s in range(len(start)):
        for e in range(s, min(len(end), s + max_len)):
            score = start[s] + end[e]
            if best is None or score > best[2]:
                best = (s, e, score)
    return best


def candidate_score(context: str, candidate: str, offsets: Sequence[tuple[int, int]],
                    start: Sequence[float], end: Sequence[float]) -> float | None:
    """Best start[s] + end[e] over the occurrences of `candidate` in `context` (case-insensitive), where
    s and e are the first and last kept tokens its characters overlap; None when it never occurs."""
    if not candidate:
        return None
    hay, needle = context.lower(), candidate.lower()
    best: float | None = None
    at = hay.find(needle)
    while at >= 0:
        lo, hi = at, at + len(needle)
        covered = [j for j, (a, b) in enumerate(offsets) if a < hi and b > lo]
        if covered:
            score = start[covered[0]] + end[covered[-1]]
            best = score if best is None or score > best else best
        at = hay.find(needle, at + 1)
    return None if best is None or not math.isfinite(best) else best
