"""card.yaml: safe loading into CardInfo, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.errors import AuditError
from model_cards.info import CardInfo, ModelDetails, load_card_info

EXAMPLE = Path(__file__).resolve().parents[2] / "model_cards" / "example_card.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "card.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_card_sets_every_field() -> None:
    info = load_card_info(EXAMPLE)
    assert info.license == "other" and info.language == ("en",) and "opt" in info.tags
    for name in CardInfo.__dataclass_fields__:
        assert getattr(info, name) not in (None, ()), name
    for name in ModelDetails.__dataclass_fields__:
        assert getattr(info.model_details, name) is not None, f"model_details.{name}"
    assert info.model_details.date == "2022-05-03"  # a YAML date becomes ISO text


def test_empty_file_gives_empty_info(tmp_path: Path) -> None:
    assert load_card_info(_write(tmp_path, "# nothing yet\n")) == CardInfo()


def test_blank_text_counts_as_missing(tmp_path: Path) -> None:
    info = load_card_info(_write(tmp_path, "intended_use: '   '\nmodel_details:\n  developers:\n"))
    assert info.intended_use is None and info.model_details.developers is None


def test_whole_number_version_is_text(tmp_path: Path) -> None:
    assert load_card_info(_write(tmp_path, "model_details:\n  version: 2\n")).model_details.version == "2"


def test_single_tag_string_and_repeats(tmp_path: Path) -> None:
    assert load_card_info(_write(tmp_path, "tags: opt\n")).tags == ("opt",)
    assert load_card_info(_write(tmp_path, "tags: [a, b, a]\n")).tags == ("a", "b")


@pytest.mark.parametrize("text, field", [
    ("- just\n- a list\n", "top level"),
    ("intended_uses: research\n", "'intended_uses'"),
    ("intended_use: [research]\n", "'intended_use'"),
    ("tags: 3\n", "'tags'"),
    ("tags: [ok, 3]\n", "'tags[1]'"),
    ("model_details: Meta AI\n", "'model_details'"),
    ("model_details:\n  developer: Meta AI\n", "'model_details.developer'"),
    ("model_details:\n  version: 1.10\n", "'model_details.version'"),
    ("model_details:\n  contact: true\n", "'model_details.contact'"),
    ("license: Apache 2.0\n", "'license'"),
    ("license_name: My License\n", "'license_name'"),
    ("privacy: {a: 1}\n", "'privacy'"),
])
def test_malformed_card_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AuditError) as err:
        load_card_info(path)
    message = str(err.value)
    assert str(path) in message
    assert field in message


def test_unknown_field_suggests_the_known_one(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"did you mean 'model_details\.developers'"):
        load_card_info(_write(tmp_path, "model_details:\n  developer: Meta AI\n"))


def test_float_version_says_to_quote_it(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="quote it"):
        load_card_info(_write(tmp_path, "model_details:\n  version: 1.0\n"))


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "license: mit\ntags: [a, b\n")
    with pytest.raises(AuditError, match=r"not valid YAML at line \d+") as err:
        load_card_info(path)
    assert str(path) in str(err.value)


def test_yaml_tags_that_would_run_code_are_refused(tmp_path: Path) -> None:
    # safe_load only: a python/object tag is a YAML error, never a call
    path = _write(tmp_path, "intended_use: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(AuditError, match="not valid YAML"):
        load_card_info(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="card file .*: no such file"):
        load_card_info(tmp_path / "absent.yaml")


@pytest.mark.parametrize("link", ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>x</b>",
                                  "vbscript:x", "file:///etc/passwd", "/etc/passwd", "../LICENSE", "//evil.test/x",
                                  "https://x.test/a b", "https://x.test/a)(b", "LICENSE md"])
def test_license_link_must_be_http_or_a_repo_file(tmp_path: Path, link: str) -> None:
    path = _write(tmp_path, f"license: other\nlicense_link: {link!r}\n")
    with pytest.raises(AuditError) as err:
        load_card_info(path)
    assert str(err.value).startswith(f"{path}: field 'license_link': ")
    assert "is not an http(s) URL or a file in the model repository" in str(err.value)


@pytest.mark.parametrize("link", ["https://example.org/LICENSE", "http://example.org/l?v=1", "LICENSE",
                                  "LICENSE.md", "docs/MODEL_LICENSE.txt"])
def test_license_link_accepts_urls_and_repo_files(tmp_path: Path, link: str) -> None:
    assert load_card_info(_write(tmp_path, f"license_link: {link}\n")).license_link == link


@pytest.mark.parametrize("text, message", [
    ("model_details:\n  version: " + "7" * 5000 + "\n", "a value cannot be read"),
    ("tags: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply to read"),
])
def test_hostile_card_yaml_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AuditError, match=f"^card file {path}: {message}"):
        load_card_info(path)
