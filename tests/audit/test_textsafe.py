"""audit.textsafe: the one place untrusted text is made safe for a console, XML and Markdown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from audit.textsafe import clean_text, markdown_code_span, markdown_text, one_line

HOSTILE = "a\x1b[31mred\x1b[0m\x07\x00b\u202etxt.exe\x85c\ud800"


def test_clean_text_drops_controls_and_bidi_and_replaces_surrogates() -> None:
    assert clean_text(HOSTILE) == "a[31mred[0mbtxt.exe\x85c\ufffd"
    assert clean_text("tab\there\nline\r\n") == "tab\there\nline\r\n"  # layout characters are kept
    assert clean_text("emoji 👩\u200d💻 keeps its joiner") == "emoji 👩\u200d💻 keeps its joiner"
    assert clean_text(None) == ""


def test_clean_text_makes_any_string_well_formed_xml() -> None:
    every_char = "".join(chr(c) for c in range(0x2100)) + "\ud800\udfff\ufffe\uffff"
    element = ET.Element("x", value=clean_text(every_char))
    element.text = clean_text(every_char)
    ET.fromstring(ET.tostring(element, encoding="unicode"))  # parses: well-formed


def test_one_line_cannot_forge_a_second_line() -> None:
    assert one_line("policy.yaml\ngate: PASS (exit 0)\r\x1b[2K") == "policy.yaml gate: PASS (exit 0) [2K"
    assert "\n" not in one_line("a\u2028b\u2029c\x85d")


def test_markdown_text_neutralises_links_images_html_and_controls() -> None:
    assert markdown_text("![i](x.png)[x](javascript:alert(1))") == \
        "\\!\\[i\\]\\(x.png\\)\\[x\\]\\(javascript:alert\\(1\\)\\)"
    assert markdown_text("<img src=x>&") == "&lt;img src=x&gt;&amp;"
    assert markdown_text("a\x1b[31mb\nc", newline=" ") == "a\\[31mb c"
    assert markdown_text("pct_stereotype") == "pct_stereotype"


def test_markdown_prose_mode_keeps_emphasis_but_not_links() -> None:
    assert markdown_text("- **bold** *it* ![i](x)", prose=True, newline="\n") == "- **bold** *it* !\\[i\\](x)"
    assert markdown_text("a\nb", prose=True, newline="\n") == "a\nb"


def test_markdown_code_span_cannot_be_closed() -> None:
    assert markdown_code_span("a`b") == "``a`b``"
    assert markdown_code_span("x|y", in_table=True) == "`x\\|y`"
    assert markdown_code_span("m\x1b[31m\nn") == "`m[31m n`"
