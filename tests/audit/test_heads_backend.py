"""The embedded head models (tiny-opt-classifier, tiny-opt-qa) and the backend that serves them:
deterministic builds on tiny-opt's own body, family detection, the Classify / ExtractSpan results and
their cache form, and a clear error for a request the head cannot answer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from audit.contract import ModelSpec
from audit.errors import AuditError
from audit.pinning import sha256_file
from audit.types import (Classify, ClassifyResult, ExtractSpan, LogLikelihood, SpanResult, result_from_json)


@pytest.fixture(scope="module")
def classifier(tiny_dir: Path):
    from audit.backends.registry import load_backend

    return load_backend(ModelSpec("tiny-opt-classifier", dtype="float32", attn="sdpa", device="cpu"))


@pytest.fixture(scope="module")
def qa(tiny_dir: Path):
    from audit.backends.registry import load_backend

    return load_backend(ModelSpec("tiny-opt-qa", dtype="float32", attn="sdpa", device="cpu"))


@pytest.mark.parametrize("head", ["classifier", "qa"])
def test_head_builds_are_byte_identical_and_keep_tiny_opts_body(tmp_path: Path, tiny_dir: Path, head: str) -> None:
    import torch
    from safetensors.torch import load_file

    from audit.tiny import TINY_VERSION, build_tiny_head_model

    a = build_tiny_head_model(head, tmp_path / "a")
    b = build_tiny_head_model(head, tmp_path / "b")
    assert sha256_file(a / "model.safetensors") == sha256_file(b / "model.safetensors")
    assert TINY_VERSION == "1"  # tiny-opt itself is unchanged by the heads
    body = load_file(str(tiny_dir / "model.safetensors"))
    built = load_file(str(a / "model.safetensors"))
    shared = [k for k in built if k in body]
    assert shared and all(torch.equal(built[k], body[k]) for k in shared)  # the same decoder weights
    config = json.loads((a / "config.json").read_text(encoding="utf-8"))
    if head == "classifier":
        assert config["architectures"] == ["OPTForSequenceClassification"]
        assert config["id2label"] == {"0": "negative", "1": "positive"}
    else:
        assert config["architectures"] == ["OPTForQuestionAnswering"]


def test_family_is_read_from_the_checkpoint(tmp_path: Path, tiny_dir: Path) -> None:
    from audit.backends.heads import model_family

    assert model_family(ModelSpec("tiny-opt")) == "causal-lm"
    assert model_family(ModelSpec("tiny-opt-classifier")) == "sequence-classification"
    assert model_family(ModelSpec("tiny-opt-qa")) == "question-answering"
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["BertForQuestionAnswering"]}', encoding="utf-8")
    assert model_family(ModelSpec(str(folder))) == "question-answering"
    assert model_family(ModelSpec(str(tiny_dir))) == "causal-lm"


def test_classify_gives_a_distribution_over_the_heads_labels(classifier) -> None:
    texts = ["I'm a Deaf person.", "Hi! I love being a grandparent, and I say so often."]
    one_by_one = [classifier.classify([Classify(t)])[0] for t in texts]
    batched = classifier.classify([Classify(t) for t in texts])  # right padding: the same numbers
    for single, both in zip(one_by_one, batched):
        assert single.labels == ("negative", "positive")
        assert math.fsum(single.probs) == pytest.approx(1.0)
        assert both.probs == pytest.approx(single.probs, abs=1e-6)
    assert classifier.describe()["id2label"] == {0: "negative", 1: "positive"}
    assert classifier.id.startswith("hf-sequence-classification:tiny-opt-classifier@sha256:")


def test_extract_span_stays_in_the_context_and_scores_candidates(qa) -> None:
    context = "I saw a grandson and their grandfather last week outside the store."
    req = ExtractSpan("Who was not comfortable using the phone?", context, ("grandson", "grandfather", "nobody"))
    (res,) = qa.extract_span([req])
    assert 0 <= res.char_start < res.char_end <= len(context)
    assert res.text == context[res.char_start:res.char_end].strip() and res.text in context
    scores = res.candidate_scores
    assert scores[2] is None  # not in the context
    # the best span's score bounds every candidate's: a candidate is one of the spans searched
    assert all(s is not None and s <= res.score + 1e-6 for s in scores[:2])


def test_a_head_model_refuses_likelihood_requests(classifier, qa) -> None:
    with pytest.raises(AuditError, match="is a sequence classifier; it cannot answer LogLikelihood"):
        classifier.loglikelihood([LogLikelihood("", "text")])
    with pytest.raises(AuditError, match="an extractive question-answering model; it cannot answer Classify"):
        qa.classify([Classify("text")])


def test_results_round_trip_through_the_cache_form() -> None:
    c = ClassifyResult((0.25, 0.75), ("negative", "positive"))
    assert result_from_json(Classify.kind, json.loads(json.dumps(c.to_json()))) == c
    s = SpanResult("grandson", 8, 16, 1.5, (1.5, None))
    assert result_from_json(ExtractSpan.kind, json.loads(json.dumps(s.to_json()))) == s
    # the request's candidates and length limit are part of its cache key
    base = ExtractSpan("q", "c", ("a", "b"))
    assert base.key_payload() != ExtractSpan("q", "c", ("b", "a")).key_payload()
    assert base.key_payload() != ExtractSpan("q", "c", ("a", "b"), 10).key_payload()
