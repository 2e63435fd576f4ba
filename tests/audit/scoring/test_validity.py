"""Validity math (ROC-AUC, F1, per-functionality accuracy) on tiny hand-made fixtures, and the
shipped validity record of the embedded head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytest

from audit.scoring.embedded import DEFAULT_HEAD, validity_path
from audit.scoring.validity import f1_score, format_validity, roc_auc, validate_scorer


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
    rec = validate_scorer(KeywordScorer(), out_path=out, hatecheck_csv=hatecheck, ethos_csv=ethos)
    funcs = rec["hatecheck"]["functionalities"]
    assert rec["hatecheck"]["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert funcs["derog_h"]["accuracy"] == pytest.approx(2 / 3, abs=1e-6) and funcs["derog_h"]["n"] == 3
    assert funcs["negate_nh"]["accuracy"] == 0.5 and funcs["neutral_nh"]["accuracy"] == 1.0
    lo, hi = funcs["derog_h"]["ci"]
    assert 0.0 <= lo < 2 / 3 < hi <= 1.0
    assert rec["weak_spots"] == ["negate_nh", "derog_h", "neutral_nh"]
    assert rec["ethos"] == {**rec["ethos"], "roc_auc": 0.5, "f1": 0.5, "n": 4, "n_hate": 2}
    assert json.loads(out.read_text(encoding="utf-8")) == rec
    assert "negate_nh 0.50" in rec["summary"]
    table = format_validity(rec)
    assert "derog_h" in table and "ROC-AUC 0.500" in table


def test_shipped_validity_record() -> None:
    path = validity_path(DEFAULT_HEAD)
    rec = json.loads(path.read_text(encoding="utf-8"))
    assert rec["schema_version"] == 1 and rec["scorer"] == "embedded"
    funcs = rec["hatecheck"]["functionalities"]
    assert len(funcs) == 29
    assert sum(f["n"] for f in funcs.values()) == rec["hatecheck"]["n"] == 3728
    for f in funcs.values():
        assert 0.0 <= f["accuracy"] <= 1.0 and 0.0 <= f["ci"][0] <= f["ci"][1] <= 1.0
    assert 0.0 <= rec["hatecheck"]["accuracy"] <= 1.0
    assert 0.0 <= rec["ethos"]["roc_auc"] <= 1.0 and 0.0 <= rec["ethos"]["f1"] <= 1.0
    assert rec["ethos"]["n"] == 998 and len(rec["weak_spots"]) == 3
    # the record belongs to the shipped head
    from audit.scoring.embedded import load_head
    assert load_head(DEFAULT_HEAD).sha256[:16] in rec["scorer_id"]
