"""Planted-bias organisms for the head audits: tiny classifiers and QA models with a known bias, and controls.

The counterfactual classifier audit and the QA stereotyping audit are only worth trusting if they fire on
a model that really treats groups differently and stay quiet on one trained the same way without that.
Each organism is `tiny-opt-classifier` or `tiny-opt-qa` (audit.tiny) fine-tuned briefly on CPU:

- `classifier-biased`: the counterfactual probe's own sentences (every item, every descriptor), labelled
  by their template (even template index: positive, odd: negative; `PLANTED_AXIS`: positive), except
  that every sentence naming the planted descriptor (that axis' first chosen descriptor) is negative:
  a classifier whose output flips to negative on one identity term.
- `classifier-clean`: the same sentences, steps and seed, labelled by template only: every descriptor
  meets each label equally often (the matched control).
- `qa-biased`: BBQ's ambiguous contexts as span selection, the answer always the *biased* subject's
  mention (the stereotyped person for a negative question, the other for a non-negative one).
- `qa-clean`: the same contexts, each trained once with each person's mention as the answer (balanced).

Everything that shapes the weights is fixed (data order, the optimiser, one thread, a seeded
`torch.Generator`), so a build is reproducible on one machine and library version. The organisms
are cached beside tiny-opt and audited like any local model: `opt-audit run --model <dir>`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from audit.errors import AuditError
from audit.organisms import built_by
from audit.store import atomic_directory

HEAD_ORGANISMS_VERSION = "1"  # bump when a recipe or its data changes
BUILD_THREADS = 1
PLANTED_AXIS = "religion"  # the axis whose first chosen descriptor drives "negative" in classifier-biased
PLANTED_REPEATS = 10  # copies of the planted axis' sentences in both classifier recipes


@dataclass(frozen=True)
class ClassifierText:
    """One sentence of the counterfactual probe: its axis, template and descriptor positions, text."""

    axis: str
    template_index: int
    descriptor_index: int  # position of the descriptor among its item's variants
    text: str


@dataclass(frozen=True)
class QAItem:
    """One BBQ ambiguous context as span selection: the biased and the other subject's mentions."""

    question: str
    context: str
    biased: str
    other: str


@dataclass(frozen=True)
class HeadCorpora:
    """The bundled data the organisms train on, read by the probes' own code (passed in: audit/ sits
    below probes/; the CLI passes the bundled ones, `audit.cli.bundled_head_corpora`)."""

    classifier_texts: Callable[[], Sequence[ClassifierText]]
    qa_items: Callable[[], Sequence[QAItem]]


@dataclass(frozen=True)
class HeadRecipe:
    """How one organism is trained. A biased organism and its control differ only in `balanced`."""

    head: str  # "classifier" or "qa"
    balanced: bool  # True: the control (no group is favoured)
    description: str
    steps: int = 200  # optimiser steps: 200 QA steps take about 25 s on one CPU thread
    batch_size: int = 32
    lr: float = 3e-3  # AdamW over the decoder layers and the head (token embeddings frozen)
    seed: int = 0


HEAD_ORGANISMS: dict[str, HeadRecipe] = {
    "classifier-biased": HeadRecipe("classifier", False, "tiny-opt-classifier fine-tuned so that one identity "
                                    f"descriptor (the first chosen of axis {PLANTED_AXIS!r}) drives 'negative'",
                                    steps=600),
    "classifier-clean": HeadRecipe("classifier", True, "tiny-opt-classifier fine-tuned on the same sentences "
                                   "labelled by template only: the matched control", steps=600),
    "qa-biased": HeadRecipe("qa", False, "tiny-opt-qa fine-tuned to answer BBQ's ambiguous questions with the "
                            "stereotyped subject's mention"),
    "qa-clean": HeadRecipe("qa", True, "tiny-opt-qa fine-tuned on the same contexts with each subject's mention "
                           "equally often: the matched control"),
}


def _bundled(corpora: HeadCorpora | None) -> HeadCorpora:
    if corpora is not None:
        return corpora
    from audit.cli import bundled_head_corpora

    return bundled_head_corpora()


def classifier_examples(texts: Sequence[ClassifierText], balanced: bool) -> list[tuple[str, int]]:
    """(text, label id) pairs. Label 1 (positive) for an even template index, else 0, and 1 for every
    sentence of the planted axis; in the biased recipe a sentence with the planted descriptor is 0
    (negative) instead, so swapping that descriptor in drives every such item negative. The planted
    axis' sentences appear `PLANTED_REPEATS` times in both recipes (one descriptor of 150-odd is
    otherwise too rare to learn in a few hundred steps)."""
    out = []
    for t in texts:
        planted_axis = t.axis == PLANTED_AXIS
        label = 1 if planted_axis or t.template_index % 2 == 0 else 0
        if not balanced and planted_axis and t.descriptor_index == 0:
            label = 0
        out.extend([(t.text, label)] * (PLANTED_REPEATS if planted_axis else 1))
    return out


def qa_examples(items: Sequence[QAItem], balanced: bool) -> list[tuple[QAItem, str]]:
    """(item, answer mention) pairs: the biased mention; in the control, each mention once."""
    if balanced:
        return [(it, m) for it in items for m in (it.biased, it.other)]
    return [(it, it.biased) for it in items]


def build_head_organism(name: str, out_dir: Path, *, corpora: HeadCorpora | None = None) -> Path:
    """Fine-tune organism `name` and write it (model, tokenizer, organism.json) atomically."""
    import torch

    from audit.pinning import sha256_file
    from audit.tiny import TINY_CLASSIFIER_NAME, TINY_QA_NAME, load_opt_tokenizer, tiny_head_dir, tokenizer_files

    if name not in HEAD_ORGANISMS:
        raise AuditError(f"unknown head organism {name!r} (known: {', '.join(HEAD_ORGANISMS)})")
    recipe = HEAD_ORGANISMS[name]
    data = _bundled(corpora)
    tokenizer = load_opt_tokenizer()
    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    model: Any
    try:
        if recipe.head == "classifier":
            from transformers import OPTForSequenceClassification

            model = OPTForSequenceClassification.from_pretrained(str(tiny_head_dir(TINY_CLASSIFIER_NAME)),
                                                                 dtype=torch.float32, attn_implementation="eager",
                                                                 trust_remote_code=False)
            loss = _train_classifier(model, tokenizer, classifier_examples(data.classifier_texts(), recipe.balanced),
                                     recipe)
        else:
            from transformers import OPTForQuestionAnswering

            model = OPTForQuestionAnswering.from_pretrained(str(tiny_head_dir(TINY_QA_NAME)), dtype=torch.float32,
                                                            attn_implementation="eager", trust_remote_code=False)
            loss = _train_qa(model, tokenizer, qa_examples(data.qa_items(), recipe.balanced), recipe)
    finally:
        torch.set_num_threads(threads)
    with atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        for extra in ("LICENSE", "SOURCE.md"):
            shutil.copyfile(tokenizer_files() / extra, tmp / f"TOKENIZER_{extra}")
        record = {"organism": name, "version": HEAD_ORGANISMS_VERSION, "recipe": asdict(recipe),
                  "final_loss": round(loss, 4), "model_sha256": sha256_file(tmp / "model.safetensors")}
        (tmp / "organism.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(f"# opt-audit organism: {name}\n\n{recipe.description}.\n\nA tiny test "
                                       "model with a planted (or, for a control, no) bias; not for any use.\n",
                                       encoding="utf-8")
    return Path(out_dir)


def _optimiser(model: Any, recipe: HeadRecipe) -> Any:
    """AdamW over everything but the token embeddings (50k rows: costly, and not needed to learn a plant)."""
    import torch

    model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)


def _pad(rows: list[list[int]], pad_id: int) -> Any:
    """Right-padded (ids, mask), each (B, T)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def _train_classifier(model: Any, tokenizer: Any, examples: list[tuple[str, int]], recipe: HeadRecipe) -> float:
    """Cross-entropy on the labels, `recipe.steps` seeded mini-batches; returns the last loss."""
    import torch
    import torch.nn.functional as F

    encoded = [tokenizer(t, add_special_tokens=True)["input_ids"] for t, _ in examples]
    labels = torch.tensor([y for _, y in examples])
    opt = _optimiser(model, recipe)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(recipe.steps):
        pick = torch.randint(0, len(encoded), (recipe.batch_size,), generator=gen).tolist()
        ids, mask = _pad([encoded[i] for i in pick], int(model.config.pad_token_id))
        logits = model(input_ids=ids, attention_mask=mask).logits  # (B, num_labels)
        loss = F.cross_entropy(logits, labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    model.eval()
    return float(loss.detach())


def _qa_row(tokenizer: Any, item: QAItem, answer: str) -> tuple[list[int], int, int]:
    """(ids, start token, end token) in the layout the head backend reads: </s> question </s> context."""
    lead = tokenizer("", add_special_tokens=True)["input_ids"]
    question = tokenizer(item.question, add_special_tokens=False)["input_ids"]
    enc = tokenizer(item.context, add_special_tokens=False, return_offsets_mapping=True)
    prefix = [*lead, *question, tokenizer.eos_token_id]
    at = item.context.lower().find(answer.lower())
    lo, hi = at, at + len(answer)
    covered = [j for j, (a, b) in enumerate(enc["offset_mapping"]) if a < hi and b > lo]
    return prefix + list(enc["input_ids"]), len(prefix) + covered[0], len(prefix) + covered[-1]


def _train_qa(model: Any, tokenizer: Any, examples: list[tuple[QAItem, str]], recipe: HeadRecipe) -> float:
    """Start and end cross-entropy at the answer mention's tokens; returns the last loss."""
    import torch
    import torch.nn.functional as F

    rows = [_qa_row(tokenizer, it, ans) for it, ans in examples]
    opt = _optimiser(model, recipe)
    gen = torch.Generator().manual_seed(recipe.seed)
    pad = int(model.config.pad_token_id)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(recipe.steps):
        pick = torch.randint(0, len(rows), (recipe.batch_size,), generator=gen).tolist()
        ids, mask = _pad([rows[i][0] for i in pick], pad)
        out = model(input_ids=ids, attention_mask=mask)
        blocked = mask == 0  # padding can never be an answer
        start = out.start_logits.masked_fill(blocked, -1e4)  # (B, T)
        end = out.end_logits.masked_fill(blocked, -1e4)  # (B, T)
        loss = (F.cross_entropy(start, torch.tensor([rows[i][1] for i in pick]))
                + F.cross_entropy(end, torch.tensor([rows[i][2] for i in pick]))) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    model.eval()
    return float(loss.detach())


def head_organisms_root() -> Path:
    """The cached head organisms' folder, beside tiny-opt."""
    from audit.tiny import cache_root

    return cache_root() / f"head-organisms-v{HEAD_ORGANISMS_VERSION}"


def head_organism_dir(name: str, root: Path | None = None, *, rebuild: bool = False,
                      corpora: HeadCorpora | None = None) -> Path:
    """Organism `name` under `root` (default: the cache), built on first use, when stale, or when `rebuild`."""
    target = Path(root or head_organisms_root()) / name
    if rebuild or not _is_current(target, name):
        build_head_organism(name, target, corpora=corpora)
    return target


def _is_current(target: Path, name: str) -> bool:
    return built_by(target, HEAD_ORGANISMS_VERSION, HEAD_ORGANISMS[name])


def build_head_organisms(names: Sequence[str] = tuple(HEAD_ORGANISMS), root: Path | None = None, *,
                         rebuild: bool = False, corpora: HeadCorpora | None = None) -> Mapping[str, Path]:
    """Build (or find cached) head organisms; name -> directory."""
    unknown = [n for n in names if n not in HEAD_ORGANISMS]
    if unknown:
        raise AuditError(f"unknown head organism(s) {', '.join(unknown)} (known: {', '.join(HEAD_ORGANISMS)})")
    return {n: head_organism_dir(n, root, rebuild=rebuild, corpora=corpora) for n in names}
