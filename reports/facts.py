"""What a reader needs to trust (or distrust) a run: its facts, its scorers and its limitations.

Everything comes from the manifest and the summary as recorded; a field the run did not record
reads "—" rather than being guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from audit.contract import Manifest
from audit.store import Run
from audit.verdicts import is_random_name
from audit import formatting as fmt
from audit.formatting import Fact

TINY_OPT_NOTE = "tiny-opt is random: scores exercise the pipeline only."
SMALL_N = 30  # metrics measured on fewer items than this get a "wide intervals" limitation


@dataclass(frozen=True)
class ProbeFact:
    """A probe as the manifest records it: version, request count and data hash."""

    name: str
    version: str
    requests: str
    data: str


@dataclass(frozen=True)
class ScorerFact:
    """A classifier or lexicon that produced scores in this run, with its measured quality."""

    kind: str
    name: str
    version: str
    id: str
    sha256: str
    validity: str  # one line: the scorer's measured accuracy and weak spots (`audit.formatting.validity_text`)
    summary: str  # the scorer's own validity summary, verbatim


def _text(x: Any) -> str:
    if x is None or x == "" or (isinstance(x, float) and not math.isfinite(x)):
        return fmt.MISSING
    return str(x)


def model_id(manifest: Manifest) -> str | None:
    """The model the run evaluated, as the user named it: the backend's facts, else the spec (a run that
    failed before the model loaded has no facts)."""
    return manifest.facts.model or (manifest.spec.model.model if manifest.spec is not None else None)


def _revision(manifest: Manifest) -> str:
    """The resolved revision, and the one asked for when it differs (a branch or tag)."""
    resolved = manifest.facts.revision
    requested = manifest.spec.model.revision if manifest.spec is not None else None
    return _text(resolved) + (f" (requested {requested})" if requested and requested != resolved else "")


def _wall_time(timings: Mapping[str, float]) -> str:
    """Total seconds, with the load, model and scoring parts."""
    parts = [f"{k} {fmt.seconds(timings[k])}" for k in ("load", "model", "scoring") if k in timings]
    return fmt.seconds(timings.get("total")) + (f" ({', '.join(parts)})" if parts else "")


def _requests(stats: Mapping[str, int]) -> str:
    """The engine's request counts (audit.engine.EngineStats) in one line."""
    if not stats:
        return fmt.MISSING
    return (f"{fmt.count(stats.get('unique'))} unique of {fmt.count(stats.get('total'))}; "
            f"{fmt.count(stats.get('cached'))} cached, {fmt.count(stats.get('computed'))} computed "
            f"in {fmt.count(stats.get('batches'))} batches")


def run_facts(manifest: Manifest) -> tuple[Fact, ...]:
    """Model and run facts in reading order: what ran, on what, how long, and how to rerun it."""
    model, hardware = manifest.facts, manifest.hardware or {}
    device = _text(model.device)
    if hardware.get("cuda"):
        device += f" ({', '.join(map(str, hardware['cuda']))})"
    remote_code = manifest.spec is not None and manifest.spec.model.trust_remote_code
    return (
        Fact("Model", _text(model_id(manifest))),
        Fact("Architecture", _text(model.details.get("architecture"))),
        Fact("Revision", _revision(manifest)),
        Fact("Parameters", fmt.params(model.details.get("params"))),
        Fact("dtype", _text(model.dtype)),
        Fact("Attention", _text(model.attention)),
        Fact("Device", device),
        Fact("Backend id", _text(manifest.backend_id)),
        *([Fact("Remote code", "trusted: the model's own Python ran (--trust-remote-code)")] if remote_code else []),
        Fact("Suite", _text(manifest.suite)),
        Fact("Probes", str(len(manifest.probes))),
        Fact("Seed", _text(manifest.seed)),
        Fact("Limit", "suite default" if manifest.limit is None else str(manifest.limit)),
        Fact("Run id", _text(manifest.run_id)),
        Fact("Status", _text(manifest.status)),
        Fact("Started", _text(manifest.started_at)),
        Fact("Finished", _text(manifest.finished_at)),
        Fact("Wall time", _wall_time(manifest.timings_s or {})),
        Fact("Requests", _requests(manifest.requests or {})),
        Fact("Platform", _text(hardware.get("platform"))),
    )


def reproduce_command(manifest: Manifest) -> str:
    """The command that made this run; rerunning it resumes or repeats the same run."""
    return manifest.command or fmt.MISSING


def library_versions(manifest: Manifest) -> tuple[Fact, ...]:
    """Library versions recorded by the run (opt-audit, python, torch, transformers, ...)."""
    return tuple(Fact(str(k), _text(v)) for k, v in (manifest.versions or {}).items())


def probe_facts(manifest: Manifest) -> tuple[ProbeFact, ...]:
    """Each probe's version, request count and data hash(es)."""
    out = []
    for name, p in manifest.probes.items():
        sha = p.data_sha256
        if isinstance(sha, Mapping):
            data = f"{len(sha)} files, sha256 in manifest.json"
        elif sha:
            data = f"sha256 {fmt.short_sha(sha)}"
        else:
            data = fmt.MISSING
        out.append(ProbeFact(name, _text(p.version), fmt.count(p.requests), data))
    return tuple(out)


def scorer_facts(run: Run) -> tuple[ScorerFact, ...]:
    """Every scorer the run used, from the manifest, with validity from the metrics' records."""
    from_metrics: dict[str, Mapping[str, Any]] = {}
    for summary in run.probes.values():
        for m in summary.metrics:
            if m.scorer and m.scorer.get("kind"):
                from_metrics.setdefault(str(m.scorer["kind"]), m.scorer)
    records: dict[str, Mapping[str, Any]] = {}
    for kind, rec in (run.manifest.scorers or {}).items():
        if isinstance(rec, Mapping):
            records[str(kind)] = rec
    for kind, rec in from_metrics.items():
        records.setdefault(kind, rec)
    out = []
    for kind, rec in records.items():
        metric_rec = from_metrics.get(kind, {})
        validity = rec.get("validity") if isinstance(rec.get("validity"), Mapping) else metric_rec.get("validity")
        validity = validity if isinstance(validity, Mapping) else None
        sha = rec.get("head_sha256") or rec.get("sha256") or metric_rec.get("sha256")
        out.append(ScorerFact(
            kind=kind, name=_text(rec.get("scorer") or rec.get("name")), version=_text(rec.get("version")),
            id=_text(rec.get("id")), sha256=_text(sha), validity=fmt.validity_text(validity),
            summary=_text(validity.get("summary") if validity else None)))
    return tuple(out)


def limitations(run: Run, scorers: tuple[ScorerFact, ...]) -> tuple[str, ...]:
    """What this report cannot tell you, specific to this run first, then in general."""
    out: list[str] = []
    if is_random_name(model_id(run.manifest)):  # the one rule the verdict banner uses too
        out.append(TINY_OPT_NOTE + " Its weights are random; no number here says anything about a real model.")
    for s in scorers:
        line = (f"{s.kind.capitalize()} scores come from the {s.name} scorer ({s.id}); "
                f"measured validity: {s.validity}.")
        if s.name == "embedded":
            line += (" It is a small offline classifier, not Detoxify or Perspective API: its numbers are not "
                     "comparable with published toxicity numbers, and it misjudges the weak spots listed.")
        line += " Compare runs only when they used the same scorer id."
        out.append(line)
    skipped = [f"{p}.{m.name} ({m.status})" for p, s in run.probes.items() for m in s.metrics if not m.ok]
    if skipped:
        out.append("Skipped metrics: " + "; ".join(skipped) + ".")
    caveated = [f"{p}.{m.name} ({m.caveat})" for p, s in run.probes.items() for m in s.metrics
                if m.ok and m.caveat]
    if caveated:
        out.append("Computed from degenerate inputs, so not findings: " + "; ".join(caveated) + ".")
    small = [f"{p}.{m.name} (n={m.n})" for p, s in run.probes.items() for m in s.metrics if m.ok and m.n < SMALL_N]
    if small:
        shown = small[:8]
        more = f" and {len(small) - len(shown)} more" if len(small) > len(shown) else ""
        out.append(f"Small samples (n < {SMALL_N}) give wide intervals: {', '.join(shown)}{more}.")
    cut = run.manifest.truncation or {}
    if cut.get("prompts"):
        n = cut.get("prompts")
        out.append(f"{fmt.count(n)} generation prompt{'' if n == 1 else 's'} did not fit the model's context of "
                   f"{_text(cut.get('context'))} tokens with the new tokens and kept only the last tokens that fit; "
                   f"{fmt.count(cut.get('tokens'))} tokens were cut in all, and each sample row says how many in "
                   "truncated_tokens.")
    if run.manifest.limit is not None or run.manifest.suite == "quick":
        out.append("This run audits a subset of each benchmark (--limit or the quick suite); "
                   "run a larger suite before drawing conclusions.")
    if run.references:
        out.append("Published reference numbers come from the cited paper's models and protocol; "
                   "read them beside ours, not as targets.")
    out.append("These benchmarks measure specific, mostly English and US-centred notions of bias and toxicity; "
               "a good score is not evidence that a model is safe for a given use.")
    return tuple(out)
