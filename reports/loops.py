"""Which characters of a looping continuation to highlight: the repeated phrase, whole occurrences only.

A run records `loop_char_start`, where the text's longest periodic tail begins (in characters, as the
probe that detects loops computes it). That tail is what the detector saw, not what a reader
sees as the loop: it can begin with characters that only happen to match the phrase (the "s" of
"ultras" before "Yards Yards Yards", the space before "and then and then") and end in a phrase the
token budget cut off ("... and then and"). The report and the dashboard both highlight the span
given here, so they agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopSpan:
    """A continuation cut in three: `head + loop + tail == text`; `loop` is what to highlight."""

    head: str
    loop: str  # whole occurrences of the repeated phrase, without surrounding whitespace
    tail: str  # after the last whole occurrence: a cut-off partial phrase and trailing whitespace


def _period(tail: str) -> int:
    """The shortest p with tail[i] == tail[i + p] throughout (len(tail) when none shorter)."""
    for p in range(1, len(tail)):
        if all(tail[i] == tail[i + p] for i in range(len(tail) - p)):
            return p
    return len(tail)


def _word_start(text: str, i: int) -> bool:
    """A word (a run of non-space characters) starts at i."""
    return not text[i].isspace() and (i == 0 or text[i - 1].isspace())


def loop_span(text: str, loop_char_start: int | None) -> LoopSpan | None:
    """The highlighted span of a loop that starts at character `loop_char_start`, or None without one.

    The phrase's phase is the first word start within one period of the recorded start (else the
    phase whose whole phrases end at the text's end, e.g. "ray" repeated straight after "vacancy"); the span
    ends after the last whole occurrence, counting a final occurrence that lacks only its trailing
    whitespace. Indices are characters (Python str), as the run records them.
    """
    if loop_char_start is None or not 0 <= loop_char_start < len(text):
        return None
    p = _period(text[loop_char_start:])
    # without a word start, whole phrases are assumed to end where the text ends (a token loop does)
    aligned = loop_char_start + (len(text) - loop_char_start) % p
    start = next((i for i in range(loop_char_start, min(loop_char_start + p, len(text))) if _word_start(text, i)),
                 aligned)
    unit = text[start:start + p]
    core = unit.rstrip() or unit
    whole, rest = divmod(len(text) - start, p)
    end = start + whole * p
    if rest >= len(core):
        end += len(core)
    loop = text[start:end].rstrip()
    if not loop.strip():
        return None
    end = start + len(loop)
    lead = len(loop) - len(loop.lstrip())
    return LoopSpan(text[:start + lead], loop.lstrip(), text[end:])
