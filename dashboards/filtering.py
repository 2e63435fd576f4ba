"""Search, filter and page the sample table (`dashboards.samples`), fast on 100k rows.

Every filter is a vectorised pandas mask over the whole table, so a page of results costs the
same whichever page it is; only the rows of the current page are handed to Streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

PAGE_SIZES = (25, 50, 100, 200)


@dataclass(frozen=True)
class SampleFilter:
    """What the Samples page asks for; an empty field means "no restriction"."""

    probes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    score_range: tuple[float, float] | None = None  # inclusive; rows without a score are excluded when set
    text: str = ""  # case-insensitive substring of the context, text, id or group


@dataclass(frozen=True)
class Page:
    """One page of filtered rows, and where it sits in the whole result."""

    rows: pd.DataFrame
    number: int  # 1-based
    pages: int  # at least 1
    total: int  # rows matching the filter
    first: int  # 1-based index of the first row shown (0 when there are none)
    last: int


def apply_filter(frame: pd.DataFrame, f: SampleFilter) -> pd.DataFrame:
    """The rows of `frame` that pass every part of `f`, in their original order."""
    mask = pd.Series(True, index=frame.index)
    if f.probes:
        mask &= frame["probe"].isin(f.probes)
    if f.groups:
        mask &= frame["group"].isin(f.groups)
    if f.score_range is not None:
        lo, hi = f.score_range
        mask &= frame["score"].between(lo, hi, inclusive="both")
    query = f.text.strip()
    if query:
        hit = pd.Series(False, index=frame.index)
        for column in ("text", "context", "id", "group"):
            # case=False on Arrow-backed strings is one vectorised kernel (no Python loop per row)
            hit |= frame[column].str.contains(query, case=False, regex=False, na=False)
        mask &= hit
    return frame[mask]


def rows_in_group(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """The rows behind one metric group.

    Metric groups name rows in three ways: exactly (a bias type), as a prefix of the rows'
    `domain/subgroup` group (per-domain gaps), or as `group/variant` (per-descriptor values of an
    `axis/descriptor` breakdown).
    """
    g = frame["group"]
    mask = (g == group) | g.str.startswith(group + "/") | ((g + "/" + frame["variant"]) == group)
    return frame[mask]


def page_count(total: int, size: int) -> int:
    """Pages needed for `total` rows at `size` per page (at least one, so an empty result has a page)."""
    return max(1, math.ceil(total / size))


def get_page(frame: pd.DataFrame, number: int, size: int) -> Page:
    """Rows of page `number` (1-based; clamped into range) at `size` rows per page."""
    total = len(frame)
    pages = page_count(total, size)
    number = min(max(1, number), pages)
    start = (number - 1) * size
    rows = frame.iloc[start:start + size]
    return Page(rows, number, pages, total, start + 1 if total else 0, start + len(rows))


def score_bounds(frame: pd.DataFrame) -> tuple[float, float] | None:
    """The smallest and largest score in `frame`, or None when no row has a score."""
    scores = frame["score"].dropna()
    if scores.empty:
        return None
    return float(scores.min()), float(scores.max())


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(frame: pd.DataFrame) -> bytes:
    """The rows as UTF-8 CSV (a header line, then one line per sample), for the download button.

    Model output is untrusted: a text cell that starts with =, +, -, @, tab or CR would run as a
    formula when the file is opened in a spreadsheet, so it is prefixed with an apostrophe.
    """
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_inert_cell)
    return out.to_csv(index=False).encode("utf-8")
