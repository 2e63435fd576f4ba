"""Reading bundled (or user-supplied) probe data with errors that name the file and row.

JSON is read strictly, because Python's `json` is lenient where a run cannot be: NaN, Infinity,
-Infinity and numbers beyond float range (1e400) are refused (they cannot be written back to
samples/*.jsonl, and no benchmark field means them), as are integers of more than 4,300 digits
and nesting deep enough to exhaust the parser. Each is an AuditError naming the file and line,
raised while the probe is built, before any model loads. A lone surrogate escape (`"\ud800"`)
is repaired, not refused: it becomes U+FFFD and an `InputWarning` names the file and line (the
run prints it and records it in manifest.json under `input_warnings`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

from audit.errors import AuditError, InputWarning
from audit.pinning import sha256_file
from audit.types import ProbeInfo

T = TypeVar("T")


@dataclass(frozen=True)
class ProbeConfig:
    """Per-run options every probe accepts."""

    limit: int | None = None  # at most this many items (a fixed, seed-independent subset)
    data: Path | None = None  # a user file in the bundled file's format, replacing it


def bundled(*parts: str) -> Path:
    """Path of a file under probes/data/."""
    return Path(str(resources.files("probes") / "data" / Path(*parts)))


def read_text(path: Path) -> str:
    """File text; undecodable bytes become U+FFFD instead of crashing the run."""
    try:
        return Path(path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise AuditError(f"{path}: data file not found") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: expected a file, found a directory") from None


def sha256_text(path: Path) -> str:
    """sha256 of a data file's bytes, recorded so a run pins exactly what it read."""
    return sha256_file(path)


def read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV with a header; a missing column or cell is an AuditError."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise AuditError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(header has {', '.join(header) or 'nothing'})")
    for row in reader:
        line = reader.line_num
        bad = [c for c in required if row.get(c) is None or row[c].strip() == ""]
        if bad:
            raise row_error(path, line, f"empty or missing {', '.join(bad)}")
        yield line, row


def row_error(path: Path, line: int, msg: str) -> AuditError:
    """An error locating a bad row, for the caller to raise."""
    return AuditError(f"{path}, row ending at line {line}: {msg}")


def read_json(path: Path) -> Any:
    """A JSON file, parsed strictly (see the module docstring), with any error located."""
    text = read_text(path)
    try:
        return _strict_loads(text, path, None)
    except json.JSONDecodeError as e:
        raise AuditError(f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    except _Refused as e:
        raise row_error(path, _line_of_literal(text, e.literal), e.reason) from None


def parse_json_line(text: str, path: Path, line: int) -> Any:
    """One line of a JSON Lines file, parsed strictly (see the module docstring); an error names
    the file and line."""
    try:
        return _strict_loads(text, path, line)
    except json.JSONDecodeError as e:
        raise row_error(path, line, f"not valid JSON ({e.msg} at column {e.colno})") from None
    except _Refused as e:
        raise row_error(path, line, e.reason) from None


class _Refused(Exception):
    """A JSON value that parses but that a run must not accept."""

    def __init__(self, reason: str, literal: str = "") -> None:
        super().__init__(reason)
        self.reason, self.literal = reason, literal


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a data file may hold (write null for a missing value)", name)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"number {literal} is out of range (beyond a float's ±1.8e308)", literal)
    return value


def _strict_loads(text: str, path: Path, line: int | None) -> Any:
    """`json.loads` without NaN/Infinity, out-of-range numbers or unbounded nesting; lone
    surrogates replaced with U+FFFD and reported as an InputWarning."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _Refused("nested too deeply to read") from None
    except ValueError as e:
        if isinstance(e, json.JSONDecodeError):
            raise
        raise _Refused(f"a value cannot be read ({str(e).split(';')[0]})") from None  # > 4,300 digits
    if not _SURROGATE_ESCAPE.search(text):  # the only way a decoded string gets a lone surrogate
        return data
    data, replaced = _repair_surrogates(data)
    if replaced:
        where = f"{path}, line {line}" if line is not None else str(path)
        warnings.warn(InputWarning(f"{where}: {replaced} text value(s) held a lone surrogate "
                                   "(\\ud800-\\udfff escape), replaced with U+FFFD"), stacklevel=3)
    return data


_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN|-?[0-9][0-9.eE+-]*)')


def _repair_surrogates(data: Any) -> tuple[Any, int]:
    """(data with every lone surrogate in a string or key replaced by U+FFFD, strings changed).
    Iterative, so it cannot recurse as deep as the input nests."""
    def fix(value: Any) -> tuple[Any, int]:
        if isinstance(value, str) and _SURROGATES.search(value):
            return _SURROGATES.sub("\ufffd", value), 1
        return value, 0

    data, replaced = fix(data)
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value, n = fix(node.pop(key))
                new_key, m = fix(key)
                node[new_key] = value
                replaced += n + m
                stack.append(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                node[i], n = fix(value)
                replaced += n
                stack.append(node[i])
    return data, replaced


def _line_of_literal(text: str, literal: str) -> int:
    """1-based line of the first `literal` (NaN, Infinity, 1e400) outside a JSON string."""
    for m in _JSON_TOKEN.finditer(text):
        if m.group(1) == literal:
            return text.count("\n", 0, m.start()) + 1
    return 1


def fixed_subset(n_items: int, limit: int | None, salt: str) -> list[int]:
    """Indices of the first `limit` items of a fixed permutation, in original order.

    The permutation depends only on `salt` (the probe name and version), never on the run seed,
    so runs with different seeds audit the same items and the gate can pair them.
    """
    if limit is None or limit >= n_items:
        return list(range(n_items))
    from audit.metrics import stable_permutation  # numpy only when a subset is drawn

    return sorted(int(i) for i in stable_permutation(n_items, salt)[:limit])


def subset(items: Sequence[T], limit: int | None, salt: str) -> list[T]:
    """The items `fixed_subset` keeps, in their original order."""
    return [items[i] for i in fixed_subset(len(items), limit, salt)]


def probe_salt(info: ProbeInfo) -> str:
    """A probe's subset salt, "<name>/<version>": a new version may audit other items, a new seed never."""
    return f"{info.name}/{info.version}"


def spread(limit: int | None, sizes: Sequence[int]) -> list[int | None]:
    """Split `limit` items evenly over files (earlier files take the remainder); None keeps all."""
    if limit is None:
        return [None] * len(sizes)
    base, extra = divmod(max(limit, 0), len(sizes))
    return [min(size, base + (i < extra)) for i, size in enumerate(sizes)]


def spread_subset(per_file: Sequence[Sequence[T]], limit: int | None, salts: Sequence[str]) -> list[T]:
    """`limit` items spread evenly over files (`spread`), each file's share its fixed subset under its
    own salt, file after file."""
    quotas = spread(limit, [len(f) for f in per_file])
    return [item for f, q, salt in zip(per_file, quotas, salts, strict=True) for item in subset(f, q, salt)]


def data_paths(data: Path | None, bundled_paths: Sequence[Path], pattern: str) -> list[Path]:
    """The files a probe reads: its bundled ones, or the user's file, or every `pattern` file of the
    user's folder (an empty folder is an error naming it)."""
    if data is None:
        return list(bundled_paths)
    if Path(data).is_dir():
        paths = sorted(Path(data).glob(pattern))
        if not paths:
            raise AuditError(f"{data}: no {pattern} files")
        return paths
    return [Path(data)]
