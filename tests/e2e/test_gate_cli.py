"""`opt-audit gate` through the CLI on the shared quick-suite run: it passes against itself, writes its
outputs, and every kind of bad input is one clear line and exit code 2."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path


def test_quick_run_against_itself_passes_with_every_output(quick_run, cli, cli_env, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    cli_env["GITHUB_STEP_SUMMARY"] = str(summary)
    proc = cli("gate", "--baseline", str(quick_run.path), "--candidate", str(quick_run.path),
               "--junit", str(tmp_path / "gate.xml"), "--markdown", str(tmp_path / "gate.md"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "gate: PASS (exit 0)" in out
    # every default rule ran (the quick suite has every probe) and its rows reproduced summary.json
    for metric in ("real_toxicity_prompts.toxicity_probability", "toxigen.pct_toxic", "bold.toxicity_rate",
                   "crows_pairs.pct_stereotype (delta of |value - 50|)",
                   "stereoset.overall_ss (delta of |value - 50|)",
                   "bbq.bias_score_ambig (delta of |value - 0|)", "repetition.loop_rate",
                   "repetition.phrase_loop_rate", "repetition.phrase_loop_rate_nucleus"):
        line = next(x for x in out.splitlines() if x.startswith(metric + " "))
        assert line.rstrip().endswith("pass"), line
    cases = ET.parse(tmp_path / "gate.xml").getroot().findall("testsuite/testcase")
    assert len(cases) == 10 and all(c.find("failure") is None and c.find("error") is None for c in cases)
    md = (tmp_path / "gate.md").read_text(encoding="utf-8")
    assert md.startswith("## ✅ opt-audit gate: PASS") and summary.read_text(encoding="utf-8") == md


def test_candidate_spec_is_the_baseline_runspec(quick_run) -> None:
    from audit.gate import candidate_spec
    from audit.store import load_run

    # the same model gives the same RunSpec hash, hence the same run directory name
    run = load_run(quick_run.path)
    assert candidate_spec(run, "tiny-opt").run_name() == quick_run.path.name
    other = candidate_spec(run, "/models/new")
    assert other.model.model == "/models/new" and other.probes == tuple(run.manifest["spec"]["probes"])
    assert (other.suite, other.limit, other.seed) == ("quick", 4, 0)


def test_bad_inputs_exit_2_with_one_line(quick_run, cli, cli_env, tmp_path: Path) -> None:
    cli_env.pop("GITHUB_STEP_SUMMARY", None)  # never write to a real CI job's summary from a test
    run = str(quick_run.path)

    def error(*args: str) -> str:
        proc = cli("gate", *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("opt-audit: error: "), proc.stderr
        return lines[0]

    assert "--candidate: " in error("--baseline", run, "--candidate", str(tmp_path / "missing"))
    assert "no such run directory" in error("--baseline", str(tmp_path / "missing"), "--candidate", run)
    assert "exactly one of --candidate" in error("--baseline", run)
    policy = tmp_path / "gate.yaml"
    policy.write_text("crows_pairs.pct_stereotype: {max_increase: lots}\n", encoding="utf-8")
    assert "rule 'crows_pairs.pct_stereotype'" in error("--baseline", run, "--candidate", run, "--policy", str(policy))
    policy.write_text("crows_pairs.pct_stereotype_typo: {max_increase: 3}\n", encoding="utf-8")
    line = error("--baseline", run, "--candidate", run, "--policy", str(policy))
    assert "unknown metric 'pct_stereotype_typo'" in line
    # the same bad rule stops --candidate-model before any model runs
    line = error("--baseline", run, "--candidate-model", "tiny-opt", "--policy", str(policy),
                 "--out", str(tmp_path / "runs"))
    assert "unknown metric" in line and not (tmp_path / "runs").exists()


def test_runs_from_different_suites_are_undecided(quick_run, cli, cli_env, tmp_path: Path) -> None:
    cli_env.pop("GITHUB_STEP_SUMMARY", None)
    other = tmp_path / "other"
    shutil.copytree(quick_run.path, other, ignore=shutil.ignore_patterns("cache.sqlite*"))
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    manifest["spec"]["suite"] = "standard"
    (other / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    proc = cli("gate", "--baseline", str(quick_run.path), "--candidate", str(other))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "runs from different suites (baseline quick, candidate standard)" in proc.stdout
    assert "gate: UNDECIDED: the gate could not decide (exit 2)" in proc.stdout
