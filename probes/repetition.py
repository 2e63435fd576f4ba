"""Repetition: does decoding degenerate into loops on neutral prompts, and how much does sampling help?

Prompts are the beginnings of Wikipedia sentences from BOLD (Dhamala et al. 2021), a fixed
sample of 20 per domain. Each is continued for 64 tokens twice, greedily and with nucleus
sampling, and measured with seq-rep-n (Welleck et al. 2019), distinct-n (Li et al. 2016) and a
loop detector in the manner of Holtzman et al. (2020). See `probes.repetition_stats` for the
definitions. The OPT paper (Zhang et al. 2022, §5 Limitations) documents that OPT-175B "can
get stuck in a loop" under greedy decoding; the paired greedy-minus-nucleus loop rate shows how
far sampling reduces it on the same prompts.

Loops are reported by kind as well as together. A single token repeated (period 1) is stutter
that a random-weight model shows on almost every greedy prompt; a repeated phrase (period >= 2)
is the degeneration of a trained model stuck on its own sentence. `loop_rate` counts both, so a
model that swaps stutter for phrase loops looks no worse on it: `phrase_loop_rate` (and the gate's
rule on it) is the number that catches that. Every row records its loop's kind, onset (the token
where the periodic tail starts) and period.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from audit.errors import AuditError
from audit.metrics import mean_metric, proportion_metric
from audit.types import (BenchmarkIdentity, ChartHint, GenParams, Generate, Generation, GroupValue, Headline, ItemValue,
                         Metric, PairedStatistic, ProbeInfo, Request, Result, SampleReading, TextScores, skipped_metric)
from probes.answers import OutputsOnly
from probes.loading import ProbeConfig, bundled, data_paths, fixed_subset, read_json, sha256_text
from probes.repetition_stats import (MAX_PERIOD, MIN_REPEATS, PHRASE_LOOP, TOKEN_LOOP, detect_loop, distinct_n,
                                     distinct_n_jackknife_ci, loop_char_start, seq_rep_n)

WELLECK = ("Sean Welleck, Ilia Kulikov, Stephen Roller, Emily Dinan, Kyunghyun Cho, Jason Weston. "
           "Neural Text Generation with Unlikelihood Training. ICLR 2020 (arXiv:1908.04319, 2019).")
LI = ("Jiwei Li, Michel Galley, Chris Brockett, Jianfeng Gao, Bill Dolan. A Diversity-Promoting "
      "Objective Function for Neural Conversation Models. NAACL 2016.")
HOLTZMAN = ("Ari Holtzman, Jan Buys, Li Du, Maxwell Forbes, Yejin Choi. The Curious Case of Neural Text "
            "Degeneration. ICLR 2020 (arXiv:1904.09751, 2019).")
BOLD = ("Jwala Dhamala, Tony Sun, Varun Kumar, Satyapriya Krishna, Yada Pruksachatkun, Kai-Wei Chang, "
        "Rahul Gupta. BOLD: Dataset and Metrics for Measuring Biases in Open-Ended Language "
        "Generation. FAccT 2021.")

def _paired(decoding: str) -> tuple[PairedStatistic, ...]:
    """The gate's per-prompt statistics of one decoding's metrics (greedy: no suffix)."""
    suffix = "" if decoding == "greedy" else f"_{decoding}"
    only = (("decoding", decoding),)
    loops = (("loop_rate", ItemValue("loop", "true"), "ends in a loop (either kind)"),
             ("token_loop_rate", ItemValue("loop_period", "==", 1, when="loop"),
              "ends in one token repeated (period 1)"),
             ("phrase_loop_rate", ItemValue("loop_period", "!=", 1, when="loop"),
              "ends in a repeated phrase (period >= 2)"))
    stats = [PairedStatistic(f"{name}{suffix}", f"per prompt: 1 if the {decoding} continuation {what}; metric: "
                             "100 x the mean", (value,), scale=100.0, where=only) for name, value, what in loops]
    stats.append(PairedStatistic(f"empty_rate{suffix}", f"per prompt: 1 if the {decoding} continuation is empty; "
                                 "metric: 100 x the mean", (ItemValue("n_tokens", "==", 0),), scale=100.0, where=only))
    stats += [PairedStatistic(f"seq_rep_{n}{suffix}", f"per prompt with >= {n} tokens: seq-rep-{n} of the {decoding} "
                              "continuation; metric: the mean", (ItemValue(f"seq_rep_{n}"),), where=only,
                              present=(f"seq_rep_{n}",)) for n in range(1, 5)]
    return tuple(stats)


INFO = ProbeInfo(
    name="repetition",
    # 3: rows record the loop's kind (token / phrase) and the metrics report each kind separately
    version="3",
    title="Repetition and degeneration",
    description=("Greedy and nucleus-sampled 64-token continuations of 100 neutral Wikipedia sentence "
                 "beginnings (BOLD, 20 per domain): how often generation ends in a repetition loop (a "
                 "single repeated token, or a repeated multi-token phrase), how repetitive and diverse the "
                 "text is, and how far sampling reduces loops."),
    citation=f"{HOLTZMAN} {WELLECK} {LI} Prompts: {BOLD}",
    data_license="CC BY-SA 4.0 (BOLD prompts)",
    axis="degeneration",
    headline=(Headline("phrase_loop_rate", False), Headline("loop_rate", False)),
    charts=(ChartHint("Loop rate per domain: greedy vs nucleus sampling", ("loop_rate", "loop_rate_nucleus"),
                      ("greedy", "nucleus")),),
    reading=SampleReading("seq_rep_4", "share of repeated 4-grams in the continuation (0-1, higher loops more)",
                          context="prompt", text=("continuation",), variant="decoding", score="seq_rep_4",
                          item_suffix=True, loops=True),
    benchmark=BenchmarkIdentity("text-generation", "Repetition and degeneration in long continuations", None,
                                "bold-prompts", "all"),  # opt-audit's own test: no published benchmark
    paired=(*_paired("greedy"), *_paired("nucleus")),
)

DOMAINS = ("gender", "political_ideology", "profession", "race", "religious_ideology")
PER_DOMAIN = 20
QUICK_LIMIT = 20  # prompts in the quick suite (x 2 decodings)
# Seeds the fixed prompt sample. Kept at the version that first drew it, so a new probe version that
# only changes how continuations are measured audits the same 100 prompts.
SAMPLE_KEY = "repetition/2"
# Greedy because it is the decoding that loops most (Holtzman et al. 2020, Fig. 1) and it is
# deterministic, so two runs compare item by item; 64 tokens leaves room for a loop to show.
GREEDY = GenParams(max_new_tokens=64, do_sample=False)
# Nucleus p = 0.95, temperature 1: the setting Holtzman et al. (2020, Table 1) recommend, which
# "avoids repetition" while staying close to human text; same prompts and length as greedy.
NUCLEUS = GenParams(max_new_tokens=64, do_sample=True, top_p=0.95, temperature=1.0)
DECODINGS: dict[str, GenParams] = {"greedy": GREEDY, "nucleus": NUCLEUS}


@dataclass(frozen=True)
class Prompt:
    id: str
    domain: str
    group: str
    prompt: str


def load_prompts(paths: Sequence[Path]) -> list[Prompt]:
    """All prompts of BOLD-format files ({group: {entity: [prompt, ...]}}), domain = file stem."""
    prompts = []
    for path in paths:
        data = read_json(path)
        domain = path.stem.removesuffix("_prompt")
        if not isinstance(data, dict):
            raise AuditError(f"{path}: expected an object {{group: {{entity: [prompt, ...]}}}}")
        for group in sorted(data):
            entities = data[group]
            if not isinstance(entities, dict):
                raise AuditError(f"{path}: group {group!r} should map entity names to prompt lists")
            for entity in sorted(entities):
                texts = entities[entity]
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise AuditError(f"{path}: {group}/{entity} should be a list of prompt strings")
                for k, text in enumerate(texts):
                    if text.strip():
                        prompts.append(Prompt(f"{domain}/{group}/{entity}/{k}", domain, group, text))
    if not prompts:
        raise AuditError(f"no prompts in {', '.join(map(str, paths))}")
    return prompts


def sample_per_domain(prompts: Sequence[Prompt], per_domain: int) -> list[Prompt]:
    """A fixed sample of `per_domain` prompts from each domain (seeded by the probe version)."""
    chosen = []
    for domain in sorted({p.domain for p in prompts}):
        members = [p for p in prompts if p.domain == domain]
        idx = fixed_subset(len(members), per_domain, f"{SAMPLE_KEY}/{domain}")
        chosen.extend(members[i] for i in idx)
    return chosen


class Repetition(OutputsOnly):
    """The repetition / degeneration probe."""

    info = INFO

    def __init__(self, config: ProbeConfig = ProbeConfig()) -> None:
        paths = data_paths(config.data, [bundled("bold", "prompts", f"{d}_prompt.json") for d in DOMAINS],
                           "*.json")
        prompts = sample_per_domain(load_prompts(paths), PER_DOMAIN)
        keep = fixed_subset(len(prompts), config.limit, SAMPLE_KEY)
        self.prompts = [prompts[i] for i in keep]
        self.data_sha256 = {p.name: sha256_text(p) for p in paths}

    def __len__(self) -> int:
        return len(self.prompts)

    def requests(self) -> list[Request]:
        return [Generate(p.prompt, params) for params in DECODINGS.values() for p in self.prompts]

    def rows(self, results: Mapping[Request, Result], scores: TextScores) -> list[dict[str, Any]]:
        rows = []
        for decoding, params in DECODINGS.items():
            for p in self.prompts:
                gen = results[Generate(p.prompt, params)]
                assert isinstance(gen, Generation)
                rows.append(_row(p, decoding, gen))
        return rows

    def aggregate(self, rows: Sequence[Mapping[str, Any]]) -> list[Metric]:
        """The greedy metrics (unsuffixed), the same for nucleus sampling (`_nucleus`), and the paired
        loop-rate reductions (any loop, phrase loops)."""
        by = {d: [r for r in rows if r["decoding"] == d] for d in DECODINGS}
        return [*_decoding_metrics(by["greedy"], "greedy", ""),
                *_decoding_metrics(by["nucleus"], "nucleus", "_nucleus"),
                _loop_reduction(by["greedy"], by["nucleus"], "loop"),
                _loop_reduction(by["greedy"], by["nucleus"], "phrase_loop")]


def _row(p: Prompt, decoding: str, gen: Generation) -> dict[str, Any]:
    sample = gen.samples[0]
    tokens = list(sample.tokens)
    loop = detect_loop(tokens)
    return {
        "id": p.id, "decoding": decoding, "group": p.domain, "subgroup": p.group, "prompt": p.prompt,
        "continuation": sample.text, "tokens": tokens, "n_tokens": len(tokens),
        "stopped_at_eos": sample.stopped_at_eos,
        **{f"seq_rep_{n}": seq_rep_n(tokens, n) for n in range(1, 5)},
        "loop": loop is not None,  # any loop, either kind
        "loop_kind": loop.kind if loop else None,  # "token" (period 1) or "phrase" (period >= 2)
        "token_loop": loop is not None and loop.kind == TOKEN_LOOP,
        "phrase_loop": loop is not None and loop.kind == PHRASE_LOOP,
        "loop_period": loop.period if loop else None,
        "loop_start": loop.start if loop else None,  # onset: the token index where the loop begins
        "loop_repeats": loop.repeats if loop else None,
        # where the loop starts in `continuation`, for highlighting (None when there is no loop)
        "loop_char_start": loop_char_start(sample.text) if loop else None,
    }


def loop_kind(row: Mapping[str, Any]) -> str | None:
    """TOKEN_LOOP, PHRASE_LOOP or None, from a row's `loop` and `loop_period`: the period decides, so
    rows written before `loop_kind` existed (probe version 2) are read the same way."""
    if not row["loop"]:
        return None
    return TOKEN_LOOP if row["loop_period"] == 1 else PHRASE_LOOP


def _decoding_metrics(rows: Sequence[Mapping[str, Any]], decoding: str, suffix: str) -> list[Metric]:
    """Loop rates (any, single-token, phrase), loop onsets and period, empty rate, seq-rep-1..4 and
    distinct-1/2 of one decoding's continuations."""
    groups = [r["group"] for r in rows]
    tail = f"repeated at least {MIN_REPEATS} times in a row"
    metrics = [
        proportion_metric(f"loop_rate{suffix}", [bool(r["loop"]) for r in rows], groups,
                          higher_is_better=False, unit="%", scale=100.0, citation=HOLTZMAN,
                          description=f"Percentage of {decoding} continuations whose tail is one phrase of at "
                                      f"most {MAX_PERIOD} tokens {tail}: either kind of loop, a single token "
                                      "(see token_loop_rate) or a multi-token phrase (see phrase_loop_rate)."),
        proportion_metric(f"token_loop_rate{suffix}", [loop_kind(r) == TOKEN_LOOP for r in rows], groups,
                          higher_is_better=False, unit="%", scale=100.0, citation=HOLTZMAN,
                          description=f"Percentage of {decoding} continuations whose tail is a single token "
                                      f"{tail} (period 1: stutter such as 'play play play', which even a "
                                      "random-weight model shows)."),
        proportion_metric(f"phrase_loop_rate{suffix}", [loop_kind(r) == PHRASE_LOOP for r in rows], groups,
                          higher_is_better=False, unit="%", scale=100.0, citation=HOLTZMAN,
                          description=f"Percentage of {decoding} continuations whose tail is a phrase of 2 to "
                                      f"{MAX_PERIOD} tokens {tail} (the degeneration loop of Holtzman et al. "
                                      "2020, a model copying its own sentence)."),
        _onset_metric(rows, TOKEN_LOOP, decoding, suffix),
        _onset_metric(rows, PHRASE_LOOP, decoding, suffix),
        _period_metric(rows, decoding, suffix),
        proportion_metric(f"empty_rate{suffix}", [r["n_tokens"] == 0 for r in rows], groups,
                          higher_is_better=False, unit="%", scale=100.0, citation=HOLTZMAN,
                          description=f"Percentage of {decoding} continuations with no tokens before EOS "
                                      "(scored, not dropped; they have no n-grams, so seq-rep-n leaves them out)."),
    ]
    for n in range(1, 5):
        keep = [r for r in rows if r[f"seq_rep_{n}"] is not None]
        metrics.append(mean_metric(
            f"seq_rep_{n}{suffix}", [float(r[f"seq_rep_{n}"]) for r in keep], [r["group"] for r in keep],
            higher_is_better=False, citation=WELLECK,
            description=f"seq-rep-{n} of {decoding} continuations: mean of 1 - unique {n}-grams / {n}-grams "
                        f"(continuations shorter than {n} tokens are left out)."))
    for n in (1, 2):
        metrics.append(_distinct_metric(rows, n, decoding, suffix))
    return metrics


def _onset_metric(rows: Sequence[Mapping[str, Any]], kind: str, decoding: str, suffix: str) -> Metric:
    """Mean onset (token index where the loop begins) of the continuations that end in a `kind` loop.

    Read beside the rate: it describes the loops there are, so it has no better direction (fewer,
    later loops can lower it as well as raise it).
    """
    name = f"{kind}_loop_onset{suffix}"
    what = "a single repeated token" if kind == TOKEN_LOOP else "a repeated phrase"
    desc = (f"Mean onset of the loops of {decoding} continuations that end in {what}: the index of the "
            "generated token where the repeating tail begins (0 = the loop starts at once). Only looping "
            "continuations count.")
    keep = [r for r in rows if loop_kind(r) == kind]
    if not keep:
        return skipped_metric(name, f"no {decoding} continuation ends in {what}", higher_is_better=None,
                              description=desc, citation=HOLTZMAN)
    return mean_metric(name, [float(r["loop_start"]) for r in keep], [r["group"] for r in keep],
                       higher_is_better=None, unit="tokens", citation=HOLTZMAN, description=desc)


def _period_metric(rows: Sequence[Mapping[str, Any]], decoding: str, suffix: str) -> Metric:
    """Mean period (phrase length in tokens) of the phrase loops; a token loop's period is always 1."""
    name = f"phrase_loop_period{suffix}"
    desc = (f"Mean length in tokens of the repeated phrase, over the {decoding} continuations that end in a "
            f"phrase loop (2 to {MAX_PERIOD}; the shortest phrase whose repetition explains the tail).")
    keep = [r for r in rows if loop_kind(r) == PHRASE_LOOP]
    if not keep:
        return skipped_metric(name, f"no {decoding} continuation ends in a repeated phrase",
                              higher_is_better=None, description=desc, citation=HOLTZMAN)
    return mean_metric(name, [float(r["loop_period"]) for r in keep], [r["group"] for r in keep],
                       higher_is_better=None, unit="tokens", citation=HOLTZMAN, description=desc)


def _loop_reduction(greedy: Sequence[Mapping[str, Any]], nucleus: Sequence[Mapping[str, Any]], field: str) -> Metric:
    """Greedy minus nucleus rate of the row flag `field` ("loop" or "phrase_loop") on the same prompts,
    with a paired bootstrap CI."""
    name = "loop_rate_reduction" if field == "loop" else f"{field}_rate_reduction"
    what = "Loop rate" if field == "loop" else "Phrase-loop rate (period >= 2)"
    desc = (f"{what} under greedy decoding minus the same under nucleus sampling (p=0.95) on the same "
            "prompts, in percentage points: how far sampling reduces loops. Positive = sampling helps.")
    def looped(r: Mapping[str, Any]) -> bool:
        return bool(r["loop"]) if field == "loop" else loop_kind(r) == PHRASE_LOOP

    sampled = {r["id"]: looped(r) for r in nucleus}
    pairs = [(r["group"], float(looped(r)) - float(sampled[r["id"]])) for r in greedy if r["id"] in sampled]
    if not pairs:
        return skipped_metric(name, "no prompt has both decodings", higher_is_better=None,
                              description=desc, citation=HOLTZMAN)
    diffs = [d for _, d in pairs]
    return mean_metric(name, diffs, [g for g, _ in pairs], higher_is_better=None,
                       unit="points", scale=100.0, citation=HOLTZMAN, description=desc)


def _distinct_metric(rows: Sequence[Mapping[str, Any]], n: int, decoding: str, suffix: str) -> Metric:
    desc = (f"distinct-{n} (Li et al. 2016, corpus level): distinct {n}-grams across all {decoding} "
            "continuations divided by the total number of generated tokens.")
    corpus = [r["tokens"] for r in rows]
    value = distinct_n(corpus, n)
    if value is None:
        return skipped_metric(f"distinct_{n}{suffix}", "no tokens were generated", higher_is_better=True,
                              description=desc, citation=LI)
    by_group: dict[str, list[list[int]]] = {}
    for r in rows:
        by_group.setdefault(r["group"], []).append(r["tokens"])
    groups = {}
    for g in sorted(by_group):
        v = distinct_n(by_group[g], n)
        groups[g] = GroupValue(float("nan") if v is None else v,
                               distinct_n_jackknife_ci(by_group[g], n), len(by_group[g]))
    return Metric(name=f"distinct_{n}{suffix}", value=value, ci=distinct_n_jackknife_ci(corpus, n),
                  n=len(rows), higher_is_better=True, description=desc, citation=LI,
                  ci_method="leave-one-continuation-out jackknife, normal approximation (95%)",
                  groups=groups)

