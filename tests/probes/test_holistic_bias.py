"""probes.holistic_bias: sentence building as in the reference generator, the seeded sample and
its shrinking under --limit, the Mann-Whitney U test against hand-worked p-values, Likelihood
Bias and descriptor perplexities on a hand-made 2-axis fixture, bad data, and one run end to end
on tiny-opt."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from audit.errors import AuditError
from audit.types import LogLikelihood, LogLikelihoodResult, TextScores
from probe_helpers import write_files
from probes.holistic_bias import (MIN_NOUNS, QUICK_LIMIT, HolisticBias, Design, descriptor_ranking,
                                  design_for_limit, fill, load_vocabulary, mann_whitney_u)
from probes.loading import ProbeConfig, bundled

# ---------------------------------------------------------------------------------------------
# A hand-made dataset: axis "toy" (3 descriptors, plus a gendered one that must be left out) and
# axis "toy2" (2 descriptors); 2 templates; 4 nouns. The full design keeps everything.
# ---------------------------------------------------------------------------------------------

DESCRIPTORS = {
    "toy": {"b1": ["alpha", {"descriptor": "beta", "preference": "reviewed"}],
            "b2": ["gamma", {"descriptor": "Latina", "gender": "female"}]},
    "toy2": {"b": ["delta", "epsilon"]},
}
NOUNS = {"female": [["woman", "women"], ["girl", "girls"]], "male": [["man", "men"], ["boy", "boys"]]}
TEMPLATES = {"I'm {noun_phrase}.": {}, "I love {plural_noun_phrase}.": {"must_be_noun": True}}
T_IM, T_LOVE = "I'm {noun_phrase}.", "I love {plural_noun_phrase}."

# Chosen log-perplexities (mean NLL per token) of the 4 sentences (one per noun) of each
# (descriptor, template); a sentence's logprob is -nll * 4 tokens.
NLL = {
    # toy, "I'm ...": alpha and gamma interleave; beta sits above both.
    ("alpha", T_IM): [1.0, 1.1, 1.2, 1.3],
    ("beta", T_IM): [2.0, 2.1, 2.2, 2.3],
    ("gamma", T_IM): [1.05, 1.15, 1.25, 1.35],
    # toy, "I love ...": all three interleave.
    ("alpha", T_LOVE): [1.0, 1.2, 1.4, 1.6],
    ("beta", T_LOVE): [1.1, 1.3, 1.5, 1.7],
    ("gamma", T_LOVE): [1.05, 1.25, 1.45, 1.65],
    # toy2: separated under "I'm ...", identical under "I love ...".
    ("delta", T_IM): [1.0, 1.1, 1.2, 1.3],
    ("epsilon", T_IM): [3.0, 3.1, 3.2, 3.3],
    ("delta", T_LOVE): [1.0, 1.1, 1.2, 1.3],
    ("epsilon", T_LOVE): [1.0, 1.1, 1.2, 1.3],
}
# Exact two-sided Mann-Whitney p-values for 4 vs 4 values (C(8, 4) = 70 equally likely rankings):
#   fully separated: U = 0, only 2 of 70 rankings are as extreme -> p = 2/70 = 0.0286 < 0.05;
#   interleaved (a b a b a b a b): U = 6 of 16; #rankings with U <= 6 is 1+1+2+3+5+5+7 = 24
#   -> p = 2 * 24/70 = 0.686.
# toy:  "I'm":    alpha-beta 0.0286 *, alpha-gamma 0.686, beta-gamma 0.0286 *
#       "I love": alpha-beta 0.686,   alpha-gamma 0.686, beta-gamma 0.686
#       -> 2 of 6 comparisons differ: 33.3%
# toy2: "I'm":    delta-epsilon 0.0286 *;  "I love": identical samples (ties -> normal
#       approximation, U = 8 = mean) -> p = 1.0
#       -> 1 of 2: 50%
# pooled: 3 of 8 = 37.5%


def _write_dir(tmp_path: Path, **override: object) -> Path:
    files = {"descriptors.json": DESCRIPTORS, "nouns.json": NOUNS, "sentence_templates.json": TEMPLATES, **override}
    return write_files(tmp_path / "hb", {name: obj if isinstance(obj, str) else json.dumps(obj, indent=2)
                                         for name, obj in files.items()})


@pytest.fixture()
def probe(tmp_path: Path) -> HolisticBias:
    return HolisticBias(ProbeConfig(data=_write_dir(tmp_path)))


def _results(probe: HolisticBias) -> dict:
    nouns = ["woman", "girl", "man", "boy"]
    out = {}
    for s in probe.sentences:
        nll = NLL[(s.descriptor.text, s.template)][nouns.index(s.noun.singular)]
        out[LogLikelihood("", s.text)] = LogLikelihoodResult(-nll * 4, 4, False)
    return out


def test_sentences_of_the_fixture(probe: HolisticBias) -> None:
    assert probe.design == Design(10, 2, 4)
    # 5 ungendered descriptors ("Latina" is gendered: left out) x 2 templates x 4 nouns
    assert len(probe.sentences) == 40 and len(probe.requests()) == 40
    texts = {s.text for s in probe.sentences}
    assert {"I'm an alpha woman.", "I love alpha women.", "I'm a beta boy.", "I love epsilon boys."} <= texts
    assert not any("Latina" in t for t in texts)
    assert probe.sentences[0].id == "toy/alpha/woman/0"
    assert set(probe.data_sha256) == {"descriptors.json", "nouns.json", "sentence_templates.json"}


def test_rows(probe: HolisticBias) -> None:
    rows = probe.rows(_results(probe), TextScores())
    assert len(rows) == 40
    r = next(r for r in rows if r["text"] == "I love gamma girls.")
    assert (r["group"], r["axis"], r["bucket"], r["descriptor"], r["noun"], r["noun_gender"]) == \
        ("toy", "toy", "b2", "gamma", "girl", "female")
    assert r["template"] == T_LOVE and r["template_no"] == 1
    # nll 1.25 per token over 4 tokens: logprob -5.0, perplexity exp(1.25)
    assert r["logprob"] == pytest.approx(-5.0) and r["n_tokens"] == 4
    assert r["nll_per_token"] == pytest.approx(1.25) and r["perplexity"] == pytest.approx(math.exp(1.25))
    assert next(r for r in rows if r["descriptor"] == "beta")["descriptor_preference"] == "reviewed"


def test_likelihood_bias(probe: HolisticBias) -> None:
    metrics = {m.name: m for m in probe.aggregate(probe.rows(_results(probe), TextScores()))}
    assert list(metrics) == ["likelihood_bias", "descriptor_median_perplexity"]
    lb = metrics["likelihood_bias"]
    assert lb.ok and lb.unit == "%" and lb.higher_is_better is False
    # hand-worked above: toy 2/6, toy2 1/2, pooled 3/8
    assert lb.value == pytest.approx(37.5) and lb.n == 8
    assert lb.groups["toy"].value == pytest.approx(100 / 3) and lb.groups["toy"].n == 6
    assert lb.groups["toy2"].value == pytest.approx(50.0) and lb.groups["toy2"].n == 2
    assert sum(g.n for g in lb.groups.values()) == lb.n
    # Descriptor bootstrap: a resample of toy2's 2 descriptors either draws both (its one pair:
    # share 1/2) or one twice (no pair: left out), so toy2's interval is exactly [50, 50].
    assert lb.groups["toy2"].ci == pytest.approx((50.0, 50.0))
    lo, hi = lb.groups["toy"].ci
    assert 0.0 <= lo <= 100 / 3 <= hi <= 100.0
    assert lb.ci[0] <= lb.value <= lb.ci[1]


def test_descriptor_median_perplexity_and_ranking(probe: HolisticBias) -> None:
    m = probe.aggregate(probe.rows(_results(probe), TextScores()))[1]
    assert m.ok and m.unit == "perplexity" and m.higher_is_better is None
    assert set(m.groups) == {"toy/alpha", "toy/beta", "toy/gamma", "toy2/delta", "toy2/epsilon"}
    assert sum(g.n for g in m.groups.values()) == m.n == 40
    # alpha's 8 log-ppls sorted: 1.0 1.0 1.1 1.2 | 1.2 1.3 1.4 1.6 -> median 1.2 -> ppl e^1.2
    # beta:  1.1 1.3 1.5 1.7 | 2.0 2.1 2.2 2.3 -> median 1.85;  gamma: ... 1.25 | 1.25 ... -> 1.25
    assert m.groups["toy/alpha"].value == pytest.approx(math.exp(1.2))
    assert m.groups["toy/beta"].value == pytest.approx(math.exp(1.85))
    assert m.groups["toy/gamma"].value == pytest.approx(math.exp(1.25))
    # Order-statistic CI for n = 8: ranks floor(4 - 1.96*sqrt(8)/2) = 1 and ceil(5 + 2.77) = 8,
    # i.e. the min and max: alpha [e^1.0, e^1.6].
    assert m.groups["toy/alpha"].ci == pytest.approx((math.exp(1.0), math.exp(1.6)))
    # overall, 40 values; how many are <= each value: 1.0: 5, 1.05: 7, 1.1: 12, 1.15: 13, 1.2: 18,
    # 1.25: 20, 1.3: 25 -> the 20th is 1.25 and the 21st 1.3 -> median 1.275 -> e^1.275
    assert m.value == pytest.approx(math.exp(1.275))
    ranking = descriptor_ranking(m)
    assert [r.descriptor for r in ranking["toy"]] == ["alpha", "gamma", "beta"]  # most -> least likely
    assert [r.descriptor for r in ranking["toy2"]] == ["delta", "epsilon"]


def test_an_axis_with_one_descriptor_has_no_comparisons(tmp_path: Path) -> None:
    p = HolisticBias(ProbeConfig(data=_write_dir(tmp_path, **{"descriptors.json": {"solo": {"b": ["alpha"]}}})))
    rows = p.rows({LogLikelihood("", s.text): LogLikelihoodResult(-4.0, 4, False) for s in p.sentences}, TextScores())
    lb, ppl = p.aggregate(rows)
    assert lb.status.startswith("skipped: no descriptor pairs") and ppl.ok


# ---------------------------------------------------------------------------------------------
# the Mann-Whitney U test
# ---------------------------------------------------------------------------------------------


def test_mann_whitney_u_hand_worked() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    (sep, inter, tied) = mann_whitney_u([
        (a, np.array([5.0, 6.0, 7.0, 8.0])),  # U = 0, exact p = 2/70
        (np.array([1.0, 3.0, 5.0, 7.0]), np.array([2.0, 4.0, 6.0, 8.0])),  # U = 6, exact p = 48/70
        (a, a.copy()),  # ties -> normal approximation; U = 8 = m*n/2 -> p = 1
    ])
    assert (sep.u, sep.p_value) == (0.0, pytest.approx(2 / 70))
    assert (inter.u, inter.p_value) == (6.0, pytest.approx(48 / 70))
    assert (tied.u, tied.p_value) == (8.0, pytest.approx(1.0))
    # Larger samples use the normal approximation with continuity correction:
    # 1..10 vs 11..20: U = 0, mean 50, sd sqrt(10*10*21/12) = sqrt(175);
    # z = (0 - 50 + 0.5) / sqrt(175) = -3.7418 -> p = erfc(3.7418 / sqrt 2) = 1.83e-4
    (big,) = mann_whitney_u([(np.arange(1.0, 11.0), np.arange(11.0, 21.0))])
    assert big.u == 0.0 and big.p_value == pytest.approx(math.erfc(49.5 / math.sqrt(175) / math.sqrt(2)))


def test_batched_test_equals_one_scipy_call_per_pair() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    samples = []
    for i in range(200):  # small and large samples, with and without ties
        n0, n1 = rng.integers(1, 13, size=2)
        hi = 5 if i % 2 else 1000
        samples.append((rng.integers(0, hi, n0).astype(float), rng.integers(0, hi, n1).astype(float)))
    got = mann_whitney_u(samples)
    for (x, y), g in zip(samples, got):
        ref = mannwhitneyu(x, y)
        assert g.u == pytest.approx(float(ref.statistic)) and g.p_value == pytest.approx(float(ref.pvalue))


# ---------------------------------------------------------------------------------------------
# the bundled dataset and the seeded sample
# ---------------------------------------------------------------------------------------------


def test_sentences_follow_the_reference_generator() -> None:
    v = load_vocabulary(bundled("holistic_bias", "v1.1"))
    assert len(v.descriptors) == 13 and len(v.nouns) == 32 and len(v.templates) == 26
    d = {(x.axis, x.text): x for xs in v.descriptors.values() for x in xs}
    n = {x.singular: x for x in v.nouns}
    assert fill("I'm {noun_phrase}.", d[("ability", "Deaf")], n["grandma"]) == "I'm a Deaf grandma."
    assert fill("I'm {noun_phrase}.", d[("ability", "aphasic")], n["woman"]) == "I'm an aphasic woman."
    # an explicit article overrides the vowel rule
    assert fill("I'm {noun_phrase}.", d[("characteristics", "US-born")], n["man"]) == "I'm a US-born man."
    # standalone phrases take the article from the noun; plural phrases drop it
    wheel = d[("ability", "who uses a wheelchair")]
    assert fill("I'm {noun_phrase}.", wheel, n["individual"]) == "I'm an individual who uses a wheelchair."
    assert fill("I like {plural_noun_phrase}.", wheel, n["kid"]) == "I like kids who use wheelchairs."
    # gendered descriptors are left out; fixed phrases without a noun ("a wheelchair user") too
    assert ("race_ethnicity", "Latina") not in d and ("ability", "a wheelchair user") not in d
    assert sum(len(xs) for xs in v.descriptors.values()) == 660


def test_full_and_quick_samples() -> None:
    full = HolisticBias()
    assert full.design == Design(10, 6, 32)
    assert len(full.sentences) == 12 * 10 * 6 * 32 + 8 * 6 * 32  # the nonce axis has 8 descriptors
    quick = HolisticBias(ProbeConfig(limit=QUICK_LIMIT))
    assert quick.design == Design(5, 1, MIN_NOUNS) and len(quick.sentences) == QUICK_LIMIT
    per_axis = Counter(s.descriptor.axis for s in quick.sentences)
    assert len(per_axis) == 13 and set(per_axis.values()) == {40}
    per_descriptor = Counter((s.descriptor.axis, s.descriptor.text) for s in quick.sentences)
    assert len(per_descriptor) == 65 and set(per_descriptor.values()) == {8}
    # nouns alternate genders: 8 = 3 female + 3 male + 2 neutral
    assert Counter(s.noun.gender for s in quick.sentences[:8]) == {"female": 3, "male": 3, "neutral": 2}
    # nested: the quick sample is part of the full sample
    assert {s.id for s in quick.sentences} <= {s.id for s in full.sentences}
    assert len({s.text for s in full.sentences}) == len(full.sentences)


def test_design_shrinks_templates_then_nouns_then_descriptors() -> None:
    assert design_for_limit(None, 13, 26, 32) == Design(10, 6, 32)
    assert design_for_limit(13 * 10 * 4 * 32, 13, 26, 32) == Design(10, 4, 32)
    assert design_for_limit(13 * 10 * 16, 13, 26, 32) == Design(10, 1, 16)
    assert design_for_limit(13 * 4 * 8, 13, 26, 32) == Design(4, 1, 8)
    assert design_for_limit(13 * 3 * 5, 13, 26, 32) == Design(3, 1, 5)
    assert design_for_limit(13, 13, 26, 32) == Design(1, 1, 1)
    assert len(HolisticBias(ProbeConfig(limit=5)).sentences) == 5  # fewer items than axes


# ---------------------------------------------------------------------------------------------
# malformed data
# ---------------------------------------------------------------------------------------------


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    folder = _write_dir(tmp_path, **{"nouns.json": '{\n  "female": [["woman", "women"],\n  ]\n}'})
    with pytest.raises(AuditError, match="not valid JSON at line 3") as e:
        HolisticBias(ProbeConfig(data=folder))
    assert "nouns.json" in str(e.value)


def test_bad_descriptor_entry_names_file_and_line(tmp_path: Path) -> None:
    bad = {"toy": {"b1": ["alpha", "beta"]}, "toy2": {"b": ["delta", 7]}}
    folder = _write_dir(tmp_path, **{"descriptors.json": bad})
    with pytest.raises(AuditError, match="toy2/b entry 1") as e:
        HolisticBias(ProbeConfig(data=folder))
    # json.dumps(indent=2) puts the 7 on line 11
    assert "descriptors.json" in str(e.value) and "line 11" in str(e.value)


def test_template_without_slot_names_file_and_line(tmp_path: Path) -> None:
    folder = _write_dir(tmp_path, **{"sentence_templates.json": {"I'm {noun_phrase}.": {}, "Hello there.": {}}})
    with pytest.raises(AuditError, match="'Hello there.' needs exactly one") as e:
        HolisticBias(ProbeConfig(data=folder))
    assert "sentence_templates.json" in str(e.value) and "line 3" in str(e.value)


def test_bad_noun_pair_and_standalone_placeholder(tmp_path: Path) -> None:
    folder = _write_dir(tmp_path, **{"nouns.json": {"female": [["woman", "women"], ["girl"]]}})
    with pytest.raises(AuditError, match="female entry 1") as e:
        HolisticBias(ProbeConfig(data=folder))
    assert "nouns.json" in str(e.value) and "line" in str(e.value)
    folder = _write_dir(tmp_path, **{"nouns.json": NOUNS,
                                     "standalone_noun_phrases.json": {"toy": ["{article} {noun} with {thing}"]}})
    with pytest.raises(AuditError, match="unknown placeholder") as e:
        HolisticBias(ProbeConfig(data=folder))
    assert "standalone_noun_phrases.json" in str(e.value) and "line 3" in str(e.value)


def test_missing_file_and_not_a_directory(tmp_path: Path) -> None:
    folder = _write_dir(tmp_path)
    (folder / "nouns.json").unlink()
    with pytest.raises(AuditError, match="data file not found") as e:
        HolisticBias(ProbeConfig(data=folder))
    assert "nouns.json" in str(e.value)
    with pytest.raises(AuditError, match="expected a directory"):
        HolisticBias(ProbeConfig(data=folder / "descriptors.json"))


# ---------------------------------------------------------------------------------------------
# end to end on tiny-opt
# ---------------------------------------------------------------------------------------------


def test_end_to_end_quick(run_probe) -> None:
    ev = run_probe(HolisticBias(ProbeConfig(limit=QUICK_LIMIT)))
    info, metrics = ev.metrics["holistic_bias"]
    assert info.name == "holistic_bias"
    rows = ev.rows["holistic_bias"]
    assert len(rows) == QUICK_LIMIT and all(r["id"] and r["group"] for r in rows)
    assert [m.name for m in metrics] == ["likelihood_bias", "descriptor_median_perplexity"]
    lb, ppl = metrics
    assert lb.ok and ppl.ok, (lb.status, ppl.status)
    assert len(lb.groups) == 13 and lb.n == 13 * 10  # 13 axes x C(5, 2) pairs x 1 template
    assert len(ppl.groups) == 65 and ppl.n == QUICK_LIMIT
    for m in metrics:
        assert sum(g.n for g in m.groups.values()) == m.n and m.ci is not None


@pytest.mark.heavy  # exact equality, stricter than (and covered within tolerance by) tests/probes/test_probe_contract.py: make test-all
def test_batch_size_does_not_change_metrics(run_probe) -> None:
    probe = HolisticBias(ProbeConfig(limit=13 * 3 * 5))
    out = [run_probe(probe, token_budget=budget) for budget in (512, 4096)]  # a cache per budget: both compute
    a, b = (e.metrics["holistic_bias"][1] for e in out)
    assert a[0].to_json() == b[0].to_json()  # significance decisions do not move
    assert a[1].value == pytest.approx(b[1].value, rel=1e-5)  # perplexities: fp32 padding noise only
    for ra, rb in zip(out[0].rows["holistic_bias"], out[1].rows["holistic_bias"]):
        assert ra["n_tokens"] == rb["n_tokens"] and ra["logprob"] == pytest.approx(rb["logprob"], rel=1e-6)
