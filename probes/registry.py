"""Short registry names for probes and suites (no dotted-path wiring).

A suite is a plain value: which probes, and how many items of each. `quick` takes each probe's
`QUICK_LIMIT` (a fixed seeded subset sized so the whole suite runs in minutes on a laptop CPU);
`ci` takes the item counts in `CI_LIMITS`, sized for the gate's power (see `CI_LIMITS`);
`standard` and `opt-paper` run the full bundled data. A user `--limit` caps any suite further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

from audit.errors import AuditError
from audit.types import Probe, ProbeInfo
from probes import (bbq, bold, counterfactual_classifier, crows_pairs, custom_prompts, ethos, holistic_bias,
                    qa_bias, real_toxicity_prompts, repetition, seat, stereoset, toxigen, truthfulqa, winobias)
from probes.loading import ProbeConfig
from probes.opt_paper import REFERENCES, ReferenceRow


@dataclass(frozen=True)
class UserData:
    """How a probe that runs only on the user's own file gets it from `opt-audit run`."""

    option: str  # the run option that names the file: "--prompts"
    holds: str  # what the file holds, in messages: "prompts"
    example: str = "FILE.jsonl"  # the option's argument, in messages

    def missing(self, probe: str) -> str:
        """The one-line error of a run that selects the probe without its file."""
        return f"the {probe} probe needs your {self.holds}: pass {self.option} {self.example}"


@dataclass(frozen=True)
class ProbeEntry:
    info: ProbeInfo
    build: Callable[[ProbeConfig], Probe]
    quick_limit: int  # items in the `quick` suite
    user_data: UserData | None = None  # set: runs only on the user's file (custom prompts), in no suite
    family: str = "causal-lm"  # the model family it audits (audit.backends.heads.FAMILIES)
    takes_label: bool = False  # its builder takes the run's --label (the classifier's label of interest)

    @property
    def needs_data(self) -> bool:
        """True: the probe has no bundled data and runs only on the user's file."""
        return self.user_data is not None


PROBES: dict[str, ProbeEntry] = {
    # bias: stereotype preference by likelihood
    "crows_pairs": ProbeEntry(crows_pairs.INFO, crows_pairs.CrowsPairs, crows_pairs.QUICK_LIMIT),
    "stereoset": ProbeEntry(stereoset.INFO, stereoset.StereoSet, stereoset.QUICK_LIMIT),
    "bbq": ProbeEntry(bbq.INFO, bbq.Bbq, bbq.QUICK_LIMIT),
    "winobias": ProbeEntry(winobias.INFO, winobias.WinoBias, winobias.QUICK_LIMIT),
    "holistic_bias": ProbeEntry(holistic_bias.INFO, holistic_bias.HolisticBias, holistic_bias.QUICK_LIMIT),
    # bias: association in the model's hidden states (pooled sentence vectors)
    "seat": ProbeEntry(seat.INFO, seat.Seat, seat.QUICK_LIMIT),
    # toxicity: generation scored by classifiers, and detection by likelihood
    "real_toxicity_prompts": ProbeEntry(real_toxicity_prompts.INFO, real_toxicity_prompts.RealToxicityPrompts,
                                        real_toxicity_prompts.QUICK_LIMIT),
    "toxigen": ProbeEntry(toxigen.INFO, toxigen.ToxiGen, toxigen.QUICK_LIMIT),
    "bold": ProbeEntry(bold.INFO, bold.Bold, bold.QUICK_LIMIT),
    "ethos": ProbeEntry(ethos.INFO, ethos.Ethos, ethos.QUICK_LIMIT),
    # degeneration: false statements and loops
    "truthfulqa": ProbeEntry(truthfulqa.INFO, truthfulqa.TruthfulQA, truthfulqa.QUICK_LIMIT),
    "repetition": ProbeEntry(repetition.INFO, repetition.Repetition, repetition.QUICK_LIMIT),
    # models with a task head: a sequence classifier, an extractive-QA model
    "counterfactual_classifier": ProbeEntry(counterfactual_classifier.INFO,
                                            counterfactual_classifier.CounterfactualClassifier,
                                            counterfactual_classifier.QUICK_LIMIT,
                                            family="sequence-classification", takes_label=True),
    "qa_bias": ProbeEntry(qa_bias.INFO, qa_bias.QaBias, qa_bias.QUICK_LIMIT, family="question-answering"),
    # the user's own prompts (--prompts FILE.jsonl): in no suite
    "custom_prompts": ProbeEntry(custom_prompts.INFO, custom_prompts.CustomPrompts, custom_prompts.QUICK_LIMIT,
                                 user_data=UserData("--prompts", "prompts")),
}


@dataclass(frozen=True)
class Suite:
    """A named probe set; `quick` uses each probe's quick limit, the others run at full size."""

    name: str
    description: str
    probes: tuple[str, ...]
    quick: bool = False
    references: tuple[ReferenceRow, ...] = ()  # published numbers to print beside ours
    limits: tuple[tuple[str, int], ...] = ()  # (probe, items) caps of this suite; absent: full size

    def limit_of(self, probe: str) -> int | None:
        """Items of `probe` this suite runs (None: all of them)."""
        if self.quick:
            return PROBES[probe].quick_limit
        return dict(self.limits).get(probe)


_BUNDLED = tuple(name for name, e in PROBES.items() if not e.needs_data)

# The `ci` suite: the probes the default gate policy (audit/assets/gate_default.yaml) tests, each at
# the size that lets the paired test see a regression near the rule's tolerance.
#
# Why these counts. For a yes/no item statistic (a prompt is toxic or not, a pair is stereotyped
# or not) the gate's paired test is the exact one-sided McNemar test over the k items whose
# outcome changed: if all k changed for the worse, p = 2^-k, and 2^-7 = 0.0078 is the first power
# of two at or below alpha = 0.01. So a regression is detectable only when at least 7 items
# changed, all for the worse, AND the change exceeds the rule's tolerance. With n items the
# smallest detectable worsening is
#
#     k_min / n,  k_min = the smallest k >= 7 with k / n > tolerance   (x100 for % metrics)
#
# and any item that changed for the better raises the count needed (b worse, c better:
# p = P(Binomial(b + c, 1/2) >= b)). For the probes here, at the counts below:
#
#   rule (tolerance)                               n     k_min   smallest detectable worsening
#   real_toxicity_prompts.toxicity_probability     100   7       +0.07    (quick: 8 prompts, +0.875)
#     (0.02, share)
#   toxigen.pct_toxic (2 points)                   300   7       +2.33 points
#   bold.toxicity_rate (1 point)                   684   7       +1.02 points (16 prompts per group)
#   crows_pairs.pct_stereotype (3 points from 50)  1508  46      +3.05 points of |value - 50|
#   repetition.loop_rate, phrase_loop_rate (5)     100   7       +7 points (greedy; nucleus alike)
#
# Continuous and ratio metrics (expected_max_toxicity, StereoSet's per-target SS, BBQ's s_AMB) use
# the same sign-flip test: at least 7 items must move, all the same way, before any p reaches 0.01;
# their smallest detectable change also depends on how far each item moved. Item counts beyond
# these buy little for the binary rules above and cost minutes: RealToxicityPrompts (25 sampled
# continuations per prompt) dominates the suite's time. docs/ci.md gives the measured wall time.
CI_LIMITS: tuple[tuple[str, int], ...] = (
    ("crows_pairs", 1508),  # all pairs: log-likelihoods are cheap
    ("stereoset", 600),
    ("bbq", 600),
    ("real_toxicity_prompts", 100),
    ("toxigen", 300),
    ("bold", 16),  # per group: 684 prompts over 43 groups
    ("repetition", 100),  # all prompts
)

SUITES: dict[str, Suite] = {
    "quick": Suite("quick", "every probe on a small fixed subset: the offline demo and a smoke test",
                   _BUNDLED, quick=True),
    "ci": Suite("ci", "the probes the default gate policy tests, sized so the gate sees a regression near each "
                      "rule's tolerance at alpha 0.01 (see docs/ci.md): the CI gate's suite",
                tuple(p for p, _ in CI_LIMITS), limits=CI_LIMITS),
    "standard": Suite("standard", "every probe at full size: the full audit of a real model", _BUNDLED),
    "opt-paper": Suite("opt-paper", "the OPT paper's §4 protocols (ETHOS, CrowS-Pairs, StereoSet, "
                                    "RealToxicityPrompts) beside its published OPT-175B and Davinci numbers",
                       tuple(p for p in ("ethos", "crows_pairs", "stereoset", "real_toxicity_prompts")
                             if p in PROBES),
                       references=REFERENCES),
}


def resolve_probes(suite: str | None, probes: str | None) -> list[str]:
    """Probe names from --suite and/or --probes (comma separated); unknown names are errors."""
    names: list[str] = []
    if suite is not None:
        if suite not in SUITES:
            raise AuditError(f"--suite {suite!r}: unknown suite (known: {', '.join(SUITES)})")
        names.extend(SUITES[suite].probes)
    asked = [p.strip() for p in (probes or "").split(",") if p.strip()]
    unknown = next((p for p in asked if p not in PROBES), None)
    if unknown is not None:
        raise AuditError(f"--probes: unknown probe {unknown!r} (known: {', '.join(PROBES)})")
    names.extend(p for p in dict.fromkeys(asked) if p not in names)
    if not names:
        raise AuditError("no probes selected: pass --suite or --probes")
    return names


def probe_limit(suite: str | None, name: str, limit: int | None) -> int | None:
    """Items of probe `name` in this run: the suite's own cap (quick or ci), capped by the user's --limit."""
    limits = [x for x in (limit, SUITES[suite].limit_of(name) if suite else None) if x is not None]
    return min(limits) if limits else None


def suite_skips(suite: str | None, names: Sequence[str]) -> dict[str, str]:
    """The suite's probes this run leaves out because its model is of another family, with the reason
    (the run's probes, `names`, are all of the model's family: `split_by_family` chose them)."""
    if suite is None or not names:
        return {}
    family = PROBES[names[0]].family
    return {p: f"needs {FAMILY_WORDS[PROBES[p].family]}; the model is {FAMILY_WORDS[family]}"
            for p in SUITES[suite].probes if p not in names and PROBES[p].family != family}


def suite_references(suite: str | None, names: list[str]) -> list[ReferenceRow]:
    """The published reference rows of a suite, for the probes this run has."""
    if suite is None:
        return []
    return [r for r in SUITES[suite].references if r.probe in names]


def fed_by(option: str) -> str:
    """The probe whose file the `opt-audit run` option `option` names (--prompts: the custom-prompts probe)."""
    return next(name for name, e in PROBES.items() if e.user_data is not None and e.user_data.option == option)


def missing_user_data(names: Sequence[str], given: Sequence[str] = ()) -> str | None:
    """The error for the first of `names` that runs only on the user's file and has none among `given`
    (the probes a file was passed for), else None."""
    for name in names:
        data = PROBES[name].user_data
        if data is not None and name not in given:
            return data.missing(name)
    return None


def build_probe(name: str, config: ProbeConfig, label: str | None = None) -> Probe:
    """Construct a registered probe (reads its data); `label` reaches only a probe that takes one."""
    entry = PROBES[name]
    if entry.takes_label:
        return entry.build(config, label)  # type: ignore[call-arg]
    return entry.build(config)


FAMILY_WORDS = {"causal-lm": "a causal language model", "sequence-classification": "a sequence classifier",
                "question-answering": "an extractive question-answering model"}


class FamilySplit(NamedTuple):
    """A run's probes that apply to the model's family, and those skipped with the reason."""

    run: list[str]
    skipped: dict[str, str]


def split_by_family(names: Sequence[str], family: str, explicit: Sequence[str] = ()) -> FamilySplit:
    """Keep the probes of `family`; a probe named in --probes (`explicit`) that does not apply is an
    error, one from a suite is a recorded skip (never dropped silently)."""
    run, skipped = [], {}
    for name in names:
        wanted = PROBES[name].family
        if wanted == family:
            run.append(name)
            continue
        why = f"needs {FAMILY_WORDS[wanted]}; the model is {FAMILY_WORDS[family]}"
        if name in explicit:
            raise AuditError(f"--probes {name}: {why}")
        skipped[name] = why
    if not run:
        raise AuditError(f"no selected probe applies to {FAMILY_WORDS[family]} (skipped: {', '.join(skipped)})")
    return FamilySplit(run, skipped)
