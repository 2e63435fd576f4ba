"""Untrusted text (file names, model folders, policy rules, data strings) made safe for where it goes.

One module, so the console, the JUnit XML and every Markdown output (gate.md, report.md, the
model card) neutralise the same characters the same way:

- Control characters: C0 (but tab and line breaks), DEL, C1, and the bidirectional overrides used
  in "Trojan Source" attacks are dropped. In a terminal they are ANSI escapes that can recolour,
  hide or rewrite lines; in XML 1.0 most of them make the file not well-formed. A lone surrogate
  (a path that is not UTF-8, a JSON `\\ud800`) cannot be encoded at all and becomes U+FFFD.
- Markdown: `&`, `<` and `>` become entities (no raw HTML, no `<javascript:...>` autolink); the
  punctuation of links, images, emphasis, code, strikethrough, math and table cells
  (``\\ ` * [ ] ( ) ! | ~ $``, `_` at a word edge) is backslash-escaped; bare URLs are broken so GFM
  does not autolink them. Prose mode (card.yaml text that a person wrote as Markdown) escapes only
  what can link, embed or break a table: ``\\ [ ] |`` and the HTML characters.
Nothing here imports more than `re`: every presentation layer may use it.
"""

from __future__ import annotations

import re
from typing import Any

# C0 except tab, LF, CR; DEL; C1 except NEL (a line break, handled below); bidi embeddings,
# overrides and isolates; the two XML non-characters.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"
                       "\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffe\uffff]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_BREAKS = re.compile("\r\n|[\t\r\n\x85\u2028\u2029]")
_MD_PUNCT = re.compile(r"([\\`*\[\]()!|~$])")
_MD_PROSE = re.compile(r"([\\\[\]|])")
_MD_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_MD_URL = re.compile(r"(?i)(:)(//)|\b(www)(\.)")
_NEWLINES = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x85")


def clean_text(value: Any) -> str:
    """`value` as text without control characters (tab and line breaks kept) or lone surrogates.

    Safe for XML 1.0 text and attributes, and for a terminal when it is one of several lines.
    """
    text = "" if value is None else str(value)
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", text))


def one_line(value: Any) -> str:
    """`clean_text` with every line break and tab turned into a space: a console cell or an error
    line that untrusted text cannot split into a fake line of its own."""
    return _BREAKS.sub(" ", clean_text(value))


def markdown_text(value: Any, *, newline: str = "<br>", prose: bool = False) -> str:
    """Escape untrusted text for inline Markdown (a table cell, a list item, a paragraph).

    `newline` replaces each line break (`<br>` keeps a value inside its cell; " " folds it;
    "\\n" keeps prose paragraphs). `prose=True` keeps emphasis and lists, escaping only what can
    link, embed an image, inject HTML or leave a table cell.
    """
    text = clean_text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if prose:
        text = _MD_PROSE.sub(r"\\\1", text)
    else:
        text = _MD_PUNCT.sub(r"\\\1", text)
        text = _MD_EDGE_UNDERSCORE.sub(r"\\_", text)
        text = _MD_URL.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"{m[3]}\\{m[4]}", text)
    return newline.join(_NEWLINES.split(text))


def markdown_code_span(value: Any, *, in_table: bool = False) -> str:
    """Inline code that the text cannot close: the backtick fence is longer than any run inside.

    Nothing inside a code span is parsed (no link, image or HTML), so an identifier keeps its
    exact spelling. In a GFM table `|` still splits cells, even in code, so `in_table` escapes it.
    """
    text = " ".join(one_line(value).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{ticks}{pad}{text}{pad}{ticks}"
    return span.replace("|", "\\|") if in_table else span
