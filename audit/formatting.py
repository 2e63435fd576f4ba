"""How a metric and the numbers around it read wherever they are shown: one formatter, one row type.

The report (HTML and Markdown), the dashboard and the model card all print metrics; when each had its
own formatter, one value read "44.3" in the report and "44.33" in the card. These rules live in
`audit` so that every presentation package can import them (DESIGN.md: reports, model_cards and
dashboards import audit, never the reverse). Pure string functions of typed values, no I/O; text
from a run stays raw here and each template escapes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from audit.scoring.validity import HEADLINE_NUMBERS
from audit.types import Metric

MISSING = "—"


def number(x: float | None) -> str:
    """A value with about three significant figures; "—" for a missing (NaN/None) value."""
    if x is None or not math.isfinite(x):
        return MISSING
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def signed(x: float | None) -> str:
    """A difference, always with its sign, so "+0.5" and "-0.5" read as changes."""
    if x is None or not math.isfinite(x):
        return MISSING
    if x == 0:
        return "0"
    return ("+" if x > 0 else "-") + number(abs(x))


def interval(ci: tuple[float, float] | None) -> str:
    """A 95% interval as "lo – hi" (no brackets: they would need escaping in Markdown)."""
    if ci is None or not all(math.isfinite(v) for v in ci):
        return MISSING
    return f"{number(ci[0])} – {number(ci[1])}"


def direction(metric: Metric) -> str:
    """The arrow of the headline table: ↑ higher is better, ↓ lower, → target value, – none."""
    return _direction(metric).arrow


def direction_words(metric: Metric) -> str:
    """The same direction in words, for tooltips and definitions."""
    return _direction(metric).words


class _Direction(NamedTuple):
    arrow: str
    words: str


def _direction(metric: Metric) -> _Direction:
    if metric.higher_is_better is True:
        return _Direction("↑", "higher is better")
    if metric.higher_is_better is False:
        return _Direction("↓", "lower is better")
    if metric.ideal is not None:
        return _Direction(f"→ {metric.ideal:g}", f"closer to {metric.ideal:g} is better")
    return _Direction("–", "no better direction (descriptive)")


def short_sha(sha: Any) -> str:
    """The first 12 hex digits of a sha256, enough to tell checkpoints apart at a glance."""
    return f"{str(sha)[:12]}…" if sha else "unrecorded"


def validity_text(validity: Mapping[str, Any] | None) -> str:
    """A scorer's measured quality in one line, e.g. "HateCheck accuracy 0.66; weakest on ...": the
    headline numbers the validity code declares (`audit.scoring.validity.HEADLINE_NUMBERS`), then the weak spots."""
    if not validity:
        return "no validity record"
    parts = [f"{label} {validity[key]:.2f}" for key, label in HEADLINE_NUMBERS
             if isinstance(validity.get(key), (int, float))]
    weak = validity.get("weak_spots")
    if isinstance(weak, Mapping) and weak:
        spots = ", ".join(f"{k} {v:.2f}" if isinstance(v, (int, float)) else str(k) for k, v in weak.items())
        parts.append(f"weakest on {spots}")
    if parts:
        return "; ".join(parts)
    return str(validity.get("summary") or "no validity summary")


def scorer_line(scorer: Mapping[str, Any] | None) -> str:
    """A metric's scorer record in one line: kind, scorer, checkpoint hash and measured validity."""
    if not scorer:
        return ""
    kind = scorer.get("kind", "score")
    name = scorer.get("name", "unknown")
    validity = scorer.get("validity")
    return (f"{kind} by {name} scorer (sha256 {short_sha(scorer.get('sha256'))}): "
            f"{validity_text(validity if isinstance(validity, Mapping) else None)}")


def scorer_short(scorer: Mapping[str, Any] | None) -> str:
    """The scorer column of a metrics table: "toxicity · embedded"."""
    if not scorer:
        return ""
    return f"{scorer.get('kind', 'score')} · {scorer.get('name', 'unknown')}"


def count(n: Any) -> str:
    """An integer count with thousands separators ("3,350,400"), or "—"."""
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else MISSING


def params(n: Any) -> str:
    """A parameter count the way model names say it: 3.35 M, 1.3 B."""
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return MISSING
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g} {suffix} ({n:,})"
    return str(n)


def seconds(x: Any) -> str:
    """A duration in seconds or minutes."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        return MISSING
    return f"{x:.1f} s" if x < 120 else f"{x / 60:.1f} min"


@dataclass(frozen=True)
class MetricRow:
    """One metric, formatted: a headline-table row and its definition (report, dashboard, card)."""

    probe: str
    name: str
    ok: bool
    status: str
    caveat: str  # non-empty: a correct number from degenerate inputs, not a finding (audit.caveats)
    value: str
    ci: str
    direction: str
    direction_words: str
    n: str
    unit: str
    description: str
    ci_method: str
    scorer: str  # the full scorer record line ("toxicity by embedded scorer (sha256 …): ...")
    scorer_short: str


def metric_row(probe: str, m: Metric) -> MetricRow:
    """Format one metric for the tables; a skipped metric keeps its row with "—" for value and CI."""
    return MetricRow(
        probe=probe, name=m.name, ok=m.ok, status=m.status, caveat=m.caveat,
        value=number(m.value) if m.ok else MISSING, ci=interval(m.ci) if m.ok else MISSING,
        direction=direction(m), direction_words=direction_words(m), n=count(m.n), unit=m.unit,
        description=m.description, ci_method=m.ci_method, scorer=scorer_line(m.scorer),
        scorer_short=scorer_short(m.scorer))


# ------------------------------------------------------------ the model card's precision
# The card prints four significant figures: its numbers are copied into other documents (papers, model
# pages), where "44.33" must not read back as a different value than the run's 44.3. It shares the
# row type (`MetricRow`), the missing mark and the direction rule with the report and the dashboard.


def precise(x: float | None) -> str:
    """Four significant figures, no exponent for large values; "—" for a missing value."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return MISSING
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def precise_interval(ci: tuple[float, float] | None) -> str:
    """`interval` at the card's precision: "lo – hi", or "—"."""
    if ci is None or not all(math.isfinite(v) for v in ci):
        return MISSING
    return f"{precise(ci[0])} – {precise(ci[1])}"


def direction_word(metric: Metric) -> str:
    """The direction in a narrow column: "higher", "lower", "closer to 50", or "—" for none."""
    if metric.higher_is_better is None and metric.ideal is None:
        return MISSING
    return direction_words(metric).removesuffix(" is better")


class Fact(NamedTuple):
    """One labelled value of a run, formatted ("Seed", "0"): the facts tables of the report, card and dashboard."""

    label: str
    value: str
