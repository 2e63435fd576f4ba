"""Item statistics and the paired permutation test, on tiny fixtures with hand-worked p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.errors import AuditError
from audit import gate_paired
from audit.gate_paired import RESAMPLES, ItemStatistic, ItemTable, item_table, pair, paired_test, table_value
from probes.registry import PROBES


def item_statistic(metric: str) -> ItemStatistic | None:
    """The statistic as the probe's own description declares it (what a run writes to summary.json)."""
    return gate_paired.item_statistic(metric, PROBES[metric.split(".", 1)[0]].info)


def item_statistic_names() -> tuple[str, ...]:
    return tuple(f"{p}.{s.metric}" for p, e in PROBES.items() for s in e.info.paired)

UP = np.asarray  # the gated quantity of a lower-is-better metric is its value


def table(stat_name: str, rows: list[dict]) -> ItemTable:
    return item_table(item_statistic(stat_name), rows, "fixture")


def rtp_rows(flags: list[int]) -> list[dict]:
    return [{"id": f"p{i}", "any_toxic": bool(f), "max_toxicity": 0.9 if f else 0.1} for i, f in enumerate(flags)]


def test_registry_covers_the_default_policy() -> None:
    from audit.gate_policy import load_policy

    names = set(item_statistic_names())
    assert {r.metric for r in load_policy().rules} <= names  # every default rule is tested item by item
    assert {"real_toxicity_prompts.toxicity_probability", "real_toxicity_prompts.expected_max_toxicity",
            "toxigen.pct_toxic", "bold.toxicity_rate", "crows_pairs.pct_stereotype", "stereoset.overall_ss",
            "bbq.bias_score_ambig", "repetition.loop_rate", "repetition.phrase_loop_rate",
            "repetition.phrase_loop_rate_nucleus", "repetition.token_loop_rate", "bold.max_gap_positive",
            "bold.max_gap_negative", "bold.max_gap_toxicity"} <= names
    assert item_statistic("crows_pairs.likelihood_diff") is not None  # a mean of per-pair values
    assert item_statistic("stereoset.overall_icat") is None  # not per item: "not tested" in comparisons
    assert item_statistic("repetition.loop_rate_reduction") is None  # needs two rows per item


def test_binary_all_discordant_worse_is_exact_one_over_two_to_the_k() -> None:
    # 10 prompts; the candidate is toxic on 8 the baseline was not: value 0.0 -> 0.8.
    # Only the 8 discordant prompts can change the statistic; of the 2^8 = 256 swaps only "swap
    # nothing" reaches +0.8, so p = 1/256 = 0.00390625 (the exact one-sided McNemar test).
    stat = item_statistic("real_toxicity_prompts.toxicity_probability")
    p = pair(table(stat.metric, rtp_rows([0] * 10)), table(stat.metric, rtp_rows([1] * 8 + [0] * 2)))
    test = paired_test(stat, p, UP, seed=0)
    assert (test.baseline, test.candidate, test.worsening) == (0.0, 0.8, 0.8)
    assert test.n == 10 and test.n_differing == 8
    assert test.p == 1 / 256
    assert "exact over all 2^8 swaps" in test.method
    assert test.ci is not None and test.ci[0] > 0  # every resample of items keeps some of the 8


def test_binary_mixed_discordance_matches_mcnemar() -> None:
    # 10 discordant pairs: 9 candidate-only toxic, 1 baseline-only toxic; 2 concordant toxic.
    # worsening = (9 - 1)/12. A swap flips an item's sign, so worsening* = (2W - 10)/12 with W ~
    # Binomial(10, 1/2) the items left worse: P(W >= 9) = (10 + 1)/1024 = 0.0107421875 — the exact
    # one-sided McNemar p-value for 9 vs 1.
    stat = item_statistic("real_toxicity_prompts.toxicity_probability")
    base = [0] * 9 + [1] + [1, 1]
    cand = [1] * 9 + [0] + [1, 1]
    test = paired_test(stat, pair(table(stat.metric, rtp_rows(base)), table(stat.metric, rtp_rows(cand))), UP, 0)
    assert test.worsening == pytest.approx(8 / 12)
    assert test.p == pytest.approx(11 / 1024)


def test_identical_rows_give_p_one_and_zero_change() -> None:
    stat = item_statistic("real_toxicity_prompts.expected_max_toxicity")
    t = table(stat.metric, rtp_rows([1, 0, 1]))
    test = paired_test(stat, pair(t, t), UP, 0)
    assert (test.worsening, test.p, test.n_differing) == (0.0, 1.0, 0)
    assert test.ci == (0.0, 0.0)


def test_monte_carlo_branch_beyond_sixteen_differing_items() -> None:
    # 20 items all worse: 2^20 swaps is past the exact limit, so 10,000 seeded random swaps are
    # drawn; a random swap reaches the observed value only if it swaps nothing (chance 2^-20), so
    # p = (1 + 0) / (1 + 10000) = 1/10001.
    stat = item_statistic("real_toxicity_prompts.toxicity_probability")
    p = pair(table(stat.metric, rtp_rows([0] * 20)), table(stat.metric, rtp_rows([1] * 20)))
    test = paired_test(stat, p, UP, seed=3)
    assert test.p == 1 / (1 + RESAMPLES)
    assert "10000 seeded random swaps" in test.method
    assert paired_test(stat, p, UP, seed=3) == test  # seeded: the same numbers every time


def test_distance_from_ideal_for_target_valued_metrics() -> None:
    # CrowS-Pairs, ideal 50. Baseline stereotyped on 5 of 10 pairs (50%), candidate on 8 (80%):
    # the distance |value - 50| grows by 30 points. The 3 differing pairs (5, 6, 7) give 2^3 = 8
    # swaps; swapping j of them gives |80 - 10j - 50| - |50 + 10j - 50| = 30, 10, -10, -30 for
    # j = 0..3, so only j = 0 reaches 30: p = 1/8.
    stat = item_statistic("crows_pairs.pct_stereotype")
    rows = lambda flags: [{"id": str(i), "stereotyped": bool(f)} for i, f in enumerate(flags)]  # noqa: E731
    b, c = table(stat.metric, rows([1] * 5 + [0] * 5)), table(stat.metric, rows([1] * 8 + [0] * 2))
    distance = lambda v: np.abs(np.asarray(v) - 50.0)  # noqa: E731
    test = paired_test(stat, pair(b, c), distance, 0)
    assert (test.baseline, test.candidate, test.worsening) == (50.0, 80.0, 30.0)
    assert test.p == 1 / 8
    # the same move the other way (80% -> 50%) is an improvement: worsening -30, every swap >= -30
    back = paired_test(stat, pair(c, b), distance, 0)
    assert back.worsening == -30.0 and back.p == 1.0


def test_stereoset_averages_per_target_and_pairs_by_task_and_id() -> None:
    # target A: 2 examples, 1 stereotype-preferring (50%); target B: 1 example, preferring (100%).
    # SS = mean over targets = (50 + 100) / 2 = 75 (not the pooled 2/3 = 66.7).
    stat = item_statistic("stereoset.overall_ss")
    rows = [{"id": "1", "task": "intrasentence", "target": "A", "prefers_stereotype": True},
            {"id": "1", "task": "intersentence", "target": "A", "prefers_stereotype": False},
            {"id": "2", "task": "intrasentence", "target": "B", "prefers_stereotype": True}]
    t = table(stat.metric, rows)
    assert t.keys == ("intrasentence/1", "intersentence/1", "intrasentence/2")
    assert table_value(stat, t) == 75.0


def test_bbq_ambiguous_bias_score() -> None:
    # 4 ambiguous examples with a bias target: 1 answered UNKNOWN (correct), 3 answered a person,
    # all 3 the biased one. accuracy = 1/4, s_DIS = 2 * 3/3 - 1 = 1, s_AMB = 100 * (1 - 1/4) * 1 = 75.
    # The disambiguated row and the row without a bias target (pred_biased None) are not counted.
    stat = item_statistic("bbq.bias_score_ambig")
    row = lambda i, correct, unknown, biased, cond="ambig": {  # noqa: E731
        "id": f"x/{i}", "context_condition": cond, "correct": correct, "pred_unknown": unknown,
        "pred_biased": biased}
    rows = [row(0, True, True, False), row(1, False, False, True), row(2, False, False, True),
            row(3, False, False, True), row(4, True, False, False, "disambig"), row(5, True, True, None)]
    assert table_value(stat, table(stat.metric, rows)) == 75.0
    # every answer UNKNOWN: s_DIS undefined, and s_AMB is 0 (as the probe defines it)
    assert table_value(stat, table(stat.metric, [row(0, True, True, False)])) == 0.0


def test_repetition_gates_greedy_rows_and_bold_uses_its_threshold() -> None:
    rep = item_statistic("repetition.loop_rate")
    rows = [{"id": "a", "decoding": "greedy", "loop": True}, {"id": "a", "decoding": "nucleus", "loop": False},
            {"id": "b", "decoding": "greedy", "loop": False}]
    assert table_value(rep, table(rep.metric, rows)) == 50.0  # 1 of 2 greedy continuations loops
    bold = item_statistic("bold.toxicity_rate")
    rows = [{"id": "a", "toxicity": 0.5}, {"id": "b", "toxicity": 0.49}, {"id": "c", "toxicity": 0.0}, {"id": "d", "toxicity": 0.7}]
    assert table_value(bold, table(bold.metric, rows)) == 50.0  # 0.5 and 0.7 are >= 0.5: 2 of 4


def test_pairing_by_id_keeps_shared_items_only() -> None:
    stat = item_statistic("real_toxicity_prompts.toxicity_probability")
    b = table(stat.metric, rtp_rows([1, 0, 0]))  # p0, p1, p2
    c = item_table(stat, [{"id": "p2", "any_toxic": True, "max_toxicity": 0.9},
                          {"id": "p1", "any_toxic": False, "max_toxicity": 0.1},
                          {"id": "p9", "any_toxic": True, "max_toxicity": 0.9}], "fixture")
    p = pair(b, c)
    assert p.keys == ("p1", "p2") and (p.only_baseline, p.only_candidate) == (1, 1)
    assert p.baseline[:, 0].tolist() == [0.0, 0.0] and p.candidate[:, 0].tolist() == [0.0, 1.0]


def test_bad_rows_are_errors_naming_the_file() -> None:
    stat = item_statistic("toxigen.pct_toxic")
    with pytest.raises(AuditError, match="fixture: row 'a' lacks what toxigen.pct_toxic needs"):
        item_table(stat, [{"id": "a"}], "fixture")
    with pytest.raises(AuditError, match="item 'a' appears twice"):
        item_table(stat, [{"id": "a", "toxic": True}, {"id": "a", "toxic": False}], "fixture")
    rtp = item_statistic("real_toxicity_prompts.expected_max_toxicity")
    with pytest.raises(AuditError, match="non-finite"):
        item_table(rtp, [{"id": "a", "max_toxicity": math.nan}], "fixture")


def test_phrase_and_token_loop_statistics_pair_each_decoding() -> None:
    # prompt a: greedy phrase loop, nucleus none; prompt b: greedy single-token loop, nucleus phrase loop
    # (the kind follows the period: 1 is a single token, 2 or more a phrase)
    rows = [{"id": "a", "decoding": "greedy", "loop": True, "loop_period": 3},
            {"id": "a", "decoding": "nucleus", "loop": False, "loop_period": None},
            {"id": "b", "decoding": "greedy", "loop": True, "loop_period": 1},
            {"id": "b", "decoding": "nucleus", "loop": True, "loop_period": 2}]

    def value(name: str) -> float:
        stat = item_statistic(f"repetition.{name}")
        return table_value(stat, table(stat.metric, rows))

    # greedy: any loop 2/2 = 100, phrase 1/2 = 50 (a), token 1/2 = 50 (b); nucleus: phrase 1/2 (b), token 0
    assert (value("loop_rate"), value("phrase_loop_rate"), value("token_loop_rate")) == (100.0, 50.0, 50.0)
    assert (value("loop_rate_nucleus"), value("phrase_loop_rate_nucleus"), value("token_loop_rate_nucleus")) == (
        50.0, 50.0, 0.0)


def test_stutter_traded_for_phrase_loops_is_caught_by_the_phrase_rate_not_the_loop_rate() -> None:
    # The case in small: the baseline (random weights) stutters on one token on all 10 greedy
    # prompts, the candidate loops on a phrase on all 10. Any-loop rate: 100 -> 100, no item differs,
    # p = 1. Phrase-loop rate: 0 -> 100, 10 discordant prompts, exact p = 1/2^10 = 1/1024.
    base = [{"id": str(i), "decoding": "greedy", "loop": True, "loop_period": 1} for i in range(10)]
    cand = [{**r, "loop_period": 7} for r in base]
    loop = item_statistic("repetition.loop_rate")
    t = paired_test(loop, pair(table(loop.metric, base), table(loop.metric, cand)), UP, 0)
    assert (t.baseline, t.candidate, t.worsening, t.p) == (100.0, 100.0, 0.0, 1.0)
    phrase = item_statistic("repetition.phrase_loop_rate")
    t = paired_test(phrase, pair(table(phrase.metric, base), table(phrase.metric, cand)), UP, 0)
    assert (t.baseline, t.candidate, t.worsening) == (0.0, 100.0, 100.0)
    assert t.p == 1 / 1024 and t.p_better == 1.0


def test_bold_max_gap_per_domain_then_largest() -> None:
    # positive = compound >= 0.5. d1/a: [0.6, 0.0] -> 1/2; d1/b: [0.9, 0.7] -> 2/2: d1 gap 0.5.
    # d2/c: [0.0] -> 0; d2/d: [0.8] -> 1: d2 gap 1. d3 has one group: no gap. Overall 100 x 1 = 100.
    stat = item_statistic("bold.max_gap_positive")
    cells = [("d1/a", 0.6), ("d1/a", 0.0), ("d1/b", 0.9), ("d1/b", 0.7), ("d2/c", 0.0), ("d2/d", 0.8),
             ("d3/e", 0.9)]
    rows = [{"id": str(i), "group": g, "compound": c} for i, (g, c) in enumerate(cells)]
    assert table_value(stat, table(stat.metric, rows)) == 100.0
    assert table_value(stat, table(stat.metric, rows[:4])) == 50.0  # d1 alone


def test_max_gap_permutation_p_by_hand() -> None:
    # d/a and d/b, two prompts each. Baseline: all four positive (gap 0). Candidate: d/a's two turn
    # negative (a 0%, b 100%: gap 100). Only d/a's 2 prompts differ: 2^2 = 4 swaps. Swapping none: +100;
    # one of them: both runs get a = 50%, gaps 50 and 50: 0; both: -100. Worsening* in {100, 0, 0, -100}:
    # p(worse) = P(>= 100) = 1/4, p(better) = P(<= 100) = 1.
    def rows(a: float) -> list[dict]:
        return [{"id": "1", "group": "d/a", "compound": a}, {"id": "2", "group": "d/a", "compound": a},
                {"id": "3", "group": "d/b", "compound": 0.9}, {"id": "4", "group": "d/b", "compound": 0.9}]

    stat = item_statistic("bold.max_gap_positive")
    test = paired_test(stat, pair(table(stat.metric, rows(0.9)), table(stat.metric, rows(0.0))), UP, 0)
    assert (test.baseline, test.candidate, test.worsening) == (0.0, 100.0, 100.0)
    assert (test.p, test.p_better, test.n_differing) == (0.25, 1.0, 2)


def test_better_tail_is_counted_too() -> None:
    # The mirror of the 1/256 case: toxic on 8 of 10 prompts -> on none. Worsening -0.8; only "swap
    # nothing" is as low, so p(better) = 1/256, and every swap is >= -0.8, so p(worse) = 1.
    stat = item_statistic("real_toxicity_prompts.toxicity_probability")
    p = pair(table(stat.metric, rtp_rows([1] * 8 + [0] * 2)), table(stat.metric, rtp_rows([0] * 10)))
    test = paired_test(stat, p, UP, seed=0)
    assert test.worsening == pytest.approx(-0.8)
    assert (test.p, test.p_better) == (1.0, 1 / 256)


def test_an_interval_that_misses_the_change_is_left_out_with_its_reason() -> None:
    # A statistic the bootstrap biases upward: the largest of 20 group rates. Each group has 2 items.
    # Baseline: all 0 (max 0). Candidate: one 1 and one 0 per group (every rate 0.5, max 0.5): change
    # +0.5. A stratified resample of a candidate group has rate 0, 0.5 or 1 with chance 1/4, 1/2, 1/4,
    # so its max is 1 unless no group draws two 1s: chance 1 - (3/4)^20 = 0.9968. The change is +1 in
    # 99.7% of resamples, so even the 2.5th percentile is 1: [1, 1] would not contain +0.5.
    from audit.gate_paired import ItemStatistic

    stat = ItemStatistic("x.max_rate", "test", lambda r: (float(r["v"]),),
                         lambda t: (t.sums[..., 0] / t.counts).max(axis=-1), stratum=lambda r: r["g"])
    b = item_table(stat, [{"id": str(i), "g": f"{i // 2:02d}", "v": 0} for i in range(40)], "fixture")
    c = item_table(stat, [{"id": str(i), "g": f"{i // 2:02d}", "v": i % 2} for i in range(40)], "fixture")
    test = paired_test(stat, pair(b, c), UP, 0)
    assert test.worsening == 0.5 and test.ci is None
    assert test.ci_note.startswith("no interval: the bootstrap distribution of the change lies on one side")
