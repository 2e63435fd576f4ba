"""`tiny-opt`: the embedded, deterministic, randomly initialised OPT that runs everywhere offline.

It has the real OPT tokenizer (bundled in `audit/assets/opt_tokenizer`, from metaseq) and the
real `OPTForCausalLM` architecture, so it exercises every code path a real OPT does. Its weights
are random: its scores say nothing about any real model.

Weights come from our own seeded `torch.Generator`, not from transformers' initialisers, whose
order and defaults change between releases; two builds therefore give byte-identical
`model.safetensors` (tests compare the sha256).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from audit.store import atomic_directory

TINY_NAME = "tiny-opt"
TINY_VERSION = "1"  # bump when the config or the init below changes
TINY_SEED = 1234


@dataclass(frozen=True)
class TinyConfig:
    """Shape of tiny-opt. The vocabulary and special ids are OPT's own; the rest is small."""

    vocab_size: int = 50272  # OPT pads its 50,265-token vocabulary to a multiple of 8
    hidden_size: int = 64  # d_model
    ffn_dim: int = 256  # 4 x d_model, as in every OPT size
    num_hidden_layers: int = 2
    num_attention_heads: int = 4  # head dim 16
    max_position_embeddings: int = 512  # OPT adds an offset of 2 internally (514 rows)
    init_std: float = 0.02  # OPT's own init_std for linear and embedding weights
    pad_token_id: int = 1  # <pad>
    bos_token_id: int = 2  # </s>: OPT starts every sequence with </s>
    eos_token_id: int = 2  # </s>


def tokenizer_files() -> Path:
    """The bundled OPT tokenizer folder (vocab.json, merges.txt, LICENSE, SOURCE.md)."""
    return Path(str(resources.files("audit") / "assets" / "opt_tokenizer"))


def load_opt_tokenizer(path: Path | None = None):
    """The OPT tokenizer with OPT's special-token settings (bos/eos/unk `</s>`, pad `<pad>`)."""
    from transformers import GPT2Tokenizer  # tokenizers-backed (fast) in transformers 5

    # local_files_only is explicit: it is saved in tokenizer_config.json, which tiny-opt's content pin
    # covers, so whether HF_HUB_OFFLINE was set must not change the built files.
    return GPT2Tokenizer.from_pretrained(
        str(path or tokenizer_files()),
        bos_token="</s>", eos_token="</s>", unk_token="</s>", pad_token="<pad>",
        add_bos_token=True, add_prefix_space=False, trust_remote_code=False, local_files_only=True,
    )


def cache_root() -> Path:
    """Where opt-audit keeps built models: $OPT_AUDIT_CACHE, else the XDG user cache."""
    env = os.environ.get("OPT_AUDIT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opt-audit"


def build_tiny_model(out_dir: Path, config: TinyConfig = TinyConfig(), seed: int = TINY_SEED) -> Path:
    """Write tiny-opt (model + tokenizer) to `out_dir` atomically; return `out_dir`."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    out_dir = Path(out_dir)
    hf_config = OPTConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        ffn_dim=config.ffn_dim,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        word_embed_proj_dim=config.hidden_size,
        do_layer_norm_before=True,  # pre-LN, like every OPT except opt-350m
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
        init_std=config.init_std,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        tie_word_embeddings=True,
    )
    model = OPTForCausalLM(hf_config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():  # tied lm_head is visited once
            if "layer_norm" in name:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * config.init_std)
    model.eval()

    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        load_opt_tokenizer().save_pretrained(str(tmp))
        for extra in ("LICENSE", "SOURCE.md"):
            shutil.copyfile(tokenizer_files() / extra, tmp / f"TOKENIZER_{extra}")
        (tmp / "README.md").write_text(
            "# tiny-opt\n\nA randomly initialised OPTForCausalLM built by opt-audit "
            f"(tiny-opt v{TINY_VERSION}, seed {seed}).\nIts weights are random: scores computed "
            "with it exercise the audit pipeline only and say nothing about any real model.\n",
            encoding="utf-8",
        )
    return out_dir


def tiny_model_dir() -> Path:
    """The cached tiny-opt, built on first use (a concurrent builder simply wins the rename)."""
    target = cache_root() / f"{TINY_NAME}-v{TINY_VERSION}"
    if not (target / "model.safetensors").exists():
        try:
            build_tiny_model(target)
        except OSError:
            if not (target / "model.safetensors").exists():  # not a lost race: a real error
                raise
    return target



# --------------------------------------------------------------------------------------------
# tiny-opt with a task head: the embedded classifier and extractive-QA models
# --------------------------------------------------------------------------------------------

TINY_CLASSIFIER_NAME = "tiny-opt-classifier"
TINY_QA_NAME = "tiny-opt-qa"
TINY_HEADS_VERSION = "1"  # bump when a head's shape or init below changes (tiny-opt's own bytes never do)
TINY_HEAD_SEED = 4321
TINY_CLASSIFIER_LABELS = ("negative", "positive")  # id 0, id 1: the default label of interest is the last


def build_tiny_head_model(head: str, out_dir: Path, seed: int = TINY_HEAD_SEED) -> Path:
    """Write tiny-opt's body under a seeded random `head` ("classifier": OPTForSequenceClassification
    with 2 labels; "qa": OPTForQuestionAnswering) to `out_dir` atomically; return `out_dir`.

    Why built from tiny-opt's saved body rather than a fresh init: the heads then share tiny-opt's
    exact weights, so a difference between the models is the head alone.
    """
    from transformers.utils import logging as hf_logging

    if head not in ("classifier", "qa"):
        raise ValueError(f"unknown tiny head {head!r}")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a first use builds quietly: the console belongs to the run
    try:
        return _build_tiny_head(head, Path(out_dir), seed, tiny_model_dir())
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _build_tiny_head(head: str, out_dir: Path, seed: int, body_dir: Path) -> Path:
    """`build_tiny_head_model` with the library's progress bars off."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM, OPTForQuestionAnswering, OPTForSequenceClassification

    base = OPTForCausalLM.from_pretrained(str(body_dir), dtype=torch.float32, trust_remote_code=False)
    config = OPTConfig.from_dict(base.config.to_dict())
    if head == "classifier":
        config.num_labels = len(TINY_CLASSIFIER_LABELS)
        config.id2label = dict(enumerate(TINY_CLASSIFIER_LABELS))
        config.label2id = {label: i for i, label in enumerate(TINY_CLASSIFIER_LABELS)}
        config.architectures = ["OPTForSequenceClassification"]
        model = OPTForSequenceClassification(config)
    else:
        config.architectures = ["OPTForQuestionAnswering"]
        model = OPTForQuestionAnswering(config)
    model.model.load_state_dict(base.model.state_dict())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith(("score.", "qa_outputs.")):  # the head: seeded, never transformers' init
                if name.endswith("bias"):
                    param.zero_()
                else:
                    param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * TinyConfig().init_std)
    model.eval()
    name = TINY_CLASSIFIER_NAME if head == "classifier" else TINY_QA_NAME
    with atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(str(tmp))
        load_opt_tokenizer().save_pretrained(str(tmp))
        for extra in ("LICENSE", "SOURCE.md"):
            shutil.copyfile(tokenizer_files() / extra, tmp / f"TOKENIZER_{extra}")
        (tmp / "README.md").write_text(
            f"# {name}\n\ntiny-opt v{TINY_VERSION}'s body with a randomly initialised "
            f"{type(model).__name__} head, built by opt-audit ({name} v{TINY_HEADS_VERSION}, seed {seed}).\n"
            "Its weights are random: scores computed with it exercise the audit pipeline only.\n",
            encoding="utf-8",
        )
    return Path(out_dir)


def tiny_head_dir(name: str) -> Path:
    """The cached tiny-opt-classifier or tiny-opt-qa, built on first use."""
    head = {TINY_CLASSIFIER_NAME: "classifier", TINY_QA_NAME: "qa"}[name]
    target = cache_root() / f"{name}-v{TINY_VERSION}.{TINY_HEADS_VERSION}"
    if not (target / "model.safetensors").exists():
        try:
            build_tiny_head_model(head, target)
        except OSError:
            if not (target / "model.safetensors").exists():
                raise
    return target
