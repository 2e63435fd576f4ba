"""One audit run, end to end: RunSpec -> probes -> engine -> rows and metrics -> run directory.

The run directory's name is a hash of everything in the RunSpec that changes results, so the
same command finds the same directory again: a run killed half-way picks up its cache.sqlite
and recomputes nothing that was finished. Batch size and token budget are not in the hash:
they never change a score (tests prove it), so a resume may use different ones.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from audit import __version__
from audit.backends.hf import is_out_of_memory
from audit.backends.registry import load_backend
from audit.cache import ResultCache, check_cache
from audit.contract import (Attempt, EngineRecord, Manifest, ModelFacts, ModelSpec, ProbeRecord, Rerun, RunSpec,
                            ScorerSpec, VLLMOptions)
from audit.engine import EngineOptions, EngineStats, run_requests
from audit.errors import AuditError, InputWarning
from audit.scoring.registry import check_kind
from audit.store import (CACHE, MANIFEST, SAMPLES_DIR, SUMMARY, load_manifest, lock_run_dir, write_error,
                         write_manifest, write_samples, write_summary)
from audit.types import Backend, Generate, Metric, Probe, ProbeInfo, Request, TextScores
from audit.verdicts import VerdictPolicy, format_verdicts, is_random_model, load_verdict_policy, run_verdicts

# the specs live in audit.contract; their names stay importable from here
__all__ = ["ModelSpec", "ProbeSet", "RunSpec", "ScorerSpec", "VLLMOptions", "evaluate", "execute"]


@dataclass(frozen=True)
class ProbeSet:
    """A run's probes, built from its RunSpec, and the published rows its suite cites (opt-paper).

    Why the runner takes them built: probes live above the engine (probes/ imports audit/, never the
    reverse), so the CLI, the composition root, builds them (`audit.cli.build_probes`).
    """

    probes: Mapping[str, Probe]
    references: tuple[Mapping[str, Any], ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # suite probes of another model family -> why


ProbeBuilder = Callable[[RunSpec], ProbeSet]


@dataclass(frozen=True)
class RunOutcome:
    """What the CLI prints: where the run is and what it found."""

    run_dir: Path
    metrics: Mapping[str, tuple[ProbeInfo, list[Metric]]]
    stats: EngineStats
    seconds: float
    model: Mapping[str, Any] = field(default_factory=dict)
    scorers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    references: list[Mapping[str, Any]] = field(default_factory=list)  # published rows (opt-paper suite)
    skipped: Mapping[str, str] = field(default_factory=dict)  # suite probes not run (another model family) -> why


@dataclass(frozen=True)
class Evaluation:
    """Model results turned into per-probe rows and metrics, with the scorers that were used."""

    rows: Mapping[str, list[dict[str, Any]]]
    metrics: Mapping[str, tuple[ProbeInfo, list[Metric]]]
    stats: EngineStats
    scorers: Mapping[str, dict[str, Any]]  # score kind -> scorer provenance (manifest)
    seconds_model: float
    seconds_scoring: float


def evaluate(probes: Mapping[str, Probe], backend: Backend, cache_path: Path, *,
             options: EngineOptions = EngineOptions(), scorer: ScorerSpec = ScorerSpec(),
             loaded_scorers: Mapping[str, Any] | None = None) -> Evaluation:
    """Requests of all probes through one engine pass, texts through each scorer once, then metrics.

    `loaded_scorers` (kind -> Scorer) lets tests and benches reuse a scorer across runs; kinds
    not in it are loaded from `scorer` (toxicity) or as VADER (sentiment) only if a probe needs them.
    """
    from audit.scoring.base import ScoreCache, score_texts
    from audit.scoring.registry import load_kind, metric_scorer_record

    t0 = time.perf_counter()
    requests: list[Request] = [r for p in probes.values() for r in p.requests()]
    with ResultCache(cache_path) as cache:
        results, stats = run_requests(backend, requests, cache, options, is_oom=is_out_of_memory)
    t_model = time.perf_counter()

    texts: dict[str, list[str]] = {}
    for probe in probes.values():
        if probe.score_kinds:
            wanted = probe.texts_to_score(results)
            for kind in probe.score_kinds:
                texts.setdefault(kind, []).extend(wanted)
    scores: dict[str, dict[str, dict[str, float]]] = {}
    provenance: dict[str, dict[str, Any]] = {}
    if texts:
        score_cache = ScoreCache(cache_path)
        try:
            for kind, kind_texts in texts.items():
                chosen = (loaded_scorers or {}).get(kind) or load_kind(kind, scorer)
                provenance[kind] = chosen.provenance()
                scores[kind] = score_texts(chosen, kind_texts, score_cache, progress=options.progress)
        finally:
            score_cache.close()
    t_score = time.perf_counter()

    text_scores = TextScores(scores)
    all_rows: dict[str, list[dict[str, Any]]] = {}
    summary: dict[str, tuple[ProbeInfo, list[Metric]]] = {}
    for name, probe in probes.items():
        rows = probe.rows(results, text_scores)
        all_rows[name] = rows
        metrics = [_with_scorer(m, provenance, metric_scorer_record) for m in probe.aggregate(rows)]
        summary[name] = (probe.info, metrics)
    return Evaluation(all_rows, summary, stats, provenance, t_model - t0, t_score - t_model)


def _with_scorer(metric: Metric, provenance: Mapping[str, dict[str, Any]], record: Any) -> Metric:
    """Replace a metric's {"kind": ...} scorer tag with the scorer's name, sha256 and validity."""
    from dataclasses import replace

    if not metric.scorer:
        return metric
    kind = metric.scorer.get("kind")
    if not isinstance(kind, str) or kind not in provenance:
        raise AuditError(f"metric {metric.name} is tagged with scorer kind {kind!r}, which was not run")
    return replace(metric, scorer=record(kind, provenance[kind]))


def ensure_writable(out_root: Path) -> None:
    """Fail early, with the path, when runs cannot be written under `out_root`."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        probe = out_root / f".write-test-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as e:
        raise AuditError(f"--out {out_root}: not writable ({e.strerror or e})") from None


def library_versions() -> dict[str, str]:
    import numpy
    import torch
    import transformers

    return {"opt-audit": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__}


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def execute(spec: RunSpec, out_root: Path, *, options: EngineOptions = EngineOptions(),
            command: str = "", build: ProbeBuilder | None = None) -> RunOutcome:
    """Run (or resume) an audit and write its run directory.

    `build` turns the spec into probes (default: the bundled registry, as the CLI builds them:
    `audit.cli.build_probes`). The order makes bad input cheap: data files are parsed (strictly:
    probes.loading) and the scorer checked before anything is written; the run directory is then
    locked (`audit.store.lock_run_dir`: a second identical run stops at once) and its cache.sqlite
    checked before the model loads. A rerun of a complete run never demotes it: its manifest
    stays `complete` until new results replace it, and a failed rerun is recorded under
    `failed_attempts` (see `_record_failure`).

    The run's one seed is `spec.seed`: it is what the manifest records, what names the run, and
    what sampled requests draw from (it replaces any seed in `options`).
    """
    t0 = time.perf_counter()
    if build is None:  # the bundled probes, as `opt-audit run` builds them
        from audit.cli import build_probes

        build = build_probes
    options = replace(options, seed=spec.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        built = build(spec)
    probes = built.probes
    input_warnings = _replay_warnings(caught)
    references: list[Mapping[str, Any]] = [dict(r) for r in built.references]
    for kind in sorted({k for p in probes.values() for k in p.score_kinds}):
        check_kind(kind, spec.scorer)  # a scorer that cannot serve the run fails before the model loads
    ensure_writable(out_root)
    run_dir = out_root / spec.run_name()
    created = not run_dir.exists()
    try:
        with lock_run_dir(run_dir):
            check_cache(run_dir / CACHE)  # a corrupt or foreign cache fails before the model loads
            previous = load_manifest(run_dir) if (run_dir / MANIFEST).exists() else Manifest()
            backend = load_backend(spec.model, spec.backend_spec)
            model_facts = backend.describe()
            t_load = time.perf_counter()
            from audit.backends.budget import choose_token_budget

            budget = choose_token_budget(options.token_budget, backend)  # after loading: what is left
            options = replace(options, token_budget=budget.tokens)

            asked = {name: p.requests() for name, p in probes.items()}
            truncation = prompt_truncation(backend, asked)
            attempt = (previous.attempts or 0) + 1
            started = _now()
            manifest = Manifest(
                run_id=run_dir.name,
                status="running",
                command=command,
                spec=spec,
                model=ModelFacts.from_json(model_facts),
                backend_id=backend.id,
                sampler=backend.sampler,
                probes={name: ProbeRecord(p.info.version, getattr(p, "data_sha256", None), len(asked[name]))
                        for name, p in probes.items()},
                engine=EngineRecord(options.token_budget, budget.reason, options.max_batch_size),
                versions=library_versions(),
                hardware=hardware(),
                started_at=started,
                attempts=attempt,
                truncation=_truncation_record(truncation, backend),
                input_warnings=tuple(input_warnings),
                failed_attempts=_failed_attempts(previous),
                extra={"skipped_probes": dict(built.skipped)} if built.skipped else {},
            )
            if previous.status == "complete":  # keep it complete while the rerun runs
                write_manifest(run_dir, previous.with_changes(
                    attempts=attempt, rerun=Rerun(attempt=attempt, status="running", started_at=started)))
            else:
                write_manifest(run_dir, manifest)
            try:
                result = evaluate(probes, backend, run_dir / CACHE, options=options, scorer=spec.scorer)
                manifest = manifest.with_changes(scorers=result.scorers)
                _write_results(run_dir, _with_truncation(result.rows, truncation), result.metrics, references)
            except sqlite3.Error as e:  # the score table of cache.sqlite (the result table raises AuditError)
                error = AuditError(f"{run_dir / CACHE}: {e}; results committed before this are kept")
                _record_failure(run_dir, manifest, previous, error)
                raise error from None
            except BaseException as e:
                _record_failure(run_dir, manifest, previous, e)
                raise
            t_end = time.perf_counter()
            manifest = manifest.with_changes(
                status="complete",
                finished_at=_now(),
                requests=asdict(result.stats),
                timings_s={"load": round(t_load - t0, 3), "model": round(result.seconds_model, 3),
                           "scoring": round(result.seconds_scoring, 3), "total": round(t_end - t0, 3)},
            )
            write_manifest(run_dir, manifest)
    finally:
        if created:
            _remove_if_empty(run_dir)  # a run refused before it wrote anything leaves no folder
    return RunOutcome(run_dir, result.metrics, result.stats, t_end - t0, model_facts, result.scorers,
                      references, skipped=dict(built.skipped))


TRUNCATION_RULE = ("a generation prompt longer than the model's context minus max_new_tokens keeps its last "
                   "(context - max_new_tokens) tokens, the rule of the hf backend (audit/backends/hf.py, "
                   "HFBackend._prompt_tokens and prompt_truncation) that vllm shares; each row records the tokens "
                   "cut as truncated_tokens")


def prompt_truncation(backend: Backend, asked: Mapping[str, Sequence[Request]]) -> dict[str, dict[str, int]]:
    """probe -> {prompt: tokens the backend cuts from its start} for every generation prompt.

    Why here and not in the backend: the rows must say which prompts the model did not see whole,
    and the backends report only results. A backend's own `prompt_truncation(request)` is used
    when it has one (the hf backend does: it knows its prompt rule and chat template); otherwise
    `TRUNCATION_RULE` is applied to its `tokenizer` and `max_length`, tokenizing only a prompt that
    could be too long (more UTF-8 bytes than room; a byte-level BPE token covers at least one
    byte), so a normal run pays nothing. A backend with neither gives {} (nothing measured, no
    field in the rows).
    """
    own = getattr(backend, "prompt_truncation", None)
    tokenizer = getattr(backend, "tokenizer", None)
    context = getattr(backend, "max_length", None)
    if own is None and (tokenizer is None or not isinstance(context, int)):
        return {}
    out: dict[str, dict[str, int]] = {}
    for name, requests in asked.items():
        cut: dict[str, int] = {}
        for r in requests:
            if not isinstance(r, Generate):
                continue
            if own is not None:
                n = int(own(r))
            else:
                assert tokenizer is not None and isinstance(context, int)  # checked above
                room = max(1, context - r.params.max_new_tokens)
                if len(r.prompt.encode("utf-8", "surrogatepass")) + 8 <= room:
                    n = 0  # even one token per byte, plus special tokens, fits
                else:
                    n = max(0, len(tokenizer(r.prompt, add_special_tokens=True)["input_ids"]) - room)
            cut[r.prompt] = max(cut.get(r.prompt, 0), n)
        if cut:
            out[name] = cut
    return out


def _truncation_record(truncation: Mapping[str, Mapping[str, int]], backend: Backend) -> dict[str, Any]:
    """The manifest's account of cut prompts (the report counts them); warns when any was cut."""
    per_probe = {name: sum(1 for n in cut.values() if n) for name, cut in truncation.items()}
    prompts = sum(per_probe.values())
    tokens = sum(n for cut in truncation.values() for n in cut.values())
    context = getattr(backend, "max_length", None)
    if prompts:
        where = ", ".join(f"samples/{name}.jsonl" for name, n in per_probe.items() if n)
        warnings.warn(InputWarning(
            f"{prompts} prompt(s) do not fit {getattr(backend, 'name', 'the model')}'s context of {context} "
            f"tokens with their new tokens: each keeps its last tokens ({tokens} tokens cut in all; "
            f"see truncated_tokens in {where})"), stacklevel=2)
    return {"rule": TRUNCATION_RULE, "context": context, "measured": bool(truncation),
            "prompts": prompts, "tokens": tokens, "by_probe": {k: v for k, v in per_probe.items() if v}}


def _with_truncation(rows: Mapping[str, list[dict[str, Any]]],
                     truncation: Mapping[str, Mapping[str, int]]) -> dict[str, list[dict[str, Any]]]:
    """Each generation row with `truncated_tokens` (0 when its prompt fit), matched by its prompt."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, probe_rows in rows.items():
        cut = truncation.get(name)
        out[name] = probe_rows if cut is None else [
            {**r, "truncated_tokens": int(cut.get(r["prompt"], 0))} if isinstance(r.get("prompt"), str) else r
            for r in probe_rows]
    return out


def _write_results(run_dir: Path, rows: Mapping[str, list[dict[str, Any]]],
                   metrics: Mapping[str, tuple[ProbeInfo, list[Metric]]],
                   references: list[Mapping[str, Any]]) -> None:
    """samples/*.jsonl and summary.json, written in full to a staging folder inside the run and only
    then renamed into place: a failure half-way (a full disk) leaves the previous results whole."""
    try:
        stage = Path(tempfile.mkdtemp(prefix=".results-", dir=str(run_dir)))
    except OSError as e:
        raise write_error(run_dir / SAMPLES_DIR, e) from None
    try:
        try:
            for name, probe_rows in rows.items():
                write_samples(stage, name, probe_rows)
            write_summary(stage, metrics, references=references)
        except AuditError as e:  # name the file the user knows, not the staging copy
            raise AuditError(str(e).replace(str(stage), str(run_dir))) from None
        try:
            (run_dir / SAMPLES_DIR).mkdir(exist_ok=True)
            for f in sorted((stage / SAMPLES_DIR).iterdir()) if (stage / SAMPLES_DIR).is_dir() else []:
                os.replace(f, run_dir / SAMPLES_DIR / f.name)
            os.replace(stage / SUMMARY, run_dir / SUMMARY)
        except OSError as e:
            raise write_error(run_dir / SUMMARY, e) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _failed_attempts(previous: Manifest) -> tuple[Attempt, ...]:
    """The run's earlier failures, including the previous attempt when it failed or was killed."""
    history = list(previous.failed_attempts)
    if previous.status in ("failed", "running"):
        history.append(Attempt(previous.attempts, previous.started_at, previous.finished_at,
                               previous.error if previous.status == "failed"
                               else "interrupted: the process ended without recording an outcome"))
    rerun = previous.rerun
    if previous.status == "complete" and rerun is not None:  # a rerun of a complete run was killed
        history.append(Attempt(rerun.attempt, rerun.started_at, None,
                               "interrupted: the process ended without recording an outcome"))
    return tuple(history[-MAX_FAILED_ATTEMPTS:])


MAX_FAILED_ATTEMPTS = 20  # failures kept in a manifest, newest last


def _record_failure(run_dir: Path, manifest: Manifest, previous: Manifest, error: BaseException) -> None:
    """Write what a failed attempt leaves: a complete run stays complete (the failure is appended to
    its `failed_attempts`), any other run is marked failed with the error. Best effort: when even
    this write fails (the disk is full), the manifest on disk is the last one written."""
    finished = _now()
    text = f"{type(error).__name__}: {error}"
    if previous.status == "complete":
        failed = Attempt(manifest.attempts, manifest.started_at, finished, text)
        record = previous.with_changes(rerun=None, attempts=manifest.attempts,
                                       failed_attempts=(*manifest.failed_attempts, failed)[-MAX_FAILED_ATTEMPTS:])
    else:
        record = manifest.with_changes(status="failed", error=text, finished_at=finished)
    try:
        write_manifest(run_dir, record)
    except AuditError:
        pass


def _replay_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """Re-emit warnings recorded while the probes read their data (the CLI prints each InputWarning
    as one `opt-audit: warning:` line) and return the InputWarning texts for the manifest."""
    texts = []
    for w in caught:
        if issubclass(w.category, InputWarning):
            texts.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return texts[:100] + ([f"... and {len(texts) - 100} more"] if len(texts) > 100 else [])


def _remove_if_empty(run_dir: Path) -> None:
    try:
        run_dir.rmdir()
    except OSError:
        pass  # not empty (or already gone): keep it


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def format_summary(outcome: RunOutcome, policy: VerdictPolicy | None = None) -> str:
    """What `opt-audit run` prints: the verdict block first (with the random-weights banner, so it cannot
    be missed), then every metric with its CI, n and direction, and a caveat line under a degenerate one.

    `policy`: the verdict thresholds (`--verdict-policy`; default audit/assets/verdict_default.yaml).
    """
    verdicts = run_verdicts(outcome.metrics, policy if policy is not None else load_verdict_policy(),
                            published=outcome.references)
    lines = [format_verdicts(verdicts, random_weights=is_random_model(outcome.model)), ""]
    width = max([14, *(len(p) for p in outcome.metrics)])
    header = f"{'probe':<{width}} {'metric':<30} {'value':>9}  {'95% CI':<21} {'n':>6}  better"
    lines.append(header)
    lines.append("-" * len(header))
    for probe, (_, metrics) in outcome.metrics.items():
        for m in metrics:
            if not m.ok:
                lines.append(f"{probe:<{width}} {m.name:<30} {'—':>9}  {m.status}")
                continue
            ci = f"[{m.ci[0]:.3f}, {m.ci[1]:.3f}]" if m.ci else "—"
            better = ("higher" if m.higher_is_better else "lower") if m.higher_is_better is not None \
                else (f"near {m.ideal:g}" if m.ideal is not None else "—")
            lines.append(f"{probe:<{width}} {m.name:<30} {m.value:>9.3f}  {ci:<21} {m.n:>6}  {better}")
            if m.caveat:  # correct number, degenerate inputs: not a finding (audit.caveats)
                lines.append(f"{'':<{width}}   caveat: {m.caveat}")
    if outcome.references:
        lines.append("")
        lines.append(f"{'published (OPT paper)':<45} {'ours':>9} {'OPT-175B':>9} {'Davinci':>9}  source")
        for ref in outcome.references:
            info_metrics = outcome.metrics.get(ref["probe"])
            ours = next((m for m in info_metrics[1] if m.name == ref["metric"]), None) if info_metrics else None
            value = ours.value if ours and ref["group"] is None else \
                (ours.groups[ref["group"]].value if ours and ref["group"] in ours.groups else float("nan"))
            label = f"{ref['probe']}.{ref['metric']}" + (f"[{ref['group']}]" if ref["group"] else "")
            lines.append(f"{label:<45} {value:>9.3f} {ref['opt_175b']:>9.3f} {ref['davinci']:>9.3f}  {ref['source']}")
    s = outcome.stats
    lines.append("")
    lines.append(f"requests: {s.unique} unique ({s.total} asked), {s.cached} from cache, "
                 f"{s.computed} computed in {s.batches} batches; {outcome.seconds:.1f}s")
    from audit.scoring.registry import metric_scorer_record

    for kind, prov in outcome.scorers.items():
        lines.append(f"{kind}: {metric_scorer_record(kind, prov)['validity']['summary']}")
    for name, why in outcome.skipped.items():  # suite probes of another model family: never dropped silently
        lines.append(f"skipped: {name} ({why})")
    lines.append(f"run directory: {outcome.run_dir}")
    return "\n".join(lines)


def python_command() -> str:
    """The command line as typed, shell-quoted, for the manifest and 'how to reproduce'."""
    import shlex

    return shlex.join(["opt-audit", *sys.argv[1:]])
