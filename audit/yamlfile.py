"""YAML files that people write (gate policies, card facts): safe loading and errors that point.

Only `yaml.safe_load` is used: a policy or card file may come from anywhere, and YAML's full
loader can build arbitrary Python objects. A mistake names the file and, for a syntax error,
the line and column.

Hostile shapes are refused with the file named, never a traceback: nesting deeper than
`MAX_DEPTH` (a policy or card is two or three levels deep; 20,000 levels would exhaust Python's
recursion), an integer too long to convert (Python refuses more than 4,300 digits), and a
document that does not fit in memory. A lone surrogate (a `"\\ud800"` escape) cannot be written
to any file, so it is replaced by U+FFFD with an `InputWarning` naming the file.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from audit.errors import AuditError, InputWarning

MAX_DEPTH = 64  # mappings and lists inside one another; real policies and cards use 3
_SURROGATES = re.compile("[\ud800-\udfff]")


def read_yaml(path: Path | str, what: str) -> Any:
    """The parsed contents of `path` (None for an empty file); `what` names the file in errors
    ("--policy", "card file")."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuditError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"{what} {path}: cannot read it ({type(e).__name__}: {e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise AuditError(f"{what} {path}: not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
    except RecursionError:
        raise AuditError(f"{what} {path}: nested too deeply to read (at most {MAX_DEPTH} levels)") from None
    except MemoryError:
        raise AuditError(f"{what} {path}: too large to read") from None
    except ValueError as e:  # int() refuses more than 4,300 digits
        first = str(e).split(";")[0]
        raise AuditError(f"{what} {path}: a value cannot be read ({first})") from None
    return _checked(data, path, what)


def _checked(data: Any, path: Path, what: str) -> Any:
    """`data` with its depth bounded and lone surrogates replaced; an iterative walk (never recursive,
    and each shared or self-referencing node once, so YAML aliases cannot make it explode)."""
    replaced = 0
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise AuditError(f"{what} {path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, str) and _SURROGATES.search(value):
                    node[key] = _SURROGATES.sub("\ufffd", value)
                    replaced += 1
                if isinstance(key, str) and _SURROGATES.search(key):
                    node[_SURROGATES.sub("\ufffd", key)] = node.pop(key)
                    replaced += 1
                stack.append((value, depth + 1))
        else:
            for i, value in enumerate(node):
                if isinstance(value, str) and _SURROGATES.search(value):
                    node[i] = _SURROGATES.sub("\ufffd", value)
                    replaced += 1
                stack.append((value, depth + 1))
    if isinstance(data, str) and _SURROGATES.search(data):
        data, replaced = _SURROGATES.sub("\ufffd", data), replaced + 1
    if replaced:
        warnings.warn(InputWarning(f"{what} {path}: {replaced} text value(s) held a lone surrogate "
                                   "(\\ud800-\\udfff), replaced with U+FFFD"), stacklevel=3)
    return data
