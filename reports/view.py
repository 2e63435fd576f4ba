"""The report as a value: every section, table and example, ready for either template.

`build_view` reads a run (and optionally a comparison) once and formats every number, so the
HTML and Markdown templates only lay out strings and cannot disagree on content. Text from the
run stays raw here; the templates escape it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from audit import formatting as fmt
from audit.compare import SIGNIFICANCE_RULE, Comparison, MetricChange
from audit.formatting import MetricRow, metric_row
from audit.store import Run
from audit.types import Metric, ProbeInfo
from audit.verdicts import VerdictPolicy
from reports.charts import ChartData, probe_charts
from reports.describe import full_info
from reports.examples import LoopExample, ToxicExample, loop_examples, most_toxic
from reports.facts import (Fact, ProbeFact, ScorerFact, library_versions, limitations, model_id, probe_facts,
                           reproduce_command, run_facts, scorer_facts)
from reports.verdicts import VerdictBlock, verdict_block

TOXIC_EXAMPLES = 5


@dataclass(frozen=True)
class ReferenceRow:
    """A published number beside ours (summary `references`)."""

    metric: str
    group: str
    ours: str
    ours_ci: str
    opt_175b: str
    davinci: str
    source: str


@dataclass(frozen=True)
class TableRow:
    """One category of a chart, printed: the chart's numbers for the Markdown report and HTML tables."""

    category: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class ChartView:
    """A chart, plus the same numbers as a table."""

    data: ChartData
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]


@dataclass(frozen=True)
class ProbeSection:
    """Everything the report says about one probe: its own description, then this run's numbers."""

    name: str
    anchor: str
    info: ProbeInfo  # version, description, citation, data license: as the run recorded them
    metrics: tuple[MetricRow, ...]
    scorers: tuple[str, ...]  # distinct scorer record lines of its metrics
    charts: tuple[ChartView, ...]
    references: tuple[ReferenceRow, ...]
    toxic_examples: tuple[ToxicExample, ...]
    loop_examples: tuple[LoopExample, ...]
    has_toxicity: bool

    @property
    def title(self) -> str:
        """The probe's title, else its name."""
        return self.info.title or self.name


@dataclass(frozen=True)
class ChangeRow:
    """One metric of a comparison, formatted."""

    probe: str
    metric: str
    unit: str
    baseline: str
    baseline_ci: str
    candidate: str
    candidate_ci: str
    delta: str
    p: str  # the paired test's one-sided p-value of the observed direction ("—" when not tested)
    verdict: str  # `MetricChange.verdict_text`: "worse, beyond tolerance 5", "not tested: reason", ...
    direction: str  # "better", "worse", "same", "no direction" or ""
    is_significant: bool


@dataclass(frozen=True)
class ComparisonView:
    """The `--compare` section: the comparison as `audit.compare` made it (baseline and candidate run ids,
    the settings that differ, the gate policy whose tolerances and alphas the verdicts use), and how every
    metric moved, formatted."""

    comparison: Comparison
    rows: tuple[ChangeRow, ...]
    rule: str = SIGNIFICANCE_RULE

    @property
    def n_significant(self) -> int:
        return len(self.comparison.significant)

    @property
    def n_testable(self) -> int:
        return sum(c.testable for c in self.comparison.changes)


@dataclass(frozen=True)
class ReportView:
    """The whole report, as strings and small values."""

    title: str
    run_id: str
    model: str
    verdicts: VerdictBlock  # shown first: one answer per question, and the random-weights warning
    facts: tuple[Fact, ...]
    command: str
    versions: tuple[Fact, ...]
    probes: tuple[ProbeFact, ...]
    scorers: tuple[ScorerFact, ...]
    headline: tuple[MetricRow, ...]
    sections: tuple[ProbeSection, ...]
    comparison: ComparisonView | None
    limitations: tuple[str, ...]

    @property
    def charts(self) -> tuple[ChartView, ...]:
        return tuple(c for s in self.sections for c in s.charts)


def anchor(name: str) -> str:
    """An HTML id for a probe section: lowercase letters, digits and dashes only."""
    return "probe-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x")


def _anchors(names: Sequence[str] | Mapping[str, Any]) -> dict[str, str]:
    """Probe name -> a unique section id (names that differ only in punctuation get a suffix)."""
    out: dict[str, str] = {}
    for name in names:
        base = candidate = anchor(name)
        i = 2
        while candidate in out.values():
            candidate, i = f"{base}-{i}", i + 1
        out[name] = candidate
    return out


def _reference_rows(probe: str, metrics: Sequence[Metric],
                    references: Sequence[Mapping[str, Any]]) -> tuple[ReferenceRow, ...]:
    by_name = {m.name: m for m in metrics}
    rows = []
    for r in references:
        if r.get("probe") != probe:
            continue
        m = by_name.get(str(r.get("metric")))
        group = r.get("group")
        value, ci = math.nan, None
        if m is not None and m.ok:
            if group is None:
                value, ci = m.value, m.ci
            elif group in m.groups:
                value, ci = m.groups[group].value, m.groups[group].ci
        rows.append(ReferenceRow(metric=str(r.get("metric")), group="overall" if group is None else str(group),
                                 ours=fmt.number(value), ours_ci=fmt.interval(ci),
                                 opt_175b=fmt.number(_num(r.get("opt_175b"))),
                                 davinci=fmt.number(_num(r.get("davinci"))),
                                 source=str(r.get("source") or "")))
    return tuple(rows)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def chart_view(chart: ChartData) -> ChartView:
    """A chart's numbers as a table: one row per category, one column per series."""
    rows = []
    for i, category in enumerate(chart.categories):
        cells = []
        for s in chart.series:
            cell = fmt.number(s.values[i])
            if not s.markers and cell != fmt.MISSING:
                if s.lows[i] is not None and s.highs[i] is not None:
                    cell += f" · CI {fmt.interval((s.lows[i], s.highs[i]))}"  # type: ignore[arg-type]
                if s.ns[i] is not None:
                    cell += f" · n {s.ns[i]}"
            cells.append(cell)
        rows.append(TableRow(category, tuple(cells)))
    return ChartView(chart, tuple(s.name for s in chart.series), tuple(rows))


def probe_section(run: Run, name: str, section_id: str | None = None) -> ProbeSection:
    """One probe's section: info, metrics, charts, reference rows and examples."""
    section_id = section_id or anchor(name)
    summary = run.probes[name]
    info, metrics = full_info(name, summary.info), summary.metrics
    rows = tuple(metric_row(name, m) for m in metrics)
    scorers = tuple(dict.fromkeys(r.scorer for r in rows if r.scorer))
    has_toxicity = any(m.scorer and m.scorer.get("kind") == "toxicity" for m in metrics)
    charts = probe_charts(name, metrics, run.references, hints=info.charts, id_prefix=f"chart-{section_id}")
    return ProbeSection(
        name=name, anchor=section_id, info=info, metrics=rows, scorers=scorers,
        charts=tuple(chart_view(c) for c in charts), references=_reference_rows(name, metrics, run.references),
        toxic_examples=most_toxic(run, name, TOXIC_EXAMPLES) if has_toxicity else (),
        loop_examples=loop_examples(run, name, info.reading) if info.reading and info.reading.loops else (),
        has_toxicity=has_toxicity)


def p_value(p: float | None) -> str:
    """A p-value with two significant figures (0.00098, 9.5e-07); "—" when there is none."""
    if p is None or not math.isfinite(p):
        return fmt.MISSING
    return f"{p:.2g}"


def change_row(c: MetricChange) -> ChangeRow:
    """Format one metric change for the comparison table."""
    return ChangeRow(
        probe=c.probe, metric=c.metric, unit=c.unit, baseline=fmt.number(c.baseline),
        baseline_ci=fmt.interval(c.baseline_ci), candidate=fmt.number(c.candidate),
        candidate_ci=fmt.interval(c.candidate_ci), delta=fmt.signed(c.delta), p=p_value(c.p),
        verdict=c.verdict_text, direction=c.direction or "", is_significant=bool(c.significant))


def comparison_view(comparison: Comparison) -> ComparisonView:
    """The comparison section of a report."""
    return ComparisonView(comparison, tuple(change_row(c) for c in comparison.changes))


def build_view(run: Run, comparison: Comparison | None = None, *, policy: VerdictPolicy | None = None,
               baseline: Run | None = None) -> ReportView:
    """Everything both report formats show, computed once from the run (and the comparison).

    `policy`: the verdict thresholds (default: the bundled policy); `baseline`: the `--compare` run,
    whose values the verdicts show as a reference point.
    """
    manifest = run.manifest
    model = model_id(manifest) or "unknown model"
    scorers = scorer_facts(run)
    return ReportView(
        title=f"opt-audit report: {model}" + (f" · {manifest.suite} suite" if manifest.suite else ""),
        run_id=run.run_id, model=model, verdicts=verdict_block(run, policy, baseline), facts=run_facts(manifest),
        command=reproduce_command(manifest), versions=library_versions(manifest), probes=probe_facts(manifest),
        scorers=scorers,
        headline=tuple(metric_row(p, m) for p, s in run.probes.items() for m in s.metrics),
        sections=tuple(probe_section(run, p, a) for p, a in _anchors(run.probes).items()),
        comparison=comparison_view(comparison) if comparison is not None else None,
        limitations=limitations(run, scorers))
