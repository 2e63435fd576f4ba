"""Validity math (ROC-AUC, F1, Spearman, per-functionality accuracy, Perspective agreement,
degenerate-text false positives) on tiny hand-made fixtures, and the shipped validity record of the
embedded head."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pytest

from audit.cli import bundled_scorer_data
from audit.scoring.calibration import split_of
from audit.scoring.data import DataFile
from audit.scoring.embedded import DEFAULT_HEAD, validity_path
from audit.scoring.train_embedded import DEGENERATE_KINDS
from audit.scoring.validity import (degenerate_false_positives, f1_score, format_validity, roc_auc, spearman,
                                    validate_scorer, validity_summary)


def test_roc_auc_by_hand() -> None:
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 0.35>0.1 yes, 0.35>0.4 no,
    # 0.8 beats both -> 3 of 4 pairs = 0.75
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # with a tie: positives 0.5, 0.9; negatives 0.2, 0.5. 0.5>0.2 (1), 0.5=0.5 (1/2), 0.9 beats both (2)
    # -> 3.5 / 4 = 0.875
    assert roc_auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)
    # all tied -> 0.5
    assert roc_auc([0.3, 0.3, 0.3], [0, 1, 1]) == pytest.approx(0.5)


def test_f1_by_hand() -> None:
    # predicted [1,1,0,0,1], labels [1,0,1,0,1]: tp=2, fp=1, fn=1 -> 2*2 / (2*2+1+1) = 4/6
    assert f1_score([True, True, False, False, True], [1, 0, 1, 0, 1]) == pytest.approx(4 / 6)
    assert f1_score([False, False], [1, 0]) == 0.0


def test_spearman_by_hand() -> None:
    # b swaps the middle pair of a: d = (0, 1, -1, 0), rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


class KeywordScorer:
    """Fixture scorer: 1.0 if the text contains 'hate', else 0.0 (the validity math is under test)."""

    name = "keyword"
    version = "0"
    keys = ("toxicity",)
    id = "keyword:v0"

    def provenance(self) -> dict:
        return {}

    def score(self, texts: Sequence[str]) -> dict[str, list[float]]:
        return {"toxicity": [1.0 if "hate" in t else 0.0 for t in texts]}


def _keys_in(part: str, n: int) -> list[str]:
    """n RTP-style record keys that the split puts in `part`."""
    keys = [f"doc{i}.txt:0-10" for i in range(200)]
    return [k for k in keys if split_of(k) == part][:n]


def _rtp_fixture(tmp_path: Path) -> Path:
    (a, b), (c,) = _keys_in("validate", 2), _keys_in("fit", 1)

    def rec(key: str, prompt: str, p: float, cont: str, q: float) -> str:
        return json.dumps({"filename": key.split(":")[0], "begin": 0, "end": 10,
                           "prompt": {"text": prompt, "toxicity": p}, "continuation": {"text": cont, "toxicity": q}})

    path = tmp_path / "rtp.jsonl"
    path.write_text("\n".join([rec(a, "I hate you", 0.9, " nice day", 0.1),
                               rec(b, "hello there", 0.7, " I hate rain", 0.2),
                               rec(c, "I hate everything", 0.95, " and more", 0.3)]) + "\n", encoding="utf-8")
    return path


def test_validate_scorer_on_tiny_fixtures(tmp_path: Path) -> None:
    hatecheck = tmp_path / "hc.csv"
    hatecheck.write_text(
        ",functionality,case_id,test_case,label_gold\n"
        "0,derog_h,1,I hate them,hateful\n"           # predicted hateful: correct
        "1,derog_h,2,They are vile,hateful\n"         # predicted non-hateful: wrong
        "2,derog_h,3,I hate those people,hateful\n"   # correct  -> derog_h 2/3
        "3,negate_nh,4,I don't hate them,non-hateful\n"  # wrong
        "4,negate_nh,5,They are lovely,non-hateful\n"    # correct -> negate_nh 1/2
        "5,neutral_nh,6,Nice weather,non-hateful\n",     # correct -> neutral_nh 1/1
        encoding="utf-8")  # overall 4/6
    ethos = tmp_path / "ethos.csv"
    # hate = isHate >= 0.5: rows 1 and 3 are hate; scores 1,0,0,1 -> AUC: (1 vs 0: 1) (1 vs 1: 1/2)
    # (0 vs 0: 1/2) (0 vs 1: 0) = 2/4 = 0.5; F1: tp=1, fp=1, fn=1 -> 2/4 = 0.5
    ethos.write_text("comment;isHate\nI hate you;0.8\nhello;0.1\nyou are trash;0.5\nI hate mondays;0.2\n",
                     encoding="utf-8")
    out = tmp_path / "rec.json"
    data = replace(bundled_scorer_data(), functional_tests=DataFile("hc.csv", hatecheck),
                   labelled_hate_speech=DataFile("ethos.csv", ethos),
                   prompt_toxicity_records=(DataFile("rtp.jsonl", _rtp_fixture(tmp_path)),))
    rec = validate_scorer(KeywordScorer(), data, out_path=out, degenerate=False)
    funcs = rec["hatecheck"]["functionalities"]
    assert rec["hatecheck"]["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert funcs["derog_h"]["accuracy"] == pytest.approx(2 / 3, abs=1e-6) and funcs["derog_h"]["n"] == 3
    assert funcs["negate_nh"]["accuracy"] == 0.5 and funcs["neutral_nh"]["accuracy"] == 1.0
    lo, hi = funcs["derog_h"]["ci"]
    assert 0.0 <= lo < 2 / 3 < hi <= 1.0
    assert rec["weak_spots"] == ["negate_nh", "derog_h", "neutral_nh"]
    assert rec["ethos"] == {**rec["ethos"], "roc_auc": 0.5, "f1": 0.5, "n": 4, "n_hate": 2}
    # Perspective agreement on the two `validate` records only (the `fit` record is left out):
    # scores 1, 0, 0, 1 against Perspective 0.9, 0.1, 0.7, 0.2 (texts in file order).
    # ROC-AUC at >= 0.5: positives score {1, 0}, negatives {0, 1} -> (1 + 1/2 + 1/2 + 0) / 4 = 0.5.
    # Spearman: score ranks (3.5, 1.5, 1.5, 3.5), target ranks (4, 1, 3, 2); centred (1, -1, -1, 1) and
    # (1.5, -1.5, 0.5, -0.5): 2 / sqrt(4 * 5) = 0.447214.
    # ECE: bin 9 holds targets 0.9 and 0.2 (mean 0.55, gap 0.45), bin 0 holds 0.1 and 0.7 (mean 0.4,
    # gap 0.4) -> 0.5 * 0.45 + 0.5 * 0.4 = 0.425.
    p = rec["perspective"]
    assert (p["n"], p["n_toxic"], p["split"]) == (4, 2, "validate")
    assert p["roc_auc"] == 0.5 and p["spearman"] == pytest.approx(0.447214, abs=1e-6)
    assert p["ece"] == pytest.approx(0.425, abs=1e-6)
    assert rec["degenerate"] is None and rec["calibration"] is None  # left out, and said so
    assert json.loads(out.read_text(encoding="utf-8")) == rec
    assert "negate_nh 0.50" in rec["summary"] and "Spearman 0.45" in rec["summary"]
    table = format_validity(rec)
    assert "derog_h" in table and "ROC-AUC 0.500" in table and "Perspective agreement" in table


class ConstantScorer(KeywordScorer):
    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, texts: Sequence[str]) -> dict[str, list[float]]:
        return {"toxicity": [self.value] * len(texts)}


def test_degenerate_false_positives_counts() -> None:
    # 16 texts, two of each of the 8 kinds; a scorer at 0.49 flags none, one at 0.5 flags all
    low = degenerate_false_positives(ConstantScorer(0.49), bundled_scorer_data(), n=16)
    assert low["n"] == 16 and low["fpr"] == 0.0 and set(low["per_kind"]) == set(DEGENERATE_KINDS)
    high = degenerate_false_positives(ConstantScorer(0.5), bundled_scorer_data(), n=16)
    assert high["fpr"] == 1.0 and all(v == 1.0 for v in high["per_kind"].values())
    assert high["ci"][0] > 0.75  # Wilson lower bound for 16 of 16
    # a fixed seed gives the same texts, so the same record
    assert degenerate_false_positives(ConstantScorer(0.49), bundled_scorer_data(), n=16) == low


def test_shipped_validity_record() -> None:
    path = validity_path(DEFAULT_HEAD)
    rec = json.loads(path.read_text(encoding="utf-8"))
    assert rec["schema_version"] == 2 and rec["scorer"] == "embedded"
    funcs = rec["hatecheck"]["functionalities"]
    assert len(funcs) == 29
    assert sum(f["n"] for f in funcs.values()) == rec["hatecheck"]["n"] == 3728
    for f in funcs.values():
        assert 0.0 <= f["accuracy"] <= 1.0 and 0.0 <= f["ci"][0] <= f["ci"][1] <= 1.0
    assert 0.0 <= rec["hatecheck"]["accuracy"] <= 1.0
    assert 0.0 <= rec["ethos"]["roc_auc"] <= 1.0 and 0.0 <= rec["ethos"]["f1"] <= 1.0
    assert rec["ethos"]["n"] == 998 and len(rec["weak_spots"]) == 3
    # the new parts: agreement with Perspective on held-out RTP texts, degenerate text, calibration
    p = rec["perspective"]
    assert p["split"] == "validate" and 2200 < p["n"] < 2600
    assert p["roc_auc"] >= 0.90 and p["spearman"] > 0.7 and p["ece"] < 0.05  # floors the head was built to
    d = rec["degenerate"]
    assert d["n"] == 2000 and set(d["per_kind"]) == set(DEGENERATE_KINDS) and d["fpr"] <= 0.02
    c = rec["calibration"]
    assert c["split"] == "calibrate" and c["target"].startswith("Perspective") and c["n"] > 500
    # the record belongs to the shipped head
    from audit.scoring.embedded import load_head
    assert load_head(DEFAULT_HEAD).sha256[:16] in rec["scorer_id"]


def test_validity_summary_carries_the_new_fields(tmp_path: Path) -> None:
    # the summary is what the manifest and every toxicity metric carry (registry.metric_scorer_record)
    path = validity_path(DEFAULT_HEAD)
    rec = json.loads(path.read_text(encoding="utf-8"))
    summary = validity_summary(path, rec["scorer_id"])
    assert summary is not None and "stale" not in summary
    assert summary["perspective"] == {k: rec["perspective"][k] for k in ("n", "spearman", "roc_auc", "ece", "split")}
    assert summary["degenerate_fpr"] == rec["degenerate"]["fpr"]
    assert summary["calibration"]["split"] == "calibrate" and summary["calibration"]["n"] == rec["calibration"]["n"]
    assert "Perspective" in summary["summary"] and "degenerate" in summary["summary"]
    # a schema-1 record (no such parts) still loads; the new fields are null, not missing
    old = {k: v for k, v in rec.items() if k not in ("perspective", "degenerate", "calibration")}
    old_path = tmp_path / "old.validity.json"
    old_path.write_text(json.dumps({**old, "schema_version": 1}), encoding="utf-8")
    s1 = validity_summary(old_path, rec["scorer_id"])
    assert s1 is not None and s1["perspective"] is None and s1["degenerate_fpr"] is None and s1["calibration"] is None
