"""audit.formatting: how a number, an interval, a direction and a whole metric row read in every
presentation (report, dashboard, card). Expected strings worked out by hand from the rules."""

from __future__ import annotations

import math

import pytest

from audit.formatting import (MISSING, count, direction, direction_words, interval, metric_row, number, params,
                              seconds, signed)
from audit.types import Metric, skipped_metric


@pytest.mark.parametrize("x, text", [
    (None, MISSING), (math.nan, MISSING), (math.inf, MISSING),
    (0.0, "0"),
    (12345.6, "12,346"),  # >= 1000: thousands separators, no decimals
    (44.333, "44.3"),  # >= 10: one decimal
    (2.5, "2.50"),  # >= 1: two decimals
    (0.48333, "0.483"),  # below 1: three decimals
    (-44.333, "-44.3"),
])
def test_number_keeps_about_three_significant_figures(x: float | None, text: str) -> None:
    assert number(x) == text


def test_signed_and_interval() -> None:
    assert signed(0.5) == "+0.500" and signed(-12.34) == "-12.3" and signed(0.0) == "0"
    assert signed(None) == MISSING
    assert interval((38.72, 49.94)) == "38.7 – 49.9"  # en dash, spaces, no brackets
    assert interval(None) == MISSING and interval((1.0, math.nan)) == MISSING


def _metric(**kw: object) -> Metric:
    base: dict = dict(name="m", value=44.333, ci=(38.72, 49.94), n=300, higher_is_better=None,
                      description="d", citation="c", ideal=50.0, unit="%")
    base.update(kw)
    return Metric(**base)


def test_direction_arrow_and_words() -> None:
    # ideal 50 with no better side: an arrow to the target; True / False: up / down.
    assert (direction(_metric()), direction_words(_metric())) == ("→ 50", "closer to 50 is better")
    assert (direction(_metric(higher_is_better=True)), direction_words(_metric(higher_is_better=True))) == \
        ("↑", "higher is better")
    assert direction(_metric(higher_is_better=False, ideal=None)) == "↓"
    assert direction(_metric(ideal=None)) == "–"


def test_metric_row_formats_every_cell() -> None:
    row = metric_row("crows_pairs", _metric(n=3350400))
    assert (row.value, row.ci, row.direction, row.n, row.unit) == ("44.3", "38.7 – 49.9", "→ 50", "3,350,400", "%")
    assert row.ok and row.status == "ok" and row.scorer == "" and row.scorer_short == ""


def test_a_skipped_metric_keeps_its_row_without_numbers() -> None:
    m = skipped_metric("m", "no items", higher_is_better=True, description="d", citation="c")
    row = metric_row("p", m)
    assert (row.value, row.ci, row.ok, row.status) == (MISSING, MISSING, False, "skipped: no items")


def test_counts_parameters_and_durations() -> None:
    assert count(3350400) == "3,350,400" and count(True) == MISSING and count(None) == MISSING
    # 1.3e9 parameters: 1.3 with 3 significant figures, then the exact count.
    assert params(1_300_000_000) == "1.3 B (1,300,000,000)"
    assert seconds(90) == "90.0 s" and seconds(150) == "2.5 min"  # minutes from 120 s on
