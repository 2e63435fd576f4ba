"""The HolisticBias v1.1 vocabulary: descriptors per axis, nouns and templates, read from the dataset's
files, and the sentences they make, built as the authors' generator builds them.

A malformed entry names its file and (best effort) line; gendered descriptors and standalone phrases
without a {noun} slot are left out, as in the reference run script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from audit.errors import AuditError
from probes.loading import read_json, read_text, row_error, sha256_text

VERSION_DIR = "v1.1"
FILES = ("descriptors.json", "nouns.json", "sentence_templates.json", "standalone_noun_phrases.json")
OPTIONAL_FILES = ("standalone_noun_phrases.json",)
STANDALONE = "(standalone noun phrase)"  # the bucket of descriptors from standalone_noun_phrases.json


def data_sha256(folder: Path) -> dict[str, str]:
    """sha256 of each dataset file the folder holds (an optional file it lacks is left out), for the manifest."""
    return {name: sha256_text(folder / name) for name in FILES
            if name not in OPTIONAL_FILES or (folder / name).exists()}


@dataclass(frozen=True)
class Descriptor:
    """A demographic descriptor and how it forms a noun phrase with a noun."""

    axis: str
    bucket: str  # STANDALONE for standalone noun phrases
    text: str  # "Deaf", or "who uses a wheelchair" for a standalone phrase
    preference: str  # reviewed | dispreferred | polarizing | no_data
    # Noun phrase patterns with a {noun} slot, and an {article} slot that takes "a"/"an" from the noun
    # (standalone phrases: "{article} {noun} who uses a wheelchair" -> "an individual who uses ...").
    phrase: str  # singular, e.g. "a Deaf {noun}"
    plural_phrase: str  # plural, e.g. "Deaf {noun}"


@dataclass(frozen=True)
class Noun:
    singular: str
    plural: str
    gender: str  # female | male | neutral


@dataclass(frozen=True)
class Vocabulary:
    """The parsed dataset: descriptors per axis (file order), nouns and templates (file order)."""

    descriptors: Mapping[str, tuple[Descriptor, ...]]
    nouns: tuple[Noun, ...]
    templates: tuple[str, ...]


def article(word: str) -> str:
    """The reference generator's indefinite article: "an" before a written vowel, else "a"."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def noun_phrase(d: Descriptor, noun: Noun, plural: bool) -> str:
    """The descriptor + noun phrase that fills a template."""
    if plural:  # the reference generator fills {article} with "" and strips the leading space
        return d.plural_phrase.replace("{article}", "").replace("{noun}", noun.plural).lstrip()
    return d.phrase.replace("{article}", article(noun.singular)).replace("{noun}", noun.singular)


def fill(template: str, d: Descriptor, noun: Noun) -> str:
    """A HolisticBias sentence: the template with its (plural) noun phrase slot filled."""
    if "{plural_noun_phrase}" in template:
        return template.replace("{plural_noun_phrase}", noun_phrase(d, noun, plural=True))
    return template.replace("{noun_phrase}", noun_phrase(d, noun, plural=False))


def _line_of(text: str, *needles: str) -> int:
    """1-based line of the last of `needles` found in order (each after the previous): a best
    effort to point at a JSON value, since json.loads keeps no positions."""
    pos = 0
    for needle in needles:
        found = text.find(needle, pos)
        if found < 0:
            break
        pos = found
    return text.count("\n", 0, pos) + 1


def _bad(path: Path, text: str, msg: str, *where: Any) -> AuditError:
    return row_error(path, _line_of(text, *(json.dumps(w, ensure_ascii=False) for w in where)), msg)


def _load_descriptors(path: Path) -> dict[str, list[Descriptor]]:
    data, text = read_json(path), read_text(path)
    if not isinstance(data, dict) or not data:
        raise AuditError(f"{path}: expected a non-empty object {{axis: {{bucket: [descriptor, ...]}}}}")
    out: dict[str, list[Descriptor]] = {}
    for axis, buckets in data.items():
        if not isinstance(buckets, dict):
            raise _bad(path, text, f"axis {axis!r} should map buckets to descriptor lists", axis)
        out[axis] = []
        for bucket, entries in buckets.items():
            if not isinstance(entries, list):
                raise _bad(path, text, f"{axis}/{bucket} should be a list of descriptors", axis, bucket)
            for k, entry in enumerate(entries):
                obj = {"descriptor": entry} if isinstance(entry, str) else entry
                if not isinstance(obj, dict) or not isinstance(obj.get("descriptor"), str) \
                        or not obj["descriptor"].strip():
                    raise _bad(path, text, f"{axis}/{bucket} entry {k}: expected a descriptor string or "
                                           f"{{\"descriptor\": str, ...}}, got {entry!r}", axis, bucket, entry)
                if obj.get("gender") is not None:
                    continue  # gendered descriptors are left out, as in the reference run script
                word = obj["descriptor"]
                art = obj.get("article", article(word))
                out[axis].append(Descriptor(axis, bucket, word, str(obj.get("preference", "no_data")),
                                            f"{art} {word} {{noun}}", f"{word} {{noun}}"))
    return out


def _load_standalone(path: Path) -> dict[str, list[Descriptor]]:
    """Standalone noun phrases with a {noun} slot ("{article} {noun} who uses a wheelchair")."""
    data, text = read_json(path), read_text(path)
    if not isinstance(data, dict):
        raise AuditError(f"{path}: expected an object {{axis: [noun phrase, ...]}}")
    out: dict[str, list[Descriptor]] = {}
    for axis, entries in data.items():
        if not isinstance(entries, list):
            raise _bad(path, text, f"axis {axis!r} should be a list of noun phrases", axis)
        for k, entry in enumerate(entries):
            obj = {"noun_phrase": entry} if isinstance(entry, str) else entry
            phrase = obj.get("noun_phrase") if isinstance(obj, dict) else None
            plural = obj.get("plural_noun_phrase", phrase) if isinstance(obj, dict) else None
            if not isinstance(phrase, str) or not isinstance(plural, str) or not phrase.strip():
                raise _bad(path, text, f"{axis} entry {k}: expected a noun phrase string or "
                                       f"{{\"noun_phrase\": str, ...}}, got {entry!r}", axis, entry)
            if "{noun}" not in phrase:
                continue  # fixed phrases ("a wheelchair user") have no noun: not compared (reference code)
            for p in (phrase, plural):
                if "{" in p.replace("{article}", "").replace("{noun}", ""):
                    raise _bad(path, text, f"{axis} entry {k}: unknown placeholder in {p!r} (only {{article}} "
                                           "and {noun})", axis, p)
            word = phrase.replace("{article}", "").replace("{noun}", "").strip()  # "who uses a wheelchair"
            out.setdefault(axis, []).append(Descriptor(axis, STANDALONE, word, str(obj.get("preference", "no_data")),
                                                       phrase, plural))
    return out


def _load_nouns(path: Path) -> tuple[Noun, ...]:
    data, text = read_json(path), read_text(path)
    if not isinstance(data, dict):
        raise AuditError(f"{path}: expected an object {{gender: [[singular, plural], ...]}}")
    nouns = []
    for gender, pairs in data.items():
        if not isinstance(pairs, list):
            raise _bad(path, text, f"{gender!r} should be a list of [singular, plural] pairs", gender)
        for k, pair in enumerate(pairs):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) and w.strip() for w in pair)):
                raise _bad(path, text, f"{gender} entry {k}: expected [singular, plural], got {pair!r}", gender,
                           pair[0] if isinstance(pair, list) and pair else gender)
            nouns.append(Noun(pair[0], pair[1], gender))
    if not nouns:
        raise AuditError(f"{path}: no nouns")
    return tuple(nouns)


def _load_templates(path: Path) -> tuple[str, ...]:
    data, text = read_json(path), read_text(path)
    if not isinstance(data, dict) or not data:
        raise AuditError(f"{path}: expected a non-empty object {{template: options}}")
    for template in data:
        if ("{noun_phrase}" in template) == ("{plural_noun_phrase}" in template):
            raise _bad(path, text, f"template {template!r} needs exactly one of {{noun_phrase}} and "
                                   "{plural_noun_phrase}", template)
    return tuple(data)


def load_vocabulary(folder: Path) -> Vocabulary:
    """The dataset in `folder` (the v1.1 file layout); a malformed entry names file and line."""
    standalone = folder / "standalone_noun_phrases.json"
    descriptors = _load_descriptors(folder / "descriptors.json")
    if standalone.exists():
        for axis, extra in _load_standalone(standalone).items():
            descriptors.setdefault(axis, []).extend(extra)
    merged: dict[str, tuple[Descriptor, ...]] = {}
    for axis, ds in descriptors.items():
        unique: dict[str, Descriptor] = {}
        for d in ds:
            unique.setdefault(d.text, d)  # a descriptor listed twice in one axis is one descriptor
        if unique:
            merged[axis] = tuple(unique.values())
    if not merged:
        raise AuditError(f"{folder}: no usable (ungendered) descriptors")
    return Vocabulary(merged, _load_nouns(folder / "nouns.json"), _load_templates(folder / "sentence_templates.json"))

