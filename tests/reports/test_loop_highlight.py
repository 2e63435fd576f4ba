"""The loop highlight covers exactly the repeated phrase the reader sees, in characters.

Rows are real: built by the repetition probe's own row function from text the real OPT tokenizer
encodes (so `loop_char_start` is what a run writes), with multi-byte characters before the loop.
"""

from __future__ import annotations

import re

import pytest

# (continuation, the repeated phrase's occurrences the highlight must cover, worked out by hand)
CASES = [
    # " and then" x4 then a cut-off " and": the tail after the last whole occurrence is not the loop;
    # the char-periodic suffix starts at the space after "café" (character 4, byte 5)
    ("café and then and then and then and then and", "and then and then and then and then"),
    # "s Yards Yards Yards" is periodic with period 6 (the "s" of "ultras" matches the "s" of
    # "Yards"), but the reader sees "Yards" three times, not "s Yards"
    ("Le café était ultras Yards Yards Yards", "Yards Yards Yards"),
    # a whole-phrase loop straight after a multi-byte word
    ("naïve résumé: the end the end the end the end", "the end the end the end the end"),
]


def _row(text: str) -> dict:
    from audit.tiny import load_opt_tokenizer
    from audit.types import Generation, Sample
    from probes.repetition import _row as repetition_row

    tok = load_opt_tokenizer()
    tokens = tuple(tok.encode(text, add_special_tokens=False))
    assert tok.decode(list(tokens)) == text
    gen = Generation((Sample(text, tokens, False),))
    return repetition_row(_prompt(), "greedy", gen)


def _prompt():
    import probes.repetition as rep

    return rep.Prompt(id="p1", domain="gender", group="actresses", prompt="Once upon a time")


@pytest.mark.parametrize(("text", "phrase"), CASES)
def test_report_marks_exactly_the_repeated_phrases(text: str, phrase: str, tmp_path) -> None:
    from audit.store import load_run, write_samples
    from report_fixtures import build_run
    from reports.examples import loop_examples

    row = _row(text)
    assert row["loop"] is True
    run_dir = build_run(tmp_path / "run")
    write_samples(run_dir, "repetition", [row])
    ex, = loop_examples(load_run(run_dir), "repetition")
    assert ex.loop == phrase
    assert ex.head + ex.loop + ex.tail == text


@pytest.mark.parametrize(("text", "phrase"), CASES)
def test_dashboard_highlights_exactly_the_repeated_phrases(text: str, phrase: str) -> None:
    from dashboards.text import LOOP_COLOUR, loop_markdown

    row = _row(text)
    md = loop_markdown(row["continuation"], row["loop_char_start"])
    spans = re.findall(rf":{LOOP_COLOUR}-background\[(.*?)\](?!\\)", md)
    assert len(spans) == 1
    assert re.sub(r"\\(.)", r"\1", spans[0]) == phrase
