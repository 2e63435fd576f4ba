"""audit.yamlfile.read_yaml: hostile YAML is a one-line AuditError naming the file, never a traceback."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from audit.errors import AuditError, InputWarning
from audit.yamlfile import MAX_DEPTH, read_yaml


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("n: " + "9" * 5000 + "\n", "a value cannot be read (Exceeds the limit (4300 digits) for integer string conversion"),
    ("a: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply to read"),
    ("a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply to read"),
    ("".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v: 1\n",
     f"nested deeper than {MAX_DEPTH} levels"),
    ("a: [\n", "not valid YAML"),
])
def test_hostile_yaml_is_an_audit_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(AuditError) as e:
        read_yaml(path, "--policy")
    assert str(e.value).startswith(f"--policy {path}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_alias_bomb_is_walked_once_per_node(tmp_path: Path) -> None:
    # "billion laughs": 9 levels of 9 aliases would be 9^9 nodes if expanded; safe_load shares them
    lines = ['a0: &a0 ["x"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    data = read_yaml(_file(tmp_path, "\n".join(lines) + "\n"), "--policy")
    assert len(data) == 10


def test_lone_surrogate_is_replaced_with_a_warning(tmp_path: Path) -> None:
    path = _file(tmp_path, 'intended_use: "bad \\ud800 text"\n"k\\udc00": [x, "\\udfff"]\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_yaml(path, "card file")
    assert data == {"intended_use": "bad \ufffd text", "k\ufffd": ["x", "\ufffd"]}
    (w,) = [w for w in caught if issubclass(w.category, InputWarning)]
    assert str(w.message) == (f"card file {path}: 3 text value(s) held a lone surrogate (\\ud800-\\udfff), "
                              "replaced with U+FFFD")
