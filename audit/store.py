"""The run directory: the versioned contract between a run and everything that reads it.

    <run>/manifest.json        RunSpec, library versions, hardware, timings, status
    <run>/summary.json         probe -> metrics (with groups and CIs)
    <run>/samples/<probe>.jsonl one row per item, streamable
    <run>/cache.sqlite         model results, for resume (see audit.cache)

Every file is written to a temporary sibling and renamed into place, so a reader (or a kill)
never sees half a file, and a write that fails (a full disk: ENOSPC; a read-only folder) is an
AuditError naming the path that leaves the previous file in place. A process that writes a run
holds `lock_run_dir` (an flock on <run>/.lock) so two identical runs never compute at once.
Reports, cards, the gate and the dashboard read runs only through `load_run`; this module
imports no torch.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from audit.contract import Manifest
from audit.errors import AuditError
from audit.types import SCHEMA_VERSION, Metric, ProbeInfo

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
SAMPLES_DIR = "samples"
CACHE = "cache.sqlite"
LOCK = ".lock"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a mix.

    An OSError (no space left, no permission, a read-only file system) becomes an AuditError
    naming `path`; the temporary file is removed and the old file, if any, is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as e:
        raise write_error(path, e) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise


def write_error(path: Path, error: OSError) -> AuditError:
    """The one-line error for a file that could not be written, for the caller to raise."""
    why = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.ENOSPC:
        why += "; free some space and rerun: finished work is kept"
    return AuditError(f"{path}: cannot write it ({why})")


class RunLocked(AuditError):
    """Another process holds the run directory's lock."""


@contextlib.contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[Path]:
    """Hold an exclusive, non-blocking flock on `<run_dir>/.lock` for the block; raise `RunLocked`
    at once when another process holds it.

    Why: two identical runs started together would both compute every request and race on the
    same files. The lock dies with its process (a kill never leaves a stale lock). The file is
    removed on release; a process that locked a file that was removed meanwhile retries on the
    new one, so the lock stays exclusive. Where flock does not exist (Windows) no lock is taken.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield Path(run_dir) / LOCK
        return
    path = Path(run_dir) / LOCK
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(path, e) from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise write_error(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(f"{run_dir}: another opt-audit process is running this run now (it holds "
                            f"{path}); wait for it to finish, then rerun to reuse its results") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # locked a file its holder removed on release: take the lock on the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the pid is a courtesy for people; the lock holds without it
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(out_dir: Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; it replaces `out_dir` only when the block finishes.

    Why: a build killed half-way (a model, an organism) must leave either the old folder or
    none, never a folder that looks finished but holds half its files.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=str(out_dir.parent)))
    try:
        yield tmp
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj: Any) -> None:
    """`atomic_write_text` of pretty JSON; NaN is refused (write null for a missing value)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
    atomic_write_text(path, text)


def write_manifest(run_dir: Path, manifest: Manifest | Mapping[str, Any]) -> None:
    """manifest.json, whole. The runner writes a `Manifest`; a plain mapping is written as given (test
    fixtures, and tools that build a run directory by hand), stamped with the schema version."""
    obj = manifest.to_json() if isinstance(manifest, Manifest) else dict(manifest)
    atomic_write_json(Path(run_dir) / MANIFEST, {"schema_version": SCHEMA_VERSION, **obj})


def write_summary(run_dir: Path, probes: Mapping[str, tuple[ProbeInfo, list[Metric]]], *,
                  references: Sequence[Mapping[str, Any]] = ()) -> None:
    """summary.json: for each probe, its self-description and metrics (skipped ones included), plus
    any published reference rows the suite cites (the opt-paper suite). The description travels
    with the run, so a view or the gate reads it from the run, not from this version's probes."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "probes": {
            name: {
                "info": info.to_json(),  # the probe's whole self-description (audit.types.ProbeInfo)
                "metrics": [m.to_json() for m in metrics],
            }
            for name, (info, metrics) in probes.items()
        },
        "references": [dict(r) for r in references],
    }
    atomic_write_json(Path(run_dir) / SUMMARY, payload)


def write_samples(run_dir: Path, probe: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """samples/<probe>.jsonl, each row stamped with the schema version."""
    atomic_write_jsonl(Path(run_dir) / SAMPLES_DIR / f"{probe}.jsonl",
                       ({"schema_version": SCHEMA_VERSION, **r} for r in rows))


@dataclass(frozen=True)
class ProbeSummary:
    info: ProbeInfo
    metrics: list[Metric]


@dataclass(frozen=True)
class Run:
    """A run directory as read back: manifest, summary, and lazy access to samples."""

    path: Path
    manifest: Manifest  # a plain mapping given here is read with `Manifest.from_json`
    probes: Mapping[str, ProbeSummary]
    references: tuple[Mapping[str, Any], ...] = ()  # published rows to read beside ours

    def __post_init__(self) -> None:
        if not isinstance(self.manifest, Manifest):
            object.__setattr__(self, "manifest", Manifest.from_json(self.manifest))

    @property
    def status(self) -> str:
        return self.manifest.status or "unknown"

    @property
    def run_id(self) -> str:
        """The run's id as its manifest records it, else its folder's name."""
        return self.manifest.run_id or self.path.name

    def metric(self, probe: str, name: str) -> Metric | None:
        """One metric by probe and name, or None."""
        summary = self.probes.get(probe)
        if summary is None:
            return None
        return next((m for m in summary.metrics if m.name == name), None)

    def samples(self, probe: str) -> Iterator[dict[str, Any]]:
        """Stream the rows of one probe (rows can be many: never load them all by default)."""
        path = self.path / SAMPLES_DIR / f"{probe}.jsonl"
        with path.open(encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise AuditError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                    except (ValueError, RecursionError) as e:  # > 4,300 digits; absurd nesting
                        raise AuditError(f"{path}:{lineno}: cannot read it ({type(e).__name__})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise AuditError(f"{path.parent}: not a run directory ({path.name} is missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AuditError(f"{path}: not valid JSON ({e})") from None
    except (ValueError, RecursionError) as e:  # > 4,300 digits; absurd nesting
        raise AuditError(f"{path}: cannot read it ({type(e).__name__}: {str(e).split(';')[0]})") from None
    except OSError as e:
        raise AuditError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise AuditError(f"{path}: expected a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise AuditError(f"{path}: schema_version {version!r} is not supported "
                         f"(this opt-audit reads version {SCHEMA_VERSION})")
    return data


def load_manifest(path: Path) -> Manifest:
    """The manifest alone (works for running and failed runs too)."""
    return Manifest.from_json(_read_json(Path(path) / MANIFEST))


def load_run(path: Path | str, *, require_complete: bool = True) -> Run:
    """Read a run directory; by default refuse runs that are still running or failed."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir}: no such run directory")
    manifest = load_manifest(run_dir)
    status = manifest.status
    if require_complete and status != "complete":
        detail = manifest.error or ""
        raise AuditError(f"{run_dir}: run is {status!r}, not complete" + (f" ({detail})" if detail else ""))
    summary_path = run_dir / SUMMARY
    probes: dict[str, ProbeSummary] = {}
    references: tuple[Mapping[str, Any], ...] = ()
    if summary_path.exists() or require_complete:
        data = _read_json(summary_path)
        try:
            for name, p in data["probes"].items():
                info = ProbeInfo.from_json(p["info"])  # older runs: only the first six fields
                probes[name] = ProbeSummary(info, [Metric.from_json(m) for m in p["metrics"]])
            references = tuple(data.get("references") or ())
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise AuditError(f"{summary_path}: malformed summary ({type(e).__name__}: {e})") from None
    return Run(run_dir, manifest, probes, references)
