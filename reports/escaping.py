"""Escaping for untrusted text: model outputs, prompts, group names and anything else read from a run.

A run directory is data, not markup. Every string the report takes from it goes through one of
these functions (the HTML template through Jinja2's autoescape, the Markdown template through
`markdown_text` as its `finalize` hook), so nothing a model writes can become a tag, a script or
a link.

Markdown choice: backslash escapes plus HTML entities, not code spans. `&`, `<` and `>` become
`&amp;`, `&lt;`, `&gt;` (so no raw HTML survives); the punctuation that builds links, images,
emphasis, strikethrough, math and table cells (``\\ ` * [ ] ( ) ! | ~ $``, and `_` at a word edge)
is backslash-escaped; bare URLs are broken (`https\\://`, `www\\.`) so GFM does not autolink them;
newlines become `<br>` so a value never leaves its table cell or list item; control characters
(ANSI escapes, bidi overrides) are dropped. Code spans were not chosen because entities do not
decode inside them and a backtick run in the text can close them. The rules live in
`audit.textsafe`, shared with the gate's gate.md and the model card.
The templates never start a line with untrusted text, so block markers (`#`, `-`, `1.`) need no
escaping.
"""

from __future__ import annotations

import re
from typing import Any

from audit.textsafe import clean_text
from audit.textsafe import markdown_text as shared_markdown_text

_NEWLINES = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x85")
_SCRIPT_JSON = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_JSON_RE = re.compile("[<>&\u2028\u2029]")


class MarkdownSafe(str):
    """A Markdown fragment built by the renderer itself (never from run data): printed as is."""


def markdown_text(value: Any) -> str:
    """Escape one value for inline Markdown (a table cell, a list item, a heading).

    The Markdown environment calls this on every `{{ ... }}`, so forgetting a filter cannot leak.
    The escaping itself is `audit.textsafe.markdown_text`, shared with the gate and the model card.
    """
    if isinstance(value, MarkdownSafe):
        return value
    return shared_markdown_text(value, newline="<br>")


def markdown_code_block(text: Any) -> MarkdownSafe:
    """A one-line fenced code block, for text a reader copies verbatim (the reproduce command).

    Inside a fence nothing is interpreted, and with newlines folded into spaces and a fence longer
    than any backtick run in the text, nothing can close it early.
    """
    line = " ".join(_NEWLINES.split(clean_text(text)))
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return MarkdownSafe(f"{fence}\n{line}\n{fence}")


def script_json(text: str) -> str:
    """Make JSON text safe inside `<script type="application/json">`.

    `<`, `>` and `&` only occur inside JSON strings, where `\\u003c` and friends mean the same
    characters, so the data is unchanged for `JSON.parse` while `</script>` or `<!--` can never
    appear in the page source.
    """
    return _SCRIPT_JSON_RE.sub(lambda m: _SCRIPT_JSON[m[0]], text)


def plotly_label(text: str) -> str:
    """A category or series name for a plotly figure, shown literally.

    plotly.js reads labels as pseudo-HTML (it keeps `<b>`, `<a href>` and friends and drops other
    tags); entity-escaping makes it print the characters instead.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline_script(code: str) -> str:
    """JavaScript placed inside a `<script>` element: no `</script` or `<!--` can end it early."""
    return re.sub(r"(?i)</(script)", r"<\\/\1", code).replace("<!--", "<\\!--")
