"""`CardInfo`: the human facts of a model card, read from an optional card.yaml.

A run directory knows what was measured; it cannot know who built the model, what it is for, or
what it was trained on. Those facts come from a person, through card.yaml. A fact nobody gave
stays missing (the card shows **[to be completed]**): it is never guessed.

card.yaml is read with `yaml.safe_load` only. Anything malformed (not a mapping, an unknown
field, a field of the wrong type) raises `AuditError` naming the file and the field, so a typo
such as `intended_uses:` cannot silently drop a section. `license_link` goes to the front matter,
where the Hub makes it a link: it must be an http(s) URL or a file in the model repository (a
`javascript:` link is refused, naming the field). See `model_cards/example_card.yaml`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from audit.errors import AuditError
from audit.yamlfile import read_yaml
from model_cards.escape import safe_url


@dataclass(frozen=True)
class ModelDetails:
    """Who made the model and how to reach them (OPT model card: "Model details")."""

    developers: str | None = None  # person or organisation that developed the model
    date: str | None = None  # when the model was released or trained (YAML dates are accepted)
    version: str | None = None  # the model's own version (quote numbers: "1.0")
    type: str | None = None  # architecture and training objective, e.g. "decoder-only transformer LM"
    paper: str | None = None  # URL or reference of the paper or report describing the model
    license: str | None = None  # the license in words, e.g. "OPT-175B License Agreement"
    contact: str | None = None  # where to send questions or comments about the model
    citation: str | None = None  # how to cite the model (e.g. BibTeX), shown under Citations


@dataclass(frozen=True)
class CardInfo:
    """Everything a person adds to a generated card; every field is optional."""

    license: str | None = None  # Hugging Face license id for the front matter: apache-2.0, mit, other...
    license_name: str | None = None  # with license: other, a short id for it (e.g. opt-175b-license)
    license_link: str | None = None  # with license: other, where its text is (URL, or LICENSE in the repo)
    language: tuple[str, ...] = ()  # language codes the model handles, e.g. ("en",)
    tags: tuple[str, ...] = ()  # extra Hub tags, added after opt-audit's own
    model_details: ModelDetails = ModelDetails()
    intended_use: str | None = None  # primary intended uses
    intended_users: str | None = None  # primary intended users
    out_of_scope_use: str | None = None  # uses the model is not meant for
    training_data: str | None = None  # what the model was trained on (or a link to its data card)
    limitations: str | None = None  # known risks and limitations, as stated by the developers
    fairness: str | None = None  # notes on bias and inclusion beyond this audit's numbers
    privacy: str | None = None  # privacy and security: PII in training data, memorisation, misuse
    transparency: str | None = None  # what is published about the model: code, logbooks, weights
    efficiency: str | None = None  # training compute, energy and carbon (the audit's own cost is added)


_TEXT_FIELDS = ("intended_use", "intended_users", "out_of_scope_use", "training_data", "limitations",
                "fairness", "privacy", "transparency", "efficiency")
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_REPO_FILE = re.compile(r"^(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")


def load_card_info(path: Path | str) -> CardInfo:
    """Read card.yaml into a `CardInfo`; an empty file gives an empty one (all to be completed)."""
    data = read_yaml(path, "card file")
    if data is None:
        return CardInfo()
    return card_info_from_mapping(data, source=str(path))


def card_info_from_mapping(data: Any, *, source: str = "card.yaml") -> CardInfo:
    """Validate a parsed card.yaml document (`source` names it in errors)."""
    if not isinstance(data, Mapping):
        raise AuditError(f"{source}: expected a mapping of card fields at the top level, "
                         f"got {_kind(data)}")
    _check_known(data, CardInfo, source, prefix="")
    details = data.get("model_details")
    if details is None:
        model_details = ModelDetails()
    elif not isinstance(details, Mapping):
        raise AuditError(f"{source}: field 'model_details': expected a mapping, got {_kind(details)}")
    else:
        _check_known(details, ModelDetails, source, prefix="model_details.")
        model_details = ModelDetails(**{
            key: _text(details.get(key), source, f"model_details.{key}", allow_date=(key == "date"))
            for key in details
        })
    license_id = _license_id(data.get("license"), source, "license")
    return CardInfo(
        license=license_id,
        license_name=_license_id(data.get("license_name"), source, "license_name"),
        license_link=_link(data.get("license_link"), source, "license_link"),
        language=_words(data.get("language"), source, "language"),
        tags=_words(data.get("tags"), source, "tags"),
        model_details=model_details,
        **{key: _text(data.get(key), source, key) for key in _TEXT_FIELDS},
    )


def _license_id(value: Any, source: str, field: str) -> str | None:
    """A Hub license id: lowercase letters, digits, '.', '+' and '-' (it goes to the front matter)."""
    text = _text(value, source, field)
    if text is not None and not _LICENSE_ID.match(text):
        raise AuditError(f"{source}: field '{field}': {text!r} is not a Hugging Face license id "
                         "(lowercase, e.g. apache-2.0, mit, cc-by-4.0, other; describe the license "
                         "in words under model_details.license)")
    return text


def _link(value: Any, source: str, field: str) -> str | None:
    """A link the Hub renders from the front matter: an http(s) URL, or a file in the model repo
    (LICENSE, docs/LICENSE.md). Any other scheme (`javascript:`, `data:`, `file:`) is refused, as
    is anything a URL cannot hold (spaces, quotes, brackets, control characters)."""
    text = _text(value, source, field)
    if text is None or safe_url(text) is not None or _REPO_FILE.match(text):
        return text
    raise AuditError(f"{source}: field '{field}': {text!r} is not an http(s) URL or a file in the model "
                     "repository (e.g. https://example.org/LICENSE or LICENSE.md)")


def _check_known(data: Mapping[Any, Any], cls: type, source: str, *, prefix: str) -> None:
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise AuditError(f"{source}: unknown field '{prefix}{key}'{hint}; "
                             f"known fields: {', '.join(prefix + k for k in known)}")


def _text(value: Any, source: str, field: str, *, allow_date: bool = False) -> str | None:
    """A text field: a string (blank means missing); a whole number; a YAML date where allowed."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if allow_date and isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # lossless; a float is not (1.10 reads as 1.1), so it is refused below
    hint = " (quote it, e.g. \"1.0\")" if isinstance(value, float) else ""
    raise AuditError(f"{source}: field '{field}': expected text, got {_kind(value)}{hint}")


def _words(value: Any, source: str, field: str) -> tuple[str, ...]:
    """A list of short strings (one string is taken as a list of one); order kept, repeats dropped."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise AuditError(f"{source}: field '{field}': expected a list of strings, got {_kind(value)}")
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise AuditError(f"{source}: field '{field}[{i}]': expected a non-empty string, "
                             f"got {_kind(item)}")
        word = " ".join(item.split())
        if word not in out:
            out.append(word)
    return tuple(out)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
