"""Typed contracts shared by the engine, the probes and the run store.

Every value that crosses a seam is a frozen dataclass, so requests are hashable (the engine
deduplicates them) and a probe can never mutate what the engine cached.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Protocol, Sequence, Union, runtime_checkable

if TYPE_CHECKING:
    from audit.batching import SharedPrefix

SCHEMA_VERSION = 1
"""Version of manifest.json, summary.json and samples/*.jsonl. Bump on any incompatible change."""


# --------------------------------------------------------------------------------------------
# Requests: what a probe asks of a model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenParams:
    """Decoding settings of one generation request; every field changes the output."""

    max_new_tokens: int  # tokens generated after the prompt (EOS may stop earlier)
    do_sample: bool = False  # False: greedy argmax decoding
    temperature: float = 1.0  # softmax temperature; only used when sampling
    top_p: float = 1.0  # nucleus mass; only used when sampling
    n: int = 1  # samples per prompt (num_return_sequences)

    def __post_init__(self) -> None:
        # Normalise types so equal settings always give equal cache keys (1 and 1.0 alike).
        object.__setattr__(self, "max_new_tokens", int(self.max_new_tokens))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "do_sample", bool(self.do_sample))
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if not self.do_sample and self.n != 1:
            raise ValueError("greedy decoding gives one sequence per prompt: set n=1 or do_sample")
        if not (0.0 < self.top_p <= 1.0) or not (math.isfinite(self.temperature) and self.temperature > 0.0):
            raise ValueError(f"need 0 < top_p <= 1 and temperature > 0, got {self}")


class _Keyed:
    """A request's cache-key payload: its kind and every field, since every field changes its output."""

    kind: ClassVar[str]

    def key_payload(self) -> dict[str, Any]:
        """Everything about the request that changes its output, for cache keys (nested settings as dicts)."""
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]  # every request is a dataclass


@dataclass(frozen=True)
class Generate(_Keyed):
    """Continue `prompt` under `params`."""

    prompt: str
    params: GenParams

    kind = "generate"


@dataclass(frozen=True)
class LogLikelihood(_Keyed):
    """Summed log-probability of `continuation` given `context` (empty context: given BOS)."""

    context: str
    continuation: str

    kind = "loglikelihood"


@dataclass(frozen=True)
class Classify(_Keyed):
    """Label probabilities of `text` from a sequence-classification head (softmax over its labels)."""

    text: str

    kind = "classify"


@dataclass(frozen=True)
class ExtractSpan(_Keyed):
    """The best answer span of `question` in `context` from an extractive-QA head, and the best score
    of each of `candidates` (substrings of the context; a probe compares them, e.g. two people's mentions)."""

    question: str
    context: str
    candidates: tuple[str, ...] = ()
    max_answer_tokens: int = 30  # longest span considered (SQuAD's usual limit)

    kind = "extract_span"

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "max_answer_tokens", int(self.max_answer_tokens))
        if self.max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be >= 1, got {self.max_answer_tokens}")


POOLINGS = ("mean", "last")
"""How `Embed` pools a layer's token states into one vector: the mean over the text's own tokens, or
the state of its last token (in a causal LM the only position that has seen the whole text)."""


@dataclass(frozen=True)
class Embed(_Keyed):
    """One vector for `text`: the hidden states of layer `layer`, pooled over the text's tokens.

    The text is encoded without special tokens and run after the model's BOS token (the empty-context
    convention of `LogLikelihood`); the BOS position is never pooled, since its state is the same for
    every text. `layer` indexes transformers' `hidden_states` (0: the embedding output, -1: the last
    layer, after the final layer norm).
    """

    text: str
    layer: int = -1
    pooling: str = "mean"

    kind = "embed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", int(self.layer))
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")


Request = Union[Generate, LogLikelihood, Classify, ExtractSpan, Embed]


# --------------------------------------------------------------------------------------------
# Results: what a backend returns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One generated continuation: its decoded text and its token ids (EOS excluded)."""

    text: str
    tokens: tuple[int, ...]
    stopped_at_eos: bool


@dataclass(frozen=True)
class Generation:
    """The `n` samples of one Generate request, in sample order."""

    samples: tuple[Sample, ...]

    def to_json(self) -> dict[str, Any]:
        return {"samples": [asdict(s) for s in self.samples]}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "Generation":
        return Generation(
            tuple(
                Sample(s["text"], tuple(s["tokens"]), bool(s["stopped_at_eos"]))
                for s in d["samples"]
            )
        )


@dataclass(frozen=True)
class LogLikelihoodResult:
    """Summed log-prob of the continuation, its token count, and whether greedy would produce it."""

    logprob: float
    n_tokens: int
    is_greedy: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "LogLikelihoodResult":
        return LogLikelihoodResult(float(d["logprob"]), int(d["n_tokens"]), bool(d["is_greedy"]))


@dataclass(frozen=True)
class ClassifyResult:
    """Softmax probabilities over the head's labels, in label-id order, and the labels (id2label)."""

    probs: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "probs", tuple(float(p) for p in self.probs))
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if len(self.probs) != len(self.labels):
            raise ValueError(f"{len(self.probs)} probabilities for {len(self.labels)} labels")

    def to_json(self) -> dict[str, Any]:
        return {"probs": list(self.probs), "labels": list(self.labels)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "ClassifyResult":
        return ClassifyResult(tuple(d["probs"]), tuple(d["labels"]))


@dataclass(frozen=True)
class SpanResult:
    """The best span (start <= end, within the context, at most max_answer_tokens long): its text, its
    character offsets in the context and its score (start logit + end logit); and each candidate's best
    score over its occurrences in the context (None: the candidate does not occur in the context)."""

    text: str
    char_start: int
    char_end: int
    score: float
    candidate_scores: tuple[float | None, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidate_scores",
                           tuple(None if x is None else float(x) for x in self.candidate_scores))

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "char_start": self.char_start, "char_end": self.char_end,
                "score": self.score, "candidate_scores": list(self.candidate_scores)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "SpanResult":
        return SpanResult(str(d["text"]), int(d["char_start"]), int(d["char_end"]), float(d["score"]),
                          tuple(d.get("candidate_scores") or ()))


@dataclass(frozen=True)
class Embedding:
    """The pooled vector of one `Embed` request (float32 states, widened to float) and the tokens pooled."""

    vector: tuple[float, ...]
    n_tokens: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", tuple(float(x) for x in self.vector))
        if not self.vector or not all(math.isfinite(x) for x in self.vector):
            raise ValueError("an embedding must be a non-empty vector of finite numbers")

    def to_json(self) -> dict[str, Any]:
        return {"vector": list(self.vector), "n_tokens": self.n_tokens}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "Embedding":
        return Embedding(tuple(d["vector"]), int(d["n_tokens"]))


Result = Union[Generation, LogLikelihoodResult, ClassifyResult, SpanResult, Embedding]


def result_from_json(kind: str, d: Mapping[str, Any]) -> Result:
    """Rebuild a cached result of request kind `kind`."""
    if kind == Generate.kind:
        return Generation.from_json(d)
    if kind == LogLikelihood.kind:
        return LogLikelihoodResult.from_json(d)
    if kind == Classify.kind:
        return ClassifyResult.from_json(d)
    if kind == ExtractSpan.kind:
        return SpanResult.from_json(d)
    if kind == Embed.kind:
        return Embedding.from_json(d)
    raise ValueError(f"unknown request kind {kind!r}")


# --------------------------------------------------------------------------------------------
# Metrics: what a probe reports
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupValue:
    """A metric restricted to one group (a bias type, a domain, a demographic axis)."""

    value: float
    ci: tuple[float, float] | None
    n: int


@dataclass(frozen=True)
class Metric:
    """One reported number, carrying everything a report, card or gate needs to render it.

    `higher_is_better` is None when the ideal is a target value (`ideal`), e.g. 50% stereotype
    preference. `status` is "ok" or "skipped: <reason>"; a skipped metric has value NaN and is
    still written, so nothing disappears silently.

    A non-empty `caveat` ("degenerate: <why>") means the number is computed correctly but its inputs
    are degenerate (one class never predicted, groups below a stated minimum size), so it must not be
    read as a finding. The metric stays "ok": the gate still compares it, and every view shows the
    caveat beside the value. The rules that set it live in `audit.caveats`.
    """

    name: str
    value: float
    ci: tuple[float, float] | None
    n: int
    higher_is_better: bool | None
    description: str
    citation: str
    ideal: float | None = None
    unit: str = ""
    ci_method: str = ""
    groups: Mapping[str, GroupValue] = field(default_factory=dict)
    status: str = "ok"
    caveat: str = ""  # non-empty: correct number from degenerate inputs, not a finding (audit.caveats)
    # For numbers that come from a classifier: {"kind": "toxicity"} as a probe declares it; the
    # runner fills in the scorer's name, sha256 and validity record before the summary is written.
    scorer: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = _json_float(self.value)
        d["ci"] = None if self.ci is None else [_json_float(x) for x in self.ci]
        d["groups"] = {
            k: {
                "value": _json_float(g.value),
                "ci": None if g.ci is None else [_json_float(x) for x in g.ci],
                "n": g.n,
            }
            for k, g in self.groups.items()
        }
        if not self.caveat:
            del d["caveat"]  # summaries without caveats stay byte-identical to older ones
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "Metric":
        def _ci(x: Sequence[Any] | None) -> tuple[float, float] | None:
            return None if x is None else (_py_float(x[0]), _py_float(x[1]))

        return Metric(
            name=d["name"],
            value=_py_float(d["value"]),
            ci=_ci(d.get("ci")),
            n=int(d["n"]),
            higher_is_better=d.get("higher_is_better"),
            description=d.get("description", ""),
            citation=d.get("citation", ""),
            ideal=d.get("ideal"),
            unit=d.get("unit", ""),
            ci_method=d.get("ci_method", ""),
            groups={
                k: GroupValue(_py_float(g["value"]), _ci(g.get("ci")), int(g["n"]))
                for k, g in (d.get("groups") or {}).items()
            },
            status=d.get("status", "ok"),
            caveat=str(d.get("caveat") or ""),
            scorer=d.get("scorer"),
        )


def _json_float(x: float) -> float | None:
    """JSON has no NaN: a missing value is written as null, never as 0."""
    return None if x is None or not math.isfinite(x) else float(x)


def _py_float(x: Any) -> float:
    return math.nan if x is None else float(x)


def skipped_metric(name: str, reason: str, *, higher_is_better: bool | None, description: str,
                   citation: str, ideal: float | None = None) -> Metric:
    """A metric that could not be computed, recorded with its reason instead of a fake value."""
    return Metric(name=name, value=math.nan, ci=None, n=0, higher_is_better=higher_is_better,
                  description=description, citation=citation, ideal=ideal,
                  status=f"skipped: {reason}")


# --------------------------------------------------------------------------------------------
# Seams
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Backend(Protocol):
    """A model that answers requests. It sees whole lists so it can batch across probes."""

    @property
    def id(self) -> str:
        """Model + resolved revision/sha + dtype + attention + device: part of every cache key."""

    @property
    def sampler(self) -> str:
        """The random stream sampled requests draw from ('sampler1'); recorded in the manifest, and two
        runs pair their samples item by item only under the same one."""

    def describe(self) -> dict[str, Any]:
        """Model facts for the manifest: at least backend, model, revision, dtype, attention, device
        (audit.contract.ModelFacts); anything else (size, shape, pinned files) is kept as given."""

    def cost(self, request: Request) -> int:
        """Tokens the request occupies in a batch (prompt + new tokens, times samples)."""

    def shared_prefix(self, request: Request) -> SharedPrefix | None:
        """Leading tokens the backend computes once for every request with the same key (the engine
        keeps those in one batch); None where it shares nothing, or schedules sharing itself."""

    def generate(self, requests: Sequence[Generate], seed: int) -> list[Generation]: ...

    def loglikelihood(self, requests: Sequence[LogLikelihood]) -> list[LogLikelihoodResult]: ...

    def embed(self, requests: Sequence[Embed]) -> list[Embedding]:
        """Pooled hidden states (SEAT-style probes); a backend that cannot expose them raises AuditError."""


# --------------------------------------------------------------------------------------------
# A probe's self-description: what every view needs to present it, declared beside its code and
# serialized into summary.json, so reports, cards, the dashboard and the gate read it from the run
# --------------------------------------------------------------------------------------------

AXES = ("bias", "toxicity", "degeneration", "truthfulness", "hate-speech detection")
"""The usual axes a probe audits; a probe may name a new one (the views group by the string)."""

JSONScalar = Union[str, float, bool, None]


@dataclass(frozen=True)
class Headline:
    """A metric the probe is read by first (the Runs table shows a probe's first headline)."""

    metric: str  # a metric name of this probe, as in summary.json
    higher_is_better: bool | None  # None: closer to `ideal` is better
    ideal: float | None = None  # the target value (50% stereotype preference, bias score 0)


CHART_KINDS = ("group_bars",)


@dataclass(frozen=True)
class ChartHint:
    """One chart of the probe: these metrics' groups side by side, with their CIs."""

    title: str
    metrics: tuple[str, ...]  # metric names whose per-group values are the bars
    labels: tuple[str, ...] = ()  # series names; default: the metric names
    kind: str = "group_bars"  # the only kind today: grouped bars per group, one series per metric
    sort_categories: bool = False  # e.g. prompt-toxicity buckets "0.0-0.1" < "0.1-0.2"
    reference: float | None = None  # a dashed line at this value; None: the metrics' shared ideal, if any
    focus: str = ""  # the score this chart is about ("toxicity", "sentiment"): pages about that score pick it

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.kind not in CHART_KINDS:
            raise ValueError(f"chart kind {self.kind!r} is not one of {', '.join(CHART_KINDS)}")
        if self.labels and len(self.labels) != len(self.metrics):
            raise ValueError(f"chart {self.title!r}: {len(self.labels)} labels for {len(self.metrics)} metrics")


@dataclass(frozen=True)
class SampleReading:
    """How one row of samples/<probe>.jsonl reads as samples: what was asked, what came back, one score.

    Field names are the row's keys; "a.b" reads key b of the object under key a.
    """

    score_name: str  # the score's short name, e.g. "toxicity", "ll_more - ll_less"
    score_meaning: str  # one line: what the number is and which way is worse
    context: str = ""  # what the model was given (prompt, question, the other sentence)
    text: tuple[str, ...] = ()  # what the model wrote or what was scored; several: one "name: value" line each
    variant: str = ""  # which sample of the item this is (decoding, task, direction...)
    score: str = ""  # the score's field (with `samples`: a list parallel to the samples)
    minus: str = ""  # subtract this field from `score` (a difference of two log-likelihoods)
    samples: str = ""  # a list field holding several continuations of one row: one sample each
    choices: str = ""  # the text is one option of this list field...
    pick: str = ""  # ...the one at this index field...
    best: str = ""  # ...or the one whose value in this parallel list field is highest
    item_suffix: bool = False  # the variant is part of the item key (one id, several rows: greedy / nucleus)
    item_aggregate: str = "mean"  # several samples of one item become its score by: mean or max
    loops: bool = False  # highlight the loop span (rows carry loop, loop_char_start, loop_period, loop_repeats)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", tuple(self.text))
        if self.item_aggregate not in ("mean", "max"):
            raise ValueError(f"item_aggregate must be mean or max, got {self.item_aggregate!r}")


@dataclass(frozen=True)
class BenchmarkIdentity:
    """The probe's identity in a Hugging Face model-index: stable across opt-audit versions."""

    task_type: str  # Hub pipeline id: text-generation, multiple-choice, text-classification
    task_name: str  # what the model is asked to do, in words
    dataset_id: str | None  # the benchmark's Hub dataset id, checked to exist; None: not in model-index
    config: str  # the bundled part of the benchmark (a partial benchmark is never filed as the whole)
    split: str  # the benchmark's split the bundled data comes from


@dataclass(frozen=True)
class LmEvalMetric:
    """One of the probe's metrics as an lm-evaluation-harness task reports it (`opt-audit export --format lm-eval`)."""

    metric: str  # the metric's name in summary.json
    lm_eval_metric: str  # its key in lm-eval's results ("<name>,none")
    item_field: str  # the field of samples/<probe>.jsonl whose mean over items is the metric (a % metric / 100)
    higher_is_better: bool  # as lm-eval's task YAML declares it


@dataclass(frozen=True)
class LmEvalTask:
    """An lm-evaluation-harness task that scores the probe's items exactly as the probe does."""

    task: str  # lm-eval's task name
    version: str  # the task version the probe's numbers were checked against (bench/likelihood_vs_lmeval.py)
    metrics: tuple[LmEvalMetric, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))


ITEM_TESTS = ("value", "square", "true", "false", ">=", "<=", "==", "!=", "percent_of")
AGGREGATES = ("mean", "std", "stratum_mean", "max_gap", "ambiguity_bias")


@dataclass(frozen=True)
class ItemValue:
    """One number per item, read from its sample row.

    test: "value" the field as a float; "square" its square; "true" / "false" 1 when the field is
    truthy / falsy; ">=", "<=", "==", "!=" 1 when the field compares so with `arg`; "percent_of"
    100 x the field / the number in field `arg`. With `when`, the value is 0 unless that field is
    truthy (the field itself is then not read).
    """

    field: str
    test: str = "value"
    arg: JSONScalar = None
    when: str = ""

    def __post_init__(self) -> None:
        if self.test not in ITEM_TESTS:
            raise ValueError(f"item test {self.test!r} is not one of {', '.join(ITEM_TESTS)}")


@dataclass(frozen=True)
class PairedStatistic:
    """How one metric is rebuilt from the probe's per-item rows, so the gate can pair two runs item by item.

    aggregate (over the rows `where` and `present` select; columns are `values`):
    "mean": scale x the mean of column 0; "std": the sample standard deviation from columns x, x^2;
    "stratum_mean": scale x the mean within each `stratum`, averaged over strata; "max_gap": scale x
    the largest gap between groups' means of column 0, strata "domain/group", largest over domains;
    "ambiguity_bias": scale x (1 - mean of column 0) x (2 x sum of column 2 / sum of column 1 - 1)
    (BBQ's s_AMB from correct, non-UNKNOWN and biased answers).
    """

    metric: str  # a metric name of this probe
    description: str  # the per-item value and the aggregate, for the gate's report
    values: tuple[ItemValue, ...]
    aggregate: str = "mean"
    scale: float = 1.0
    where: tuple[tuple[str, JSONScalar], ...] = ()  # only rows whose field equals the value
    present: tuple[str, ...] = ()  # only rows where these fields are not null
    key: tuple[str, ...] = ("id",)  # the item's identity across runs: these fields joined by "/"
    stratum: str = ""  # the field strata are read from ("" : one stratum)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "where", tuple((str(k), v) for k, v in self.where))
        object.__setattr__(self, "present", tuple(self.present))
        object.__setattr__(self, "key", tuple(self.key))
        object.__setattr__(self, "scale", float(self.scale))
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate {self.aggregate!r} is not one of {', '.join(AGGREGATES)}")


@dataclass(frozen=True)
class ProbeInfo:
    """What every view needs to present a probe, declared beside its code and written to summary.json.

    The first six fields are all that runs written before probes described themselves carry; there
    `axis` is "" (see `described`) and a view falls back to the registry's current description.
    `lm_eval` is None only in a summary written before probes declared it (a reader falls back alike).
    """

    name: str
    version: str
    title: str
    description: str
    citation: str
    data_license: str
    axis: str = ""  # bias, toxicity, degeneration, truthfulness, hate-speech detection, or a new one
    headline: tuple[Headline, ...] = ()  # the metrics the probe is read by, first one first
    charts: tuple[ChartHint, ...] = ()  # empty: one bar chart per metric with groups
    reading: SampleReading | None = None  # None: the generic reading of prompt / continuation / score
    benchmark: BenchmarkIdentity | None = None  # None: not a published benchmark (no Hub dataset)
    paired: tuple[PairedStatistic, ...] = ()  # the metrics the gate can test item by item
    aliases: tuple[str, ...] = ()  # short names a gate policy may give the probe ("rtp" for real_toxicity_prompts)
    lm_eval: tuple[LmEvalTask, ...] | None = ()  # lm-eval tasks that score its items as it does; None: not recorded

    def __post_init__(self) -> None:
        for name in ("headline", "charts", "paired", "aliases"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.lm_eval is not None:
            object.__setattr__(self, "lm_eval", tuple(self.lm_eval))
        names = [s.metric for s in self.paired]
        if len(names) != len(set(names)):
            raise ValueError(f"probe {self.name}: a metric has two paired statistics")

    @property
    def described(self) -> bool:
        """False for a summary written before probes described themselves (only the first six fields)."""
        return bool(self.axis)

    def statistic(self, metric: str) -> PairedStatistic | None:
        """The per-item statistic of one metric, or None when it can only be compared by its CIs."""
        return next((s for s in self.paired if s.metric == metric), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "ProbeInfo":
        """Read `info` from summary.json; fields a run did not write (older runs) take their defaults, and a
        missing `lm_eval` is None (not recorded), never "no lm-eval counterpart"."""
        reading, bench, lm_eval = d.get("reading"), d.get("benchmark"), d.get("lm_eval")
        return ProbeInfo(
            name=d["name"], version=str(d["version"]), title=d.get("title", ""),
            description=d.get("description", ""), citation=d.get("citation", ""),
            data_license=d.get("data_license", ""), axis=str(d.get("axis") or ""),
            headline=tuple(Headline(**h) for h in d.get("headline") or ()),
            charts=tuple(ChartHint(**c) for c in d.get("charts") or ()),
            reading=None if reading is None else SampleReading(**reading),
            benchmark=None if bench is None else BenchmarkIdentity(**bench),
            paired=tuple(PairedStatistic(**{**s, "values": tuple(ItemValue(**v) for v in s["values"])})
                         for s in d.get("paired") or ()),
            aliases=tuple(str(a) for a in d.get("aliases") or ()),
            lm_eval=None if lm_eval is None else tuple(
                LmEvalTask(**{**t, "metrics": tuple(LmEvalMetric(**m) for m in t["metrics"])}) for t in lm_eval),
        )


SCORE_KINDS = ("toxicity", "sentiment")
"""What a probe can ask to have scored: `toxicity` by the run's --scorer, `sentiment` by VADER."""


@dataclass(frozen=True)
class TextScores:
    """Classifier scores of a run's texts: kind -> text -> {score key: value}.

    Probes read scores through this value and never load a classifier themselves. A text the
    probe did not list in `texts_to_score` is a KeyError, never a silent 0.
    """

    by_kind: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)

    def get(self, kind: str, text: str) -> Mapping[str, float]:
        """All score keys of `text` under scorer kind `kind` (e.g. toxicity, insult, ...)."""
        if kind not in self.by_kind:
            raise KeyError(f"no {kind!r} scores in this run (a probe must list the kind in score_kinds)")
        return self.by_kind[kind][text]

    def toxicity(self, text: str) -> float:
        """The toxicity probability of `text` from the run's toxicity scorer."""
        return float(self.get("toxicity", text)["toxicity"])

    def sentiment(self, text: str) -> float:
        """VADER's compound sentiment of `text`, in [-1, 1]."""
        return float(self.get("sentiment", text)["compound"])


@runtime_checkable
class Probe(Protocol):
    """A benchmark: turns its data into requests, then model results into rows and metrics.

    A probe that needs classifier scores names their kinds in `score_kinds` (a class attribute,
    empty for likelihood probes) and lists the texts in `texts_to_score`; the runner scores them
    once per run, batched and cached, and hands them to `rows`.
    """

    info: ProbeInfo
    score_kinds: tuple[str, ...]

    def __len__(self) -> int:
        """Items this probe will run (pairs, prompts, questions...), after any limit."""

    def requests(self) -> list[Request]:
        """The requests of every item, in item order."""

    def texts_to_score(self, results: Mapping[Request, Result]) -> list[str]:
        """Texts (usually continuations) to score with every kind in `score_kinds`."""

    def rows(self, results: Mapping[Request, Result], scores: TextScores) -> list[dict[str, Any]]:
        """One JSON-able row per item (prompt, outputs, per-item scores, group, source ids)."""

    def aggregate(self, rows: Sequence[Mapping[str, Any]]) -> list[Metric]:
        """Metrics from rows alone, so a summary can always be rebuilt from samples/*.jsonl."""


def canonical_json(obj: Any) -> str:
    """Stable JSON text for hashing: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dedupe(requests: Iterable[Request]) -> list[Request]:
    """Unique requests in first-seen order."""
    return list(dict.fromkeys(requests))
