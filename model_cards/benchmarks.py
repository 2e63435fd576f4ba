"""How each probe appears in a Hugging Face `model-index`: task type, dataset id, config, split.

Each probe declares its identity beside its code (`audit.types.BenchmarkIdentity`, in its
self-description and so in summary.json); this module turns it into the card's `Benchmark`, with
the RAI dimension its axis belongs to. The Hub groups results by (task type, dataset type, config,
split), so these identities must be stable across opt-audit versions. `dataset_type` is the
benchmark's Hub dataset id, and only an id that was checked to exist on the Hub and to hold the
same benchmark (see the comment beside each probe's declaration);
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

from audit.types import ProbeInfo
from reports.describe import full_info, registered_info


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

# The card's RAI dimension of each usual axis; a probe on a new axis gets a dimension of that name.
AXIS_DIMENSIONS: Mapping[str, str] = {
    "bias": "fairness", "toxicity": "toxicity", "hate-speech detection": "toxicity",
    "truthfulness": "robustness", "degeneration": "robustness",
}

DIMENSIONS = {
    "fairness": "Fairness (bias and inclusion)",
    "toxicity": "Toxicity and hate speech",
    "robustness": "Truthfulness and degeneration",
}


def benchmark(probe: str, info: ProbeInfo | None = None) -> Benchmark:
    """The probe's identity in model-index, from its self-description (`info`, from the run; for a run
    written before probes described themselves, or without `info`, the registered description of that
    name). A probe without a benchmark identity has no Hub dataset."""
    info = full_info(probe, info) if info is not None else registered_info(probe)
    if info is None or not info.described:
        return Benchmark(_LM, "Language model evaluation", None, "default", "all", "robustness")
    dimension = AXIS_DIMENSIONS.get(info.axis, info.axis)
    b = info.benchmark
    if b is None:
        return Benchmark(_LM, "Language model evaluation", None, "default", "all", dimension)
    return Benchmark(b.task_type, b.task_name, b.dataset_id, b.config, b.split, dimension)


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
