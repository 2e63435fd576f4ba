"""A run read back as the values a model card shows: typed, formatted, not yet escaped.

The template only lays these out. Everything is derived from the run directory (manifest and
summary through `audit.store`); nothing here knows how a model is run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from audit import formatting as fmt
from audit.contract import Manifest, ModelFacts, ProbeRecord
from audit.formatting import Fact, MetricRow, metric_row
from audit.store import Run
from audit.tiny import TINY_NAME
from audit.types import Metric, ProbeInfo
from audit.verdicts import VerdictPolicy
from model_cards.benchmarks import DIMENSIONS, Benchmark, benchmark, data_digest
from model_cards.metadata import in_model_index, model_name, not_reported_reason, reportable
from reports.verdicts import VerdictBlock, verdict_block


@dataclass(frozen=True)
class CardMetric(MetricRow):
    """The shared metric row (`audit.formatting.MetricRow`) as the card prints it: value and interval at
    the card's precision (`audit.formatting.precise`), n as counted, and whether it enters model-index."""

    probe_title: str
    direction_word: str  # "higher", "lower", "closer to 50" or "—"
    finite: bool  # computed: status ok, a finite value and no caveat
    reported: bool  # in model-index (finite, and the benchmark has a Hub dataset id)
    reason: str  # why not in model-index ('' when it is)


@dataclass(frozen=True)
class ProbeView:
    """One probe: its benchmark, pinned data, and metrics."""

    name: str
    title: str
    version: str
    description: str
    citation: str
    data_license: str
    requests: int | None  # model requests the probe sent in this run
    benchmark: Benchmark
    digest: str | None  # sha256 pinning the bundled data (see benchmarks.data_digest)
    files: tuple[Fact, ...]  # (file name, sha256) when the data is several files
    metrics: tuple[CardMetric, ...]


@dataclass(frozen=True)
class ScorerView:
    """A classifier or lexicon that scored generated text, with its validity record."""

    kind: str
    name: str
    version: str
    id: str
    sha256: str
    validity: str
    citation: str
    used_by: tuple[str, ...]  # "probe/metric" names that rely on it


@dataclass(frozen=True)
class GroupSpread:
    """The lowest and highest group of one metric: the card's compact view of disparities."""

    probe_title: str
    metric: str
    groups: int
    low: str  # "group: value"
    high: str


@dataclass(frozen=True)
class ReferenceRow:
    """A published number beside this run's value of the same metric (and group)."""

    probe_title: str
    metric: str
    group: str
    ours: str
    opt_175b: str
    davinci: str
    source: str


@dataclass(frozen=True)
class CardView:
    """Everything the template renders from the run."""

    model_name: str
    run_id: str
    is_tiny: bool
    verdicts: VerdictBlock  # the results section opens with them (and the random-weights warning)
    opt_audit_version: str
    command: str
    suite: str | None
    limit: int | None
    seed: str
    finished_at: str
    facts: tuple[Fact, ...]  # model facts as evaluated
    probes: tuple[ProbeView, ...]
    scorers: tuple[ScorerView, ...]
    ci_methods: tuple[tuple[str, tuple[str, ...]], ...]  # method -> metrics using it
    spreads: tuple[GroupSpread, ...]
    references: tuple[ReferenceRow, ...]
    reference_citations: tuple[str, ...]
    skipped: tuple[CardMetric, ...]  # not in model-index, each with its reason
    not_computed: tuple[CardMetric, ...]  # not a finite, uncaveated number
    dimensions: tuple[tuple[str, tuple[ProbeView, ...]], ...]  # dimension title -> probes
    fairness_probes: tuple[ProbeView, ...]  # probes measuring bias or toxicity towards groups
    versions: tuple[Fact, ...]
    hardware: tuple[Fact, ...]
    cost: tuple[Fact, ...]  # timings and request counts of the audit itself
    backend_id: str


def card_view(run: Run, policy: VerdictPolicy | None = None) -> CardView:
    """Derive every value the card shows from a loaded run; `policy`: the verdict thresholds
    (default: audit/assets/verdict_default.yaml)."""
    manifest = run.manifest
    probes = tuple(_probe_view(run, name) for name in run.probes)
    rows = [row for p in probes for row in p.metrics]
    dims: dict[str, list[ProbeView]] = {}
    for p in probes:
        dims.setdefault(DIMENSIONS.get(p.benchmark.dimension, p.benchmark.dimension), []).append(p)
    return CardView(
        model_name=model_name(run),
        run_id=run.run_id,
        is_tiny=model_name(run) == TINY_NAME,
        verdicts=verdict_block(run, policy),
        opt_audit_version=str((manifest.versions or {}).get("opt-audit") or "unknown"),
        command=manifest.command,
        suite=manifest.suite,
        limit=manifest.limit,
        seed="not recorded" if manifest.seed is None else str(manifest.seed),
        finished_at=manifest.finished_at or manifest.started_at or "unknown",
        facts=_model_facts(manifest.facts),
        probes=probes,
        scorers=_scorers(run),
        ci_methods=_ci_methods(rows),
        spreads=_spreads(run),
        references=_references(run),
        reference_citations=tuple(dict.fromkeys(str(r["citation"]) for r in run.references
                                                if r.get("citation"))),
        skipped=tuple(r for r in rows if not r.reported),
        not_computed=tuple(r for r in rows if not r.finite),
        dimensions=tuple((k, tuple(v)) for k, v in dims.items()),
        fairness_probes=tuple(p for p in probes if p.benchmark.dimension in ("fairness", "toxicity")),
        versions=tuple(Fact(str(k), str(v)) for k, v in (manifest.versions or {}).items()),
        hardware=_hardware(manifest.hardware or {}),
        cost=_cost(manifest),
        backend_id=manifest.backend_id,
    )


def _metric_row(probe: str, title: str, m: Metric, info: ProbeInfo | None = None) -> CardMetric:
    row = metric_row(probe, m)
    return CardMetric(**{**asdict(row), "value": fmt.precise(m.value) if m.ok else fmt.MISSING,
                         "ci": fmt.precise_interval(m.ci) if m.ok else fmt.MISSING, "n": str(m.n)},
                      probe_title=title, direction_word=fmt.direction_word(m), finite=reportable(m),
                      reported=in_model_index(probe, m, info), reason=not_reported_reason(probe, m, info))


def _probe_view(run: Run, name: str) -> ProbeView:
    summary = run.probes[name]
    info = summary.info
    entry = run.manifest.probes.get(name) or ProbeRecord()
    sha = entry.data_sha256
    files = tuple(Fact(str(k), str(v)) for k, v in sorted(sha.items())) if isinstance(sha, Mapping) else ()
    return ProbeView(
        name=name, title=info.title, version=str(info.version), description=info.description,
        citation=info.citation, data_license=info.data_license, requests=entry.requests,
        benchmark=benchmark(name, info), digest=data_digest(sha), files=files,
        metrics=tuple(_metric_row(name, info.title, m, info) for m in summary.metrics),
    )


_MODEL_FACTS = (("model", "model id"), ("revision", "revision"), ("architecture", "architecture"),
                ("params", "parameters"), ("layers", "layers"), ("heads", "attention heads"),
                ("hidden_size", "hidden size"), ("vocab_size", "vocabulary size"), ("context", "context length"),
                ("dtype", "dtype (as evaluated)"), ("attention", "attention kernel"), ("device", "device"),
                ("backend", "backend"))
"""The backend's facts about the model the card lists, in this order, with their labels."""


def _model_facts(model: ModelFacts) -> tuple[Fact, ...]:
    typed = {"model": model.model, "revision": model.revision, "dtype": model.dtype, "attention": model.attention,
             "device": model.device, "backend": model.backend}
    facts = []
    for key, label in _MODEL_FACTS:
        value = typed[key] if key in typed else model.details.get(key)  # size and shape: the backend's own facts
        if value is not None:
            facts.append(Fact(label, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool)
                              else str(value)))
    return tuple(facts)


def _scorers(run: Run) -> tuple[ScorerView, ...]:
    manifest_scorers = run.manifest.scorers or {}
    records: dict[str, tuple[Mapping[str, Any], list[str]]] = {}
    for probe, summary in run.probes.items():
        for m in summary.metrics:
            if not m.scorer:
                continue
            key = str(m.scorer.get("id") or m.scorer.get("name") or m.scorer.get("kind"))
            records.setdefault(key, (m.scorer, []))[1].append(f"{probe}/{m.name}")
    views = []
    for rec, used in records.values():
        kind = str(rec.get("kind") or "")
        full = manifest_scorers.get(kind) or {}
        validity = rec.get("validity") or full.get("validity") or {}
        views.append(ScorerView(
            kind=kind, name=str(rec.get("name") or full.get("scorer") or "unknown"),
            version=str(rec.get("version") or full.get("version") or ""),
            id=str(rec.get("id") or full.get("id") or ""),
            sha256=str(rec.get("sha256") or full.get("sha256") or full.get("head_sha256") or ""),
            validity=_sentence(validity.get("summary") if isinstance(validity, Mapping) else validity),
            citation=str(full.get("citation") or ""),
            used_by=tuple(used)))
    return tuple(views)


def _sentence(text: Any) -> str:
    """A validity summary as one sentence ending in a full stop."""
    text = " ".join(str(text or "").split()).rstrip(".")
    return f"{text}." if text else "No validity record."


def _ci_methods(rows: list[CardMetric]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    methods: dict[str, list[str]] = {}
    for r in rows:
        if r.finite:
            methods.setdefault(r.ci_method or "no interval reported", []).append(f"{r.probe}/{r.name}")
    return tuple((k, tuple(v)) for k, v in methods.items())


def _spreads(run: Run) -> tuple[GroupSpread, ...]:
    out = []
    for probe, summary in run.probes.items():
        if benchmark(probe, summary.info).dimension not in ("fairness", "toxicity"):
            continue
        for m in summary.metrics:
            groups = [(k, g.value) for k, g in m.groups.items() if math.isfinite(g.value)]
            if not reportable(m) or len(groups) < 2:
                continue
            low = min(groups, key=lambda kv: kv[1])
            high = max(groups, key=lambda kv: kv[1])
            if low[1] == high[1]:
                low_text = high_text = f"all groups: {fmt.precise(low[1])}"
            else:
                low_text, high_text = f"{low[0]}: {fmt.precise(low[1])}", f"{high[0]}: {fmt.precise(high[1])}"
            out.append(GroupSpread(summary.info.title, m.name, len(groups), low_text, high_text))
    return tuple(out)


def _references(run: Run) -> tuple[ReferenceRow, ...]:
    out = []
    for ref in run.references:
        probe, metric_name, group = str(ref.get("probe")), str(ref.get("metric")), ref.get("group")
        metric = run.metric(probe, metric_name)
        ours: float | None = None
        if metric is not None and reportable(metric):
            if group is None:
                ours = metric.value
            elif str(group) in metric.groups:
                ours = metric.groups[str(group)].value
        summary = run.probes.get(probe)
        out.append(ReferenceRow(
            probe_title=summary.info.title if summary else probe, metric=metric_name,
            group="overall" if group is None else str(group), ours=fmt.precise(ours),
            opt_175b=fmt.precise(_float(ref.get("opt_175b"))), davinci=fmt.precise(_float(ref.get("davinci"))),
            source=str(ref.get("source") or "")))
    return tuple(out)


def _float(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _hardware(hw: Mapping[str, Any]) -> tuple[Fact, ...]:
    return tuple(Fact(str(k), ", ".join(map(str, v)) if isinstance(v, list) else str(v)) for k, v in hw.items())


def _cost(manifest: Manifest) -> tuple[Fact, ...]:
    out: list[Fact] = []
    timings = manifest.timings_s or {}
    for key, label in (("total", "wall-clock time, whole run"), ("model", "model time"),
                       ("scoring", "scoring time"), ("load", "model load time")):
        if isinstance(timings.get(key), (int, float)):
            out.append(Fact(label, f"{timings[key]:.1f} s"))
    req = manifest.requests or {}
    if isinstance(req.get("total"), int):
        out.append(Fact("model requests", f"{req['total']:,} ({req.get('computed', '?')} computed, "
                                          f"{req.get('cached', '?')} from cache, {req.get('batches', '?')} batches)"))
    if isinstance(manifest.attempts, int) and manifest.attempts > 1:
        out.append(Fact("attempts (resumed runs)", str(manifest.attempts)))
    return tuple(out)
