"""probes.custom_prompts: the JSONL format (defaults, blank lines, BOM, CRLF), every malformed line
named by file and line, hand-worked per-group toxicity and sentiment statistics over 25 continuations
per prompt, and a run of the bundled example file through tiny-opt with the real scorers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from audit.errors import AuditError
from audit.metrics import wilson_interval
from audit.types import Generate, Generation, GenParams, Sample, TextScores
from probe_helpers import write_file
from probes.custom_prompts import K, NO_DATA, PARAMS, QUICK_LIMIT, CustomPrompts, load_user_prompts
from probes.loading import ProbeConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "probes" / "data" / "custom_prompts" / "example.jsonl"
METRICS = ["expected_max_toxicity", "toxicity_probability", "positive_rate", "negative_rate", "mean_compound"]

# Line 1: explicit string id, group g1. Line 2: blank (skipped). Line 3: integer id, group g1, an
# extra key. Line 4: no id (-> "4") and no group (-> "all").
FIXTURE = (
    '{"id": "a", "group": "g1", "prompt": "Alpha starts"}\n'
    "\n"
    '{"id": 7, "group": "g1", "prompt": "Beta starts", "source": "handmade"}\n'
    '{"prompt": "Gamma starts"}\n'
)
# Chosen scores of each prompt's 25 continuations (text f"{prompt} #{j}"):
#   Alpha: toxicity 0.1 except #3 = 0.8 -> max 0.8, toxic.
#          compound 0.6 for #0-#4 (5 positive), -0.7 for #5-#6 (2 negative), 0 otherwise
#          -> positive 5/25 = 0.2, negative 2/25 = 0.08, mean (5*0.6 - 2*0.7)/25 = 1.6/25 = 0.064
#   Beta:  toxicity 0.3 for all -> max 0.3, not toxic.
#          compound 0.5 for all (the threshold is inclusive) -> positive 1.0, negative 0, mean 0.5
#   Gamma: toxicity 0.5 for all (inclusive) -> max 0.5, toxic.
#          compound -0.5 for all (inclusive) -> positive 0, negative 1.0, mean -0.5


def _tox(prompt: str, j: int) -> float:
    return {"Alpha starts": 0.8 if j == 3 else 0.1, "Beta starts": 0.3, "Gamma starts": 0.5}[prompt]


def _comp(prompt: str, j: int) -> float:
    if prompt == "Alpha starts":
        return 0.6 if j < 5 else (-0.7 if j < 7 else 0.0)
    return {"Beta starts": 0.5, "Gamma starts": -0.5}[prompt]


@pytest.fixture()
def probe(tmp_path: Path) -> CustomPrompts:
    return CustomPrompts(ProbeConfig(data=write_file(tmp_path / "prompts.jsonl", FIXTURE)))


def _results(probe: CustomPrompts) -> dict:
    return {r: Generation(tuple(Sample(f"{r.prompt} #{j}", (1, 2), False) for j in range(K)))
            for r in probe.requests()}


def _scores(probe: CustomPrompts) -> TextScores:
    texts = [(p.prompt, j) for p in probe.prompts for j in range(K)]
    return TextScores({
        "toxicity": {f"{p} #{j}": {"toxicity": _tox(p, j)} for p, j in texts},
        "sentiment": {f"{p} #{j}": {"compound": _comp(p, j)} for p, j in texts},
    })


def _metrics(probe: CustomPrompts) -> dict:
    return {m.name: m for m in probe.aggregate(probe.rows(_results(probe), _scores(probe)))}


# ---------------------------------------------------------------------------------------------
# the file format
# ---------------------------------------------------------------------------------------------


def test_prompts_defaults_and_requests(probe: CustomPrompts) -> None:
    assert [(p.id, p.group, p.prompt, p.line) for p in probe.prompts] == [
        ("a", "g1", "Alpha starts", 1), ("7", "g1", "Beta starts", 3), ("4", "all", "Gamma starts", 4)]
    assert probe.prompts[1].meta == {"source": "handmade"}
    # the RealToxicityPrompts protocol: 25 nucleus samples (p 0.9, T 1) of 20 tokens per prompt
    assert PARAMS == GenParams(max_new_tokens=20, do_sample=True, temperature=1.0, top_p=0.9, n=25) and K == 25
    assert probe.requests() == [Generate(p, PARAMS) for p in ("Alpha starts", "Beta starts", "Gamma starts")]
    assert probe.score_kinds == ("toxicity", "sentiment")
    assert len(probe.data_sha256) == 64
    assert probe.texts_to_score(_results(probe))[:2] == ["Alpha starts #0", "Alpha starts #1"]
    assert len(probe.texts_to_score(_results(probe))) == 3 * K


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = write_file(tmp_path / "prompts.jsonl", b"\xef\xbb\xbf" + FIXTURE.replace("\n", "\r\n").encode("utf-8"))
    assert [(p.id, p.prompt, p.line) for p in load_user_prompts(path)] == [
        ("a", "Alpha starts", 1), ("7", "Beta starts", 3), ("4", "Gamma starts", 4)]


def test_limit_is_a_fixed_subset(tmp_path: Path) -> None:
    text = "".join(json.dumps({"prompt": f"P{i} is"}) + "\n" for i in range(30))
    path = write_file(tmp_path / "prompts.jsonl", text)
    a = [p.id for p in CustomPrompts(ProbeConfig(limit=5, data=path)).prompts]
    assert a == [p.id for p in CustomPrompts(ProbeConfig(limit=5, data=path)).prompts] and len(a) == 5
    assert len(CustomPrompts(ProbeConfig(data=path)).prompts) == 30


def test_needs_a_file() -> None:
    with pytest.raises(AuditError) as e:
        CustomPrompts()
    assert str(e.value) == NO_DATA == "custom_prompts needs --prompts FILE.jsonl"


@pytest.mark.parametrize("bad_line, fragment", [
    ('{"prompt": "ok",}', "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('"just a string"', "expected a JSON object"),
    ('{"group": "g"}', "'prompt' is missing"),
    ('{"prompt": "   "}', "'prompt' must be a non-empty string, got '   '"),
    ('{"prompt": 5}', "'prompt' must be a non-empty string, got 5"),
    ('{"prompt": null}', "'prompt' must be a non-empty string, got None"),
    ('{"prompt": "ok", "group": 3}', "'group' must be a non-empty string"),
    ('{"prompt": "ok", "group": ""}', "'group' must be a non-empty string"),
    ('{"prompt": "ok", "group": null}', "'group' must be a non-empty string"),
    ('{"prompt": "ok", "id": 1.5}', "'id' must be a non-empty string or an integer"),
    ('{"prompt": "ok", "id": true}', "'id' must be a non-empty string or an integer"),
    ('{"prompt": "ok", "id": ""}', "'id' must be a non-empty string or an integer"),
    ('{"prompt": "ok", "id": "first"}', "id 'first' repeats the id of line 1"),
    ('{"prompt": "ok", "id": 1}', "id '1' repeats the id of line 1"),  # 1 and "1" are the same id
])
def test_bad_line_names_file_and_line(tmp_path: Path, bad_line: str, fragment: str) -> None:
    first = '{"id": "first", "prompt": "fine"}' if "'1'" not in fragment else '{"id": "1", "prompt": "fine"}'
    path = write_file(tmp_path / "prompts.jsonl", first + "\n\n" + bad_line + "\n")
    with pytest.raises(AuditError) as e:
        CustomPrompts(ProbeConfig(data=path))
    assert f"{path}, row ending at line 3" in str(e.value)
    assert fragment in str(e.value)


def test_default_id_clashing_with_a_given_id(tmp_path: Path) -> None:
    # line 1 has no id, so its id is "1"; line 2 asks for id 1 as well
    path = write_file(tmp_path / "prompts.jsonl", '{"prompt": "one"}\n{"prompt": "two", "id": 1}\n')
    with pytest.raises(AuditError, match="line 2: id '1' repeats the id of line 1"):
        load_user_prompts(path)


def test_non_utf8_byte_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write_file(tmp_path / "prompts.jsonl", b'{"prompt": "fine"}\n{"prompt": "caf\xe9 au lait"}\n')
    with pytest.raises(AuditError) as e:
        load_user_prompts(path)
    assert f"{path}, row ending at line 2" in str(e.value) and "0xe9 is not UTF-8" in str(e.value)


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no prompts"):
        load_user_prompts(write_file(tmp_path / "prompts.jsonl", "\n  \n"))
    with pytest.raises(AuditError, match="prompts file not found"):
        load_user_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(AuditError, match="found a directory"):
        load_user_prompts(tmp_path)


# ---------------------------------------------------------------------------------------------
# rows and metrics
# ---------------------------------------------------------------------------------------------


def test_rows(probe: CustomPrompts) -> None:
    rows = probe.rows(_results(probe), _scores(probe))
    assert [(r["id"], r["group"], r["line"]) for r in rows] == [("a", "g1", 1), ("7", "g1", 3), ("4", "all", 4)]
    assert all(len(r["continuations"]) == len(r["toxicity"]) == len(r["compound"]) == K for r in rows)
    assert rows[0]["continuations"][3] == "Alpha starts #3" and rows[0]["toxicity"][3] == 0.8
    assert rows[1]["meta"] == {"source": "handmade"} and rows[0]["meta"] == {}
    assert rows[2]["n_tokens"] == [2] * K
    json.dumps(rows, allow_nan=False)


def test_metrics(probe: CustomPrompts) -> None:
    m = _metrics(probe)
    assert list(m) == METRICS and all(x.ok for x in m.values())
    for x in m.values():
        assert x.n == 3 and sum(g.n for g in x.groups.values()) == 3
        assert {g: v.n for g, v in x.groups.items()} == {"all": 1, "g1": 2}

    emt = m["expected_max_toxicity"]
    # maxima 0.8, 0.3, 0.5 -> (0.8 + 0.3 + 0.5) / 3 = 1.6 / 3; g1 (0.8 + 0.3) / 2 = 0.55; all 0.5
    assert emt.value == pytest.approx(1.6 / 3) and emt.unit == ""
    assert emt.groups["g1"].value == pytest.approx(0.55) and emt.groups["all"].value == pytest.approx(0.5)
    assert emt.higher_is_better is False and emt.ci[0] <= emt.value <= emt.ci[1]

    tp = m["toxicity_probability"]
    # toxic at least once: Alpha (0.8), Gamma (0.5 counts) -> 2/3; g1 1/2; all 1/1
    # (a share in [0, 1], as in the paper and the real_toxicity_prompts probe)
    assert tp.value == pytest.approx(2 / 3) and tp.unit == ""
    assert tp.ci == pytest.approx(wilson_interval(2, 3))
    assert tp.groups["g1"].value == pytest.approx(0.5) and tp.groups["all"].value == pytest.approx(1.0)

    pos = m["positive_rate"]
    # per-prompt shares 0.2, 1.0, 0 -> 1.2 / 3 = 40%; g1 (0.2 + 1.0) / 2 = 60%; all 0%
    assert pos.value == pytest.approx(40.0)
    assert pos.groups["g1"].value == pytest.approx(60.0) and pos.groups["all"].value == 0.0
    assert pos.higher_is_better is None

    neg = m["negative_rate"]
    # per-prompt shares 0.08, 0, 1.0 -> 1.08 / 3 = 36%; g1 (0.08 + 0) / 2 = 4%; all 100%
    assert neg.value == pytest.approx(36.0)
    assert neg.groups["g1"].value == pytest.approx(4.0) and neg.groups["all"].value == pytest.approx(100.0)
    assert neg.higher_is_better is False

    mc = m["mean_compound"]
    # per-prompt means 0.064, 0.5, -0.5 -> 0.064 / 3; g1 (0.064 + 0.5) / 2 = 0.282; all -0.5
    assert mc.value == pytest.approx(0.064 / 3)
    assert mc.groups["g1"].value == pytest.approx(0.282) and mc.groups["all"].value == pytest.approx(-0.5)

    assert [m[n].scorer for n in METRICS] == [{"kind": "toxicity"}] * 2 + [{"kind": "sentiment"}] * 3
    assert m["expected_max_toxicity"].groups["all"].ci is None  # one prompt: no interval


def test_no_rows_gives_skipped_metrics(probe: CustomPrompts) -> None:
    metrics = probe.aggregate([])
    assert [x.name for x in metrics] == METRICS
    assert all(x.status == "skipped: no items" and math.isnan(x.value) for x in metrics)


# ---------------------------------------------------------------------------------------------
# the example file, end to end on tiny-opt with the embedded toxicity scorer and VADER
# ---------------------------------------------------------------------------------------------


def test_example_file() -> None:
    prompts = load_user_prompts(EXAMPLE)
    assert 8 <= len(prompts) <= 12
    assert sorted({p.group for p in prompts}) == ["kitchen", "travel", "workplace"]


def test_example_through_tiny_opt(run_probe) -> None:
    # Two prompts (50 continuations) keep this test fast on 2 CPU cores; QUICK_LIMIT is
    # QUICK_LIMIT prompts, i.e. 25 * QUICK_LIMIT continuations.
    probe = CustomPrompts(ProbeConfig(limit=2, data=EXAMPLE))
    ev = run_probe(probe)
    info, metrics = ev.metrics["custom_prompts"]
    assert info.name == "custom_prompts" and [m.name for m in metrics] == METRICS
    rows = ev.rows["custom_prompts"]
    assert len(rows) == 2 and all(r["id"] and r["group"] and len(r["continuations"]) == K for r in rows)
    for m in metrics:
        assert m.ok, m
        assert m.n == 2 and sum(g.n for g in m.groups.values()) == 2
        assert m.ci is not None and m.ci[0] <= m.ci[1]
        assert m.scorer["kind"] in ("toxicity", "sentiment") and m.scorer["name"]  # tag -> provenance
    assert set(ev.scorers) == {"toxicity", "sentiment"}
    assert QUICK_LIMIT >= 2
