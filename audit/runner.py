"""One audit run, end to end: RunSpec -> probes -> engine -> rows and metrics -> run directory.

The run directory's name is a hash of everything in the RunSpec that changes results, so the
same command finds the same directory again: a run killed half-way picks up its cache.sqlite
and recomputes nothing that was finished. Batch size and token budget are not in the hash:
they never change a score (tests prove it), so a resume may use different ones.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from audit import __version__
from audit.backends.hf import ModelSpec, is_out_of_memory
from audit.backends.registry import load_backend
from audit.backends.vllm import VLLMOptions
from audit.cache import ResultCache
from audit.engine import EngineOptions, EngineStats, run_requests
from audit.errors import AuditError
from audit.scoring.registry import ScorerSpec
from audit.store import CACHE, MANIFEST, load_manifest, write_manifest, write_samples, write_summary
from audit.types import Backend, Metric, Probe, ProbeInfo, Request, TextScores, canonical_json
from probes.loading import ProbeConfig
from probes.registry import build_probe, probe_limit, suite_references


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run's results; recorded verbatim in manifest.json."""

    model: ModelSpec
    probes: tuple[str, ...]
    suite: str | None = None
    limit: int | None = None  # items per probe (a fixed subset, the same for every seed)
    seed: int = 0  # sampling seed
    data: tuple[tuple[str, str], ...] = ()  # (probe, user data path) overrides
    scorer: ScorerSpec = ScorerSpec()  # the toxicity classifier (--scorer, --scorer-checkpoint, ...)
    backend: str = "hf"  # hf (transformers) or vllm (--backend)
    vllm: VLLMOptions = VLLMOptions()  # vLLM engine settings; must stay default unless backend is vllm

    def __post_init__(self) -> None:
        # a manifest must never record a vLLM setting that did not happen
        if self.backend == "hf" and self.vllm != VLLMOptions():
            raise AuditError("vLLM options (--tensor-parallel-size, --max-model-len, ...) were given without "
                             "--backend vllm")

    def result_hash(self) -> str:
        """Short hash of the output-relevant fields: the run directory's suffix.

        The backend fields enter only when vLLM is used, so every hf run keeps the name it had
        before they existed; of vLLM's settings only those that can change a number count
        (memory share and executor only place the work).
        """
        payload = asdict(self)
        if self.backend == "hf":
            del payload["backend"], payload["vllm"]
        else:
            for resource_only in ("gpu_memory_utilization", "distributed_executor"):
                del payload["vllm"][resource_only]
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:10]

    def run_name(self) -> str:
        """`<model>_<suite or probes>_<hash>`, filesystem-safe."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(self.model.model).name if os.sep in self.model.model
                       else self.model.model.replace("/", "--")).strip("-") or "model"
        what = self.suite or "+".join(self.probes)
        return f"{model}_{re.sub(r'[^A-Za-z0-9._+-]+', '-', what)}_{self.result_hash()}"


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
    if kind not in provenance:
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
            command: str = "") -> RunOutcome:
    """Run (or resume) an audit and write its run directory."""
    t0 = time.perf_counter()
    overrides = dict(spec.data)
    probes = {name: build_probe(name, ProbeConfig(limit=probe_limit(spec.suite, name, spec.limit),
                                                  data=Path(overrides[name]) if name in overrides else None))
              for name in spec.probes}
    references = [r.to_json() for r in suite_references(spec.suite, list(spec.probes))]
    ensure_writable(out_root)
    backend = load_backend(spec.model, spec.backend, spec.vllm)
    model_facts = backend.describe()
    t_load = time.perf_counter()

    asked = {name: p.requests() for name, p in probes.items()}
    run_dir = out_root / spec.run_name()
    previous = load_manifest(run_dir) if (run_dir / MANIFEST).exists() else {}
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "running",
        "command": command,
        "spec": asdict(spec),
        "model": model_facts,
        "backend_id": backend.id,
        "probes": {name: {"version": p.info.version, "data_sha256": getattr(p, "data_sha256", None),
                          "requests": len(asked[name])} for name, p in probes.items()},
        "engine": {"token_budget": options.token_budget, "max_batch_size": options.max_batch_size},
        "versions": library_versions(),
        "hardware": hardware(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "attempts": int(previous.get("attempts", 0)) + 1,
    }
    write_manifest(run_dir, manifest)
    try:
        result = evaluate(probes, backend, run_dir / CACHE, options=options, scorer=spec.scorer)
        manifest["scorers"] = result.scorers
        for name, rows in result.rows.items():
            write_samples(run_dir, name, rows)
        write_summary(run_dir, result.metrics, references=references)
    except BaseException as e:
        manifest.update(status="failed", error=f"{type(e).__name__}: {e}",
                        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_manifest(run_dir, manifest)
        raise
    t_end = time.perf_counter()
    manifest.update(
        status="complete",
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        requests=asdict(result.stats),
        timings_s={"load": round(t_load - t0, 3), "model": round(result.seconds_model, 3),
                   "scoring": round(result.seconds_scoring, 3), "total": round(t_end - t0, 3)},
    )
    write_manifest(run_dir, manifest)
    return RunOutcome(run_dir, result.metrics, result.stats, t_end - t0, model_facts, result.scorers,
                      references)


def format_summary(outcome: RunOutcome) -> str:
    """The console table: every metric with its CI, n and direction."""
    lines = []
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
    if outcome.model.get("model") == "tiny-opt":
        lines.append("note: tiny-opt has random weights; these scores exercise the pipeline only.")
    lines.append(f"run directory: {outcome.run_dir}")
    return "\n".join(lines)


def python_command() -> str:
    """The command line as typed, shell-quoted, for the manifest and 'how to reproduce'."""
    import shlex

    return shlex.join(["opt-audit", *sys.argv[1:]])
