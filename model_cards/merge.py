"""Merge opt-audit's results into an existing model card, leaving everything else byte for byte.

A real model card (a Hub README) carries a license, `base_model`, tags, other tools' results and
the authors' prose; opt-audit owns only two pieces of it:

1. **Its model-index results.** Only the `model-index` block of the YAML front matter is edited,
   as text: the block is cut out (from its `model-index:` line to the next top-level key),
   rebuilt and put back, so every other key keeps its exact bytes, comments and order. Inside the
   block, the results opt-audit wrote earlier (`dataset.args.tool: opt-audit`) are replaced and
   every other result is kept as data (same values and key order; the block is re-written with
   `yaml.safe_dump`, so its spacing and comments may change). Our results go into the entry
   named after the run's model, else the card's first entry, else a new one. A card without
   model-index gets the block at the end of its front matter; one without front matter gets one.
2. **One section of the body**, between `<!-- opt-audit:begin -->` and `<!-- opt-audit:end -->`.
   A card that has them gets the section between them replaced. A card without them gets it
   after the first heading's intro, i.e. just before the second heading (the OPT card: after
   its title and disclaimer, before "## Intro"), so results sit near the top; with one heading
   only, at the end; with no heading, right after the front matter. Headings inside fenced code
   blocks do not count.

Merging twice gives the same bytes. Malformed input (an unclosed or unparsable front matter, a
`model-index` that is not a list of entries with results, unbalanced markers) raises AuditError
naming the file, and nothing is written. Line endings of the existing file are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from audit.errors import AuditError
from model_cards.build import BEGIN_MARKER, END_MARKER
from model_cards.metadata import TOOL

_OPEN_FENCE = re.compile(r"^---[ \t]*\r?\n")
_MODEL_INDEX_KEY = re.compile(r"""^(?:model-index|"model-index"|'model-index')[ \t]*:""")
_TOP_LEVEL = re.compile(r"^[^\s#-]")  # a line that starts a new top-level key
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|\r?$)")
_CODE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class CardParts:
    """A card split at its front matter fences; `front` is None when it has none."""

    opening: str  # the opening fence line ('' without front matter)
    front: str | None  # the YAML text between the fences
    closing: str  # the closing fence line ('' without front matter)
    body: str  # everything after the closing fence line
    newline: str  # "\n" or "\r\n", as the file uses


def split_card(text: str, source: str) -> CardParts:
    """The card's front matter and body; an opening `---` without a closing one is an error."""
    newline = "\r\n" if text.split("\n", 1)[0].endswith("\r") else "\n"
    opened = _OPEN_FENCE.match(text)
    if not opened:
        return CardParts("", None, "", text, newline)
    offset = opened.end()
    for line in _lines(text[opened.end():]):
        if line.rstrip("\r\n").rstrip(" \t") == "---":
            return CardParts(opened.group(0), text[opened.end():offset], line, text[offset + len(line):], newline)
        offset += len(line)
    raise AuditError(f"{source}: malformed front matter: the opening '---' has no closing '---' line; "
                     "fix the file or pass --force to replace it")


def merge_card(text: str, *, section: str, results: list[dict[str, Any]], model: str, source: str) -> str:
    """`text` with opt-audit's model-index `results` (for model `model`) and body `section` put in."""
    parts = split_card(text, source)
    nl = parts.newline
    front = _merge_front(parts.front or "", results, model, source, nl)
    body = _merge_body(parts.body, _with_newline(section, nl), source, nl)
    if parts.front is None:
        return f"---{nl}{front}---{nl}{body}" if front else body
    return parts.opening + front + parts.closing + body


def is_ours(result: Any) -> bool:
    """Whether a model-index result was written by opt-audit (`args.tool`), or by an opt-audit
    version from before that mark (`args` with both `probe` and `probe_version`)."""
    dataset = result.get("dataset") if isinstance(result, dict) else None
    args = dataset.get("args") if isinstance(dataset, dict) else None
    if not isinstance(args, dict):
        return False
    return args.get("tool") == TOOL or ("probe" in args and "probe_version" in args)


def _merge_front(front: str, results: list[dict[str, Any]], model: str, source: str, nl: str) -> str:
    data = _load_front(front, source)
    lines = _lines(front)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += nl
    start, end = _model_index_span(lines, data, source)
    existing = data.get("model-index")
    merged = _merged_index(existing, results, model, source)
    block = "" if not merged else _dump_index(merged, nl)
    if start is None:
        return "".join(lines) + block
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _load_front(front: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""  # +1 for 1-based, +1 for the fence
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise AuditError(f"{source}: malformed front matter: not valid YAML{where} ({problem}); "
                         "fix the file or pass --force to replace it") from None
    except RecursionError:
        raise AuditError(f"{source}: malformed front matter: nested too deeply to read") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AuditError(f"{source}: malformed front matter: expected a mapping of metadata keys, "
                         f"got {type(data).__name__}; fix the file or pass --force to replace it")
    return data


def _model_index_span(lines: list[str], data: dict[str, Any], source: str) -> tuple[int | None, int]:
    """(first line, line after the last) of the top-level model-index block; (None, 0) if absent."""
    start = next((i for i, line in enumerate(lines) if _MODEL_INDEX_KEY.match(line)), None)
    if start is None:
        if "model-index" in data:
            raise AuditError(f"{source}: cannot edit the front matter's model-index: it is not a block "
                             "'model-index:' key at the start of a line (flow style?); pass --force to "
                             "replace the card")
        return None, 0
    end = start + 1
    while end < len(lines) and not _TOP_LEVEL.match(lines[end]):
        end += 1
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1  # blank lines and top-level comments after the block stay outside it
    try:
        alone = yaml.safe_load("".join(lines[start:end]))
    except yaml.YAMLError:
        alone = None
    if not isinstance(alone, dict) or alone.get("model-index") != data.get("model-index"):
        raise AuditError(f"{source}: cannot isolate the front matter's model-index block; "
                         "pass --force to replace the card")
    return start, end


def _merged_index(existing: Any, results: list[dict[str, Any]], model: str, source: str) -> list[dict[str, Any]]:
    """The model-index with opt-audit's old results removed and `results` added."""
    if existing is None:
        existing = []
    if not isinstance(existing, list) or not all(
            isinstance(e, dict) and isinstance(e.get("results", []), list) for e in existing):
        raise AuditError(f"{source}: malformed front matter: model-index must be a list of entries, each "
                         "with a list of results; fix the file or pass --force to replace it")
    entries: list[dict[str, Any]] = []
    for entry in existing:
        old = entry.get("results") or []
        kept = [r for r in old if not is_ours(r)]
        if old and not kept:
            continue  # an entry opt-audit filled alone: rebuilt below if there are results
        entries.append({**entry, "results": kept} if "results" in entry else dict(entry))
    if results:
        target = next((e for e in entries if e.get("name") == model), entries[0] if entries else None)
        if target is None:
            entries.append({"name": model, "results": list(results)})
        else:
            target["results"] = [*(target.get("results") or []), *results]
    return entries


def _dump_index(entries: list[dict[str, Any]], nl: str) -> str:
    text = yaml.safe_dump({"model-index": entries}, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)
    return text.replace("\n", nl) if nl != "\n" else text


def _merge_body(body: str, section: str, source: str, nl: str) -> str:
    lines = _lines(body)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN_MARKER]
    ends = [i for i, line in enumerate(lines) if line.strip() == END_MARKER]
    if begins or ends:
        if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
            raise AuditError(f"{source}: the card's opt-audit markers are unbalanced ({len(begins)} "
                             f"'{BEGIN_MARKER}', {len(ends)} '{END_MARKER}'); keep exactly one pair, "
                             "begin before end, or remove both")
        after = lines[ends[0] + 1:]
        if after == [] and not lines[ends[0]].endswith("\n"):
            section = section.rstrip("\r\n")
        return "".join(lines[:begins[0]]) + section + "".join(after)
    at = _insert_at(lines)
    if at is None:  # one heading only: append at the end
        text = body if not body or body.endswith("\n") else body + nl
        gap = "" if not text or text.endswith(nl + nl) or text == nl else nl
        return text + gap + section
    before, after_text = "".join(lines[:at]), "".join(lines[at:])
    gap = "" if not before or before.endswith(nl + nl) or before == nl else nl
    return before + gap + section + nl + after_text


def _insert_at(lines: list[str]) -> int | None:
    """Line index of the second heading (outside code blocks); 0 if there is no heading at all,
    None if there is exactly one."""
    headings: list[int] = []
    fence: str | None = None
    for i, line in enumerate(lines):
        opened = _CODE_FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) \
                    and not line.strip()[len(opened.group(1)):].strip():
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        if _HEADING.match(line):
            headings.append(i)
            if len(headings) == 2:
                return i
    return 0 if not headings else None


def _lines(text: str) -> list[str]:
    """Lines split at "\n" only, each keeping its ending (str.splitlines also splits at form
    feeds and U+2028, which are ordinary characters in a Markdown or YAML line)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _with_newline(section: str, nl: str) -> str:
    text = section if section.endswith("\n") else section + "\n"
    return text.replace("\n", nl) if nl != "\n" else text
