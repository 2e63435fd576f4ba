"""probes.loading: strict JSON for every user data file (NaN, Infinity, huge numbers, absurd nesting
refused naming file and line; lone surrogates repaired with a warning)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from audit.errors import AuditError, InputWarning
from probes.loading import parse_json_line, read_json


@pytest.mark.parametrize("text, message", [
    ('{"a": NaN}', "NaN is not a number a data file may hold (write null for a missing value)"),
    ('{"a": [1, Infinity]}', "Infinity is not a number"),
    ('{"a": -Infinity}', "-Infinity is not a number"),
    ('{"a": 1e400}', "number 1e400 is out of range"),
    ('{"a": -2.5E+999}', "number -2.5E+999 is out of range"),
    ('{"a": ' + "1" * 5000 + "}", "a value cannot be read (Exceeds the limit (4300 digits)"),
    ("[" * 20000 + "]" * 20000, "nested too deeply to read"),
    ('{"a": 1', "not valid JSON (Expecting ',' delimiter at column 8)"),
])
def test_json_line_refusals_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AuditError) as e:
        parse_json_line(text, Path("data.jsonl"), 7)
    assert str(e.value).startswith(f"data.jsonl, row ending at line 7: {message}"), str(e.value)


def test_strings_that_spell_nan_are_text() -> None:
    assert parse_json_line('{"a": "NaN", "b": "Infinity", "c": 1e300}', Path("d.jsonl"), 1) == \
        {"a": "NaN", "b": "Infinity", "c": 1e300}


def test_json_file_refusal_finds_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{\n  "note": "NaN inside a string is fine",\n  "x": [1,\n   NaN]\n}\n', encoding="utf-8")
    with pytest.raises(AuditError, match=f"^{path}, row ending at line 4: NaN is not a number"):
        read_json(path)


def test_lone_surrogates_are_replaced_and_reported() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = parse_json_line('{"p": "a\\ud800b", "\\udc00": ["\\ud83d\\ude00", "\\udfff"]}', Path("p.jsonl"), 3)
    assert row == {"p": "a\ufffdb", "\ufffd": ["😀", "\ufffd"]}  # a real pair stays one character
    (w,) = [w for w in caught if issubclass(w.category, InputWarning)]
    assert str(w.message) == ("p.jsonl, line 3: 3 text value(s) held a lone surrogate (\\ud800-\\udfff escape), "
                              "replaced with U+FFFD")


def test_clean_lines_warn_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_json_line('{"p": "caf\\u00e9 \\ud83d\\ude00"}', Path("p.jsonl"), 1) == {"p": "café 😀"}
