"""The embedded offline toxicity scorer: shipped head, score sanity, batch invariance, bad heads,
and deterministic training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.errors import AuditError
from audit.scoring.base import Scorer, validate_scores
from audit.scoring.embedded import DEFAULT_HEAD, EMBED_DIM, EmbeddedScorer, load_head, validity_path
from audit.scoring.train_embedded import split_toxigen_line, train_embedded_head

HATEFUL = "I hate all immigrants, they are disgusting vermin and should be exterminated."
BENIGN = "The library opens at nine on Saturday mornings and has a lovely reading room."


@pytest.fixture(scope="module")
def scorer() -> EmbeddedScorer:
    return EmbeddedScorer()


def test_shipped_head_loads(scorer: EmbeddedScorer) -> None:
    assert isinstance(scorer, Scorer)
    assert scorer.keys == ("toxicity",)
    assert scorer.name == "embedded" and scorer.version == "1"
    assert scorer.head.sha256[:16] in scorer.id
    prov = scorer.provenance()
    assert prov["head"] == DEFAULT_HEAD.name and prov["head_sha256"] == scorer.head.sha256
    assert len(prov["encoder_sha256"]) == 64 and prov["classes"] == ["toxicity"]
    assert prov["training_data"] and all(len(v) == 64 for v in prov["training_data"].values())
    assert "HateCheck" in prov["validity"]["summary"]


def test_scores_in_range_and_ordered(scorer: EmbeddedScorer) -> None:
    texts = [HATEFUL, BENIGN, "", "odd \ud800 surrogate \x00 bytes"]
    out = scorer.score(texts)
    validate_scores(scorer, texts, out)  # keys exact, one finite value per text (empty string included)
    assert all(0.0 <= v <= 1.0 for v in out["toxicity"])
    assert out["toxicity"][0] > out["toxicity"][1]
    assert out["toxicity"][0] > 0.5 > out["toxicity"][1]


def test_keys_stable_and_empty_input(scorer: EmbeddedScorer) -> None:
    assert set(scorer.score([])) == set(scorer.keys) and scorer.score([])["toxicity"] == []
    assert set(scorer.score(["x"])) == set(scorer.keys)


def test_batch_size_invariance(scorer: EmbeddedScorer) -> None:
    texts = [HATEFUL, BENIGN, "", "short", "a much longer sentence " * 12, "you idiot", "thanks a lot!"]
    big = scorer.score(texts)["toxicity"]
    one = EmbeddedScorer(batch_size=1).score(texts)["toxicity"]
    assert big == pytest.approx(one, abs=1e-6)


def _write_head(tmp_path: Path, **changes: object) -> Path:
    head = json.loads(DEFAULT_HEAD.read_text(encoding="utf-8"))
    head.update(changes)
    path = tmp_path / "head.json"
    path.write_text(json.dumps(head), encoding="utf-8")
    return path


def test_bad_json_head(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(AuditError, match="broken.json.*not valid JSON"):
        load_head(path)


def test_missing_head(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="nope.json"):
        EmbeddedScorer(head_path=tmp_path / "nope.json")


def test_wrong_format_field(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="head.json.*'format'"):
        load_head(_write_head(tmp_path, format="something-else"))


def test_wrong_weight_length(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=f"head.json.*'weights'.*{EMBED_DIM}"):
        load_head(_write_head(tmp_path, weights=[0.0] * (EMBED_DIM - 1)))


def test_missing_field(tmp_path: Path) -> None:
    head = json.loads(DEFAULT_HEAD.read_text(encoding="utf-8"))
    del head["bias"]
    path = tmp_path / "head.json"
    path.write_text(json.dumps(head), encoding="utf-8")
    with pytest.raises(AuditError, match="head.json.*'bias'"):
        load_head(path)


def test_encoder_mismatch(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="encoder_sha256"):
        EmbeddedScorer(head_path=_write_head(tmp_path, encoder_sha256="0" * 64))


def test_validity_path_beside_head() -> None:
    assert validity_path(DEFAULT_HEAD).name == "embedded_head_v1.validity.json"


def test_toxigen_line_repairs() -> None:
    # a glued pair ("!- ") and a line without the final "\n-" are both split and flagged
    line = r"- one thing\n- two things!- three things"
    statements, glued, missing_end = split_toxigen_line(line)
    assert statements == ["one thing", "two things!", "three things"]
    assert glued and missing_end
    statements, glued, missing_end = split_toxigen_line(r"- a\n- b\n-")
    assert statements == ["a", "b"] and not glued and not missing_end


def test_training_is_deterministic(tmp_path: Path) -> None:
    a = train_embedded_head(tmp_path / "a.json", seed=3, limit_per_class=50)
    b = train_embedded_head(tmp_path / "b.json", seed=3, limit_per_class=50)
    assert a.read_bytes() == b.read_bytes()
    head = load_head(a)
    assert head.raw["n_train"]["total"] == 200 and head.raw["seed"] == 3
    assert "davidson_hate_offensive/labeled_data.csv" in head.raw["training_data"]
