"""Detoxify toxicity scores (Hanu & Unitary 2020), run through detoxify's own loader, batched by tokens.

The model, tokenizer and class names come from a real `detoxify.Detoxify` object, so the weights
and the class-name standardisation (toxic -> toxicity, ...) are exactly detoxify's. Scoring does
not use `Detoxify.predict`: that pads the whole input list as one batch (memory grows with the
longest text times the list length) and squeezes a single text to a bare float. Here texts are
tokenized once (truncated at 512 tokens), length-sorted, cut into batches whose padded size fits
a token budget, scored, and put back in their original order.

Security: a detoxify checkpoint is a torch pickle, and unpickling arbitrary objects runs code. So a
checkpoint, whether the user named it or it is detoxify's published file in torch hub's cache, is
only ever read with torch's weights_only unpickler (tensors, dicts, lists, strings, numbers), with no
extra allowed globals. detoxify's releases are written by its convert_weights script as a plain
{"config": dict, "state_dict": OrderedDict}, which that unpickler reads (not checked against the
published files here, which need a download); a checkpoint that needs any other global is refused
with its name, and `--scorer auto` then falls back to the embedded scorer with a warning. The
published file's sha256 prefix (its file name) is still checked, but as an identity check that the
right model is in the cache, not as the safety guarantee: 8 hex digits can be collided. The
checkpoint's own names for the transformers classes to build must be concrete classes (no Auto*),
and a --scorer-config folder with an auto_map is refused, so no code from either runs.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

from audit.errors import AuditError
from audit.pinning import auto_map_file, first_line, load_weights_only, sha256_file

MAX_TOKENS = 512  # BERT/RoBERTa/ALBERT/XLM-R position limit; detoxify was trained at this length
_VERSION = "1"  # bump when anything that changes a score for the same text changes
_KNOWN_TYPES = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
_CUSTOM = "custom"


def _published_file(model_type: str) -> tuple[str, str]:
    """(url, file name) of detoxify's published checkpoint for a known model type."""
    from detoxify.detoxify import MODEL_URLS

    url = MODEL_URLS[model_type]
    return url, url.rsplit("/", 1)[-1]


def _expected_prefix(file_name: str) -> str:
    """detoxify's file names end in the first 8 hex digits of their sha256: toxic_original-c1212f89.ckpt."""
    return Path(file_name).stem.rsplit("-", 1)[-1].lower()




def _clean(text: str) -> str:
    """Lone surrogates (e.g. '\\udcff' from surrogateescape decoding) would crash the tokenizer."""
    return text.encode("utf-8", "replace").decode("utf-8")


class DetoxifyScorer:
    """Detoxify's multi-label toxicity classifier; keys are the checkpoint's standardised class names.

    model_type: one of detoxify's published models, or "custom" (a checkpoint of unknown origin,
        whose sha256 is recorded but not checked against a published prefix).
    checkpoint: a detoxify .ckpt file, read from this exact path with weights_only=True.
        Without it, detoxify's published file is taken from torch hub's cache, or downloaded there.
    config_dir: a local Hugging Face directory (config.json + tokenizer files) for the checkpoint's
        base model, so nothing is fetched from the hub (offline use).
    token_budget: the most padded tokens (rows x longest row) in one forward pass.
    half: fp16 weights; defaults to True on CUDA, False on CPU.
    """

    def __init__(self, model_type: str = "original", checkpoint: Path | None = None,
                 config_dir: Path | None = None, device: str = "auto", token_budget: int = 16384,
                 half: bool | None = None) -> None:
        import torch

        if model_type not in _KNOWN_TYPES and model_type != _CUSTOM:
            raise AuditError(f"unknown detoxify model type {model_type!r}; "
                             f"expected one of {', '.join(_KNOWN_TYPES + (_CUSTOM,))}")
        if model_type == _CUSTOM and checkpoint is None:
            raise AuditError("detoxify model type 'custom' needs a checkpoint (--scorer-checkpoint)")
        if token_budget < MAX_TOKENS:
            raise AuditError(f"token_budget {token_budget} is below one full-length text ({MAX_TOKENS} tokens)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.half = (device.startswith("cuda")) if half is None else half
        self.token_budget = token_budget
        self.model_type = model_type
        self.name = f"detoxify:{model_type}"

        path = Path(checkpoint) if checkpoint is not None else self._published_checkpoint(model_type)
        if not path.is_file():
            raise AuditError(f"detoxify checkpoint {path} does not exist or is not a file")
        self.checkpoint = path
        self.sha256 = sha256_file(path)
        if model_type in _KNOWN_TYPES:
            expected = _expected_prefix(_published_file(model_type)[1])
            if not self.sha256.startswith(expected):
                raise AuditError(f"detoxify checkpoint {path} is not the published {model_type!r} model: "
                                 f"sha256 should start with {expected}, but is {self.sha256}; "
                                 f"pass model type 'custom' for a checkpoint of your own")

        self._detox = self._load(path, config_dir, device)
        self._keys = tuple(self._detox.class_names)
        if "toxicity" not in self._keys:
            raise AuditError(f"detoxify checkpoint {path} has no 'toxicity' class; its classes are "
                             f"{list(self._keys)}")
        model = self._detox.model
        model.eval()
        if self.half:
            model.half()
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        from importlib.metadata import version

        self.version = f"{_VERSION}+detoxify{version('detoxify')}+{self.dtype}"

    @staticmethod
    def _published_checkpoint(model_type: str) -> Path:
        """detoxify's published file from torch hub's cache, downloaded there (hash-checked) if absent."""
        import torch

        url, file_name = _published_file(model_type)
        target = Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if target.is_file():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(target), hash_prefix=_expected_prefix(file_name),
                                           progress=False)
        except Exception as exc:  # no network, proxy, disk: all fixable by the user the same way
            raise AuditError(f"could not find or download the detoxify {model_type!r} checkpoint "
                             f"({file_name}, looked in {target.parent}): {exc}. Offline, pass "
                             f"--scorer-checkpoint FILE.ckpt and --scorer-config DIR (the base model's "
                             f"config and tokenizer files)") from exc
        return target

    @staticmethod
    def _load(path: Path, config_dir: Path | None, device: str) -> Any:
        """Build a real detoxify.Detoxify; with config_dir, point the checkpoint's base model at it.

        detoxify's own `huggingface_config_path` still calls `config_class.from_pretrained(model_type)`
        on the hub id before using the path, so it does not work offline. Rewriting the checkpoint's
        `arch.args.model_type` to the local directory makes every from_pretrained call local.
        """
        import torch
        from detoxify import Detoxify

        loaded = load_weights_only(path, "detoxify checkpoint")  # never unpickles code
        try:
            args = loaded["config"]["arch"]["args"]
            loaded["config"]["dataset"]["args"]["classes"]
            loaded["state_dict"]
        except (KeyError, TypeError) as exc:
            raise AuditError(f"detoxify checkpoint {path} lacks config.arch.args, "
                             f"config.dataset.args.classes or state_dict ({exc!r})") from exc
        for key in ("model_name", "tokenizer_name"):  # detoxify builds getattr(transformers, name)
            name = args.get(key) if isinstance(args, dict) else None
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("Auto"):
                raise AuditError(f"detoxify checkpoint {path}: config.arch.args.{key} must name a concrete "
                                 f"transformers class, not {name!r}")
        if config_dir is not None:
            config_dir = Path(config_dir)
            if not (config_dir / "config.json").is_file():
                raise AuditError(f"scorer config directory {config_dir} has no config.json")
            remote = auto_map_file(config_dir)
            if remote is not None:
                raise AuditError(f"scorer config {remote} has an auto_map, which loads Python code from the "
                                 "folder; opt-audit runs no code from a scorer config folder")
            args["model_type"] = str(config_dir.resolve())
        buffer = io.BytesIO()
        # detoxify's loader reads this back with its own torch.load. It holds only what the
        # weights_only unpickler produced (tensors and plain containers), so it cannot carry code.
        torch.save(loaded, buffer)
        del loaded
        buffer.seek(0)
        try:
            return Detoxify(checkpoint=buffer, device=device)
        except AuditError:
            raise
        except Exception as exc:
            hint = "" if config_dir is not None else " (offline, pass --scorer-config DIR)"
            raise AuditError(f"detoxify could not build the model from {path}{hint}: {first_line(exc)}") from exc

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    @property
    def id(self) -> str:
        return f"{self.name}@{self.sha256[:16]}|v{self.version}"

    def provenance(self) -> dict[str, Any]:
        """Checkpoint name and sha256, classes, device, and the validity record kept beside it."""
        from audit.scoring.validity import validity_summary

        prov: dict[str, Any] = {
            "scorer": self.name, "version": self.version, "id": self.id, "checkpoint": self.checkpoint.name,
            "sha256": self.sha256, "classes": list(self._keys), "device": self.device,
            "dtype": self.dtype, "max_tokens": MAX_TOKENS, "token_budget": self.token_budget}
        validity = validity_summary(self.validity_path, self.id)
        if validity is not None:
            prov["validity"] = validity
        return prov

    @property
    def validity_path(self) -> Path:
        """Where `opt-audit scorers validate` keeps this checkpoint's record by default."""
        return self.checkpoint.with_name(self.checkpoint.name + ".validity.json")

    def score(self, texts: Sequence[str]) -> dict[str, list[float]]:
        """Sigmoid class probabilities, one list per class, in the order of `texts`."""
        import torch

        out: dict[str, list[float]] = {k: [0.0] * len(texts) for k in self._keys}
        if not texts:
            return out
        tokenizer, model = self._detox.tokenizer, self._detox.model
        encoded = tokenizer([_clean(t) for t in texts], truncation=True, max_length=MAX_TOKENS)
        rows = [{name: encoded[name][i] for name in encoded} for i in range(len(texts))]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i]["input_ids"]), reverse=True)
        filled = [False] * len(texts)
        start = 0
        with torch.inference_mode():
            while start < len(order):
                longest = len(rows[order[start]]["input_ids"])  # sorted descending: the first is longest
                size = max(1, self.token_budget // longest)
                chunk = order[start:start + size]
                batch = tokenizer.pad([rows[i] for i in chunk], padding=True, return_tensors="pt")
                batch = {k: v.to(model.device) for k, v in batch.items()}
                logits = model(**batch)[0]  # (B, C)
                probs = torch.sigmoid(logits.float()).cpu().tolist()
                for i, row in zip(chunk, probs):
                    for key, value in zip(self._keys, row):
                        if math.isnan(value):
                            raise AuditError(f"detoxify returned NaN {key!r} for text {texts[i][:60]!r}")
                        out[key][i] = value
                    filled[i] = True
                start += len(chunk)
        if not all(filled):
            raise AuditError("detoxify scorer left a text unscored (batching bug)")
        return out
