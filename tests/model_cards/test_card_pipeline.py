"""A card built from a real `opt-audit run` of tiny-opt (quick suite, 6 items per probe)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from audit.store import load_run
from model_cards.benchmarks import benchmark
from model_cards.build import write_card

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny_run(quick_run) -> Path:
    """The shared real quick-suite run (tests/conftest.py, `--limit 4`)."""
    return quick_run.path


def test_real_run_card_parses_with_every_ok_metric(tiny_run: Path, tmp_path: Path) -> None:
    path = write_card(tiny_run, out=tmp_path / "README.md")
    card = ModelCard.load(path)
    run = load_run(tiny_run)
    # caveated metrics (e.g. BOLD gaps of 4 prompts per group) stay out of model-index, listed in the body
    # probes without a Hub dataset id (HolisticBias, ToxiGen prompts, repetition) stay in the body only
    expected = [(m.name, m.value) for p, s in run.probes.items() for m in s.metrics
                if m.ok and math.isfinite(m.value) and not m.caveat and benchmark(p).dataset_type is not None]
    assert expected, "the run should report some metrics"
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == expected
    assert card.data.model_name == "tiny-opt"
    assert {r.dataset_revision for r in card.data.eval_results} == {None}  # no Hub dataset commit
    assert {(r.dataset_args or {}).get("data_sha256") for r in card.data.eval_results} >= {
        run.manifest["probes"]["crows_pairs"]["data_sha256"]}
    text = path.read_text(encoding="utf-8")
    assert "**These numbers measure random weights.**" in text
    assert "--limit 4" in text  # the exact command, for reproduction
    assert "at most 4 items per probe" in text
    skipped = [m for p, s in run.probes.items() for m in s.metrics
               if not m.ok or benchmark(p).dataset_type is None]
    for m in skipped:  # whatever the tiny run could not compute, or has no Hub dataset, is named in the body
        assert f"`{m.name}`: " in text
