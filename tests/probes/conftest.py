"""Probe fixtures: run a probe end to end through the real engine, tiny-opt and real scorers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest


@pytest.fixture(scope="session")
def real_scorers() -> dict[str, Any]:
    """The embedded toxicity scorer and VADER, loaded once per session (both run offline)."""
    from audit.scoring.embedded import EmbeddedScorer
    from audit.scoring.vader import VaderScorer

    return {"toxicity": EmbeddedScorer(), "sentiment": VaderScorer()}


@pytest.fixture()
def run_probe(backend, real_scorers, tmp_path: Path) -> Callable[..., Any]:
    """run_probe(probe, **engine options) -> audit.runner.Evaluation of that probe alone.

    Each token budget has its own cache, so runs at two budgets both compute: that is how the
    probe tests check that batch size does not change a score."""
    from audit.engine import EngineOptions
    from audit.runner import evaluate

    def _run(probe: Any, **options: Any):
        opts = EngineOptions(**{"token_budget": 4096, "progress": False, **options})
        cache = tmp_path / f"{probe.info.name}-{opts.token_budget}.sqlite"
        return evaluate({probe.info.name: probe}, backend, cache, options=opts, loaded_scorers=real_scorers)

    return _run
