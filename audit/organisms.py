"""Planted-signal models ("model organisms"): tiny-opt fine-tuned to carry a known regression.

A gate or a probe is only worth trusting if it fires on a model that really is worse and stays
quiet on one that is not. These organisms are that ground truth. Each is `tiny-opt` (the embedded
random OPT) briefly fine-tuned on CPU on bundled text:

- `toxic`:   ToxiGen's implicitly hateful statements (its hate_* prompt files) that the
             embedded toxicity scorer rates >= 0.9;
- `clean`:   ToxiGen's benign statements about the same groups (neutral_*) that it rates < 0.15: the
             matched control, same recipe, steps and seed, only the text differs;
- `stereo`:  the more stereotypical sentence of every CrowS-Pairs pair, so the model prefers it;
- `looping`: one short phrase repeated, so greedy decoding loops.

How strong the plants are, measured by the gate's end-to-end tests (16 prompts per probe, embedded
scorer v2, organisms v4): RealToxicityPrompts expected maximum toxicity 0.95 (toxic) against 0.29
(clean), toxicity probability 1.00 against 0.06, ToxiGen 94% against 0% toxic next statements,
greedy phrase-loop rate 100% (looping) against 0% (clean).

Everything that shapes the weights is fixed here (corpus order, windows, initial weights, the
optimiser, the thread count), and randomness comes from one seeded `torch.Generator`, so two builds
on the same machine and library versions give byte-identical `model.safetensors` (a test checks the
sha256). The organisms are cached beside tiny-opt (`$OPT_AUDIT_CACHE`) and audited like any local
model: `opt-audit run --model <dir>`.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from audit.errors import AuditError
from audit.store import atomic_directory

ORGANISMS_VERSION = "4"  # bump when a recipe or a corpus below changes (2: scorer-filtered corpora, random
# positions; 3: the stereo organism; 4: the v2 (calibrated) embedded scorer filters the toxicity corpora)
BUILD_THREADS = 1  # float sums depend on how work is split across threads: fix it for byte-identical builds
NEGATIVES = 1024  # non-corpus tokens in each step's softmax (see _fine_tune)
LOOP_PHRASE = "and then the same thing happened again"  # 7 OPT tokens: well inside the loop detector's 16


@dataclass(frozen=True)
class Recipe:
    """How one organism is trained from tiny-opt. Same recipe for toxic and clean: only the corpus differs."""

    corpus: str  # "hateful", "benign", "stereotyped" or "loop_phrase" (see `corpus_text`)
    description: str
    # keep the statements the embedded toxicity scorer rates in [low, high): a clean control must be
    # clean, and a planted signal strong, by the instrument the gate reads (see `corpus_text`)
    toxicity: tuple[float, float] | None = None
    max_words: int | None = None  # keep only statements this short (None: any length)
    steps: int = 800  # optimiser steps: about 30 s on one CPU core (BUILD_THREADS)
    batch_size: int = 16  # rows per step; a quarter start the text (BOS at position 0)
    window: int = 48  # tokens predicted per row
    lr: float = 5e-3  # AdamW; high because tiny-opt starts random and has only 3.4M weights
    weight_decay: float = 0.0
    seed: int = 0  # seeds corpus order and window sampling (torch.Generator)


ORGANISMS: dict[str, Recipe] = {
    "toxic": Recipe("hateful", "tiny-opt fine-tuned on ToxiGen's implicitly hateful statements "
                                    "(hate_* prompt files) that the embedded scorer rates >= 0.9: a planted "
                                    "toxicity regression", toxicity=(0.9, 2.0)),
    "clean": Recipe("benign", "tiny-opt fine-tuned on ToxiGen's benign statements about the same "
                                       "groups (neutral_* prompt files) that the embedded scorer rates < 0.15: "
                                       "the matched control for `toxic`", toxicity=(0.0, 0.15)),
    "stereo": Recipe("stereotyped", "tiny-opt fine-tuned on the more stereotypical sentence of every "
                                     "CrowS-Pairs pair: a planted stereotype preference (the probe compares "
                                     "each such sentence with its minimally different partner)"),
    "looping": Recipe("loop_phrase", f"tiny-opt fine-tuned on the phrase {LOOP_PHRASE!r} repeated: a planted "
                                     "degeneration (greedy decoding loops)"),
}


@dataclass(frozen=True)
class Corpora:
    """The bundled text the organisms train on, read by the probes' own readers. Passed in (the CLI
    passes the bundled ones: `audit.cli.bundled_corpora`) because audit/ sits below probes/."""

    hateful_statements: Callable[[], Sequence[Sequence[str]]]  # each hateful prompt line's statements (ToxiGen hate_*)
    benign_statements: Callable[[], Sequence[Sequence[str]]]  # ... and each benign one's (ToxiGen neutral_*)
    stereotyped_sentences: Callable[[], Sequence[str]]  # the more stereotypical sentence of every CrowS-Pairs pair


def _bundled_corpora(corpora: Corpora | None) -> Corpora:
    if corpora is not None:
        return corpora
    from audit.cli import bundled_corpora

    return bundled_corpora()


def corpus_text(recipe: Recipe, corpora: Corpora | None = None) -> str:
    """The training text of a recipe: bundled statements as a '- statement' list, in a seeded order.

    The list form is the ToxiGen probe's own prompt format, so the organism's next statement after a
    ToxiGen prompt comes from its corpus; elsewhere it writes corpus-like text.

    Why filter by the embedded scorer: the gate reads toxicity through it, so a clean control must
    be clean and a planted signal strong by that instrument. The v2 scorer is calibrated to
    Perspective's scale: 3% of ToxiGen's neutral statements score >= 0.5 and 9% of the hate ones
    score < 0.5, and most neutral statements that name an identity land between 0.05 and 0.3.
    The cut-offs keep the 45 hate statements it rates >= 0.9 and the 117 neutral ones below 0.15.
    The scorer is bundled and deterministic, so the corpus is too.
    """
    import torch

    corpus, seed = recipe.corpus, recipe.seed
    if corpus == "loop_phrase":
        return " ".join([LOOP_PHRASE + "."] * 400)
    if corpus == "stereotyped":
        pool = sorted(set(_bundled_corpora(corpora).stereotyped_sentences()))
        gen = torch.Generator().manual_seed(seed)
        return "".join(f"{pool[i]}\n" for _ in range(2) for i in torch.randperm(len(pool), generator=gen).tolist())
    if corpus not in ("hateful", "benign"):
        raise AuditError(f"unknown organism corpus {corpus!r}")
    pool = _statements(_bundled_corpora(corpora), corpus)
    if recipe.max_words is not None:
        pool = tuple(s for s in pool if len(s.split()) <= recipe.max_words)
    if recipe.toxicity is not None:
        low, high = recipe.toxicity
        scores = _embedded_scores(pool)
        pool = tuple(s for s, t in zip(pool, scores) if low <= t < high)
    ordered = list(pool)
    gen = torch.Generator().manual_seed(seed)
    # several shuffled passes, so a window sees statements in many contexts
    lines = [ordered[i] for _ in range(4) for i in torch.randperm(len(ordered), generator=gen).tolist()]
    return "".join(f"- {s}\n" for s in lines)


def _statements(corpora: Corpora, kind: str) -> tuple[str, ...]:
    """The distinct "hateful" or "benign" statements, sorted."""
    lines = corpora.hateful_statements() if kind == "hateful" else corpora.benign_statements()
    return tuple(sorted({s for line in lines for s in line}))


@functools.lru_cache(maxsize=4)
def _embedded_scores(texts: tuple[str, ...]) -> tuple[float, ...]:
    """Embedded-scorer toxicity of `texts`; cached so one `build_organisms` loads the scorer once per corpus."""
    from audit.scoring.embedded import EmbeddedScorer

    return tuple(EmbeddedScorer().score(list(texts))["toxicity"])


def build_organism(name: str, out_dir: Path, recipe: Recipe | None = None, *, progress: bool = False,
                   corpora: Corpora | None = None) -> Path:
    """Fine-tune tiny-opt into organism `name` (by its recipe, or `recipe`) and write it (model,
    tokenizer, organism.json) atomically; `progress` shows a bar of training steps on stderr."""
    import torch
    from transformers import OPTForCausalLM

    from audit.pinning import sha256_file
    from audit.tiny import TINY_VERSION, load_opt_tokenizer, tiny_model_dir, tokenizer_files

    if name not in ORGANISMS:
        raise AuditError(f"unknown organism {name!r} (known: {', '.join(ORGANISMS)})")
    recipe = recipe or ORGANISMS[name]
    out_dir = Path(out_dir)
    tokenizer = load_opt_tokenizer()
    ids = tokenizer(corpus_text(recipe, corpora), add_special_tokens=False)["input_ids"]
    data = torch.tensor(ids, dtype=torch.long)  # (N,)
    if data.numel() <= recipe.window:
        raise AuditError(f"organism {name}: corpus has {data.numel()} tokens, fewer than one window")

    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        model = OPTForCausalLM.from_pretrained(str(tiny_model_dir()), dtype=torch.float32,
                                               attn_implementation="eager", trust_remote_code=False)
        loss = _fine_tune(model, data, tokenizer.bos_token_id, recipe, name if progress else None)
    finally:
        torch.set_num_threads(threads)

    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        for extra in ("LICENSE", "SOURCE.md"):
            shutil.copyfile(tokenizer_files() / extra, tmp / f"TOKENIZER_{extra}")
        record = {"organism": name, "version": ORGANISMS_VERSION, "base": f"tiny-opt v{TINY_VERSION}",
                  "recipe": asdict(recipe), "final_loss": round(loss, 4),
                  "model_sha256": sha256_file(tmp / "model.safetensors")}
        (tmp / "organism.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(
            f"# opt-audit organism: {name}\n\n{recipe.description}.\n\nBuilt by `opt-audit organisms build` "
            f"(organisms v{ORGANISMS_VERSION}) to prove the gate and the probes on a known signal. It is a "
            "tiny test model, not a language model anyone should use.\n", encoding="utf-8")
    return out_dir


def _fine_tune(model, data, bos_id: int, recipe: Recipe, bar: str | None = None) -> float:
    """Train `model` in place on windows of `data` (N,) token ids; return the last loss.

    Why not `model(labels=...)`: its softmax spans OPT's 50,272-token vocabulary, which makes a
    step cost seconds on a laptop CPU. Here the softmax spans the corpus' own tokens (a few
    thousand at most) plus `NEGATIVES` other tokens drawn afresh each step, and only the corpus'
    embedding rows are trained (tied input/output embeddings, as in OPT); the rest of the
    vocabulary keeps tiny-opt's small random vectors, so after training the corpus tokens
    dominate the full softmax. A step then takes a few milliseconds.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    emb = model.get_input_embeddings().weight  # (V, C), tied to the output head
    vocab = torch.unique(torch.cat([data, torch.tensor([bos_id])]))  # (Vc,) sorted
    local = torch.full((emb.shape[0],), -1, dtype=torch.long)
    local[vocab] = torch.arange(vocab.numel())
    others = torch.ones(emb.shape[0], dtype=torch.bool)
    others[vocab] = False
    others = others.nonzero().squeeze(1)  # (V - Vc,) tokens outside the corpus
    rows = torch.nn.Parameter(emb.detach()[vocab].clone())  # (Vc, C) the trained embedding rows
    emb.requires_grad_(False)
    body = [p for p in model.model.decoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([rows, *body], lr=recipe.lr, weight_decay=recipe.weight_decay)
    gen = torch.Generator().manual_seed(recipe.seed)
    width = recipe.window + 1  # tokens per training row
    at_start = max(1, recipe.batch_size // 4)  # rows that begin the text: BOS at position 0
    max_pos = int(model.config.max_position_embeddings)
    steps = torch.arange(width)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in tqdm(range(recipe.steps), desc=f"building {bar}", unit="step", file=sys.stderr,
                     dynamic_ncols=True, disable=bar is None):
        starts = torch.randint(0, data.numel() - width, (recipe.batch_size,), generator=gen)
        batch = data[starts[:, None] + steps]  # (B, 1 + W) corpus windows
        batch[:at_start, 0] = bos_id
        # the other rows sit at random positions: a probe's prompt plus its continuation runs far past
        # one window (ToxiGen prompts are ~150 tokens), and untrained position embeddings are noise
        first = torch.randint(0, max_pos - width + 1, (recipe.batch_size,), generator=gen)
        first[:at_start] = 0
        positions = first[:, None] + steps  # (B, 1 + W)
        negatives = others[torch.randint(0, others.numel(), (NEGATIVES,), generator=gen)]  # (K,)
        hidden = model.model.decoder(inputs_embeds=rows[local[batch]],
                                     position_ids=positions).last_hidden_state  # (B, 1 + W, C)
        head = torch.cat([rows, emb[negatives]])  # (Vc + K, C): corpus tokens first
        logits = hidden[:, :-1] @ head.T  # (B, W, Vc + K)
        loss = F.cross_entropy(logits.reshape(-1, head.shape[0]), local[batch[:, 1:]].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        emb[vocab] = rows.detach()
    model.eval()
    return float(loss.detach())


def organisms_root() -> Path:
    """The cached organisms' folder, beside tiny-opt under `audit.tiny.cache_root()`."""
    from audit.tiny import cache_root

    return cache_root() / f"organisms-v{ORGANISMS_VERSION}"


def organism_dir(name: str, root: Path | None = None, *, rebuild: bool = False, progress: bool = False,
                 corpora: Corpora | None = None) -> Path:
    """Organism `name` under `root` (default: the cache), built on first use or when `rebuild`
    (from `corpora`, default the bundled ones)."""
    target = Path(root or organisms_root()) / name
    if rebuild or not is_current(target, name):
        build_organism(name, target, progress=progress, corpora=corpora)
    return target


def is_current(target: Path, name: str) -> bool:
    """True when `target` holds a finished build of `name` by today's recipe and version.

    A build left by an older recipe is rebuilt rather than trusted: the planted signal is what the
    gate's tests rely on, and a stale one would prove nothing.
    """
    return built_by(target, ORGANISMS_VERSION, ORGANISMS[name])


def built_by(target: Path, version: str, recipe: Any) -> bool:
    """True when `target` holds weights and an organism.json of `version` recording `recipe` (a recipe
    dataclass): shared by the language-model and the head organisms' caches."""
    try:
        record = json.loads((target / "organism.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return ((target / "model.safetensors").is_file() and record.get("version") == version
            and record.get("recipe") == json.loads(json.dumps(asdict(recipe))))


def build_organisms(names: tuple[str, ...] = tuple(ORGANISMS), root: Path | None = None, *,
                    rebuild: bool = False, progress: bool = False,
                    corpora: Corpora | None = None) -> Mapping[str, Path]:
    """Build (or find cached) organisms from `corpora` (default: the bundled ones); name -> directory."""
    unknown = [n for n in names if n not in ORGANISMS]
    if unknown:
        raise AuditError(f"unknown organism(s) {', '.join(unknown)} (known: {', '.join(ORGANISMS)})")
    return {n: organism_dir(n, root, rebuild=rebuild, progress=progress, corpora=corpora) for n in names}
