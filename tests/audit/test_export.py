"""`opt-audit export`: lm-eval's results JSON, and the tidy CSV / Parquet table, from a real tiny-opt run
(the session's quick-suite run, 4 items per probe)."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from audit.export import _stderr, csv_text, export_run, tidy_rows
from audit.store import load_run


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("opt-audit: error: "), proc.stderr
    return lines[0]


def test_stderr_is_lm_evals_mean_stderr() -> None:
    # [1, 0, 0, 1]: mean 0.5, sample variance (4 x 0.25) / 3 = 1/3, stderr sqrt(1/3) / sqrt(4) = 0.288675
    assert _stderr([1.0, 0.0, 0.0, 1.0]) == pytest.approx(math.sqrt(1 / 3) / 2, rel=1e-12)
    # [2, 4]: mean 3, sample variance (1 + 1) / 1 = 2, stderr sqrt(2) / sqrt(2) = 1
    assert _stderr([2.0, 4.0]) == pytest.approx(1.0, rel=1e-12)
    assert _stderr([0.7]) == "N/A"  # lm-eval writes "N/A" where it has no stderr


def test_lm_eval_export_through_the_cli(quick_run, cli, tmp_path: Path) -> None:
    run = load_run(quick_run.path)
    out = tmp_path / "results.json"
    proc = cli("export", str(quick_run.path), "--format", "lm-eval", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} (4 metrics)" in proc.stdout
    assert "note: no lm-eval counterpart, not exported: " in proc.stdout  # the other probes are named
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(doc["results"]) == {"crows_pairs_english", "truthfulqa_mc1", "truthfulqa_mc2"}
    assert doc["versions"] == {"crows_pairs_english": "1.0", "truthfulqa_mc1": "2.0", "truthfulqa_mc2": "2.0"}
    assert doc["model_name"] == "tiny-opt" and doc["config"]["model"] == "hf"
    assert "pretrained=tiny-opt" in doc["config"]["model_args"]
    # 4 items each (--limit 4) out of the full bundled data: 1,508 CrowS pairs, 817 TruthfulQA questions
    assert doc["n-samples"]["crows_pairs_english"] == {"original": 1508, "effective": 4}
    assert doc["n-samples"]["truthfulqa_mc1"] == {"original": 817, "effective": 4}
    assert doc["higher_is_better"]["crows_pairs_english"] == {"pct_stereotype": False, "likelihood_diff": False}

    crows = doc["results"]["crows_pairs_english"]
    # our pct_stereotype is a percentage; lm-eval's is the fraction: 75.0 % -> 0.75
    assert crows["pct_stereotype,none"] == pytest.approx(run.metric("crows_pairs", "pct_stereotype").value / 100)
    # likelihood_diff is in nats in both tools: copied unscaled
    assert crows["likelihood_diff,none"] == pytest.approx(run.metric("crows_pairs", "likelihood_diff").value)
    # for a yes/no item value with share p over n items the sample sd is sqrt(n p (1 - p) / (n - 1)), so
    # lm-eval's stderr is sqrt(p (1 - p) / (n - 1)): with p = 3/4, n = 4 that is sqrt(0.1875 / 3) = 0.25
    hits = [bool(r["stereotyped"]) for r in run.samples("crows_pairs")]
    p = sum(hits) / len(hits)
    assert crows["pct_stereotype_stderr,none"] == pytest.approx(math.sqrt(p * (1 - p) / (len(hits) - 1)), abs=1e-12)
    assert doc["results"]["truthfulqa_mc1"]["acc,none"] == pytest.approx(run.metric("truthfulqa", "mc1").value / 100)
    assert doc["results"]["truthfulqa_mc2"]["acc,none"] == pytest.approx(run.metric("truthfulqa", "mc2").value / 100)
    mc2 = [float(r["mc2"]) for r in run.samples("truthfulqa")]
    assert doc["results"]["truthfulqa_mc2"]["acc,none"] == pytest.approx(sum(mc2) / len(mc2))


def test_the_tasks_come_from_the_probes_descriptions_and_old_runs_fall_back(quick_run, tmp_path: Path) -> None:
    # which lm-eval task scores which probe's items is the probe's own declaration, written to summary.json
    run = load_run(quick_run.path)
    declared = {p: [t.task for t in s.info.lm_eval or ()] for p, s in run.probes.items() if s.info.lm_eval}
    assert declared == {"crows_pairs": ["crows_pairs_english"], "truthfulqa": ["truthfulqa_mc1", "truthfulqa_mc2"]}
    # a copy written before probes declared them (no "lm_eval" in summary.json): the composition roots pass
    # the registered descriptions, and the export is the same file, byte for byte
    run_dir = tmp_path / quick_run.path.name
    shutil.copytree(quick_run.path, run_dir, ignore=shutil.ignore_patterns("cache.sqlite*"))
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for probe in summary["probes"].values():
        del probe["info"]["lm_eval"]
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    from reports.describe import registered_info

    fresh = export_run(quick_run.path, "lm-eval", tmp_path / "fresh.json")
    old = export_run(run_dir, "lm-eval", tmp_path / "old.json", registered=registered_info)
    assert old.written == fresh.written and old.path.read_bytes() == fresh.path.read_bytes()
    # without the registry nothing declares a task: a one-line error, as for a run with no shared probe
    from audit.errors import AuditError

    with pytest.raises(AuditError, match="no metric shared with lm-evaluation-harness"):
        export_run(run_dir, "lm-eval", tmp_path / "none.json")


def test_csv_and_parquet_hold_every_metric_and_group(quick_run, tmp_path: Path) -> None:
    run = load_run(quick_run.path)
    expected = sum(1 + (len(m.groups) if m.ok else 0) for p in run.probes.values() for m in p.metrics)
    done = export_run(quick_run.path, "csv", tmp_path)
    assert done.path == tmp_path / "metrics.csv" and len(done.written) == expected
    with done.path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == expected
    assert list(rows[0]) == ["run_id", "model", "probe", "metric", "group", "value", "unit", "ci_low", "ci_high",
                             "n", "direction", "status"]
    overall = {(r["probe"], r["metric"]): r for r in rows if r["group"] == ""}
    for probe, summary in run.probes.items():
        for m in summary.metrics:
            row = overall[(probe, m.name)]  # nothing dropped, skipped metrics included
            assert row["status"] == m.status and row["run_id"] == run.path.name and row["model"] == "tiny-opt"
            if m.ok:
                assert float(row["value"]) == m.value and int(row["n"]) == m.n  # full precision round trip
            else:
                assert row["value"] == "" and row["status"].startswith("skipped: ")
    crows = overall[("crows_pairs", "pct_stereotype")]
    assert crows["direction"] == "ideal=50" and crows["unit"] == "%"
    assert overall[("truthfulqa", "mc1")]["direction"] == "higher_is_better"

    parquet = export_run(quick_run.path, "parquet", tmp_path / "m.parquet")
    import pandas as pd

    frame = pd.read_parquet(parquet.path)
    assert len(frame) == expected and list(frame.columns) == list(rows[0])
    first = frame[(frame.probe == "crows_pairs") & (frame.metric == "pct_stereotype") & (frame.group == "")]
    assert first["value"].iloc[0] == run.metric("crows_pairs", "pct_stereotype").value


def test_skipped_metric_and_formula_group_in_csv(quick_run, tmp_path: Path) -> None:
    # a copy of the real run whose summary marks one metric skipped and names a group like a formula
    run_dir = tmp_path / quick_run.path.name
    shutil.copytree(quick_run.path, run_dir, ignore=shutil.ignore_patterns("cache.sqlite*"))
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    metrics = summary["probes"]["crows_pairs"]["metrics"]
    metrics[1].update(status="skipped: planted for the test", value=None, ci=None, groups={})
    first_group = next(iter(metrics[0]["groups"]))
    metrics[0]["groups"] = {"=HYPERLINK(\"x\")": metrics[0]["groups"][first_group]}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    rows = list(csv.DictReader(csv_text(tidy_rows(load_run(run_dir))).splitlines()))
    skipped = [r for r in rows if r["metric"] == metrics[1]["name"] and r["probe"] == "crows_pairs"]
    assert [(r["value"], r["status"]) for r in skipped] == [("", "skipped: planted for the test")]
    # a spreadsheet would run "=..." as a formula: the cell starts with an apostrophe instead
    assert any(r["group"] == "'=HYPERLINK(\"x\")" for r in rows)


def test_export_errors_are_one_line(quick_run, cli, cli_env, tmp_path: Path) -> None:
    # a run with no probe lm-eval shares: the copy without crows_pairs and truthfulqa
    run_dir = tmp_path / quick_run.path.name
    shutil.copytree(quick_run.path, run_dir, ignore=shutil.ignore_patterns("cache.sqlite*"))
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for probe in ("crows_pairs", "truthfulqa"):
        del summary["probes"][probe]
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    line = _one_error_line(cli("export", str(run_dir), "--format", "lm-eval"))
    assert "no metric shared with lm-evaluation-harness" in line and "--format csv" in line

    # Parquet without pyarrow: a Python whose path finds a pyarrow that cannot be imported, as on a
    # machine without it; one line naming the package, exit 2, no file
    import subprocess

    blocker = tmp_path / "no-pyarrow" / "pyarrow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n", encoding="utf-8")
    env = dict(cli_env, PYTHONPATH=f"{blocker.parent}:{cli_env['PYTHONPATH']}")
    proc = subprocess.run([sys.executable, "-m", "audit.cli", "export", str(quick_run.path), "--format", "parquet",
                           "--out", str(tmp_path / "x.parquet")], env=env, capture_output=True, text=True, timeout=300)
    line = _one_error_line(proc)
    assert "needs the pyarrow package" in line and "pip install pyarrow" in line
    assert not (tmp_path / "x.parquet").exists()
