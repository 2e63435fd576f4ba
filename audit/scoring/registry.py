"""Short names for scorers, and `auto`: Detoxify when its checkpoint can be had, else embedded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from audit.contract import ScorerSpec  # noqa: F401 - re-exported: its home before audit.contract
from audit.errors import AuditError
from audit.scoring.base import Scorer

DETOXIFY_MODELS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small", "custom")
SCORERS = ("auto", "embedded", "vader", *(f"detoxify:{m}" for m in DETOXIFY_MODELS))


def load_scorer(spec: ScorerSpec) -> Scorer:
    """Build the named scorer; `auto` falls back to the embedded scorer with a visible warning."""
    if spec.name not in SCORERS:
        raise AuditError(f"--scorer {spec.name!r}: unknown scorer (known: {', '.join(SCORERS)})")
    if spec.name == "vader":
        from audit.scoring.vader import VaderScorer

        return VaderScorer()
    if spec.name == "embedded":
        from audit.scoring.embedded import EmbeddedScorer

        return EmbeddedScorer(device="cpu" if spec.device == "auto" else spec.device)
    if spec.name.startswith("detoxify:"):
        return _detoxify(spec.name.split(":", 1)[1], spec)
    try:
        return _detoxify("original", spec)
    except AuditError as e:
        print(f"opt-audit: warning: Detoxify is unavailable ({e}); using the embedded offline toxicity "
              "scorer instead. Its validity record is printed in every report that uses it.", file=sys.stderr)
        from audit.scoring.embedded import EmbeddedScorer

        return EmbeddedScorer()


def _detoxify(model_type: str, spec: ScorerSpec) -> Scorer:
    from audit.scoring.detoxify_scorer import DetoxifyScorer

    return DetoxifyScorer(model_type=model_type,
                          checkpoint=Path(spec.checkpoint) if spec.checkpoint else None,
                          config_dir=Path(spec.config_dir) if spec.config_dir else None,
                          device=spec.device)


def check_kind(kind: str, spec: ScorerSpec) -> None:
    """Refuse a scorer that cannot serve `kind`, without loading anything: runs call this before the
    model loads, so a wrong --scorer costs seconds, not a generation pass."""
    if kind == "toxicity":
        if spec.name not in SCORERS:
            raise AuditError(f"--scorer {spec.name!r}: unknown scorer (known: {', '.join(SCORERS)})")
        if spec.name == "vader":
            raise AuditError("--scorer vader measures sentiment, not toxicity; pick a toxicity scorer")
        for flag, path in (("--scorer-checkpoint", spec.checkpoint), ("--scorer-config", spec.config_dir)):
            if path is not None and not Path(path).exists():
                raise AuditError(f"{flag} {path}: no such file or directory")
    elif kind != "sentiment":
        raise AuditError(f"unknown score kind {kind!r} (known: toxicity, sentiment)")


def load_kind(kind: str, spec: ScorerSpec) -> Scorer:
    """The scorer for a score kind: `toxicity` is the user's --scorer, `sentiment` is VADER."""
    check_kind(kind, spec)
    return load_scorer(spec) if kind == "toxicity" else load_scorer(ScorerSpec("vader"))


NOT_VALIDATED = ("validity not measured for this scorer: run `opt-audit scorers validate` with the same "
                 "--scorer options and keep the record beside the checkpoint (<checkpoint>.validity.json)")


def metric_scorer_record(kind: str, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """What every classifier-based metric carries in summary.json: which scorer, pinned how, how good."""
    validity = provenance.get("validity")
    if kind == "sentiment" and not validity:
        validity = {"summary": "VADER (Hutto & Gilbert 2014), the sentiment measure BOLD itself uses; "
                               "a lexicon, not validated here"}
    return {
        "kind": kind,
        "name": provenance.get("scorer"),
        "version": provenance.get("version"),
        "id": provenance.get("id"),
        "sha256": provenance.get("sha256") or provenance.get("head_sha256"),
        "validity": validity or {"summary": NOT_VALIDATED},
    }
