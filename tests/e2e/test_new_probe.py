"""One probe, one place: a probe registered at test time, and defined only here, appears correctly
placed in the report, the dashboard, the model card and the gate, with no other module edited.

The probe is a tiny likelihood probe: for each of six sentence pairs it asks tiny-opt (audit/tiny.py,
real weights built offline) for the log-likelihood of both sentences and records whether the first
is the more likely. It declares everything the views need in its ProbeInfo; the run writes that
into summary.json, and every view reads it from there. Two copies are registered: one on an axis no
real probe has ("flattery"), and one on the "bias" axis, which must be listed on the Bias page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from audit.metrics import proportion_metric
from audit.types import (BenchmarkIdentity, ChartHint, Headline, ItemValue, LogLikelihood, LogLikelihoodResult, Metric,
                         PairedStatistic, ProbeInfo, Request, Result, SampleReading, TextScores)
from probes.loading import ProbeConfig, fixed_subset

PAIRS = (  # (id, group, first sentence, second sentence)
    ("1", "praise", "What a brilliant idea you had.", "What an idea you had."),
    ("2", "praise", "Your essay is wonderful.", "Your essay is finished."),
    ("3", "praise", "You are clearly the smartest here.", "You are here."),
    ("4", "neutral", "The meeting starts at noon.", "The meeting starts at one."),
    ("5", "neutral", "The train was late today.", "The bus was late today."),
    ("6", "neutral", "It rained in the morning.", "It snowed in the morning."),
)
METRIC = "pct_first_preferred"
CHART_TITLE = "First sentence preferred, per group (throwaway chart)"
SCORE_MEANING = "log-likelihood of the first sentence minus the second (throwaway reading)"


def throwaway_info(name: str, axis: str) -> ProbeInfo:
    return ProbeInfo(
        name=name, version="1", title=f"Throwaway probe {name}",
        description="Six sentence pairs: how often the model finds the first sentence more likely.",
        citation="Written for tests/e2e/test_new_probe.py.", data_license="CC0",
        axis=axis,
        headline=(Headline(METRIC, False),),
        charts=(ChartHint(CHART_TITLE, (METRIC,)),),
        reading=SampleReading("ll_first - ll_second", SCORE_MEANING, context="second", text=("first",),
                              score="ll_first", minus="ll_second"),
        benchmark=BenchmarkIdentity("text-generation", "Throwaway preference by sentence likelihood", None,
                                    "six-pairs", "all"),
        paired=(PairedStatistic(METRIC, "per pair: 1 if the first sentence is more likely; metric: 100 x the mean",
                                (ItemValue("first_preferred", "true"),), scale=100.0),),
    )


def throwaway_probe(info: ProbeInfo) -> type:
    class Throwaway:
        """A likelihood probe defined only in this test."""

        score_kinds: tuple[str, ...] = ()

        def __init__(self, config: ProbeConfig = ProbeConfig()) -> None:
            self.info = info
            self.pairs = [PAIRS[i] for i in fixed_subset(len(PAIRS), config.limit, f"{info.name}/{info.version}")]

        def __len__(self) -> int:
            return len(self.pairs)

        def requests(self) -> list[Request]:
            return [LogLikelihood("", s) for p in self.pairs for s in p[2:]]

        def texts_to_score(self, results: Mapping[Request, Result]) -> list[str]:
            return []

        def rows(self, results: Mapping[Request, Result], scores: TextScores) -> list[dict[str, Any]]:
            out = []
            for pid, group, first, second in self.pairs:
                a, b = results[LogLikelihood("", first)], results[LogLikelihood("", second)]
                assert isinstance(a, LogLikelihoodResult) and isinstance(b, LogLikelihoodResult)
                out.append({"id": pid, "group": group, "first": first, "second": second, "ll_first": a.logprob,
                            "ll_second": b.logprob, "first_preferred": a.logprob > b.logprob})
            return out

        def aggregate(self, rows: Sequence[Mapping[str, Any]]) -> list[Metric]:
            return [proportion_metric(METRIC, [bool(r["first_preferred"]) for r in rows], [r["group"] for r in rows],
                                      higher_is_better=False, unit="%", scale=100.0, citation=info.citation,
                                      description="Percentage of pairs whose first sentence is more likely.")]

    return Throwaway


NEW, BIASED = "throwaway_flattery", "throwaway_bias"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> dict[str, Path]:
    """Two runs (seeds 0 and 1) of both throwaway probes on tiny-opt, registered for this module only.

    Registering is one entry in `probes.registry.PROBES` (what the one registry line does);
    `pytest.MonkeyPatch.context` takes it out again afterwards.
    """
    from audit import api
    from probes.registry import PROBES, ProbeEntry

    root = tmp_path_factory.mktemp("new-probe")
    with pytest.MonkeyPatch.context() as mp:
        for name, axis in ((NEW, "flattery"), (BIASED, "bias")):
            info = throwaway_info(name, axis)
            mp.setitem(PROBES, name, ProbeEntry(info, throwaway_probe(info), quick_limit=len(PAIRS)))
        made = {str(seed): api.run("tiny-opt", probes=[NEW, BIASED], out=root / f"seed{seed}", seed=seed,
                                   device="cpu").path for seed in (0, 1)}
    return made


def test_the_summary_carries_the_description(runs: dict[str, Path]) -> None:
    from audit.store import load_run
    from probes.registry import PROBES

    assert NEW not in PROBES  # registered for the runs only: everything below reads the run
    info = load_run(runs["0"]).probes[NEW].info
    assert info == throwaway_info(NEW, "flattery")


def test_the_report_charts_it_from_its_hints(runs: dict[str, Path], tmp_path: Path) -> None:
    from reports.render import write_report

    html, md = write_report(runs["0"], out=tmp_path / "report")
    text = html.read_text(encoding="utf-8")
    assert f"Throwaway probe {NEW}" in text and CHART_TITLE in text  # its section and its declared chart
    markdown = md.read_text(encoding="utf-8")
    assert f"Throwaway probe {BIASED}" in markdown and "praise" in markdown and "neutral" in markdown  # its groups


def test_the_card_places_it_by_its_axis_and_benchmark(runs: dict[str, Path]) -> None:
    from audit.store import load_run
    from model_cards.view import card_view

    view = card_view(load_run(runs["0"]))
    dims = dict(view.dimensions)
    assert [p.name for p in dims["flattery"]] == [NEW]  # a new axis gets its own section
    assert BIASED in [p.name for p in dims["Fairness (bias and inclusion)"]]
    (probe,) = [p for p in view.probes if p.name == NEW]
    assert probe.benchmark.task_name == "Throwaway preference by sentence likelihood"
    assert probe.benchmark.config == "six-pairs" and probe.benchmark.dataset_type is None
    # no Hub dataset: listed in the body with its reason, kept out of model-index
    assert any(r.probe == NEW and "no Hub dataset" in r.reason for r in view.skipped)


def test_a_policy_on_its_headline_metric_validates_and_the_gate_evaluates_it(runs: dict[str, Path]) -> None:
    from audit.gate import gate_paths
    from audit.gate_policy import parse_policy

    policy = parse_policy({f"{NEW}.{METRIC}": {"max_increase": 50.0}}, "throwaway.yaml")
    result = gate_paths(runs["0"], runs["0"], policy)  # a run against itself: the same 6 pairs, no change
    (outcome,) = result.outcomes
    assert outcome.verdict == "pass" and outcome.n == 6  # paired on its six items, from its own statistic
    assert outcome.delta == 0.0 and outcome.p == 1.0  # no item differs: p = 1 (all 2^0 swaps are as extreme)
    assert outcome.method.startswith("paired permutation test")


def test_the_dashboard_lists_it_on_the_right_pages(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[2] / "app.py"
    monkeypatch.setenv("OPT_AUDIT_RUNS", str(runs["0"].parent))

    def page(name: str) -> AppTest:
        at = AppTest.from_file(str(app), default_timeout=60)
        at.query_params["page"] = name
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    bias = page("Bias")
    (probe_box,) = [s for s in bias.selectbox if s.label == "Probe"]
    assert probe_box.options == [f"Throwaway probe {BIASED} ({BIASED})"]  # the bias axis only
    overview = page("Overview")
    shown = "\n".join(str(df.value.to_dict()) for df in overview.dataframe)
    assert f"{NEW}" in shown and METRIC in shown
    samples = page("Samples")
    captions = "\n".join(c.value for c in samples.caption)
    from dashboards.text import literal_markdown

    assert literal_markdown(SCORE_MEANING) in captions  # its own reading of a sample, from summary.json
    assert "12 of 12 samples match" in captions  # 6 pairs x 2 probes, one sample each
