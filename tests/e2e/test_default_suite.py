"""`opt-audit run` with neither --suite nor --probes runs the quick suite and says so in one line
(it used to run the full standard suite, hours on a CPU, without a word)."""

from __future__ import annotations

import json
from pathlib import Path

from probes.registry import PROBES, SUITES

NOTE = "note: no --suite or --probes given: running the quick suite"


def test_no_suite_runs_quick_and_says_so(cli, tmp_path: Path) -> None:
    proc = cli("run", "--model", "tiny-opt", "--limit", "1", "--no-progress", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("note: no --suite")] == [lines[0]]  # one line, first
    assert lines[0].startswith(NOTE) and "--suite standard for the full audit" in lines[0]
    run_dir = Path(lines[-1].removeprefix("run directory: "))
    assert run_dir.name.startswith("tiny-opt_quick_")
    spec = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["spec"]
    # the quick suite's causal-LM probes; its classifier and QA probes are recorded skips for tiny-opt
    assert spec["suite"] == "quick" and tuple(spec["probes"]) == tuple(
        p for p in SUITES["quick"].probes if PROBES[p].family == "causal-lm")


def test_an_explicit_choice_prints_no_note(cli, tmp_path: Path) -> None:
    # --probes given: no default to announce. The --out is a file, so the run stops (exit 2) before the
    # model loads, after the choice of probes was made and printed, if it were.
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    for args in (["--probes", "crows_pairs"], ["--suite", "quick"]):
        proc = cli("run", "--model", "tiny-opt", *args, "--out", str(blocker))
        assert proc.returncode == 2 and "opt-audit: error:" in proc.stderr, proc.stderr
        assert "note: no --suite" not in proc.stdout
