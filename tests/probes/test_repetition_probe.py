"""probes.repetition: bundled prompts, rows and metrics over hand-made generations (one phrase loop,
one plain, one empty, one single-token; sampled: one single-token stutter), and malformed BOLD-format
files."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from audit.errors import AuditError
from audit.types import Generate, Generation, GenParams, Sample, TextScores
from probe_helpers import write_file
from probes.loading import ProbeConfig
from probes.repetition import DOMAINS, GREEDY, INFO, NUCLEUS, Repetition
from probes.repetition_stats import distinct_n_jackknife_ci

# Two BOLD-format files: the domain is the file stem without "_prompt".
ALPHA = {"g1": {"e2": ["Alpha plain "], "e1": ["Alpha loops "]}}  # entities are read sorted: e1, e2
BETA = {"g2": {"e3": ["Beta empty ", "   ", "Beta short "]}}  # a blank prompt is skipped
TOKENS = {
    "Alpha loops ": [5, 1, 2, 1, 2, 1, 2],  # phrase loop: period 2 from index 1, 3 repeats
    "Alpha plain ": [1, 2, 3, 4],  # no loop
    "Beta empty ": [],  # EOS straight away: empty, but still a row
    "Beta short ": [7],  # one token: too short for a loop or any bigram
}
# Nucleus sampling on the same prompts: the phrase loop is broken, and the plain prompt stutters on one
# token (period 1 from index 1, 3 repeats); everything else is as greedy.
SAMPLED = {**TOKENS, "Alpha loops ": [5, 1, 2, 3], "Alpha plain ": [1, 2, 2, 2]}


@pytest.fixture()
def probe(tmp_path: Path) -> Repetition:
    (tmp_path / "alpha_prompt.json").write_text(json.dumps(ALPHA), encoding="utf-8")
    (tmp_path / "beta_prompt.json").write_text(json.dumps(BETA), encoding="utf-8")
    return Repetition(ProbeConfig(data=tmp_path))


def _results(probe: Repetition) -> dict:
    def tokens(r: Generate) -> list[int]:
        return (SAMPLED if r.params.do_sample else TOKENS)[r.prompt]

    return {r: Generation((Sample(" ".join(map(str, tokens(r))), tuple(tokens(r)),
                                  stopped_at_eos=r.prompt == "Beta empty "),))
            for r in probe.requests()}


def test_prompts_and_requests(probe: Repetition) -> None:
    assert [p.id for p in probe.prompts] == ["alpha/g1/e1/0", "alpha/g1/e2/0", "beta/g2/e3/0", "beta/g2/e3/2"]
    assert probe.requests() == [Generate(p, GREEDY) for p in TOKENS] + [Generate(p, NUCLEUS) for p in TOKENS]
    assert GREEDY == GenParams(max_new_tokens=64, do_sample=False)
    assert NUCLEUS == GenParams(max_new_tokens=64, do_sample=True, top_p=0.95, temperature=1.0)
    assert set(probe.data_sha256) == {"alpha_prompt.json", "beta_prompt.json"}


def test_rows(probe: Repetition) -> None:
    both = probe.rows(_results(probe), TextScores())
    assert [r["decoding"] for r in both] == ["greedy"] * 4 + ["nucleus"] * 4
    assert [r["id"] for r in both[:4]] == [r["id"] for r in both[4:]]  # same prompts, paired by id
    assert [r["loop"] for r in both[4:]] == [False, True, False, False]
    stutter = both[5]
    assert (stutter["loop_kind"], stutter["token_loop"], stutter["phrase_loop"]) == ("token", True, False)
    assert (stutter["loop_period"], stutter["loop_start"], stutter["loop_repeats"]) == (1, 1, 3.0)
    rows = both[:4]
    assert [r["group"] for r in rows] == ["alpha", "alpha", "beta", "beta"]
    assert [r["n_tokens"] for r in rows] == [7, 4, 0, 1]
    assert [r["loop"] for r in rows] == [True, False, False, False]
    assert (rows[0]["loop_period"], rows[0]["loop_start"], rows[0]["loop_repeats"]) == (2, 1, 3.0)
    assert (rows[0]["loop_kind"], rows[0]["token_loop"], rows[0]["phrase_loop"]) == ("phrase", False, True)
    assert rows[1]["loop_period"] is None and rows[1]["loop_repeats"] is None
    assert (rows[1]["loop_kind"], rows[1]["token_loop"], rows[1]["phrase_loop"]) == (None, False, False)
    # text "5 1 2 1 2 1 2": the tail " 1 2" x 3 starts at character 1
    assert rows[0]["loop_char_start"] == 1 and rows[1]["loop_char_start"] is None
    # seq-rep-1 of [5,1,2,1,2,1,2]: 7 unigrams, 3 unique -> 1 - 3/7 = 4/7
    assert rows[0]["seq_rep_1"] == pytest.approx(4 / 7)
    assert rows[1]["seq_rep_1"] == 0.0
    assert rows[2]["seq_rep_1"] is None  # empty: undefined, not 0
    assert rows[3]["seq_rep_1"] == 0.0 and rows[3]["seq_rep_2"] is None
    assert rows[2]["continuation"] == "" and rows[2]["tokens"] == [] and rows[2]["stopped_at_eos"] is True
    json.dumps(rows, allow_nan=False)  # rows are JSON-able as they stand


def test_aggregate(probe: Repetition) -> None:
    metrics = {m.name: m for m in probe.aggregate(probe.rows(_results(probe), TextScores()))}
    names = ["loop_rate", "token_loop_rate", "phrase_loop_rate", "token_loop_onset", "phrase_loop_onset",
             "phrase_loop_period", "empty_rate", "seq_rep_1", "seq_rep_2", "seq_rep_3", "seq_rep_4",
             "distinct_1", "distinct_2"]
    assert list(metrics) == names + [f"{n}_nucleus" for n in names] + ["loop_rate_reduction",
                                                                       "phrase_loop_rate_reduction"]
    skipped = {"token_loop_onset", "phrase_loop_onset_nucleus", "phrase_loop_period_nucleus"}
    assert {n for n, m in metrics.items() if not m.ok} == skipped

    loop = metrics["loop_rate"]
    # loops: T F F F -> 1/4 = 25%; alpha [T, F] -> 50%; beta [F, F] -> 0%
    assert loop.value == pytest.approx(25.0) and loop.n == 4
    assert {g: (v.value, v.n) for g, v in loop.groups.items()} == {"alpha": (50.0, 2), "beta": (0.0, 2)}
    # greedy's one loop is a phrase (period 2): phrase 1/4 = 25%, single-token 0/4 = 0%
    assert metrics["phrase_loop_rate"].value == pytest.approx(25.0) and metrics["phrase_loop_rate"].n == 4
    assert metrics["token_loop_rate"].value == 0.0 and metrics["token_loop_rate"].n == 4
    # onset and period of the one phrase loop: starts at token 1, period 2 (a mean of one value)
    assert (metrics["phrase_loop_onset"].value, metrics["phrase_loop_onset"].n) == (1.0, 1)
    assert (metrics["phrase_loop_period"].value, metrics["phrase_loop_period"].n) == (2.0, 1)
    assert metrics["phrase_loop_onset"].unit == "tokens" and metrics["phrase_loop_onset"].higher_is_better is None
    assert metrics["token_loop_onset"].status == "skipped: no greedy continuation ends in a single repeated token"

    empty = metrics["empty_rate"]
    # empty: F F T F -> 1/4 = 25% over all 4 rows (counted, not dropped); beta [T, F] -> 50%
    assert empty.value == pytest.approx(25.0) and empty.n == 4
    assert {g: (v.value, v.n) for g, v in empty.groups.items()} == {"alpha": (0.0, 2), "beta": (50.0, 2)}

    rep1 = metrics["seq_rep_1"]
    # the empty row has no unigrams and is left out: values 4/7, 0, 0 -> mean (4/7)/3 = 4/21, n 3
    assert rep1.value == pytest.approx(4 / 21) and rep1.n == 3
    # alpha (4/7 + 0)/2 = 2/7, n 2; beta only [7] -> 0, n 1
    assert rep1.groups["alpha"].value == pytest.approx(2 / 7) and rep1.groups["alpha"].n == 2
    assert (rep1.groups["beta"].value, rep1.groups["beta"].n) == (0.0, 1)

    # seq-rep-2: loop has 6 bigrams, 3 unique -> 0.5; plain 3/3 -> 0; [] and [7] have no bigram
    # -> mean (0.5 + 0)/2 = 0.25, n 2 (only alpha rows remain)
    assert metrics["seq_rep_2"].value == pytest.approx(0.25) and metrics["seq_rep_2"].n == 2
    assert list(metrics["seq_rep_2"].groups) == ["alpha"]
    # seq-rep-3: loop 5 trigrams, 3 unique -> 0.4; plain 0 -> mean 0.2
    assert metrics["seq_rep_3"].value == pytest.approx(0.2) and metrics["seq_rep_3"].n == 2
    # seq-rep-4: loop 4 4-grams, 3 unique -> 0.25; plain 0 -> mean 0.125
    assert metrics["seq_rep_4"].value == pytest.approx(0.125) and metrics["seq_rep_4"].n == 2

    d1 = metrics["distinct_1"]
    # tokens 7 + 4 + 0 + 1 = 12; distinct unigrams {5, 1, 2, 3, 4, 7} = 6 -> 6/12 = 0.5
    assert d1.value == pytest.approx(0.5) and d1.n == 4
    corpus = [TOKENS[p] for p in TOKENS]
    assert d1.ci == distinct_n_jackknife_ci(corpus, 1)
    assert d1.ci[0] < d1.value < d1.ci[1]
    # alpha: {5,1,2,3,4} = 5 over 7 + 4 = 11 tokens; beta: {7} = 1 over 0 + 1 = 1 token
    assert d1.groups["alpha"].value == pytest.approx(5 / 11) and d1.groups["alpha"].n == 2
    assert d1.groups["beta"].value == 1.0 and d1.groups["beta"].n == 2
    # leaving out [7] leaves beta with no tokens: no interval rather than a made-up one
    assert d1.groups["beta"].ci is None

    d2 = metrics["distinct_2"]
    # bigrams {(5,1),(1,2),(2,1),(2,3),(3,4)} = 5 over 12 tokens
    assert d2.value == pytest.approx(5 / 12)
    assert d2.groups["beta"].value == 0.0  # one token, no bigram: 0 / 1

    # nucleus: the phrase loop is broken ([5, 1, 2, 3]) and "Alpha plain " stutters ([1, 2, 2, 2]):
    # loops F T F F -> 25%, all of them single-token: token 25%, phrase 0%
    assert metrics["loop_rate_nucleus"].value == pytest.approx(25.0) and metrics["loop_rate_nucleus"].n == 4
    assert metrics["token_loop_rate_nucleus"].value == pytest.approx(25.0)
    assert metrics["phrase_loop_rate_nucleus"].value == 0.0
    assert (metrics["token_loop_onset_nucleus"].value, metrics["token_loop_onset_nucleus"].n) == (1.0, 1)
    # seq-rep-1: [5,1,2,3] 0; [1,2,2,2] 1 - 2/4 = 0.5; [] left out; [7] 0 -> (0 + 0.5 + 0)/3 = 1/6
    assert metrics["seq_rep_1_nucleus"].value == pytest.approx(1 / 6)
    # paired greedy - nucleus loop indicator per prompt: 1-0, 0-1, 0-0, 0-0 -> mean 0 points: counted
    # as "a loop", sampling seems not to help at all ...
    red = metrics["loop_rate_reduction"]
    assert red.value == pytest.approx(0.0) and red.n == 4 and red.unit == "points"
    assert {g: (v.value, v.n) for g, v in red.groups.items()} == {"alpha": (0.0, 2), "beta": (0.0, 2)}
    # ... but phrase loops: 1-0, 0-0, 0-0, 0-0 -> 1/4 = 25 points; alpha (1 + 0)/2 = 50, beta 0
    phrase = metrics["phrase_loop_rate_reduction"]
    assert phrase.value == pytest.approx(25.0) and phrase.n == 4
    assert {g: (v.value, v.n) for g, v in phrase.groups.items()} == {"alpha": (50.0, 2), "beta": (0.0, 2)}


def test_rows_without_the_kind_fields_aggregate_the_same(probe: Repetition) -> None:
    # the kind is read from loop + loop_period, so version-2 rows (no loop_kind / token_loop / phrase_loop)
    # give the same summary
    rows = probe.rows(_results(probe), TextScores())
    old = [{k: v for k, v in r.items() if k not in ("loop_kind", "token_loop", "phrase_loop")} for r in rows]
    assert [m.to_json() for m in probe.aggregate(old)] == [m.to_json() for m in probe.aggregate(rows)]


def test_version_3_keeps_the_prompt_sample_of_version_2() -> None:
    # Version 3 changed how loops are reported, not which prompts are audited: the sample is seeded by
    # SAMPLE_KEY ("repetition/2", the key version 2 used), so v3 runs audit v2's 100 prompts. The digest
    # was taken from version 2's code (git HEAD before the change) and matched v3's before pinning.
    import hashlib

    assert INFO.version == "3"
    ids = [p.id for p in Repetition().prompts]
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] == "4bd4aedcdb73cb55"


def test_all_empty_generations_skip_distinct_and_seq_rep(probe: Repetition) -> None:
    nothing = {r: Generation((Sample("", (), True),)) for r in probe.requests()}
    metrics = {m.name: m for m in probe.aggregate(probe.rows(nothing, TextScores()))}
    assert metrics["empty_rate"].value == pytest.approx(100.0) and metrics["empty_rate"].n == 4
    assert metrics["loop_rate"].value == 0.0
    for name in ("seq_rep_1", "seq_rep_2", "seq_rep_3", "seq_rep_4", "distinct_1", "distinct_2"):
        for suffix in ("", "_nucleus"):
            m = metrics[name + suffix]
            assert m.status.startswith("skipped") and math.isnan(m.value)
    assert metrics["loop_rate_reduction"].value == 0.0  # no loops either way
    assert metrics["phrase_loop_rate_reduction"].value == 0.0
    for name in ("token_loop_onset", "phrase_loop_onset", "phrase_loop_period"):
        assert metrics[name].status.startswith("skipped: no greedy continuation ends in")


# ---------------------------------------------------------------------------------------------
# bundled data
# ---------------------------------------------------------------------------------------------


def test_bundled_prompts() -> None:
    probe = Repetition()
    assert len(probe.prompts) == 100
    assert Counter(p.domain for p in probe.prompts) == {d: 20 for d in DOMAINS}
    assert len({p.id for p in probe.prompts}) == 100
    assert all(p.prompt.strip() for p in probe.prompts)
    assert [p.id for p in Repetition().prompts] == [p.id for p in probe.prompts]  # fixed sample
    assert set(probe.data_sha256) == {f"{d}_prompt.json" for d in DOMAINS}


def test_bundled_limit_is_a_fixed_subset() -> None:
    a = [p.id for p in Repetition(ProbeConfig(limit=10)).prompts]
    b = [p.id for p in Repetition(ProbeConfig(limit=10)).prompts]
    assert a == b and len(a) == 10
    assert set(a) <= {p.id for p in Repetition().prompts}


# ---------------------------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------------------------


def _expect_error(path: Path, *fragments: str) -> None:
    with pytest.raises(AuditError) as e:
        Repetition(ProbeConfig(data=path))
    assert str(path) in str(e.value)
    for fragment in fragments:
        assert fragment in str(e.value)


@pytest.mark.parametrize("text, fragments", [
    pytest.param('{"g": {"e": ["ok"]},\n "h": }', ("not valid JSON", "line 2"), id="invalid-json-names-the-line"),
    pytest.param('["Jacob is an actor"]', ("expected an object",), id="top-level-not-an-object"),
    pytest.param('{"American_actors": ["Jacob is an actor"]}', ("American_actors",), id="group-not-an-object"),
    pytest.param('{"American_actors": {"Jacob_Zachar": ["ok", 3]}}', ("American_actors/Jacob_Zachar",),
                 id="prompts-not-strings"),
    pytest.param('{"g": {"e": ["  "]}}', ("no prompts",), id="no-prompts"),
])
def test_malformed_file_is_named(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _expect_error(write_file(tmp_path / "gender_prompt.json", text), *fragments)


def test_directory_without_json(tmp_path: Path) -> None:
    _expect_error(tmp_path, "no *.json files")
