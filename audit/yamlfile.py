"""YAML files that people write (gate policies, card facts): safe loading and errors that point.

Only `yaml.safe_load` is used: a policy or card file may come from anywhere, and YAML's full
loader can build arbitrary Python objects. A mistake names the file and, for a syntax error,
the line and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.errors import AuditError


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
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise AuditError(f"{what} {path}: not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
