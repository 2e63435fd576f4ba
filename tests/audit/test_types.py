"""audit.types: request validation, result JSON round-trips, and NaN-free metric JSON."""

from __future__ import annotations

import json
import math

import pytest

from audit.types import (
    Classify,
    Embed,
    ExtractSpan,
    Generate,
    Generation,
    GenParams,
    GroupValue,
    LmEvalMetric,
    LmEvalTask,
    LogLikelihood,
    LogLikelihoodResult,
    Metric,
    ProbeInfo,
    Sample,
    canonical_json,
    dedupe,
    result_from_json,
    skipped_metric,
)


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(max_new_tokens=-3), "max_new_tokens"),
    (dict(max_new_tokens=8, n=2), "greedy"),  # n > 1 without sampling
    (dict(max_new_tokens=8, do_sample=True, n=0), "n must be"),
    (dict(max_new_tokens=8, do_sample=True, top_p=0.0), "top_p"),
    (dict(max_new_tokens=8, do_sample=True, top_p=1.01), "top_p"),
    (dict(max_new_tokens=8, do_sample=True, top_p=-0.5), "top_p"),
    (dict(max_new_tokens=8, do_sample=True, temperature=0.0), "temperature"),
    (dict(max_new_tokens=8, do_sample=True, temperature=-1.0), "temperature"),
])
def test_gen_params_rejects(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GenParams(**kwargs)


def test_gen_params_accepts_edges() -> None:
    p = GenParams(max_new_tokens=1, do_sample=True, top_p=1.0, temperature=1e-6, n=4)
    assert (p.max_new_tokens, p.top_p, p.n) == (1, 1.0, 4)
    assert GenParams(max_new_tokens=1).do_sample is False


def test_gen_params_rejects_nan_temperature() -> None:
    with pytest.raises(ValueError):
        GenParams(max_new_tokens=8, do_sample=True, temperature=math.nan)


def test_requests_are_frozen_hashable_and_dedupe_in_order() -> None:
    p = GenParams(max_new_tokens=4)
    reqs = [Generate("a", p), LogLikelihood("", "x"), Generate("a", GenParams(max_new_tokens=4)),
            LogLikelihood("", "y"), LogLikelihood("", "x")]
    assert dedupe(reqs) == [Generate("a", p), LogLikelihood("", "x"), LogLikelihood("", "y")]
    with pytest.raises(AttributeError):
        reqs[0].prompt = "b"  # type: ignore[misc]


def test_key_payload_contents() -> None:
    g = Generate("hi", GenParams(max_new_tokens=3))
    assert g.key_payload() == {"kind": "generate", "prompt": "hi", "params": {
        "max_new_tokens": 3, "do_sample": False, "temperature": 1.0, "top_p": 1.0, "n": 1}}
    assert LogLikelihood("c", "x").key_payload() == {"kind": "loglikelihood", "context": "c", "continuation": "x"}


def test_key_payload_is_the_kind_and_every_field_of_each_request() -> None:
    # the cache key of every kind: its fields as written before one shared key_payload (tuples as JSON lists)
    assert canonical_json(ExtractSpan("q", "c", ("b", "a"), 10).key_payload()) == (
        '{"candidates":["b","a"],"context":"c","kind":"extract_span","max_answer_tokens":10,"question":"q"}')
    assert Embed("t", 3, "last").key_payload() == {"kind": "embed", "text": "t", "layer": 3, "pooling": "last"}
    assert Classify("t").key_payload() == {"kind": "classify", "text": "t"}


def test_probe_info_from_an_older_summary_takes_defaults() -> None:
    # a summary written before probes declared short names and lm-eval tasks: aliases (), lm_eval None
    # ("not recorded", so a reader falls back to the registered description), never () ("no counterpart")
    old = {"name": "p", "version": "1", "title": "P", "description": "", "citation": "", "data_license": "",
           "axis": "bias"}
    info = ProbeInfo.from_json(old)
    assert info.described and info.aliases == () and info.lm_eval is None
    task = LmEvalTask("task_x", "1.0", [LmEvalMetric("m", "acc", "hit", higher_is_better=True)])
    new = ProbeInfo("p", "1", "P", "", "", "", axis="bias", aliases=["q"], lm_eval=[task])
    assert new.aliases == ("q",) and new.lm_eval == (task,) and isinstance(task.metrics, tuple)
    written = json.loads(json.dumps(new.to_json()))  # through summary.json's text
    assert written["lm_eval"][0]["metrics"][0]["item_field"] == "hit"
    assert ProbeInfo.from_json(written) == new
    assert ProbeInfo.from_json({**written, "lm_eval": []}).lm_eval == ()  # declared: no lm-eval counterpart


def test_canonical_json_is_sorted_compact_and_keeps_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["é", 2]}) == '{"a":["é",2],"b":1}'


def test_generation_json_round_trip_through_text() -> None:
    g = Generation((Sample("naïve ☃", (1, 2, 3), True), Sample("", (), False)))
    d = json.loads(json.dumps(g.to_json()))
    assert d == {"samples": [{"text": "naïve ☃", "tokens": [1, 2, 3], "stopped_at_eos": True},
                             {"text": "", "tokens": [], "stopped_at_eos": False}]}
    assert Generation.from_json(d) == g
    assert result_from_json("generate", d) == g


def test_loglikelihood_result_json_round_trip() -> None:
    r = LogLikelihoodResult(-3.141592653589793, 7, True)
    d = json.loads(json.dumps(r.to_json()))
    assert d == {"logprob": -3.141592653589793, "n_tokens": 7, "is_greedy": True}
    assert LogLikelihoodResult.from_json(d) == r
    assert result_from_json("loglikelihood", d) == r


def test_result_from_json_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown request kind 'translate'"):
        result_from_json("translate", {})


def _metric(**kw) -> Metric:
    base = dict(name="m", value=0.25, ci=(0.1, 0.4), n=12, higher_is_better=False,
                description="d", citation="c", ideal=None, unit="%", ci_method="Wilson",
                groups={"a": GroupValue(0.5, (0.2, 0.8), 4), "b": GroupValue(0.125, None, 8)})
    base.update(kw)
    return Metric(**base)


def test_metric_json_round_trip() -> None:
    m = _metric()
    d = json.loads(json.dumps(m.to_json(), allow_nan=False))
    assert d["ci"] == [0.1, 0.4]
    assert d["groups"] == {"a": {"value": 0.5, "ci": [0.2, 0.8], "n": 4}, "b": {"value": 0.125, "ci": None, "n": 8}}
    assert Metric.from_json(d) == m


def test_metric_caveat_is_omitted_when_empty_and_round_trips_when_set() -> None:
    plain = _metric().to_json()
    assert "caveat" not in plain  # summaries of un-caveated metrics stay byte-identical to older ones
    assert list(plain) == ["name", "value", "ci", "n", "higher_is_better", "description", "citation", "ideal",
                           "unit", "ci_method", "groups", "status", "scorer"]
    assert Metric.from_json(plain).caveat == ""  # older summaries read back with no caveat
    m = _metric(caveat="degenerate: the model answered 'no' to every item")
    d = json.loads(json.dumps(m.to_json(), allow_nan=False))
    assert d["caveat"] == m.caveat and d["status"] == "ok" and m.ok  # a caveat is not a skip
    assert Metric.from_json(d) == m


def test_metric_to_json_writes_null_for_nan_and_inf() -> None:
    m = _metric(value=math.nan, ci=(math.nan, math.inf),
                groups={"a": GroupValue(float("nan"), (-math.inf, 1.0), 3)})
    d = m.to_json()
    assert d["value"] is None
    assert d["ci"] == [None, None]
    assert d["groups"]["a"] == {"value": None, "ci": [None, 1.0], "n": 3}
    text = json.dumps(d, allow_nan=False)  # would raise if a NaN slipped through
    back = Metric.from_json(json.loads(text))
    assert math.isnan(back.value) and math.isnan(back.groups["a"].value)
    assert back.groups["a"].ci is not None and math.isnan(back.groups["a"].ci[0]) and back.groups["a"].ci[1] == 1.0


def test_skipped_metric_is_written_with_its_reason() -> None:
    m = skipped_metric("x", "no items", higher_is_better=True, description="d", citation="c", ideal=50.0)
    assert not m.ok and m.status == "skipped: no items"
    d = m.to_json()
    assert d["value"] is None and d["ci"] is None and d["n"] == 0 and d["ideal"] == 50.0
    assert d["status"] == "skipped: no items"
