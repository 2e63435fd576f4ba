"""Calibration onto Perspective's scale: the isotonic fit on hand-worked examples, its monotonicity on
random data, the calibration error, and the RTP record split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.errors import AuditError
from audit.cli import bundled_scorer_data
from audit.scoring.calibration import (IsotonicMap, calibration_error, fit_isotonic, load_scored_texts,
                                       split_of)


def test_isotonic_pools_one_violation_by_hand() -> None:
    # raw 1, 2, 3, 4 with targets 1, 3, 2, 4: the pair (3, 2) violates the order and is pooled into
    # one block of mean target 2.5 at mean raw 2.5. Knots: (1, 1), (2.5, 2.5), (4, 4).
    iso = fit_isotonic([1, 2, 3, 4], [1, 3, 2, 4])
    assert iso.x == (1.0, 2.5, 4.0) and iso.y == (1.0, 2.5, 4.0)
    # linear between knots, flat beyond them: 2 -> 2.0, 3.25 -> 3.25, 0 -> 1, 9 -> 4
    assert iso([2.0, 3.25, 0.0, 9.0]).tolist() == pytest.approx([2.0, 3.25, 1.0, 4.0])


def test_isotonic_weights_and_ties_by_hand() -> None:
    # raw 0 (weight 3, target 1) above raw 1 (weight 1, target 0) violates the order: one block,
    # mean target (3*1 + 1*0) / 4 = 0.75 at mean raw (3*0 + 1*1) / 4 = 0.25 -> constant 0.75.
    iso = fit_isotonic([0, 1], [1, 0], weights=[3, 1])
    assert iso.x == (0.25,) and iso.y == (0.75,)
    assert iso([-5.0, 0.5, 5.0]).tolist() == [0.75, 0.75, 0.75]
    # tied raw scores share one value: raw 1 has targets 0 and 1 (mean 0.5), raw 2 has 1.
    iso = fit_isotonic([1, 1, 2], [0, 1, 1])
    assert iso.x == (1.0, 2.0) and iso.y == (0.5, 1.0)
    # already increasing: every point is its own knot, the map interpolates the data exactly
    iso = fit_isotonic([3, 1, 2], [0.3, 0.1, 0.2])
    assert iso.x == (1.0, 2.0, 3.0) and iso.y == pytest.approx((0.1, 0.2, 0.3))


def test_isotonic_is_monotone_on_random_data() -> None:
    rng = np.random.default_rng(7)
    raw = rng.normal(size=500)
    target = np.clip(1 / (1 + np.exp(-2 * raw)) + rng.normal(0, 0.2, 500), 0, 1)
    iso = fit_isotonic(raw, target)
    assert all(b > a for a, b in zip(iso.x, iso.x[1:])) and all(b > a for a, b in zip(iso.y, iso.y[1:]))
    grid = np.linspace(-4, 4, 1001)
    out = iso(grid)
    assert np.all(np.diff(out) >= 0)
    assert target.min() <= out.min() and out.max() <= target.max()
    # least squares among monotone fits: no worse than the best constant
    assert np.mean((iso(raw) - target) ** 2) < np.mean((target.mean() - target) ** 2)
    # the fit preserves the weighted mean of the targets (each block is replaced by its mean)
    assert np.mean(iso(raw)) == pytest.approx(target.mean(), abs=0.02)


def test_isotonic_map_round_trip_and_validation() -> None:
    iso = fit_isotonic([1, 2, 3, 4], [1, 3, 2, 4])
    assert IsotonicMap.from_json(json.loads(json.dumps(iso.to_json()))) == iso
    with pytest.raises(AuditError, match="must not decrease"):
        IsotonicMap((0.0, 1.0), (0.5, 0.4))
    with pytest.raises(AuditError, match="malformed"):
        IsotonicMap.from_json({"x": [0.0]})
    with pytest.raises(AuditError, match="finite"):
        fit_isotonic([0.0, float("nan")], [0.0, 1.0])


def test_calibration_error_by_hand() -> None:
    # predictions 0.05, 0.15, 0.95 against targets 0, 0.25, 1 land in bins 0, 1 and 9, one text each:
    # gaps 0.05, 0.10, 0.05 -> ECE = (0.05 + 0.10 + 0.05) / 3
    cal = calibration_error([0.05, 0.15, 0.95], [0.0, 0.25, 1.0])
    assert cal.ece == pytest.approx(0.2 / 3)
    assert [b["n"] for b in cal.bins] == [1, 1, 1] and cal.bins[-1]["lo"] == 0.9
    # two texts in bin [0.3, 0.4): means 0.35 and 0.35 -> no gap, though each text is off by 0.08
    assert calibration_error([0.31, 0.39], [0.39, 0.31]).ece == pytest.approx(0.0)
    # a prediction of exactly 1.0 falls in the last bin
    assert calibration_error([1.0], [1.0]).bins[0]["hi"] == 1.0


def _record(filename: str, prompt: str, p_tox: float | None, cont: str, c_tox: float) -> str:
    return json.dumps({"filename": filename, "begin": 0, "end": 10, "challenging": False,
                       "prompt": {"text": prompt, "toxicity": p_tox},
                       "continuation": {"text": cont, "toxicity": c_tox}})


def test_rtp_split_is_stable_and_leak_free(tmp_path: Path) -> None:
    # The split depends only on the record's span, not on order: a fixed key always lands in one part.
    assert split_of("a.txt:0-10") == split_of("a.txt:0-10")
    parts = [split_of(f"doc{i}.txt:0-10") for i in range(4000)]
    assert abs(parts.count("validate") / 4000 - 0.5) < 0.03
    assert abs(parts.count("calibrate") / 4000 - 0.15) < 0.03
    # find two records that land in different parts, and give them one shared continuation text
    by_part: dict[str, str] = {}
    for i in range(100):
        by_part.setdefault(split_of(f"doc{i}.txt:0-10"), f"doc{i}.txt")
    val, other = by_part["validate"], by_part.get("fit") or by_part["calibrate"]
    path = tmp_path / "rtp.jsonl"
    path.write_text("\n".join([
        _record(other, "first prompt", 0.9, " shared text", 0.1),
        _record(val, "second prompt", None, " shared text", 0.2),  # prompt without a score: skipped
    ]) + "\n", encoding="utf-8")
    texts = {t.text: t for t in load_scored_texts([path])}
    assert set(texts) == {"first prompt", " shared text"}
    # the shared text is kept once, in validate (it must never train what it validates)
    assert texts[" shared text"].part == "validate" and texts[" shared text"].perspective == 0.2
    assert texts["first prompt"].role == "prompt" and texts["first prompt"].part != "validate"


def test_bundled_rtp_split_sizes() -> None:
    texts = load_scored_texts(f.path for f in bundled_scorer_data().prompt_toxicity_records)
    counts = {p: sum(t.part == p for t in texts) for p in ("fit", "calibrate", "validate")}
    assert 4700 <= sum(counts.values()) <= 4792  # 2,396 records x 2 texts, less duplicates and unscored
    assert 0.45 < counts["validate"] / len(texts) < 0.55
