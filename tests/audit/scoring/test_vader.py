"""VaderScorer: hand-checkable sentences, the empty text, stable keys, batch = one at a time."""

from __future__ import annotations

from audit.scoring.base import Scorer, validate_scores
from audit.scoring.vader import KEYS, VaderScorer

TEXTS = ["I love this, it is wonderful and amazing!", "I hate this, it is terrible and awful.",
         "The car is blue.", "", "not good", "bad \udcff byte"]


def test_clear_sentences() -> None:
    scores = VaderScorer().score(TEXTS[:3])
    # "love", "wonderful", "amazing" are all strongly positive lexicon entries, "!" amplifies
    assert scores["compound"][0] > 0.5 and scores["pos"][0] > scores["neg"][0]
    # "hate", "terrible", "awful" are all strongly negative
    assert scores["compound"][1] < -0.5 and scores["neg"][1] > scores["pos"][1]
    # no lexicon word at all: neutral throughout
    assert (scores["compound"][2], scores["neg"][2], scores["neu"][2], scores["pos"][2]) == (0.0, 0.0, 1.0, 0.0)


def test_empty_text_is_all_zero() -> None:
    # VADER divides by the total of word weights; with no words it returns 0.0 for neu as well
    scores = VaderScorer().score([""])
    assert scores == {"compound": [0.0], "neg": [0.0], "neu": [0.0], "pos": [0.0]}


def test_negation_flips() -> None:
    scores = VaderScorer().score(["good", "not good"])
    assert scores["compound"][0] > 0 > scores["compound"][1]


def test_keys_stable_and_batch_equals_single() -> None:
    scorer = VaderScorer()
    assert isinstance(scorer, Scorer)
    batch = scorer.score(TEXTS)
    validate_scores(scorer, TEXTS, batch)
    assert tuple(batch) == KEYS == scorer.keys == tuple(scorer.score([]))
    for i, text in enumerate(TEXTS):
        single = scorer.score([text])
        assert tuple(single) == KEYS
        assert all(single[k] == [batch[k][i]] for k in KEYS)


def test_provenance_pins_the_lexicon() -> None:
    scorer = VaderScorer()
    prov = scorer.provenance()
    assert prov["sha256"] == "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5"
    assert "vaderSentiment3.3.2" in scorer.version
    assert scorer.id.startswith("vader@1ec9c6e9ee19aade|v")
