"""Markdown escaping for text that opt-audit did not write (model names, card.yaml, data strings).

The card template renders with Jinja2 autoescape off (its output is Markdown, not HTML), so
every value is escaped here instead: the template environment passes each `{{ value }}`
through `md_text` unless the value is already `Md`, i.e. Markdown this package built itself.

What is neutralised, and why that is enough:
- HTML: `&`, `<` and `>` become entities, so no tag, comment, autolink (`<javascript:...>`) or
  character reference (`&#60;`) survives. The Hub renders raw HTML in READMEs.
- Links and images: `[` and `]` are backslash-escaped, so `[x](javascript:...)`, `![x](...)`
  and reference definitions `[x]: ...` render as plain text. A backslash is escaped first, so
  a user's own `\\` cannot cancel ours.
- Tables: `|` is escaped, and `md_cell` folds newlines, so a value stays inside its cell.
- Control characters (ANSI escapes, bidi overrides) are dropped.
Emphasis, lists and paragraphs in card.yaml prose are kept: they cannot run code or link. The
rules are `audit.textsafe`'s prose mode, shared with the report and the gate.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from audit.textsafe import clean_text, markdown_code_span, markdown_text

TO_BE_COMPLETED = "**[to be completed]**"
"""Rendered wherever a human fact is missing; never replaced by invented text."""

_BAD_URL_CHARS = re.compile(r"[\s<>\"'`()\[\]\\|]")


class Md(str):
    """Markdown built by this package from escaped parts: emitted by the template as is."""


def md_text(value: object) -> Md:
    """Escape untrusted text for a Markdown paragraph (line breaks kept): the shared prose rules of
    `audit.textsafe.markdown_text`, which also drop control characters."""
    return Md(markdown_text(value, newline="\n", prose=True))


def md_cell(value: object) -> Md:
    """Escape untrusted text for one table cell (line breaks folded into spaces)."""
    return md_text(" ".join(str(value).split()))


def md_or_missing(value: str | None) -> Md:
    """A human-supplied field, escaped, or the visible to-be-completed marker."""
    if value is None or not str(value).strip():
        return Md(TO_BE_COMPLETED)
    return md_text(str(value).strip())


def safe_url(value: str) -> str | None:
    """`value` if it is a plain http(s) URL that can sit inside a Markdown link, else None."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or _BAD_URL_CHARS.search(value):
        return None
    return value


def md_link_or_text(value: str | None) -> Md:
    """A URL as a link (http and https only), any other text escaped, a missing one marked."""
    if value is None or not value.strip():
        return Md(TO_BE_COMPLETED)
    url = safe_url(value)
    if url is None:
        return md_text(value.strip())
    return Md(f"<{url}>")


def code_block(text: str, lang: str = "") -> Md:
    """A fenced code block that `text` cannot close: the fence is longer than any backtick
    run inside it. CommonMark renders a code block's content literally (no HTML, no links),
    so the command keeps its exact text (less control characters) and stays copy-pasteable."""
    text = clean_text(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Md(f"{fence}{lang}\n{text}\n{fence}")


def code_cell(text: str) -> Md:
    """Inline code inside a table cell: GFM splits cells at `|` even in code, unless escaped."""
    return Md(markdown_code_span(text, in_table=True))


def code_span(text: str) -> Md:
    """Inline code that `text` cannot close (same rule as `code_block`, on one line)."""
    return Md(markdown_code_span(text))
