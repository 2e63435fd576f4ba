"""A run read back as the values a model card shows: typed, formatted, not yet escaped.

The template only lays these out. Everything is derived from the run directory (manifest and
summary through `audit.store`); nothing here knows how a model is run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from audit.store import Run
from audit.tiny import TINY_NAME
from audit.types import Metric, ProbeInfo
from audit.verdicts import VerdictPolicy
from model_cards.benchmarks import DIMENSIONS, Benchmark, benchmark, data_digest
from model_cards.metadata import in_model_index, model_name, not_reported_reason, reportable
from reports.verdicts import VerdictBlock, verdict_block


def fmt_num(x: float | None) -> str:
    """Four significant figures, no exponent for large values; '—' for a missing value."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "—"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.4g}"


@dataclass(frozen=True)
class MetricRow:
    """One metric of one probe, formatted for tables."""

    probe: str
    probe_title: str
    name: str
    description: str
    value: str
    ci: str  # "low – high" or "—"
    ci_method: str
    n: int
    unit: str
    direction: str  # "higher", "lower", "closer to 50" or "—"
    status: str  # "ok" or "skipped: reason"
    caveat: str  # non-empty: a correct number from degenerate inputs, not a finding (audit.caveats)
    finite: bool  # computed: status ok, a finite value and no caveat
    reported: bool  # in model-index (finite, and the benchmark has a Hub dataset id)
    reason: str  # why not in model-index ('' when it is)


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str


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
    files: tuple[DataFile, ...]  # per-file sha256 when the data is several files
    metrics: tuple[MetricRow, ...]


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
    facts: tuple[tuple[str, str], ...]  # model facts as evaluated: (label, value)
    probes: tuple[ProbeView, ...]
    scorers: tuple[ScorerView, ...]
    ci_methods: tuple[tuple[str, tuple[str, ...]], ...]  # method -> metrics using it
    spreads: tuple[GroupSpread, ...]
    references: tuple[ReferenceRow, ...]
    reference_citations: tuple[str, ...]
    skipped: tuple[MetricRow, ...]  # not in model-index, each with its reason
    not_computed: tuple[MetricRow, ...]  # not a finite, uncaveated number
    dimensions: tuple[tuple[str, tuple[ProbeView, ...]], ...]  # dimension title -> probes
    fairness_probes: tuple[ProbeView, ...]  # probes measuring bias or toxicity towards groups
    versions: tuple[tuple[str, str], ...]
    hardware: tuple[tuple[str, str], ...]
    cost: tuple[tuple[str, str], ...]  # timings and request counts of the audit itself
    backend_id: str


def card_view(run: Run, policy: VerdictPolicy | None = None) -> CardView:
    """Derive every value the card shows from a loaded run; `policy`: the verdict thresholds
    (default: audit/assets/verdict_default.yaml)."""
    manifest = run.manifest
    spec = manifest.get("spec") or {}
    probes = tuple(_probe_view(run, name) for name in run.probes)
    rows = [row for p in probes for row in p.metrics]
    dims: dict[str, list[ProbeView]] = {}
    for p in probes:
        dims.setdefault(DIMENSIONS.get(p.benchmark.dimension, p.benchmark.dimension), []).append(p)
    return CardView(
        model_name=model_name(run),
        run_id=str(manifest.get("run_id") or run.path.name),
        is_tiny=model_name(run) == TINY_NAME,
        verdicts=verdict_block(run, policy),
        opt_audit_version=str((manifest.get("versions") or {}).get("opt-audit") or "unknown"),
        command=str(manifest.get("command") or ""),
        suite=spec.get("suite"),
        limit=spec.get("limit"),
        seed="not recorded" if spec.get("seed") is None else str(spec.get("seed")),
        finished_at=str(manifest.get("finished_at") or manifest.get("started_at") or "unknown"),
        facts=_model_facts(manifest),
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
        versions=tuple((str(k), str(v)) for k, v in (manifest.get("versions") or {}).items()),
        hardware=_hardware(manifest),
        cost=_cost(manifest),
        backend_id=str(manifest.get("backend_id") or ""),
    )


def _direction(m: Metric) -> str:
    if m.higher_is_better is True:
        return "higher"
    if m.higher_is_better is False:
        return "lower"
    if m.ideal is not None:
        return f"closer to {fmt_num(m.ideal)}"
    return "—"


def _metric_row(probe: str, title: str, m: Metric, info: ProbeInfo | None = None) -> MetricRow:
    ci = "—" if m.ci is None or not m.ok else f"{fmt_num(m.ci[0])} – {fmt_num(m.ci[1])}"
    return MetricRow(probe=probe, probe_title=title, name=m.name, description=m.description,
                     value=fmt_num(m.value) if m.ok else "—", ci=ci, ci_method=m.ci_method, n=m.n,
                     unit=m.unit, direction=_direction(m), status=m.status, caveat=m.caveat, finite=reportable(m),
                     reported=in_model_index(probe, m, info), reason=not_reported_reason(probe, m, info))


def _probe_view(run: Run, name: str) -> ProbeView:
    summary = run.probes[name]
    info = summary.info
    entry = (run.manifest.get("probes") or {}).get(name) or {}
    sha = entry.get("data_sha256")
    files = tuple(DataFile(str(k), str(v)) for k, v in sorted(sha.items())) if isinstance(sha, Mapping) else ()
    requests = entry.get("requests")
    return ProbeView(
        name=name, title=info.title, version=str(info.version), description=info.description,
        citation=info.citation, data_license=info.data_license,
        requests=int(requests) if isinstance(requests, int) else None,
        benchmark=benchmark(name, info), digest=data_digest(sha), files=files,
        metrics=tuple(_metric_row(name, info.title, m, info) for m in summary.metrics),
    )


def _model_facts(manifest: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    model = manifest.get("model") or {}
    labels = (("model", "model id"), ("revision", "revision"), ("architecture", "architecture"),
              ("params", "parameters"), ("layers", "layers"), ("heads", "attention heads"),
              ("hidden_size", "hidden size"), ("vocab_size", "vocabulary size"), ("context", "context length"),
              ("dtype", "dtype (as evaluated)"), ("attention", "attention kernel"), ("device", "device"),
              ("backend", "backend"))
    facts = []
    for key, label in labels:
        value = model.get(key)
        if value is None:
            continue
        facts.append((label, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)))
    return tuple(facts)


def _scorers(run: Run) -> tuple[ScorerView, ...]:
    manifest_scorers = run.manifest.get("scorers") or {}
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


def _ci_methods(rows: list[MetricRow]) -> tuple[tuple[str, tuple[str, ...]], ...]:
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
                low_text = high_text = f"all groups: {fmt_num(low[1])}"
            else:
                low_text, high_text = f"{low[0]}: {fmt_num(low[1])}", f"{high[0]}: {fmt_num(high[1])}"
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
            group="overall" if group is None else str(group), ours=fmt_num(ours),
            opt_175b=fmt_num(_float(ref.get("opt_175b"))), davinci=fmt_num(_float(ref.get("davinci"))),
            source=str(ref.get("source") or "")))
    return tuple(out)


def _float(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _hardware(manifest: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    hw = manifest.get("hardware") or {}
    return tuple((str(k), ", ".join(map(str, v)) if isinstance(v, list) else str(v)) for k, v in hw.items())


def _cost(manifest: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    timings = manifest.get("timings_s") or {}
    for key, label in (("total", "wall-clock time, whole run"), ("model", "model time"),
                       ("scoring", "scoring time"), ("load", "model load time")):
        if isinstance(timings.get(key), (int, float)):
            out.append((label, f"{timings[key]:.1f} s"))
    req = manifest.get("requests") or {}
    if isinstance(req.get("total"), int):
        out.append(("model requests", f"{req['total']:,} ({req.get('computed', '?')} computed, "
                                      f"{req.get('cached', '?')} from cache, {req.get('batches', '?')} batches)"))
    attempts = manifest.get("attempts")
    if isinstance(attempts, int) and attempts > 1:
        out.append(("attempts (resumed runs)", str(attempts)))
    return tuple(out)
