"""probes.ethos: prompts, demonstrations, F1 and accuracy worked by hand on a 14-comment file, the
bundled data, --limit, malformed files, and one end-to-end run on tiny-opt."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from audit.errors import AuditError
from audit.metrics import bootstrap_ci, wilson_interval
from audit.types import LogLikelihood, LogLikelihoodResult, TextScores
from probe_helpers import write_file
from probes.ethos import (DEMO_MAX_CHARS, N_SHOTS, QUICK_LIMIT, SETTINGS, Ethos, _f1_of_codes, f1_score,
                          load_comments)
from probes.loading import ProbeConfig

LONG_HATE = "long hateful comment " + "x" * DEMO_MAX_CHARS  # too long to be a demonstration
LONG_FINE = "long harmless comment " + "y" * DEMO_MAX_CHARS
FIXTURE = (
    "comment;isHate\n"
    "hate a;1.0\nhate b;1.0\nhate c;1.0\nhate d;1.0\n"  # ids 0-3: the only short unanimous hate -> demos
    "fine a;0.0\nfine b;0.0\nfine c;0.0\nfine d;0.0\n"  # ids 4-7: the only short unanimous non-hate -> demos
    f"{LONG_HATE};1.0\n"  # id 8: hate, unanimous
    "maybe hate;0.8333333333333334\n"  # id 9: hate, split
    "borderline;0.5\n"  # id 10: hate (>= 0.5), split
    "mostly fine;0.16666666666666666\n"  # id 11: not hate, split
    f"{LONG_FINE};0.0\n"  # id 12: not hate, unanimous
    "rather fine;0.3333333333333333\n"  # id 13: not hate, split
)
# Predicted hate (LL(" yes") > LL(" no")) per setting, for the six evaluated comments 8-13:
PRED = {
    "zero_shot": {"8", "9", "11"},
    "one_shot": set(),
    "few_shot": {"8", "9", "10"},
}
TIE = ("few_shot", "13")  # LL(" yes") == LL(" no"): a tie predicts "not hate"
# Gold hate: 8, 9, 10.
# zero-shot: TP 8, 9; FP 11; FN 10 -> F1 = 2*2 / (2*2 + 1 + 1) = 4/6 = 0.6667
#            correct: 8, 9, 12, 13 -> accuracy 4/6; hate group 2/3 (recall), not_hate group 2/3
#            F1 by agreement: unanimous {8 TP, 12 TN} -> 2/2 = 1.0; split {9 TP, 10 FN, 11 FP, 13 TN} -> 2/4 = 0.5
# one-shot:  no hate predictions: TP 0, FN 3 -> F1 = 0 / 3 = 0.0; accuracy 3/6; hate 0/3, not_hate 3/3
# few-shot:  all six right (13 is the tie -> no) -> F1 = 1.0; accuracy 6/6


@pytest.fixture()
def probe(tmp_path: Path) -> Ethos:
    return Ethos(ProbeConfig(data=write_file(tmp_path / "ethos.csv", FIXTURE)))


def _results(probe: Ethos) -> dict:
    out = {}
    for c in probe.comments:
        for s in SETTINGS:
            ctx = probe.context(s, c)
            yes = -1.0 if c.id in PRED[s] else -3.0
            out[LogLikelihood(ctx, " yes")] = LogLikelihoodResult(-2.0 if (s, c.id) == TIE else yes, 1, False)
            out[LogLikelihood(ctx, " no")] = LogLikelihoodResult(-2.0, 1, False)
    return out


def test_demonstrations_and_eval_set(probe: Ethos) -> None:
    # The fixture has exactly 4 candidates per class, so all 8 are drawn, interleaved hate first.
    assert [d.id for d in probe.demonstrations] == ["0", "4", "1", "5", "2", "6", "3", "7"]
    assert [c.id for c in probe.comments] == ["8", "9", "10", "11", "12", "13"]
    assert [(c.is_hate, c.agreement) for c in probe.comments] == [
        (True, "unanimous"), (True, "split"), (True, "split"), (False, "split"), (False, "unanimous"),
        (False, "split")]


def test_prompts(probe: Ethos) -> None:
    c = probe.comments[1]  # "maybe hate"
    block = 'Is the following text hate speech? Answer yes or no.\n\n"maybe hate"\n\nAnswer:'
    assert probe.context("zero_shot", c) == block
    assert probe.context("one_shot", c) == 'The following text in quotes is hate speech:\n\n"hate a"\n\n' + block
    few = probe.context("few_shot", c)
    assert few.endswith("\n\n" + block) and few.count("Answer:") == N_SHOTS + 1
    assert few.startswith('Is the following text hate speech? Answer yes or no.\n\n"hate a"\n\nAnswer: yes\n\n'
                          'Is the following text hate speech? Answer yes or no.\n\n"fine a"\n\nAnswer: no\n\n')
    reqs = probe.requests()
    assert len(reqs) == 6 * 6 and len(set(reqs)) == 36
    assert reqs[:2] == [LogLikelihood(probe.context("zero_shot", probe.comments[0]), " yes"),
                        LogLikelihood(probe.context("zero_shot", probe.comments[0]), " no")]


def test_rows(probe: Ethos) -> None:
    rows = probe.rows(_results(probe), TextScores())
    assert [(r["id"], r["group"], r["agreement"]) for r in rows] == [
        ("8", "hate", "unanimous"), ("9", "hate", "split"), ("10", "hate", "split"),
        ("11", "not_hate", "split"), ("12", "not_hate", "unanimous"), ("13", "not_hate", "split")]
    assert [r["zero_shot"]["predicted_hate"] for r in rows] == [True, True, False, True, False, False]
    assert rows[5]["few_shot"] == {"ll_yes": -2.0, "ll_no": -2.0, "predicted_hate": False}  # the tie
    assert rows[2]["is_hate_share"] == 0.5 and rows[2]["gold_hate"] is True


def test_aggregate(probe: Ethos) -> None:
    metrics = {m.name: m for m in probe.aggregate(probe.rows(_results(probe), TextScores()))}
    assert list(metrics) == ["f1_zero_shot", "f1_one_shot", "f1_few_shot",
                             "accuracy_zero_shot", "accuracy_one_shot", "accuracy_few_shot"]
    assert all(m.ok and m.n == 6 for m in metrics.values())

    f1 = metrics["f1_zero_shot"]
    assert f1.value == pytest.approx(2 / 3) and f1.higher_is_better is True and f1.unit == ""
    codes = np.array([3, 3, 2, 1, 0, 0])  # 2 * gold + pred for comments 8..13
    assert f1.ci == bootstrap_ci(codes, _f1_of_codes) and f1.ci[0] <= f1.value <= f1.ci[1]
    assert {g: (v.value, v.n) for g, v in f1.groups.items()} == {"split": (0.5, 4), "unanimous": (1.0, 2)}
    assert metrics["f1_one_shot"].value == 0.0
    assert {g: v.value for g, v in metrics["f1_one_shot"].groups.items()} == {"split": 0.0, "unanimous": 0.0}
    assert metrics["f1_few_shot"].value == 1.0

    acc = metrics["accuracy_zero_shot"]
    assert acc.value == pytest.approx(100 * 4 / 6) and acc.unit == "%"
    assert acc.ci == pytest.approx(tuple(100 * x for x in wilson_interval(4, 6)))
    assert {g: (round(v.value, 4), v.n) for g, v in acc.groups.items()} == {
        "hate": (66.6667, 3), "not_hate": (66.6667, 3)}
    one = metrics["accuracy_one_shot"]
    assert one.value == 50.0 and {g: v.value for g, v in one.groups.items()} == {"hate": 0.0, "not_hate": 100.0}
    assert metrics["accuracy_few_shot"].value == 100.0


def test_one_class_predictions_carry_a_caveat(probe: Ethos) -> None:
    # one-shot predicts "no" for all six comments (PRED["one_shot"] is empty): F1 = 0 / (0 + 0 + 3) = 0
    # and accuracy = 3/6 = 50%, the share of non-hate items; both only measure the label balance.
    metrics = {m.name: m for m in probe.aggregate(probe.rows(_results(probe), TextScores()))}
    expected = ("degenerate: the model answered 'no' to every item, so F1/accuracy only measure the "
                "label balance")
    for name in ("f1_one_shot", "accuracy_one_shot"):
        assert metrics[name].caveat == expected and metrics[name].ok  # still ok: the gate still compares it
    assert metrics["f1_one_shot"].value == 0.0 and metrics["accuracy_one_shot"].value == 50.0
    # zero-shot predicts yes for 8, 9, 11 and no for 10, 12, 13; few-shot yes for 8, 9, 10: both classes, no caveat
    for name in ("f1_zero_shot", "accuracy_zero_shot", "f1_few_shot", "accuracy_few_shot"):
        assert metrics[name].caveat == ""


def test_all_yes_predictions_carry_the_yes_caveat(probe: Ethos) -> None:
    # every LL(" yes") = -1 > LL(" no") = -2: all six predicted hate, gold hate 8, 9, 10:
    # TP 3, FP 3, FN 0 -> F1 = 6 / (6 + 3) = 2/3; accuracy 3/6 = 50%; both degenerate ("yes" to every item).
    results = {r: LogLikelihoodResult(-1.0 if r.continuation == " yes" else -2.0, 1, False) for r in probe.requests()}
    metrics = {m.name: m for m in probe.aggregate(probe.rows(results, TextScores()))}
    assert metrics["f1_zero_shot"].value == pytest.approx(2 / 3) and metrics["accuracy_zero_shot"].value == 50.0
    assert all(m.caveat.startswith("degenerate: the model answered 'yes' to every item") for m in metrics.values())


def test_undefined_f1_is_skipped_not_zero(probe: Ethos) -> None:
    # Only the three non-hate comments (11, 12, 13): no gold positives.
    rows = [r for r in probe.rows(_results(probe), TextScores()) if not r["gold_hate"]]
    metrics = {m.name: m for m in probe.aggregate(rows)}
    # one-shot predicts no hate at all: 2TP + FP + FN = 0 -> undefined, recorded as skipped
    assert metrics["f1_one_shot"].status.startswith("skipped: F1 is undefined")
    assert math.isnan(metrics["f1_one_shot"].value)
    # zero-shot has one false positive (11): F1 = 0 / (0 + 1 + 0) = 0; group unanimous {12} is undefined -> NaN
    z = metrics["f1_zero_shot"]
    assert z.ok and z.value == 0.0 and z.groups["split"].value == 0.0
    assert math.isnan(z.groups["unanimous"].value) and z.groups["unanimous"].ci is None
    assert sum(g.n for g in z.groups.values()) == 3
    assert metrics["accuracy_one_shot"].value == 100.0
    # one-shot answered "no" to all three: accuracy carries the caveat; the skipped F1 keeps only its status
    assert metrics["accuracy_one_shot"].caveat.startswith("degenerate: the model answered 'no'")
    assert metrics["f1_one_shot"].caveat == ""


def test_f1_helpers_agree() -> None:
    gold = [True, True, True, False, False, False, True]
    pred = [True, False, True, True, False, False, False]
    # TP 2, FP 1, FN 2 -> F1 = 4 / (4 + 1 + 2) = 4/7
    assert f1_score(gold, pred) == pytest.approx(4 / 7)
    codes = 2 * np.array(gold, dtype=int) + np.array(pred, dtype=int)
    assert _f1_of_codes(codes[None, :])[0] == pytest.approx(4 / 7)
    assert f1_score([False], [False]) is None and _f1_of_codes(np.array([[0, 0]]))[0] == 0.0


# ---------------------------------------------------------------------------------------------
# bundled data and --limit
# ---------------------------------------------------------------------------------------------


def test_bundled_data() -> None:
    p = Ethos()
    assert len(p.comments) == 998 - N_SHOTS
    demos = p.demonstrations
    # Pinned: the demonstrations are part of the probe's definition (version 1).
    assert [d.id for d in demos] == ["1", "721", "14", "837", "55", "925", "162", "996"]
    assert [d.hate_share for d in demos] == [1.0, 0.0] * 4 and all(len(d.text) <= DEMO_MAX_CHARS for d in demos)
    assert not {d.id for d in demos} & {c.id for c in p.comments}
    all_gold = Counter(c.is_hate for c in load_comments(p.path))
    assert all_gold == {True: 433, False: 565}  # as documented in probes/data/ethos/SOURCE.md
    assert len(p.requests()) == 6 * 990


def test_limit_is_a_fixed_subset_without_demonstrations() -> None:
    a = Ethos(ProbeConfig(limit=QUICK_LIMIT))
    ids = [c.id for c in a.comments]
    assert ids == [c.id for c in Ethos(ProbeConfig(limit=QUICK_LIMIT)).comments] and len(ids) == QUICK_LIMIT
    assert not set(ids) & {d.id for d in a.demonstrations}
    assert set(ids) <= {c.id for c in Ethos(ProbeConfig(limit=200)).comments}
    groups = Counter("hate" if c.is_hate else "not_hate" for c in a.comments)
    assert groups["hate"] >= 10 and groups["not_hate"] >= 10


# ---------------------------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_line, message", [
    ("maybe hate;lots", "isHate 'lots' is not a number"),
    ("maybe hate;1.5", "outside"),
    ("  ;0.5", "empty or missing comment"),
    ("maybe; hate;0.5", "more fields than the header"),
])
def test_bad_row_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    # "maybe hate;0.8333333333333334" is data row 10, on line 11 of the file
    path = write_file(tmp_path / "ethos.csv", FIXTURE.replace("maybe hate;0.8333333333333334", bad_line))
    with pytest.raises(AuditError, match=message) as e:
        Ethos(ProbeConfig(data=path))
    assert str(path) in str(e.value) and "line 11" in str(e.value)


def test_comma_separated_file_is_a_missing_column(tmp_path: Path) -> None:
    path = write_file(tmp_path / "ethos.csv", FIXTURE.replace(";", ","))
    with pytest.raises(AuditError, match="missing column") as e:
        Ethos(ProbeConfig(data=path))
    assert str(path) in str(e.value) and "';'" in str(e.value)


def test_too_few_demonstration_candidates(tmp_path: Path) -> None:
    path = write_file(tmp_path / "ethos.csv", FIXTURE.replace("fine d;0.0", "fine d;0.1"))
    with pytest.raises(AuditError, match="needs 4 comments with isHate == 0") as e:
        Ethos(ProbeConfig(data=path))
    assert str(path) in str(e.value)


def test_header_only_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no comments"):
        Ethos(ProbeConfig(data=write_file(tmp_path / "ethos.csv", "comment;isHate\n")))
    with pytest.raises(AuditError, match="data file not found"):
        Ethos(ProbeConfig(data=tmp_path / "absent.csv"))


# ---------------------------------------------------------------------------------------------
# end to end on tiny-opt
# ---------------------------------------------------------------------------------------------


def test_end_to_end_on_tiny_opt(run_probe) -> None:
    probe = Ethos(ProbeConfig(limit=QUICK_LIMIT))
    ev = run_probe(probe, token_budget=512)
    rows = ev.rows["ethos"]
    assert len(rows) == QUICK_LIMIT and all(r["id"] and r["group"] in ("hate", "not_hate") for r in rows)
    _, metrics = ev.metrics["ethos"]
    assert [m.name for m in metrics] == [f"{k}_{s}" for k in ("f1", "accuracy") for s in SETTINGS]
    for m in metrics:
        assert m.ok and m.n == QUICK_LIMIT and len(m.groups) == 2
        assert sum(g.n for g in m.groups.values()) == m.n
    # Batch invariance: a fresh cache and an 8x larger token budget give the same log-likelihoods.
    # The limit-10 subset is the start of the same fixed permutation, so its comments are among these.
    again = run_probe(Ethos(ProbeConfig(limit=10)), token_budget=4096)  # run_probe keeps a cache per budget
    by_id = {r["id"]: r for r in rows}
    for r in again.rows["ethos"]:
        for s in SETTINGS:
            assert r[s]["ll_yes"] == pytest.approx(by_id[r["id"]][s]["ll_yes"], abs=1e-4)
            assert r[s]["ll_no"] == pytest.approx(by_id[r["id"]][s]["ll_no"], abs=1e-4)
