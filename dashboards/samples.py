"""Every probe's sample rows as one table: what was asked, what came back, and one score.

Probes write rows in their own shapes (`samples/<probe>.jsonl`): a toxicity probe may keep 25
continuations per prompt, a sentence-pair probe two sentences and their log-likelihoods, a
degeneration probe one greedy and one nucleus continuation per prompt. To search and filter across
probes, each row is read into the same columns:

    probe     the probe name
    item      the item key: the row's id, plus the decoding or task when one id has several rows
              (greedy and nucleus); two runs are paired on (probe, item)
    id        the row's own id, as in the source data
    group     the row's group (bias type, domain, target group...), as its metrics group it
    variant   which sample of the item this is ("sample 3", "greedy", "intrasentence"...)
    context   what the model was given (prompt, question, context), or the other sentence
    text      what the model wrote, or the sentence that was scored
    score     one number per sample, named in score_name (see SCORES); NaN when the row has none
    score_name

Which fields make these columns is the probe's own word: the sample reading of its
self-description (`audit.types.SampleReading`, in summary.json). Rows of a probe whose reading
highlights loops also keep `loop`, `loop_char_start`, `loop_period` and `loop_repeats`, so the
degeneration page can highlight where a loop starts. A probe without a reading gets a generic one
(prompt or context, continuation or text, and a `score` or `toxicity` number). This module knows no
probe by name. Texts stay plain strings: escaping is the page's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple

import pandas as pd

from audit.types import ProbeInfo, SampleReading
from reports.describe import full_info, registered_info

COLUMNS = ("probe", "item", "id", "group", "variant", "context", "text", "score", "score_name")
LOOP_COLUMNS = ("loop", "loop_char_start", "loop_period", "loop_repeats")


class SampleRow(NamedTuple):
    """One sample of an item, in the shared columns (before the probe, id and group are added).

    A NamedTuple rather than a frozen dataclass: a large run makes hundreds of thousands of them.
    """

    variant: str
    context: str
    text: str
    score: float | None
    item_suffix: str = ""  # added to the id when one id has several rows (greedy / nucleus)


@dataclass(frozen=True)
class Reading:
    """How one probe's rows read as samples: the score's name and meaning, and the extractor."""

    score_name: str
    score_meaning: str  # one line for the pages: what the number is and which way is worse
    extract: Callable[[Mapping[str, Any]], Iterator[SampleRow]]
    item_aggregate: str = "mean"  # how several samples of one item become the item's score: mean or max
    loops: bool = False  # rows may carry loop fields (a probe whose reading says so, or an unknown probe)


def number(x: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, bools, strings)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _text(x: Any) -> str:
    return x if isinstance(x, str) else ("" if x is None else str(x))


def _diff(a: Any, b: Any) -> float | None:
    a, b = number(a), number(b)
    return None if a is None or b is None else a - b


def _field(row: Mapping[str, Any], path: str) -> Any:
    """The value at `path` ("a.b": key b of the object under key a); None where the path is absent."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _score(x: Any) -> float | None:
    """A score: a finite number, or 1 / 0 for a yes/no field (an answer's `correct`)."""
    return float(x) if isinstance(x, bool) else number(x)


def _chosen(row: Mapping[str, Any], how: SampleReading) -> str:
    """The option of `how.choices` at index `how.pick`, or the one highest in the parallel list `how.best`."""
    options = row.get(how.choices)
    if not isinstance(options, list):
        return ""
    if how.pick:
        i = row.get(how.pick)
        return _text(options[i]) if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(options) else ""
    values = row.get(how.best)
    if not options or not isinstance(values, list) or len(values) != len(options):
        return ""
    top = max(((number(v), i) for i, v in enumerate(values) if number(v) is not None), default=None)
    return _text(options[top[1]]) if top else ""


def _extractor(how: SampleReading) -> Callable[[Mapping[str, Any]], Iterator[SampleRow]]:
    """The samples of one row, read as a probe's description says (`audit.types.SampleReading`)."""
    def text_of(row: Mapping[str, Any]) -> str:
        if how.choices:
            return _chosen(row, how)
        if len(how.text) == 1:
            return _text(_field(row, how.text[0]))
        return "\n".join(f"{k.replace('_', '-')}: {_text(_field(row, k))}" for k in how.text)

    def score_of(row: Mapping[str, Any]) -> float | None:
        if not how.score:
            return None
        if how.minus:
            return _diff(_field(row, how.score), _field(row, how.minus))
        return _score(_field(row, how.score))

    def extract(row: Mapping[str, Any]) -> Iterator[SampleRow]:
        context = _text(_field(row, how.context)) if how.context else ""
        if how.samples:  # several continuations per row, with a parallel list of scores
            texts = row.get(how.samples) or []
            scores = row.get(how.score)
            scores = scores if isinstance(scores, list) else []
            for i, text in enumerate(texts if isinstance(texts, list) else []):
                yield SampleRow(f"sample {i + 1}", context, _text(text), number(scores[i]) if i < len(scores) else None)
            return
        variant = _text(_field(row, how.variant)) if how.variant else ""
        yield SampleRow(variant, context, text_of(row), score_of(row), item_suffix=variant if how.item_suffix else "")

    return extract


def _many_continuations(row: Mapping[str, Any]) -> Iterator[SampleRow]:
    """Several sampled continuations per prompt, with a parallel `toxicity` list."""
    texts = row.get("continuations") or []
    tox = row.get("toxicity")
    tox = tox if isinstance(tox, list) else []
    for i, text in enumerate(texts if isinstance(texts, list) else []):
        yield SampleRow(f"sample {i + 1}", _text(row.get("prompt")), _text(text),
                        number(tox[i]) if i < len(tox) else None)


def _generic(row: Mapping[str, Any]) -> Iterator[SampleRow]:
    """A probe that does not say how to read its rows: its prompt/context and continuation/text, and a score."""
    if isinstance(row.get("continuations"), list):
        yield from _many_continuations(row)
        return
    context = row.get("prompt", row.get("context", row.get("question", "")))
    text = row.get("continuation", row.get("text", row.get("comment", "")))
    score = number(row.get("score"))
    yield SampleRow("", _text(context), _text(text), score if score is not None else number(row.get("toxicity")))


GENERIC = Reading("score", "the row's score or toxicity field", _generic, loops=True)
TOXICITY = "toxicity"  # the score name of probes whose samples are continuations scored for toxicity


def reading(probe: str, info: ProbeInfo | None = None) -> Reading:
    """How `probe`'s rows read as samples: as its description says (`info`, from the run; for a run
    written before probes described themselves, the registered description of that name), else the
    generic reading."""
    info = full_info(probe, info) if info is not None else registered_info(probe)
    how = info.reading if info is not None else None
    if how is None:
        return GENERIC
    return Reading(how.score_name, how.score_meaning, _extractor(how), how.item_aggregate, how.loops)


def sample_frame(probe: str, rows: Iterable[Mapping[str, Any]], info: ProbeInfo | None = None) -> pd.DataFrame:
    """The rows of one probe as a table in `COLUMNS` (plus `LOOP_COLUMNS` when its reading highlights loops).

    `info` is the probe's description from the run (see `reading`). A row that is not a JSON object
    raises ValueError naming it (the caller names the file).
    """
    how = reading(probe, info)
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS if c not in ("probe", "score_name")}
    loops: dict[str, list[Any]] = {c: [] for c in LOOP_COLUMNS}
    has_loops = False
    item, ids, groups, variants = cols["item"], cols["id"], cols["group"], cols["variant"]
    contexts, texts, scores = cols["context"], cols["text"], cols["score"]
    for row_no, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {row_no} is a JSON {type(row).__name__}, not an object")
        rid, group = _text(row.get("id")), _text(row.get("group"))
        for s in how.extract(row):
            item.append(f"{rid} · {s.item_suffix}" if s.item_suffix else rid)
            ids.append(rid)
            groups.append(group)
            variants.append(s.variant)
            contexts.append(s.context)
            texts.append(s.text)
            scores.append(math.nan if s.score is None else s.score)
            if how.loops:
                loop = row.get("loop")
                has_loops = has_loops or isinstance(loop, bool)
                loops["loop"].append(loop if isinstance(loop, bool) else None)
                start = row.get("loop_char_start")
                loops["loop_char_start"].append(
                    start if isinstance(start, int) and not isinstance(start, bool) else None)
                loops["loop_period"].append(number(row.get("loop_period")))
                loops["loop_repeats"].append(number(row.get("loop_repeats")))
    n = len(cols["item"])
    frame = pd.DataFrame({"probe": pd.Series([probe] * n, dtype="str"), **{
        c: pd.Series(v, dtype="float64" if c == "score" else "str") for c, v in cols.items()}})
    frame["score_name"] = pd.Series([how.score_name] * n, dtype="str")
    if has_loops:
        frame["loop"] = pd.Series(loops["loop"], dtype="boolean")
        frame["loop_char_start"] = pd.Series(loops["loop_char_start"], dtype="Int64")
        frame["loop_period"] = pd.Series(loops["loop_period"], dtype="float64")
        frame["loop_repeats"] = pd.Series(loops["loop_repeats"], dtype="float64")
    return frame


def empty_frame() -> pd.DataFrame:
    """A table with the shared columns and no rows."""
    return sample_frame("", [])


def item_scores(frame: pd.DataFrame, probe: str, info: ProbeInfo | None = None) -> pd.Series:
    """One score per item of one probe (index: item), for pairing two runs item by item.

    Several samples of one item are combined as the probe's reading says (`item_aggregate`): the
    highest toxicity of a prompt's continuations for an expected-maximum probe, else their mean;
    most probes have one sample per item. Items without any score are left out.
    """
    rows = frame[frame["probe"] == probe]
    scores = rows.groupby("item", sort=False)["score"]
    out = scores.max() if reading(probe, info).item_aggregate == "max" else scores.mean()
    return out.dropna()
