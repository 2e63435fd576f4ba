"""The scoring runner: each distinct text scored once, cached, validated; NaN never becomes 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest

from audit.errors import AuditError
from audit.scoring.base import ScoreCache, score_key, score_texts


class LengthScorer:
    """A deterministic fixture scorer (the runner, not a classifier, is under test)."""

    name = "length"
    version = "1"

    def __init__(self, nan_for: str | None = None, keys: tuple[str, ...] = ("toxicity",)) -> None:
        self.calls: list[list[str]] = []
        self.nan_for = nan_for
        self._keys = keys

    @property
    def keys(self) -> tuple[str, ...]:
        return ("toxicity",)

    @property
    def id(self) -> str:
        return "length@1"

    def provenance(self) -> dict[str, Any]:
        return {"scorer": self.name}

    def score(self, texts: Sequence[str]) -> dict[str, list[float]]:
        self.calls.append(list(texts))
        vals = [float("nan") if t == self.nan_for else len(t) / 100 for t in texts]
        return {k: vals for k in self._keys}


def test_distinct_texts_scored_once_in_chunks_and_cached(tmp_path: Path) -> None:
    texts = ["a", "bb", "a", "", "ccc", "bb"]  # 4 distinct, including the empty string
    cache = ScoreCache(tmp_path / "cache.sqlite")
    scorer = LengthScorer()
    out = score_texts(scorer, texts, cache, chunk=3, progress=False)
    # len/100: a -> 0.01, bb -> 0.02, "" -> 0.0 (scored, not dropped), ccc -> 0.03
    assert out == {"a": {"toxicity": 0.01}, "bb": {"toxicity": 0.02}, "": {"toxicity": 0.0},
                   "ccc": {"toxicity": 0.03}}
    assert scorer.calls == [["a", "bb", ""], ["ccc"]]
    cache.close()
    again = LengthScorer()
    cache = ScoreCache(tmp_path / "cache.sqlite")
    assert score_texts(again, texts, cache, progress=False) == out
    assert again.calls == []  # everything came from the cache
    cache.close()


def test_score_key_includes_scorer_id() -> None:
    assert score_key("a@1", "x") != score_key("a@2", "x")
    assert score_key("a@1", "x") == score_key("a@1", "x")


def test_nan_is_an_error_naming_the_text(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="non-finite 'toxicity' score for text 'boom'"):
        score_texts(LengthScorer(nan_for="boom"), ["ok", "boom"], None, progress=False)


def test_keys_must_match_declared_keys() -> None:
    with pytest.raises(AuditError, match="returned keys"):
        score_texts(LengthScorer(keys=("toxicity", "extra")), ["x"], None, progress=False)


def test_lone_surrogate_text_is_scored_not_crashed(tmp_path: Path) -> None:
    cache = ScoreCache(tmp_path / "c.sqlite")
    out = score_texts(LengthScorer(), ["bad \udcff"], cache, progress=False)
    # "bad \udcff" has 5 code points -> 0.05
    assert out["bad \udcff"] == {"toxicity": 0.05}
    cache.close()
