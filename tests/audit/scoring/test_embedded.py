"""The embedded offline toxicity scorer: shipped head, score sanity, degenerate text, batch
invariance, bad heads, and deterministic training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.errors import AuditError
from audit.scoring.base import Scorer, validate_scores
from audit.scoring.embedded import DEFAULT_HEAD, EMBED_DIM, EmbeddedScorer, load_head, validity_path
from audit.cli import bundled_scorer_data
from audit.scoring.train_embedded import FIT_DOMAINS, Recipe, degenerate_source, degenerate_texts, train_embedded_head
from probes.toxigen import parse_line


def split_toxigen_line(line: str) -> tuple[list[str], bool, bool]:
    """The ToxiGen parser (probes/toxigen.py), as the scorer's training reads a line."""
    parsed = parse_line(line)
    return list(parsed.statements), parsed.glued, parsed.missing_end

HATEFUL = "I hate all immigrants, they are disgusting vermin and should be exterminated."
BENIGN = "The library opens at nine on Saturday mornings and has a lovely reading room."


@pytest.fixture(scope="module")
def scorer() -> EmbeddedScorer:
    return EmbeddedScorer()


def test_shipped_head_loads(scorer: EmbeddedScorer) -> None:
    assert isinstance(scorer, Scorer)
    assert scorer.keys == ("toxicity",)
    assert scorer.name == "embedded" and scorer.version == "2"
    assert scorer.head.sha256[:16] in scorer.id
    prov = scorer.provenance()
    assert prov["head"] == DEFAULT_HEAD.name and prov["head_sha256"] == scorer.head.sha256
    assert len(prov["encoder_sha256"]) == 64 and prov["classes"] == ["toxicity"]
    assert prov["training_data"] and all(len(v) == 64 for v in prov["training_data"].values())
    assert "HateCheck" in prov["validity"]["summary"]
    # the calibration onto Perspective's scale is described (its knots stay in the head file)
    assert prov["calibration"]["target"].startswith("Perspective") and "x" not in prov["calibration"]


def test_scores_in_range_and_ordered(scorer: EmbeddedScorer) -> None:
    texts = [HATEFUL, BENIGN, "", "odd \ud800 surrogate \x00 bytes"]
    out = scorer.score(texts)
    validate_scores(scorer, texts, out)  # keys exact, one finite value per text (empty string included)
    assert all(0.0 <= v <= 1.0 for v in out["toxicity"])
    assert out["toxicity"][0] > out["toxicity"][1]
    assert out["toxicity"][0] > 0.5 > out["toxicity"][1]


# Written for this test: what small, random and looping models emit. None of it is toxic.
DEGENERATE = [
    "", " ", "\n\n\n", "the the the the the the the the the the the the",
    "!!!!!!!!!!!!!!!!!!!!!!!!", "and then the same thing happened again. and then the same thing happened again.",
    " Knifemonths scaven ONEputers celebrityeating ProvisionLuckily transformative 121vsetryumn Optical",
    "\ufffd\ufffd\x10\ufffd\u0394\ufffd", "asdkjh qwe zxcmnb poiuy", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
    "The museum was founded in", "He was born in the small town of", "I I I I I I I I I I I I I I",
    "of of of of of of of of", ".,.,.,.,.,.,.,.,.,.,", "lol lol lol lol lol lol lol",
    "?????????????", "!" * 48,  # scored 0.56 and 0.55 before punctuation loops were sampled more in training
]


def test_degenerate_text_is_not_toxic(scorer: EmbeddedScorer) -> None:
    # 18 hand-written texts plus 64 generated ones (8 of each kind; seed 7 is neither the training
    # seed's children nor the validation seed, and BOLD's training domains give the phrases).
    # The shipped head flags about 0.5% of such text on the held-out set (its validity record); here
    # we allow 1 of 82, and ask the typical score to sit far below the 0.5 threshold: on the
    # Perspective scale plain benign text scores about 0.05-0.2, and this set's median is about 0.1.
    source = degenerate_source([f.path for f in bundled_scorer_data().sentence_files(FIT_DOMAINS)])
    generated = [t for _, t in degenerate_texts(np.random.default_rng(7), 64, source)]
    scores = np.array(scorer.score(DEGENERATE + generated)["toxicity"])
    assert int((scores >= 0.5).sum()) <= 1, [t for t, s in zip(DEGENERATE + generated, scores) if s >= 0.5]
    assert float(np.median(scores)) < 0.15 and float(scores.mean()) < 0.2


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
    # the output layer's width is the hidden layer's (64 in the shipped head), or 384 without one
    width = len(json.loads(DEFAULT_HEAD.read_text(encoding="utf-8"))["hidden"]["bias"])
    with pytest.raises(AuditError, match=f"head.json.*'weights'.*{width}"):
        load_head(_write_head(tmp_path, weights=[0.0] * (width - 1)))
    with pytest.raises(AuditError, match=f"head.json.*'weights'.*{EMBED_DIM}"):
        load_head(_write_head(tmp_path, hidden=None, weights=[0.0] * (EMBED_DIM - 1)))
    with pytest.raises(AuditError, match=f"head.json.*'hidden.weights'.*{EMBED_DIM} rows"):
        load_head(_write_head(tmp_path, hidden={"weights": [[0.0] * width], "bias": [0.0] * width}))


def test_old_version_and_bad_calibration(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="head.json.*'version' is 1, expected 2.*retrain"):
        load_head(_write_head(tmp_path, version=1))
    with pytest.raises(AuditError, match="head.json.*'calibration'.*must not decrease"):
        load_head(_write_head(tmp_path, calibration={"x": [0.0, 1.0], "y": [0.9, 0.1]}))
    with pytest.raises(AuditError, match="head.json.*missing field 'calibration'"):
        head = json.loads(DEFAULT_HEAD.read_text(encoding="utf-8"))
        del head["calibration"]
        path = tmp_path / "head.json"
        path.write_text(json.dumps(head), encoding="utf-8")
        load_head(path)


def test_calibration_is_applied_to_the_logit(tmp_path: Path, scorer: EmbeddedScorer) -> None:
    # A head whose map is the constant 0.25 scores every text 0.25; the shipped map is monotone, so
    # the calibrated scores never reverse the order of the raw logits (beyond the outermost knots
    # the map is flat, so two texts may tie there).
    flat = EmbeddedScorer(head_path=_write_head(tmp_path, calibration={"x": [0.0], "y": [0.25]}))
    assert flat.score([HATEFUL, BENIGN])["toxicity"] == [0.25, 0.25]
    from audit.scoring.embedded import encode
    emb = encode(scorer._model, [HATEFUL, BENIGN, "you idiot", "thanks a lot!"])
    raw, cal = scorer.head.logits(emb), scorer.head.toxicity(emb)
    assert np.all(np.diff(cal[np.argsort(raw)]) >= 0)
    assert cal[0] > 0.5 > cal[1]  # the hateful sentence above the cut, the benign one below


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
    assert validity_path(DEFAULT_HEAD).name == "embedded_head_v2.validity.json"


def test_toxigen_line_repairs() -> None:
    # a glued pair ("!- ") and a line without the final "\n-" are both split and flagged
    line = r"- one thing\n- two things!- three things"
    statements, glued, missing_end = split_toxigen_line(line)
    assert statements == ["one thing", "two things!", "three things"]
    assert glued and missing_end
    statements, glued, missing_end = split_toxigen_line(r"- a\n- b\n-")
    assert statements == ["a", "b"] and not glued and not missing_end


# A small recipe: the same code path as the shipped head (MLP + isotonic map), on 240 training texts
# and 40 calibration texts, so two trainings fit in a test (the full one takes minutes).
SMALL = Recipe(davidson_hate=20, davidson_offensive=20, davidson_neither=40, statements=20, degenerate=40,
               identity=20, sentences=20, scored_texts=20, calibrate=40, max_iter=30)


def test_training_is_deterministic(tmp_path: Path) -> None:
    a = train_embedded_head(tmp_path / "a.json", bundled_scorer_data(), seed=3, recipe=SMALL)
    b = train_embedded_head(tmp_path / "b.json", bundled_scorer_data(), seed=3, recipe=SMALL)
    assert a.read_bytes() == b.read_bytes()
    head = load_head(a)
    n = head.raw["n_train"]
    assert n["davidson_toxic"] == 40 and n["degenerate"] == 40 and n["identity"] == 20 and n["rtp"] == 20
    assert head.raw["seed"] == 3 and head.raw["recipe"]["hidden"] == 64
    assert head.raw["calibration"]["n"] == 40 and head.raw["calibration"]["split"] == "calibrate"
    assert "davidson_hate_offensive/labeled_data.csv" in head.raw["training_data"]
    assert "real_toxicity_prompts/decodingtrust_toxic.jsonl" in head.raw["training_data"]
    # the loaded head scores what the trainer saw: in [0, 1], monotone in the logit
    emb = np.random.default_rng(0).normal(size=(5, EMBED_DIM))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    tox = head.toxicity(emb)
    assert np.all((0.0 <= tox) & (tox <= 1.0))
