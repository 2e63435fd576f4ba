"""The batch-invariance contract's comparison: floats within tolerance, everything else exact."""

from __future__ import annotations

from audit.invariance import LOGLIKELIHOOD_ATOL, SUMMARY_RTOL, differences


def test_the_issue_example_is_within_the_summary_tolerance() -> None:
    # |2.8768641 - 2.8768628| = 1.3e-6; relative to 2.877 that is 4.5e-7, below SUMMARY_RTOL = 1e-4.
    assert differences({"likelihood_diff": 2.8768641}, {"likelihood_diff": 2.8768628}) == []
    # 2.8768641 vs 2.8771 differs by 2.4e-4 / 2.877 = 8.3e-5 relative: still inside 1e-4 ...
    assert differences(2.8768641, 2.8771) == []
    # ... but 2.8768641 vs 2.8772 is 3.4e-4 / 2.877 = 1.2e-4 > 1e-4: a difference, named by its path.
    assert differences({"m": [1.0, 2.8768641]}, {"m": [1.0, 2.8772]}) == [
        ".m[1]: 2.8768641 != 2.8772 (rtol 0.0001, atol 0.0001)"]


def test_near_zero_uses_the_absolute_tolerance() -> None:
    # 0 vs 5e-5: relative error is 1 (100%), but |Δ| = 5e-5 <= SUMMARY_ATOL = 1e-4.
    assert differences(0.0, 5e-5) == []
    assert differences(0.0, 2e-4) != []
    # the measured case: a CrowS group CI bound 0.04742431640625 vs 0.0474395751953125 differs by
    # 1.5e-5 (3.2e-4 relative, above SUMMARY_RTOL) but within the absolute 1e-4
    assert differences(0.04742431640625, 0.0474395751953125) == []


def test_log_likelihoods_compare_absolutely() -> None:
    # Sums near -150 differing by 3.1e-5 (the largest measured) are within 1e-4; 2e-4 is not.
    assert differences(-150.0, -150.000031, rtol=0.0, atol=LOGLIKELIHOOD_ATOL) == []
    assert differences(-150.0, -150.0002, rtol=0.0, atol=LOGLIKELIHOOD_ATOL) != []
    assert SUMMARY_RTOL == 1e-4  # the README states this figure


def test_non_floats_must_match_exactly() -> None:
    assert differences({"n": 12, "text": "a"}, {"n": 12, "text": "a"}) == []
    assert differences({"n": 12}, {"n": 13}) == [".n: 12 != 13"]  # counts are exact
    assert differences({"text": "play"}, {"text": "plays"}) == [".text: 'play' != 'plays'"]
    assert differences({"ok": True}, {"ok": 1}) != []  # a bool is not a number here
    assert differences([1.0], [1.0, 2.0]) == [".: lengths 1 != 2"]
    assert differences({"a": 1}, {"b": 1}) == [".: keys differ: ['a', 'b']"]
    assert differences(float("nan"), float("nan")) == []  # a NaN metric stays NaN
    assert differences(None, 0.0) != []
