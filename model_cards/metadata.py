"""The card's YAML front matter: license, tags and the `model-index` of every reportable metric.

Built as plain Python data and written with `yaml.safe_dump`, never by pasting strings, so a
model name or tag can never break the YAML or close the front matter early. A metric enters
`model-index` only when its status is ok, its value finite and it has no caveat (model-index has
no place to say a number rests on degenerate inputs), and its benchmark has a Hub dataset id
(model-index requires one; `benchmarks`); the rest are listed in the card's body with their
reason (see `in_model_index`).

Each result opt-audit writes carries `dataset.args.tool: opt-audit`: that is how a merge into an
existing card (`model_cards.merge`) tells its own results from anyone else's. The data's sha256
is in `args.data_sha256`, never in `dataset.revision` (a Hub dataset commit, which we do not have).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from audit.store import Run
from audit.types import Metric, ProbeInfo
from model_cards.benchmarks import benchmark, data_digest
from model_cards.info import CardInfo
from reports.facts import model_id

BASE_TAGS = ("opt-audit", "responsible-ai", "evaluation")
_DIMENSION_TAGS = {"fairness": "bias", "toxicity": "toxicity", "robustness": "truthfulness"}
TOOL = "opt-audit"  # dataset.args.tool of every result opt-audit writes


def reportable(metric: Metric) -> bool:
    """Whether a metric may appear in model-index: computed (ok), a finite number, and not caveated."""
    return (metric.ok and not metric.caveat and isinstance(metric.value, (int, float))
            and math.isfinite(metric.value))


def in_model_index(probe: str, metric: Metric, info: ProbeInfo | None = None) -> bool:
    """Whether a metric goes to model-index: reportable, and its benchmark has a Hub dataset id
    (`info`: the probe's description from the run; see `benchmarks.benchmark`)."""
    return reportable(metric) and benchmark(probe, info).dataset_type is not None


def not_reported_reason(probe: str, metric: Metric, info: ProbeInfo | None = None) -> str:
    """Why a metric is left out of model-index ('' when it is not left out)."""
    if not metric.ok:
        return metric.status.removeprefix("skipped:").strip() or metric.status
    if metric.caveat:
        return metric.caveat
    if not reportable(metric):
        return f"value is not a finite number ({metric.value!r})"
    if benchmark(probe, info).dataset_type is None:
        return "no Hub dataset holds this benchmark's data, and model-index requires a dataset id"
    return ""


def model_name(run: Run) -> str:
    """The model as the run named it (the --model argument), on one line."""
    name = model_id(run.manifest) or run.manifest.run_id or "unknown model"
    return " ".join(name.split())


def card_tags(run: Run, info: CardInfo) -> list[str]:
    """opt-audit's tags, one per RAI area the run measured, then the user's (no repeats)."""
    tags = list(BASE_TAGS)
    for probe, summary in run.probes.items():
        tag = _DIMENSION_TAGS.get(benchmark(probe, summary.info).dimension)
        if tag and tag not in tags:
            tags.append(tag)
    for tag in info.tags:
        if tag not in tags:
            tags.append(tag)
    return tags


def model_index(run: Run) -> list[dict[str, Any]]:
    """One model-index entry: a result per probe with at least one metric for model-index."""
    return [{"name": model_name(run), "results": index_results(run)}]


def index_results(run: Run) -> list[dict[str, Any]]:
    """opt-audit's model-index results for a run (each marked `args.tool: opt-audit`)."""
    manifest = run.manifest
    results: list[dict[str, Any]] = []
    for probe, summary in run.probes.items():
        metrics = [_metric_entry(m) for m in summary.metrics if in_model_index(probe, m, summary.info)]
        if not metrics:
            continue
        bench = benchmark(probe, summary.info)
        dataset: dict[str, Any] = {"name": " ".join(summary.info.title.split()), "type": bench.dataset_type,
                                   "config": bench.config, "split": bench.split}
        record = manifest.probes.get(probe)
        args = {"tool": TOOL, "probe": probe, "probe_version": str(summary.info.version),
                "suite": manifest.suite, "limit": manifest.limit, "seed": manifest.seed,
                "data_sha256": data_digest(record.data_sha256 if record is not None else None)}
        dataset["args"] = {k: v for k, v in args.items() if v is not None}
        results.append({"task": {"type": bench.task_type, "name": bench.task_name},
                        "dataset": dataset, "metrics": metrics})
    return results


def _metric_entry(metric: Metric) -> dict[str, Any]:
    label = f"{metric.name} [{metric.unit}]" if metric.unit else metric.name
    return {"type": metric.name, "value": float(metric.value), "name": label}


def front_matter(run: Run, info: CardInfo) -> dict[str, Any]:
    """The metadata mapping; a missing license is 'unknown' (the Hub's id for it), not a guess."""
    data: dict[str, Any] = {"license": info.license or "unknown"}
    if info.license_name:
        data["license_name"] = info.license_name
    if info.license_link:
        data["license_link"] = " ".join(info.license_link.split())
    if info.language:
        data["language"] = list(info.language)
    if run.manifest.facts.backend == "hf":
        data["library_name"] = "transformers"
    data["pipeline_tag"] = "text-generation"
    data["tags"] = card_tags(run, info)
    data["model-index"] = model_index(run)
    return data


def dump_front_matter(data: dict[str, Any]) -> str:
    """`---`-fenced YAML, as the Hub reads it at the top of README.md."""
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return f"---\n{body}---\n"
