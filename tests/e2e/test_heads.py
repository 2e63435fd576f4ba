"""Models with a task head end to end: the quick suite on the embedded classifier and QA models through
the real CLI (metrics, skips, report, card), and the family checks that refuse a mismatched probe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cli_checks import one_error_line
from probes.registry import SUITES

LIMIT = "8"  # items per probe: seconds on a CPU


def _run_dir(stdout: str) -> Path:
    found = [ln for ln in stdout.splitlines() if ln.startswith("run directory: ")]
    assert len(found) == 1, stdout
    return Path(found[0].removeprefix("run directory: "))


@pytest.mark.parametrize(("model", "probe", "family", "metrics"), [
    ("tiny-opt-classifier", "counterfactual_classifier", "sequence-classification",
     {"flip_rate", "score_gap", "worst_group_gap", "group_difference_p"}),
    ("tiny-opt-qa", "qa_bias", "question-answering", {"bias_score", "stereotype_preference", "bias_p",
                                                       "exact_match", "f1"}),
])
def test_quick_suite_on_a_head_model(cli, tmp_path: Path, model: str, probe: str, family: str,
                                     metrics: set[str]) -> None:
    proc = cli("run", "--model", model, "--suite", "quick", "--limit", LIMIT, "--no-progress", "--report",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = _run_dir(proc.stdout)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete" and manifest["model"]["family"] == family
    assert manifest["spec"]["probes"] == [probe]
    # every other quick probe is a recorded skip, with its reason, in the manifest and on the console
    others = [p for p in SUITES["quick"].probes if p != probe]
    assert sorted(manifest["skipped_probes"]) == sorted(others)
    assert all("needs " in why for why in manifest["skipped_probes"].values())
    for other in others:
        assert f"skipped: {other} (needs " in proc.stdout
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    got = {m["name"]: m for m in summary["probes"][probe]["metrics"]}
    assert set(got) == metrics
    assert all(m["status"] == "ok" and m["value"] is not None and math.isfinite(m["value"]) for m in got.values())
    rows = (run / "samples" / f"{probe}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == int(LIMIT)
    for name in ("report.html", "report.md", "README.md"):
        assert (run / name).is_file(), name
    assert probe in (run / "report.md").read_text(encoding="utf-8")


def test_classifier_rows_record_the_label_of_interest(cli, tmp_path: Path) -> None:
    proc = cli("run", "--model", "tiny-opt-classifier", "--probes", "counterfactual_classifier", "--limit", "2",
               "--label", "negative", "--no-progress", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = _run_dir(proc.stdout)
    row = json.loads((run / "samples" / "counterfactual_classifier.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert row["label"] == "negative" and row["labels"] == ["negative", "positive"]
    assert json.loads((run / "manifest.json").read_text(encoding="utf-8"))["spec"]["label"] == "negative"
    again = cli("run", "--model", "tiny-opt-classifier", "--probes", "counterfactual_classifier", "--limit", "2",
                "--label", "negative", "--no-progress", "--out", str(tmp_path))
    assert again.returncode == 0 and "8 from cache, 0 computed" in again.stdout, again.stdout  # resumes from cache


def test_a_label_the_head_lacks_is_one_error_line(cli, tmp_path: Path) -> None:
    line = one_error_line(cli("run", "--model", "tiny-opt-classifier", "--probes", "counterfactual_classifier",
                              "--limit", "1", "--label", "neutral", "--no-progress", "--out", str(tmp_path)))
    assert "--label 'neutral': the model's labels are negative, positive" in line, line


@pytest.mark.parametrize(("args", "message"), [
    (("--model", "tiny-opt-classifier", "--probes", "crows_pairs"),
     "--probes crows_pairs: needs a causal language model; the model is a sequence classifier"),
    (("--model", "tiny-opt", "--probes", "qa_bias"),
     "--probes qa_bias: needs an extractive question-answering model; the model is a causal language model"),
    (("--model", "tiny-opt-qa", "--probes", "qa_bias", "--label", "positive"),
     "--label positive: only a sequence classifier has labels"),
])
def test_a_probe_of_another_family_is_one_error_line(cli, tmp_path: Path, args: tuple[str, ...],
                                                      message: str) -> None:
    line = one_error_line(cli("run", *args, "--no-progress", "--out", str(tmp_path)))
    assert message in line, line
