"""Example generations for a report, streamed from samples/*.jsonl: the most toxic, and loops.

Rows are read one at a time (a probe can have many) and only the few examples shown are kept.
The texts are model output and stay plain strings here; escaping is the templates' job. Long
texts are clipped so one runaway generation cannot swamp the page.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from audit.store import Run
from audit.types import SampleReading
from reports.describe import full_info
from reports.loops import loop_span

PROMPT_CHARS = 240
TEXT_CHARS = 400
GENERATION = SampleReading("", "", context="prompt", text=("continuation",))  # a probe that gives no reading


@dataclass(frozen=True)
class ToxicExample:
    """One scored continuation: its toxicity, the prompt it continued and where it came from."""

    probe: str
    id: str
    group: str
    toxicity: float
    prompt: str
    text: str


@dataclass(frozen=True)
class LoopExample:
    """A generation that fell into a loop: `head`, the repeated phrases `loop` (`reports.loops`), `tail`."""

    id: str
    decoding: str  # the sample's setting, from the probe's variant field (greedy, nucleus...)
    group: str
    prompt: str
    head: str  # clipped at its start ("…" first) when long
    loop: str  # clipped at its end ("…" last) when long
    tail: str  # after the last whole repeat (a cut-off phrase), clipped at its end when long
    loop_char_start: int
    period: str  # tokens per repeat, as recorded ("—" when not)
    repeats: str

    # Markdown emphasis cannot start or end on whitespace, so the Markdown report bolds the loop's
    # core and prints the whitespace around it unmarked.
    @property
    def loop_lead(self) -> str:
        return self.loop[:len(self.loop) - len(self.loop.lstrip())]

    @property
    def loop_core(self) -> str:
        return self.loop.strip()

    @property
    def loop_trail(self) -> str:
        return self.loop[len(self.loop.rstrip()):] if self.loop.strip() else ""


def _plain(x: Any) -> str:
    score = _score(x)
    return "—" if score is None else f"{score:g}"


def clip(text: str, limit: int = TEXT_CHARS) -> str:
    """The first `limit` characters, with "…" when something was cut."""
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def clip_start(text: str, limit: int) -> str:
    """The last `limit` characters, with "…" in front when something was cut."""
    return text if len(text) <= limit else "…" + text[-limit:].lstrip()


def _score(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def scored_texts(row: Mapping[str, Any]) -> Iterator[tuple[float, str]]:
    """(toxicity, continuation) pairs of one row, in either shape a generation probe writes.

    Several samples per prompt: `continuations` and `toxicity` are parallel lists. One sample:
    `continuation` and a `toxicity` number.
    """
    tox = row.get("toxicity")
    texts = row.get("continuations")
    if isinstance(texts, list) and isinstance(tox, list):
        for t, s in zip(tox, texts):
            score = _score(t)
            if score is not None and isinstance(s, str):
                yield score, s
    elif isinstance(row.get("continuation"), str):
        score = _score(tox)
        if score is not None:
            yield score, row["continuation"]


def most_toxic(run: Run, probe: str, k: int = 5) -> tuple[ToxicExample, ...]:
    """The `k` most toxic continuations of a probe, most toxic first (empty without samples)."""
    heap: list[tuple[float, int, ToxicExample]] = []
    seen = 0
    try:
        for row in run.samples(probe):
            for score, text in scored_texts(row):
                seen += 1
                item = (score, -seen, _toxic(probe, row, score, text))  # ties: the earlier row wins
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item[:2] > heap[0][:2]:
                    heapq.heapreplace(heap, item)
    except FileNotFoundError:
        return ()
    return tuple(ex for _, _, ex in sorted(heap, key=lambda t: t[:2], reverse=True))


def _toxic(probe: str, row: Mapping[str, Any], score: float, text: str) -> ToxicExample:
    prompt = row.get("prompt")
    return ToxicExample(probe=probe, id=str(row.get("id", "")), group=str(row.get("group", "")), toxicity=score,
                        prompt=clip(prompt, PROMPT_CHARS) if isinstance(prompt, str) else "", text=clip(text))


def loop_examples(run: Run, probe: str, how: SampleReading | None = None, per_variant: int = 2,
                  side_chars: int = 200) -> tuple[LoopExample, ...]:
    """Up to `per_variant` looping generations for each setting (greedy, nucleus...), read as the probe's
    sample reading says (its text, context and variant fields; default: its description in the run).

    A row qualifies when it has `loop` true and a `loop_char_start` inside its text; the highlighted
    loop is its whole repeated phrases from there (`reports.loops.loop_span`).
    """
    how = how or full_info(probe, run.probes[probe].info).reading or GENERATION
    field = how.text[0] if how.text else GENERATION.text[0]
    found: dict[str, list[LoopExample]] = {}
    try:
        for row in run.samples(probe):
            text, start = row.get(field), row.get("loop_char_start")
            if not (row.get("loop") is True and isinstance(text, str) and isinstance(start, int)
                    and not isinstance(start, bool) and 0 <= start < len(text)):
                continue
            variant = str((row.get(how.variant) if how.variant else None) or "—")
            bucket = found.setdefault(variant, [])
            span = loop_span(text, start)
            if len(bucket) >= per_variant or span is None:
                continue
            prompt = row.get(how.context) if how.context else None
            bucket.append(LoopExample(
                id=str(row.get("id", "")), decoding=variant, group=str(row.get("group", "")),
                prompt=clip(prompt, PROMPT_CHARS) if isinstance(prompt, str) else "",
                head=clip_start(span.head, side_chars), loop=clip(span.loop, side_chars),
                tail="" if len(span.loop) > side_chars else clip(span.tail, side_chars),
                loop_char_start=start, period=_plain(row.get("loop_period")),
                repeats=_plain(row.get("loop_repeats"))))
    except FileNotFoundError:
        return ()
    return tuple(ex for bucket in found.values() for ex in bucket)
