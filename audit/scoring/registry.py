"""Short names for scorers, and `auto`: Detoxify when its checkpoint can be had, else embedded."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from audit.errors import AuditError
from audit.scoring.base import Scorer

DETOXIFY_MODELS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small", "custom")
SCORERS = ("auto", "embedded", "vader", *(f"detoxify:{m}" for m in DETOXIFY_MODELS))


@dataclass(frozen=True)
class ScorerSpec:
    """What the user asked for (`--scorer`, `--scorer-checkpoint`, `--scorer-config`)."""

    name: str = "auto"
    checkpoint: Path | None = None  # a Detoxify .ckpt the user named (torch pickle: trusted paths only)
    config_dir: Path | None = None  # local HF config + tokenizer directory for offline Detoxify
    device: str = "auto"


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

    return DetoxifyScorer(model_type=model_type, checkpoint=spec.checkpoint, config_dir=spec.config_dir,
                          device=spec.device)
