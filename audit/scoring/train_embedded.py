"""Train the embedded scorer's head: L2 logistic regression on MiniLM sentence embeddings.

Deterministic end to end: a seeded `numpy.random.Generator` picks the subsample and the held-out
split, the fit is a fixed number of float64 Newton steps, and the head is written as JSON (never
pickle). Two runs on one machine give byte-identical files.

Training data (bundled under probes/data/, see each SOURCE.md):
- Davidson et al. 2017 `labeled_data.csv`: toxic = class 0 (hate) or 1 (offensive), non-toxic = 2.
- ToxiGen `prompts/*.txt` statements: `hate_*` files toxic, `neutral_*` files non-toxic.
HateCheck and ETHOS are never used here: they are the held-out validation sets (`validity.py`).

    python -m audit.scoring.train_embedded [OUT.json]
"""

from __future__ import annotations

import csv
import html
import re
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from audit.errors import AuditError
from audit.scoring.embedded import (DEFAULT_HEAD, EMBED_DIM, HEAD_FORMAT, HEAD_VERSION, encode, encoder_label,
                                    encoder_sha256, load_encoder, sha256_file, sigmoid)
from audit.store import atomic_write_json

DATA_DIR = Path(str(resources.files("probes") / "data"))  # bundled data, wherever it is installed
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)  # lambda in: mean log-loss + lambda/2 * ||w||^2
NEWTON_STEPS = 25
HOLDOUT_FRACTION = 0.2


@dataclass
class ToxigenStatements:
    """Distinct ToxiGen statements per label, and how many lines needed each repair."""

    toxic: list[str]
    nontoxic: list[str]
    files: list[Path]
    repairs: dict[str, int] = field(default_factory=dict)


@dataclass
class Example:
    text: str
    label: int  # 1 toxic, 0 non-toxic
    source: str  # "davidson" or "toxigen"


# A statement glued to the next one without the literal "\n" separator: "...gay guys!- Its okay".
_GLUED = re.compile(r"([.!?])\s*-(?=\s|$)")
_GLUED_INSIDE = re.compile(r"[.!?]\s*-\s*\S")  # a glued pair, not just a stray final "-"


def split_toxigen_line(line: str) -> tuple[list[str], bool, bool]:
    """Split one prompt line into statements; also say if a separator or the final `\\n-` was missing."""
    line = line.rstrip("\r\n")
    missing_end = not line.endswith("\\n-")
    text = line.replace("\\n", "\n")
    repaired = _GLUED.sub(r"\1\n-", text)
    glued = any(_GLUED_INSIDE.search(part) for part in text.split("\n"))
    out = []
    for part in repaired.split("\n"):
        part = part.strip()
        if part.startswith("-"):
            part = part[1:].strip()
        if part:
            out.append(part)
    return out, glued, missing_end


def load_toxigen(prompts_dir: Path) -> ToxigenStatements:
    """All distinct statements of the hate_*/neutral_* prompt files, in first-seen order."""
    files = sorted(prompts_dir.glob("*.txt"))
    if not files:
        raise AuditError(f"no ToxiGen prompt files in {prompts_dir}")
    seen: dict[int, dict[str, None]] = {1: {}, 0: {}}
    glued = missing_end = 0
    for path in files:
        if path.name.startswith("hate_"):
            label = 1
        elif path.name.startswith("neutral_"):
            label = 0
        else:
            raise AuditError(f"ToxiGen file {path}: name must start with hate_ or neutral_")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            statements, g, m = split_toxigen_line(line)
            glued += g
            missing_end += m
            for s in statements:
                seen[label].setdefault(s, None)
    both = set(seen[1]) & set(seen[0])  # a statement in both kinds of file has no clear label
    return ToxigenStatements(
        toxic=[s for s in seen[1] if s not in both], nontoxic=[s for s in seen[0] if s not in both], files=files,
        repairs={"lines_missing_separator": glued, "lines_missing_final_separator": missing_end,
                 "statements_in_both_labels_dropped": len(both)})


_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")
_RT = re.compile(r"\bRT\s+@user:?\s*")


def clean_tweet(text: str) -> str:
    """Unescape HTML entities; normalise @mentions, URLs and the RT prefix (noise, not signal)."""
    text = html.unescape(text)
    text = _MENTION.sub("@user", text)
    text = _URL.sub("URL", text)
    text = _RT.sub("", text)
    return " ".join(text.split())


def load_davidson(csv_path: Path) -> dict[str, list[str]]:
    """Distinct cleaned tweets by Davidson class name: 'hate', 'offensive', 'neither'."""
    names = {"0": "hate", "1": "offensive", "2": "neither"}
    out: dict[str, dict[str, None]] = {n: {} for n in names.values()}
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for col in ("class", "tweet"):
            if col not in (reader.fieldnames or []):
                raise AuditError(f"Davidson file {csv_path}: missing column {col!r}")
        for i, row in enumerate(reader, start=2):
            if row["class"] not in names:
                raise AuditError(f"Davidson file {csv_path} row {i}: class {row['class']!r} not in 0/1/2")
            text = clean_tweet(row["tweet"])
            if text:
                out[names[row["class"]]].setdefault(text, None)
    # a text seen under two classes keeps its first label only within that class; drop cross-class repeats
    all_seen: dict[str, None] = {}
    result: dict[str, list[str]] = {}
    for name in ("hate", "offensive", "neither"):
        result[name] = [t for t in out[name] if t not in all_seen]
        all_seen.update(dict.fromkeys(result[name]))
    return result


def _take(rng: np.random.Generator, items: Sequence[str], k: int) -> list[str]:
    """k items without replacement, in a seeded order independent of anything else."""
    k = min(k, len(items))
    idx = rng.permutation(len(items))[:k]
    return [items[i] for i in sorted(idx)]


def build_examples(data_dir: Path, rng: np.random.Generator, limit_per_class: int) -> tuple[list[Example], dict]:
    """Balanced Davidson subsample (half hate, half offensive on the toxic side) + balanced ToxiGen."""
    dav = load_davidson(data_dir / "davidson_hate_offensive" / "labeled_data.csv")
    n_dav = min(limit_per_class, len(dav["neither"]), len(dav["hate"]) + len(dav["offensive"]))
    n_hate = min(len(dav["hate"]), n_dav // 2)
    toxic_dav = _take(rng, dav["hate"], n_hate) + _take(rng, dav["offensive"], n_dav - n_hate)
    clean_dav = _take(rng, dav["neither"], n_dav)
    tg = load_toxigen(data_dir / "toxigen" / "prompts")
    n_tg = min(limit_per_class, len(tg.toxic), len(tg.nontoxic))
    toxic_tg = _take(rng, tg.toxic, n_tg)
    clean_tg = _take(rng, tg.nontoxic, n_tg)
    examples = ([Example(t, 1, "davidson") for t in toxic_dav] + [Example(t, 0, "davidson") for t in clean_dav]
                + [Example(t, 1, "toxigen") for t in toxic_tg] + [Example(t, 0, "toxigen") for t in clean_tg])
    counts = {"davidson_toxic": len(toxic_dav), "davidson_toxic_hate": n_hate, "davidson_nontoxic": len(clean_dav),
              "toxigen_toxic": len(toxic_tg), "toxigen_nontoxic": len(clean_tg)}
    meta = {"counts": counts, "toxigen_repairs": tg.repairs,
            "files": [data_dir / "davidson_hate_offensive" / "labeled_data.csv", *tg.files]}
    return examples, meta


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = NEWTON_STEPS) -> tuple[np.ndarray, float]:
    """Newton's method on mean log-loss + l2/2 * ||w||^2 (bias unpenalised); float64, fixed steps."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])  # (N, D+1)
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = sigmoid(xb @ theta)  # (N,)
        grad = xb.T @ (p - y) / n + reg * theta  # (D+1,)
        hess = (xb.T * (p * (1 - p))) @ xb / n + np.diag(reg) + 1e-10 * np.eye(d + 1)  # (D+1, D+1)
        theta = theta - np.linalg.solve(hess, grad)
    return theta[:-1].copy(), float(theta[-1])


def log_loss(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    p = np.clip(sigmoid(x @ w + b), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_embedded_head(out_path: Path, *, seed: int = 0, limit_per_class: int = 4000,
                        data_dir: Path = DATA_DIR, batch_size: int = 64) -> Path:
    """Train the head and write it atomically as JSON; returns `out_path`.

    The L2 strength is the grid value with the lowest log-loss on a seeded 20% held-out split of the
    training examples; the final head is then refit on all of them with that value.
    """
    rng = np.random.default_rng(seed)
    examples, meta = build_examples(Path(data_dir), rng, limit_per_class)
    y = np.array([e.label for e in examples], dtype=np.float64)
    model = load_encoder("cpu")
    x = encode(model, [e.text for e in examples], batch_size)  # (N, 384)
    if x.shape[1] != EMBED_DIM:
        raise AuditError(f"encoder gave {x.shape[1]}-d embeddings, expected {EMBED_DIM}")

    perm = rng.permutation(len(examples))
    n_hold = max(1, int(round(HOLDOUT_FRACTION * len(examples))))
    hold, fit = perm[:n_hold], perm[n_hold:]
    losses = {}
    for l2 in L2_GRID:
        w, b = fit_logistic(x[fit], y[fit], l2)
        losses[l2] = log_loss(x[hold], y[hold], w, b)
    best = min(L2_GRID, key=lambda l2: (losses[l2], l2))
    w, b = fit_logistic(x, y, best)
    wh, bh = fit_logistic(x[fit], y[fit], best)
    holdout_acc = float(np.mean((sigmoid(x[hold] @ wh + bh) >= 0.5) == (y[hold] == 1)))

    files = meta["files"]
    head = {
        "format": HEAD_FORMAT,
        "version": HEAD_VERSION,
        "encoder": encoder_label(),
        "encoder_sha256": encoder_sha256(),
        "weights": [float(v) for v in w],
        "bias": b,
        "threshold": 0.5,
        "training_data": {p.relative_to(data_dir).as_posix(): sha256_file(p) for p in files},
        "n_train": {**meta["counts"], "total": len(examples)},
        "toxigen_repairs": meta["toxigen_repairs"],
        "seed": seed,
        "limit_per_class": limit_per_class,
        "l2": best,
        "l2_selection": {"grid": list(L2_GRID), "holdout_fraction": HOLDOUT_FRACTION,
                         "holdout_log_loss": {repr(k): v for k, v in losses.items()},
                         "holdout_accuracy": holdout_acc},
        "newton_steps": NEWTON_STEPS,
    }
    out_path = Path(out_path)
    atomic_write_json(out_path, head)
    return out_path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else DEFAULT_HEAD
    start = time.perf_counter()
    train_embedded_head(out)
    print(f"wrote {out} in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
