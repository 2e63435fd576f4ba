"""The Scorer seam and the runner that scores a run's texts once, batched and cached.

A scorer returns the same keys on every call (a stable output schema) and records where its
weights came from (name, sha256, classes, device), so a toxicity number can always be traced to
the exact classifier that produced it. Scores are cached in the run's cache.sqlite, keyed by the
scorer's id and the text, so a resumed run re-scores nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from audit.errors import AuditError
from audit.types import canonical_json


@runtime_checkable
class Scorer(Protocol):
    """Scores texts; `keys` is fixed for the scorer's lifetime, whatever its options."""

    name: str  # registry name, e.g. "detoxify:original", "embedded", "vader"
    version: str  # changes whenever scores for the same text could change

    @property
    def keys(self) -> tuple[str, ...]:
        """The score names every `score` call returns, e.g. ("toxicity", "insult", ...)."""

    @property
    def id(self) -> str:
        """name + version + weights sha256: part of every score's cache key."""

    def provenance(self) -> dict[str, Any]:
        """For the manifest: checkpoint name and sha256, classes, device, validity record path."""

    def score(self, texts: Sequence[str]) -> dict[str, list[float]]:
        """One list per key, aligned with `texts`. Empty strings are scored, not skipped."""


def score_key(scorer_id: str, text: str) -> str:
    # surrogatepass: a lone surrogate in model output must hash, not crash the run
    payload = canonical_json({"scorer": scorer_id, "text": text}).encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).hexdigest()


class ScoreCache:
    """A `scores` table beside the model results in the run's cache.sqlite (WAL)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, scorer TEXT NOT NULL, "
                         "value TEXT NOT NULL)")
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.execute(f"SELECT key, value FROM scores WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put_many(self, scorer_id: str, items: Sequence[tuple[str, Mapping[str, float]]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO scores (key, scorer, value) VALUES (?, ?, ?)",
                                 [(k, scorer_id, json.dumps(dict(v))) for k, v in items])

    def close(self) -> None:
        self._db.close()


def validate_scores(scorer: Scorer, texts: Sequence[str], scores: Mapping[str, Sequence[float]]) -> None:
    """A scorer must return exactly its keys, one finite value per text; NaN is an error, never 0."""
    if set(scores) != set(scorer.keys):
        raise AuditError(f"scorer {scorer.name} returned keys {sorted(scores)}, expected {sorted(scorer.keys)}")
    for key, values in scores.items():
        if len(values) != len(texts):
            raise AuditError(f"scorer {scorer.name} returned {len(values)} {key!r} scores for {len(texts)} texts")
        bad = [i for i, v in enumerate(values) if not _finite_number(v)]
        if bad:
            raise AuditError(f"scorer {scorer.name} returned a non-finite {key!r} score for text "
                             f"{texts[bad[0]][:60]!r} ({len(bad)} such texts)")


def _finite_number(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def score_texts(scorer: Scorer, texts: Sequence[str], cache: ScoreCache | None, *,
                chunk: int = 2048, progress: bool = True) -> dict[str, dict[str, float]]:
    """Score each distinct text once (cache first), in chunks with a progress bar; text -> scores."""
    from tqdm.auto import tqdm

    unique = list(dict.fromkeys(texts))
    keys = {t: score_key(scorer.id, t) for t in unique}
    found = cache.get_many(list(keys.values())) if cache else {}
    out = {t: found[k] for t, k in keys.items() if k in found}
    todo = [t for t in unique if keys[t] not in found]
    # cached texts show as done at once, so the bar's fraction and ETA are of this scorer's whole job
    with tqdm(total=len(unique), initial=len(unique) - len(todo), unit="text", desc=f"scoring ({scorer.name})",
              file=sys.stderr, disable=not progress or not todo, dynamic_ncols=True) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            scores = scorer.score(part)
            validate_scores(scorer, part, scores)
            rows = [{k: float(scores[k][i]) for k in scorer.keys} for i in range(len(part))]
            if cache:
                cache.put_many(scorer.id, [(keys[t], r) for t, r in zip(part, rows)])
            out.update(zip(part, rows))
            bar.update(len(part))
    return out
