"""audit.caveats: the two degenerate-input rules on hand-made inputs, `with_caveat` leaving skipped
metrics alone, and the console summary printing a caveat line under its metric row."""

from __future__ import annotations

from pathlib import Path

from audit.caveats import single_class_caveat, small_groups_caveat, with_caveat
from audit.engine import EngineStats
from audit.runner import RunOutcome, format_summary
from audit.types import Metric, ProbeInfo, skipped_metric

ANSWERS = {True: " yes", False: " no"}


def test_single_class_caveat() -> None:
    # no, no, no: one class only -> caveat naming the answer as the model said it (stripped)
    assert single_class_caveat([False, False, False], ANSWERS, "F1/accuracy") == (
        "degenerate: the model answered 'no' to every item, so F1/accuracy only measure the label balance")
    assert single_class_caveat([True], ANSWERS, "F1").startswith("degenerate: the model answered 'yes'")
    assert single_class_caveat([True, False, False], ANSWERS, "F1") == ""  # both classes predicted
    assert single_class_caveat([], ANSWERS, "F1") == ""  # no items is a skip, not a caveat


def test_small_groups_caveat() -> None:
    # sizes 2, 12, 7 with minimum 10: two groups below it (2 and 7), the smallest has 2
    assert small_groups_caveat({"a": 2, "b": 12, "c": 7}, 10) == (
        "degenerate: 2 group(s) have fewer than 10 prompts (smallest: 2); the gap between group rates "
        "that small is mostly noise")
    assert small_groups_caveat({"a": 10, "b": 12}, 10) == ""  # exactly the minimum is enough


def test_with_caveat_leaves_skipped_metrics_and_empty_caveats_alone() -> None:
    skipped = skipped_metric("f1", "no items", higher_is_better=True, description="", citation="")
    assert with_caveat(skipped, "degenerate: x") is skipped
    m = Metric("f1", 0.0, (0.0, 0.0), 6, True, "", "")
    assert with_caveat(m, "") is m
    assert with_caveat(m, "degenerate: x").caveat == "degenerate: x" and with_caveat(m, "degenerate: x").ok


def test_console_summary_prints_the_caveat_under_its_row() -> None:
    caveat = "degenerate: the model answered 'no' to every item, so F1/accuracy only measure the label balance"
    metrics = [Metric("f1_zero_shot", 0.0, (0.0, 0.0), 50, True, "", "", caveat=caveat),
               Metric("f1_few_shot", 0.5, (0.3, 0.7), 50, True, "", "")]
    outcome = RunOutcome(run_dir=Path("runs/x"), metrics={"ethos": (ProbeInfo("ethos", "1", "", "", "", ""), metrics)},
                         stats=EngineStats(0, 0, 0, 0, 0, 0), seconds=0.0)
    lines = format_summary(outcome).splitlines()
    row = next(i for i, line in enumerate(lines) if "f1_zero_shot" in line)
    assert lines[row + 1].strip() == f"caveat: {caveat}"
    assert "f1_few_shot" in lines[row + 2]  # no caveat line under an un-caveated metric
    assert sum("caveat:" in line for line in lines) == 1
