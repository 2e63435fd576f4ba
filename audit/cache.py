"""A sqlite (WAL) store of model results, so a killed run resumes without recomputing anything.

The key is a sha256 over everything that changes an output: the backend id (model, resolved
revision or weights sha256, dtype, attention, device), the request (prompt/context/continuation
and decoding parameters; an embedding's layer and pooling, `Embed.key_payload`) and, for sampled
generation, the seed. lm-evaluation-harness once left
the model out of its key and reported one model's answers as another's; this key cannot.
Each batch is committed as soon as it finishes, and WAL keeps the file consistent under SIGKILL.
A cache.sqlite that is corrupt, truncated or foreign is refused with a clear error before any
model work (see `ResultCache`); opt-audit never deletes it for you.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from audit.errors import AuditError
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
    payload: dict[str, object] = {"backend": backend_id, "request": request.key_payload()}
    if isinstance(request, Generate) and request.params.do_sample:
        payload["seed"] = seed
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()


class ResultCache:
    """Results keyed by `request_key`; safe to reopen after a crash.

    Opening checks the file (`check_cache`): a corrupt, truncated or foreign cache.sqlite is an
    AuditError naming it, never a sqlite traceback half-way through a run. It is not moved aside
    or deleted: it may hold hours of results, and only its owner knows whether the file can go.
    Any later sqlite failure (a full disk: "database or disk is full") is an AuditError naming the
    file too; every batch committed before it stays in the cache.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AuditError(f"{self.path}: cannot create the cache ({e.strerror or e})") from None
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0)
        except sqlite3.Error as e:
            raise _cache_error(self.path, e) from None
        try:
            _verify(self._db, self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as e:
            self._db.close()
            raise _cache_error(self.path, e) from None
        except AuditError:
            self._db.close()
            raise

    def get_many(self, keys: Sequence[str]) -> dict[str, Result]:
        """The cached subset of `keys`."""
        found: dict[str, Result] = {}
        try:
            for start in range(0, len(keys), 500):  # sqlite caps bound parameters per statement
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, kind, value in self._db.execute(
                    f"SELECT key, kind, value FROM results WHERE key IN ({marks})", chunk
                ):
                    found[key] = result_from_json(kind, json.loads(value))
        except sqlite3.Error as e:
            raise _cache_error(self.path, e) from None
        except (ValueError, KeyError, TypeError) as e:  # a row that is not what this module wrote
            raise AuditError(f"{self.path}: the cache is corrupt or not an opt-audit cache (a stored result "
                             f"cannot be read: {type(e).__name__}: {e}); {_ADVICE}") from None
        return found

    def put_many(self, backend_id: str, items: Iterable[tuple[str, str, Result]]) -> None:
        """Store (key, kind, result) triples in one transaction."""
        rows = [(k, kind, backend_id, json.dumps(r.to_json(), ensure_ascii=False)) for k, kind, r in items]
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO results (key, kind, backend, value) VALUES (?, ?, ?, ?)", rows
                )
        except sqlite3.Error as e:
            raise _cache_error(self.path, e, writing=True) from None

    def count(self) -> int:
        """Number of stored results."""
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_cache(path: Path) -> None:
    """Raise AuditError if `path` exists but is not a sound opt-audit cache (checked before a
    model loads, so a bad file costs nothing); a missing or empty file is a new cache."""
    path = Path(path)
    if not path.exists():
        return
    ResultCache(path).close()


def _verify(db: sqlite3.Connection, path: Path) -> None:
    """A corrupt page fails sqlite's quick_check; a foreign database has other tables or columns."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise AuditError(f"{path}: the cache is corrupt ({'; '.join(map(str, problems))[:200]}); "
                         f"{_ADVICE}")
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return  # a new (or empty) file
    if "results" not in tables:
        raise AuditError(f"{path}: not an opt-audit cache (tables: {', '.join(sorted(tables))[:200]}); "
                         f"{_ADVICE}")
    columns = [row[1] for row in db.execute("PRAGMA table_info(results)")]
    if columns != list(_COLUMNS):
        raise AuditError(f"{path}: not an opt-audit cache (its results table has columns "
                         f"{', '.join(columns)[:200]}, expected {', '.join(_COLUMNS)}); {_ADVICE}")


_COLUMNS = ("key", "kind", "backend", "value")
_ADVICE = "move it aside (or delete it) and rerun: the run recomputes what it held"


def _cache_error(path: Path, error: BaseException, *, writing: bool = False) -> AuditError:
    """The one-line AuditError for a sqlite failure on the cache file."""
    text = str(error) or type(error).__name__
    if writing or "full" in text:
        return AuditError(f"{path}: cannot write the cache ({text}); results committed before this "
                          "are kept: fix the cause and rerun to resume")
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
        return AuditError(f"{path}: the cache is corrupt or not an opt-audit cache ({text}); {_ADVICE}")
    return AuditError(f"{path}: cannot use the cache ({type(error).__name__}: {text})")


def keys_for(backend_id: str, requests: Sequence[Request], seed: int) -> list[str]:
    """`request_key` for each request, in order."""
    return [request_key(backend_id, r, seed) for r in requests]
