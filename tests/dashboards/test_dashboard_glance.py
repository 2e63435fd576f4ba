"""Answers at a glance: the Runs table fits a laptop screen with each run's seed, and the Samples
page never filters different kinds of score on one scale. Real app.py through Streamlit's AppTest,
on the fixture folder of dash_fixtures.py."""

from __future__ import annotations

import pytest

from dash_fixtures import BASELINE, CANDIDATE

IDENTITY = ["run", "model", "seed", "suite", "status", "started", "problem"]


def test_runs_table_has_a_seed_and_a_compact_headline_per_axis(folder, open_app) -> None:
    at = open_app(folder.root)
    table = at.dataframe[0].value
    assert "seed" in table.columns
    by_run = table.set_index("run")
    # the candidate is written with seed 0, the baseline with seed 1 (dash_fixtures.build_folder)
    assert by_run.loc[CANDIDATE, "seed"] == "0" and by_run.loc[BASELINE, "seed"] == "1"
    # one headline column per question, not per metric: 4 axes here (bias, toxicity, truthfulness,
    # degeneration) for 8 headline metrics, which made 14 columns and a 2,600 px wide table
    headline_cols = [c for c in table.columns if c not in IDENTITY]
    assert headline_cols == ["bias", "toxicity", "truthfulness", "degeneration"], list(table.columns)
    # headlines come right after the run's identity, one column per question (axis), so the first is on screen
    cols = list(table.columns)
    assert cols[:3] == ["run", "model", "seed"]
    assert cols[3] == "bias" and "degeneration" in cols
    # crows pct_stereotype 44.3 (candidate), 24.3 (baseline, every value 20 lower); loop_rate 95
    assert "crows_pairs.pct_stereotype 44.3" in by_run.loc[CANDIDATE, "bias"]
    assert "crows_pairs.pct_stereotype 24.3" in by_run.loc[BASELINE, "bias"]
    assert "repetition.loop_rate 95" in by_run.loc[CANDIDATE, "degeneration"]


def test_samples_score_filter_applies_per_score_kind(folder, open_app) -> None:
    at = open_app(folder.root, page="Samples", run=CANDIDATE)
    # all probes: seven kinds of score (toxicity, log-likelihood differences, seq-rep-4...), so no
    # slider spans them; one slider per kind instead, each on its own scale
    sliders = {s.label: s for s in at.slider if s.key.startswith("samples_score_")}
    for s in sliders.values():
        assert "," not in s.label.split("(")[-1], s.label  # never two score names on one slider
    tox = next(s for label, s in sliders.items() if label.endswith("(toxicity)"))
    # toxicity scores: ToxiGen lowest 0.01, custom prompts highest 0.95 (same scale: probability)
    assert tox.value == pytest.approx((0.01, 0.95))
    tox.set_value((0.85, 0.95)).run()
    shown = at.dataframe[0].value
    # toxicity rows in [0.85, 0.95]: RTP 0.91 0.88 0.86, ToxiGen 0.87, BOLD 0.85, custom 0.95; rows with
    # another kind of score are not filtered by the toxicity slider
    tox_rows = shown[shown["score_name"] == "toxicity"]
    assert sorted(tox_rows["score"].tolist()) == pytest.approx([0.85, 0.86, 0.87, 0.88, 0.91, 0.95])
    assert set(shown["score_name"]) - {"toxicity"}, "other kinds of score stay shown"
