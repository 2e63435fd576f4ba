"""Model output on a Streamlit page, always as text: escaped Markdown, and the loop highlight.

Streamlit's `st.markdown` already escapes raw HTML (the dashboard never passes
`unsafe_allow_html`), but Markdown itself, and Streamlit's extensions of it, would still turn
model text into links, images, emphasis, LaTeX (`$...$`) or coloured spans (`:red[...]`). So every
ASCII punctuation character of untrusted text is backslash-escaped (CommonMark lets any of them
be escaped, and an escaped character is always literal), each line break becomes a hard break,
and leading spaces become no-break spaces, so an indented line cannot become a code block.
Wherever exact characters matter, pages show the text with `st.code`/`st.text`, which interpret
nothing at all.
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_NEWLINES = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x85")
_LEADING = re.compile(r"^[ \t]+")
LOOP_COLOUR = "orange"


def literal_markdown(text: object) -> str:
    """Markdown that renders as exactly these characters (line breaks kept, nothing interpreted)."""
    lines = _NEWLINES.split("" if text is None else str(text))
    out = []
    for line in lines:
        line = _LEADING.sub(lambda m: "\u00a0" * len(m[0].expandtabs(4)), line)
        out.append(_PUNCT.sub(r"\\\1", line))
    return "  \n".join(out)


def _literal_span(text: str) -> str:
    """Escaped text for inside a `:colour-background[...]` span, which must stay on one line."""
    return _PUNCT.sub(r"\\\1", " ⏎ ".join(_NEWLINES.split(text)))


def loop_markdown(text: str, loop_char_start: int | None) -> str:
    """A continuation with its loop's whole repeated phrases (`reports.loops.loop_span`) highlighted.

    Before and after the loop the text keeps its line breaks; inside the highlight a line break is
    shown as "⏎", because the highlight span cannot cross lines. Without a loop start in range, the
    whole text is shown unhighlighted.
    """
    from reports.loops import loop_span

    span = loop_span(text, loop_char_start)
    if span is None:
        return literal_markdown(text)
    tail = literal_markdown(span.tail) if span.tail.strip() else ""
    return literal_markdown(span.head) + f":{LOOP_COLOUR}-background[{_literal_span(span.loop)}]" + tail
