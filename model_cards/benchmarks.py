"""How each probe appears in a Hugging Face `model-index`: task type, dataset id, config, split.

The Hub groups results by (task type, dataset type, config, split), so these identities must be
stable across opt-audit versions. `dataset_type` is the benchmark's Hub dataset id, and only an id
that was checked to exist on the Hub and to hold the same benchmark (see the table's comments);
where no such dataset exists it is None and the probe's metrics stay out of model-index (the
card's body lists them with that reason), because model-index requires a dataset id and an id in
a namespace nobody publishes would point readers at nothing. `config` names the part of the
benchmark the probe bundles (so a partial benchmark is never filed as the whole one) and `split`
the source split.

There is no `revision` here either: the Hub reads `dataset.revision` as a commit of the Hub
dataset repository, and opt-audit bundles its own copy of the data, pinned by sha256 instead.
That digest (`data_digest`) goes to the card's prose and to opt-audit's own `args.data_sha256`.

Task types are the Hub's pipeline ids (huggingface.js `tasks/src/pipelines.ts`):
text-generation for open generation and for likelihood comparisons of whole sentences (the
model is used as a language model), multiple-choice for answer-option QA, and
text-classification for hate-speech detection by prompting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Benchmark:
    """A probe's identity in model-index results, and the RAI dimension it informs."""

    task_type: str  # Hub pipeline id
    task_name: str  # what the model is asked to do, in words
    dataset_type: str | None  # Hub dataset id (checked to exist); None: not in model-index
    config: str  # the bundled part of the benchmark
    split: str  # the benchmark's split the bundled data comes from
    dimension: str  # "fairness", "toxicity" or "robustness": where the card discusses it


_LM = "text-generation"
_LIKELIHOOD = "Stereotype preference by sentence likelihood"

# Hub ids, as checked (search of Hub pages and of code that loads them, this release):
#   nyu-mll/crows_pairs, McGill-NLP/stereoset, uclanlp/wino_bias, AlexaAI/bold,
#   allenai/real-toxicity-prompts, iamollas/ethos, truthfulqa/truthful_qa: the benchmarks' own ids.
#   heegyu/bbq: no BBQ upload by its authors exists; this is the copy of nyu-mll/BBQ that
#     evaluation code loads (Elfsong/BBQ and seyoungsong/BBQ are other copies).
#   holistic_bias: None. fairnlp/holistic-bias holds v1.0 (not from the authors); we bundle v1.1.
#   toxigen: None. toxigen/toxigen-data holds the annotated and generated statements, not the
#     prompt files this probe runs (probes/data/toxigen/SOURCE.md).
#   repetition, custom_prompts: None; they are opt-audit's own tests, not published benchmarks.
BENCHMARKS: Mapping[str, Benchmark] = {
    "crows_pairs": Benchmark(_LM, _LIKELIHOOD, "nyu-mll/crows_pairs", "crows_pairs_anonymized", "test",
                             "fairness"),
    "stereoset": Benchmark(_LM, _LIKELIHOOD, "McGill-NLP/stereoset", "intrasentence+intersentence",
                           "validation", "fairness"),
    "bbq": Benchmark("multiple-choice", "Bias in question answering (answer likelihood)", "heegyu/bbq",
                     "6-of-11-categories", "test", "fairness"),
    "winobias": Benchmark(_LM, _LIKELIHOOD, "uclanlp/wino_bias",
                          "type1_pro+type1_anti+type2_pro+type2_anti", "test", "fairness"),
    "holistic_bias": Benchmark(_LM, "Perplexity differences across demographic descriptors",
                               None, "v1.1", "all", "fairness"),
    "bold": Benchmark(_LM, "Open-ended generation: sentiment and toxicity across groups", "AlexaAI/bold",
                      "all-domains", "train", "fairness"),
    "real_toxicity_prompts": Benchmark(_LM, "Toxic degeneration in sampled continuations",
                                       "allenai/real-toxicity-prompts", "decodingtrust-toxic+nontoxic",
                                       "train", "toxicity"),
    "toxigen": Benchmark(_LM, "Toxic continuations of statements about target groups",
                         None, "prompts", "all", "toxicity"),
    "ethos": Benchmark("text-classification", "Hate speech detection by prompting (zero-, one-, few-shot)",
                       "iamollas/ethos", "binary", "train", "toxicity"),
    "truthfulqa": Benchmark("multiple-choice", "Truthful answers to misleading questions (MC1, MC2)",
                            "truthfulqa/truthful_qa", "multiple_choice", "validation", "robustness"),
    "repetition": Benchmark(_LM, "Repetition and degeneration in long continuations",
                            None, "bold-prompts", "all", "robustness"),
    "custom_prompts": Benchmark(_LM, "Generation on user-supplied prompts", None,
                                "user-file", "all", "toxicity"),
}

DIMENSIONS = {
    "fairness": "Fairness (bias and inclusion)",
    "toxicity": "Toxicity and hate speech",
    "robustness": "Truthfulness and degeneration",
}


def benchmark(probe: str) -> Benchmark:
    """The probe's identity; a probe this table does not know has no Hub dataset."""
    return BENCHMARKS.get(probe) or Benchmark(_LM, "Language model evaluation", None,
                                              "default", "all", "robustness")


def data_digest(data_sha256: Any) -> str | None:
    """One sha256 for a probe's bundled data, from its manifest entry (opt-audit's pin, not a
    Hub revision).

    One file: that file's sha256. Several files ({name: sha256}): the sha256 of the lines
    "<sha256>  <name>\\n" sorted by name, i.e. what `sha256sum` prints for the files in
    C-locale name order, hashed again; so anyone can recompute it from the files alone.
    """
    if isinstance(data_sha256, str) and data_sha256:
        return data_sha256
    if isinstance(data_sha256, Mapping) and data_sha256:
        lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(data_sha256.items()))
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()
    return None
