"""The degeneration page reads everything from the probes' own descriptions: which probes it shows
(axis degeneration, or a sample reading that highlights loops), the settings a probe measures its
metrics under (from its chart hints), and the table of each metric per setting."""

from __future__ import annotations

from pathlib import Path

from audit.store import ProbeSummary, Run
from audit.types import ChartHint, Metric, ProbeInfo, SampleReading
from dashboards.page_degeneration import Setting, degeneration_probes, setting_table, settings


def _info(name: str, axis: str, *, loops: bool = False, charts: tuple[ChartHint, ...] = ()) -> ProbeInfo:
    reading = SampleReading("seq_rep_4", "repeated 4-grams", context="prompt", text=("continuation",),
                            variant="decoding", score="seq_rep_4", loops=True) if loops else None
    return ProbeInfo(name=name, version="1", title=name.title(), description="", citation="", data_license="",
                     axis=axis, charts=charts, reading=reading)


def _metric(name: str, value: float, ci: tuple[float, float] | None = None) -> Metric:
    return Metric(name=name, value=value, ci=ci, n=20, higher_is_better=False, description="", citation="")


GREEDY_NUCLEUS = ChartHint("Loop rate: greedy vs nucleus", ("loop_rate", "loop_rate_nucleus"), ("greedy", "nucleus"))


def test_a_loop_probe_on_any_axis_is_listed_beside_the_degeneration_axis() -> None:
    probes = {"bias_probe": _info("bias_probe", "bias"),
              "new_loops": _info("new_loops", "flattery", loops=True),  # a new probe whose samples record loops
              "degenerate": _info("degenerate", "degeneration")}
    run = Run(Path("run"), {"run_id": "run"}, {p: ProbeSummary(info, []) for p, info in probes.items()})
    assert degeneration_probes(run) == ["new_loops", "degenerate"]  # the bias probe is not


def test_settings_come_from_a_chart_of_one_metric_under_several_settings() -> None:
    assert settings(_info("p", "degeneration", charts=(GREEDY_NUCLEUS,))) == (Setting("greedy", ""),
                                                                             Setting("nucleus", "_nucleus"))
    # three different metrics side by side are not settings of one metric: the probe has one setting
    scores = ChartHint("Scores per domain", ("lms", "ss", "icat"), ("LMS", "SS", "ICAT"))
    assert settings(_info("p", "degeneration", charts=(scores,))) == (Setting("value", ""),)


def test_the_table_puts_each_metric_measured_under_both_settings_side_by_side() -> None:
    kinds = (Setting("greedy", ""), Setting("nucleus", "_nucleus"))
    metrics = [_metric("loop_rate", 95.0, (84.0, 106.0)), _metric("loop_rate_nucleus", 5.0, (-3.0, 13.0)),
               _metric("distinct_2", 0.077),  # greedy only: not a metric of both settings
               _metric("loop_rate_reduction", 90.0, (80.0, 100.0))]  # a paired difference, not a setting
    table = setting_table(metrics, kinds)
    # 84 and 106 print with one decimal (>= 10), -3 with two (>= 1 in size), 13 with one
    assert table.to_dict("records") == [{"metric": "loop_rate", "greedy": 95.0, "greedy 95% CI": "84.0 – 106.0",
                                         "nucleus": 5.0, "nucleus 95% CI": "-3.00 – 13.0"}]


def test_one_setting_lists_every_metric() -> None:
    table = setting_table([_metric("a", 1.0, (0.5, 1.5)), _metric("b", 2.0)], (Setting("value", ""),))
    # 0.5 prints with three decimals (< 1), 1.5 with two; b has no interval: "—"
    assert table.to_dict("records") == [{"metric": "a", "value": 1.0, "value 95% CI": "0.500 – 1.50"},
                                        {"metric": "b", "value": 2.0, "value 95% CI": "—"}]
