"""A sqlite (WAL) store of model results, so a killed run resumes without recomputing anything.

The key is a sha256 over everything that changes an output: the backend id (model, resolved
revision or weights sha256, dtype, attention, device), the request (prompt/context/continuation
and decoding parameters) and, for sampled generation, the seed. lm-evaluation-harness once left
the model out of its key and reported one model's answers as another's; this key cannot.
Each batch is committed as soon as it finishes, and WAL keeps the file consistent under SIGKILL.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from audit.types import Generate, Request, Result, canonical_json, result_from_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    value TEXT NOT NULL
)
"""


def request_key(backend_id: str, request: Request, seed: int) -> str:
    """Cache key of one request. Greedy outputs do not depend on the seed, so it is left out."""
    payload = {"backend": backend_id, "request": request.key_payload()}
    if isinstance(request, Generate) and request.params.do_sample:
        payload["seed"] = seed
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()


class ResultCache:
    """Results keyed by `request_key`; safe to reopen after a crash."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, Result]:
        """The cached subset of `keys`."""
        found: dict[str, Result] = {}
        for start in range(0, len(keys), 500):  # sqlite caps bound parameters per statement
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, kind, value in self._db.execute(
                f"SELECT key, kind, value FROM results WHERE key IN ({marks})", chunk
            ):
                found[key] = result_from_json(kind, json.loads(value))
        return found

    def put_many(self, backend_id: str, items: Iterable[tuple[str, str, Result]]) -> None:
        """Store (key, kind, result) triples in one transaction."""
        rows = [(k, kind, backend_id, json.dumps(r.to_json(), ensure_ascii=False)) for k, kind, r in items]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results (key, kind, backend, value) VALUES (?, ?, ?, ?)", rows
            )

    def count(self) -> int:
        """Number of stored results."""
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keys_for(backend_id: str, requests: Sequence[Request], seed: int) -> list[str]:
    """`request_key` for each request, in order."""
    return [request_key(backend_id, r, seed) for r in requests]
