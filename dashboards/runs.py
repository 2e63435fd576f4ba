"""Find the runs in a folder and load them, cached on each run's files and their mtimes.

A folder of runs is read fresh on every page view, but only `stat` calls are repeated: each run's
fingerprint (the names, sizes and mtimes of its manifest, summary and sample files) is part of
the cache key, so a run that is rewritten (resumed, re-scored) is reloaded and one that did not
change is not. Sample files are loaded one probe at a time, only when a page asks for them.

A folder that is not a complete run (still running, failed, missing or malformed files) is
listed with its problem instead of breaking the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import streamlit as st

from audit.errors import AuditError
from audit.store import MANIFEST, SAMPLES_DIR, SUMMARY, Run, load_manifest, load_run
from dashboards.samples import empty_frame, sample_frame
from reports.describe import described
from reports.facts import model_id

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class RunEntry:
    """One run as the Runs table lists it; `problem` is "" exactly when the run can be opened."""

    id: str  # the folder's name (unique in its folder; the runner names it after the run id)
    path: str
    status: str
    model: str
    suite: str
    started: str
    probes: int
    problem: str
    headline: tuple[tuple[str, float | None], ...] = ()  # ("probe.metric", value): each probe's first headline
    seed: str = ""  # the run's seed as recorded ("" when the manifest has none)
    axes: tuple[tuple[str, str], ...] = ()  # (axis, "probe.metric value unit · ..."): headlines per question

    @property
    def usable(self) -> bool:
        return not self.problem


def fingerprint(run_dir: Path) -> Fingerprint:
    """Names, sizes and mtimes (ns) of the files that make up a run: any rewrite changes it."""
    paths = [run_dir / MANIFEST, run_dir / SUMMARY]
    samples = run_dir / SAMPLES_DIR
    if samples.is_dir():
        paths.extend(sorted(p for p in samples.iterdir() if p.suffix == ".jsonl"))
    out = []
    for p in paths:
        try:
            s = p.stat()
        except OSError:
            continue
        out.append((str(p.relative_to(run_dir)), s.st_size, s.st_mtime_ns))
    return tuple(out)


def looks_like_run(path: Path) -> bool:
    """A folder a run wrote into: it has a manifest, a summary or a samples folder."""
    return path.is_dir() and any((path / name).exists() for name in (MANIFEST, SUMMARY, SAMPLES_DIR))


def run_dirs(runs_dir: Path) -> list[Path]:
    """The run folders in `runs_dir` (or `runs_dir` itself when it is one run), hidden folders skipped."""
    if looks_like_run(runs_dir) and (runs_dir / MANIFEST).exists():
        return [runs_dir]
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if not p.name.startswith(".") and looks_like_run(p))


def read_entry(run_dir: Path) -> RunEntry:
    """The Runs-table row of one folder; never raises for a bad run (its problem is recorded)."""
    try:
        manifest = load_manifest(run_dir)
    except AuditError as e:
        return RunEntry(run_dir.name, str(run_dir), "unreadable", "", "", "", 0, str(e))
    seed = manifest.seed
    base = dict(id=run_dir.name, path=str(run_dir), status=manifest.status or "unknown",
                model=model_id(manifest) or "", suite=manifest.suite or "", started=manifest.started_at or "",
                seed="" if seed is None or isinstance(seed, bool) else str(seed))
    try:
        run = described(load_run(run_dir))
    except AuditError as e:
        return RunEntry(**base, probes=len(manifest.probes), problem=str(e))
    headline = []
    axes: dict[str, list[str]] = {}
    for probe, summary in run.probes.items():  # the Runs table: each probe's first headline metric it has
        name = next((h.metric for h in summary.info.headline if run.metric(probe, h.metric) is not None), None)
        m = run.metric(probe, name) if name else None
        if m is not None:
            headline.append((f"{probe}.{name}", m.value if m.ok else None))
            value = f"{m.value:.3g}{m.unit}" if m.ok and m.value is not None else (m.status or "no value")
            axes.setdefault(summary.info.axis or "other", []).append(f"{probe}.{name} {value}")
    return RunEntry(**base, probes=len(run.probes), problem="", headline=tuple(headline),
                    axes=tuple((axis, " · ".join(items)) for axis, items in axes.items()))


def runs_table(entries: Sequence[RunEntry]) -> pd.DataFrame:
    """The Runs table at a glance: who ran what with which seed, then one headline column per question.

    One column per axis (bias, toxicity, ...) holding its probes' first headline metrics as text keeps
    the table narrow enough for a 1280 px screen, where one column per metric was 2,600 px wide.
    """
    axis_cols = list(dict.fromkeys(a for e in entries for a, _ in e.axes))
    rows = [{"run": e.id, "model": e.model, "seed": e.seed, **{a: "" for a in axis_cols}, **dict(e.axes),
             "suite": e.suite, "status": e.status, "started": e.started, "problem": e.problem} for e in entries]
    columns = ["run", "model", "seed", *axis_cols, "suite", "status", "started", "problem"]
    return pd.DataFrame(rows, columns=columns)


@st.cache_data(show_spinner=False, max_entries=256)
def cached_entry(path: str, fp: Fingerprint) -> RunEntry:
    """`read_entry`, cached on the run's fingerprint (the argument that makes the key)."""
    return read_entry(Path(path))


def discover(runs_dir: Path) -> tuple[RunEntry, ...]:
    """Every run in the folder, newest first (by start time, then name); bad runs included."""
    entries = [cached_entry(str(p), fingerprint(p)) for p in run_dirs(runs_dir)]
    entries.sort(key=lambda e: e.id)
    entries.sort(key=lambda e: e.started, reverse=True)
    return tuple(entries)


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_run(path: str, fp: Fingerprint) -> Run:
    return described(load_run(Path(path)))  # every probe described, old runs included (reports.describe)


def open_run(entry: RunEntry) -> Run:
    """The loaded run of a usable entry (summary and manifest; samples stay on disk)."""
    return _cached_run(entry.path, fingerprint(Path(entry.path)))


@dataclass(frozen=True)
class ProbeSamples:
    """One probe's sample table, or why there is none."""

    probe: str
    frame: pd.DataFrame
    problem: str = ""  # "" when the file was read (or is simply absent: see `missing`)
    missing: bool = False  # the run wrote no samples file for this probe


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_samples(_run: Run, path: str, probe: str, size: int, mtime_ns: int) -> ProbeSamples:
    # `_run` is not hashed (leading underscore); the path, size and mtime make the key.
    try:
        summary = _run.probes.get(probe)  # a samples file without a summary entry reads by its name
        return ProbeSamples(probe, sample_frame(probe, _run.samples(probe), summary.info if summary else None))
    except FileNotFoundError:
        return ProbeSamples(probe, empty_frame(), missing=True)
    except AuditError as e:
        return ProbeSamples(probe, empty_frame(), str(e))
    except ValueError as e:
        return ProbeSamples(probe, empty_frame(), f"{Path(path) / SAMPLES_DIR / (probe + '.jsonl')}: {e}")


def probe_samples(run: Run, probe: str) -> ProbeSamples:
    """The sample table of one probe of a run, cached on that file's size and mtime."""
    path = run.path / SAMPLES_DIR / f"{probe}.jsonl"
    try:
        s = path.stat()
        key = (s.st_size, s.st_mtime_ns)
    except OSError:
        key = (-1, -1)
    return _cached_samples(run, str(run.path), probe, *key)


@dataclass(frozen=True)
class Samples:
    """Several probes' samples in one table, with what could not be read and what is absent."""

    frame: pd.DataFrame
    problems: tuple[str, ...]  # one line per unreadable file (path:line: what is wrong)
    missing: tuple[str, ...]  # probes without a samples file


def samples_of(run: Run, probes: Sequence[str]) -> Samples:
    """The sample tables of `probes`, concatenated (each probe's file is read once, then cached)."""
    loaded = [probe_samples(run, p) for p in probes]
    frames = [s.frame for s in loaded if len(s.frame)]
    problems = tuple(s.problem for s in loaded if s.problem)
    missing = tuple(s.probe for s in loaded if s.missing)
    frame = empty_frame() if not frames else frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return Samples(frame, problems, missing)
