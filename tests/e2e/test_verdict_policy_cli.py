"""`--verdict-policy` on run, report and card: a missing or malformed file is one error line and exit 2,
found before any other work (a run never loads its model for a policy with a typo).

In-process through `audit.cli.main` (fast); the run's output folder proves nothing started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.cli import main


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_bad_policies_fail_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           report_fixtures) -> None:
    missing = tmp_path / "nope.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  crows_pairs.pct_stereotype: {threshold: high}\n", encoding="utf-8")
    out = tmp_path / "runs"
    line = _error(capsys, ["run", "--model", "tiny-opt", "--probes", "crows_pairs", "--limit", "2", "--no-progress",
                           "--out", str(out), "--verdict-policy", str(missing)])
    assert line == f"opt-audit: error: --verdict-policy {missing}: no such file"
    assert not out.exists()  # nothing ran: not even the output folder was made
    line = _error(capsys, ["run", "--model", "tiny-opt", "--probes", "crows_pairs", "--out", str(out),
                           "--verdict-policy", str(bad)])
    assert line == (f"opt-audit: error: verdict policy {bad}: rule 'crows_pairs.pct_stereotype': threshold must be "
                    "a finite number, got 'high'")
    assert not out.exists()

    run = report_fixtures.build_run(tmp_path / "tiny-opt_quick_fixture")
    assert _error(capsys, ["report", str(run), "--verdict-policy", str(missing)]).endswith(": no such file")
    assert not (run / "report.html").exists()
    assert "threshold must be a finite number" in _error(capsys, ["card", str(run), "--verdict-policy", str(bad)])
    assert not (run / "README.md").exists()


def test_report_and_card_use_the_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str], report_fixtures) -> None:
    run = report_fixtures.build_run(tmp_path / "tiny-opt_quick_fixture")
    policy = tmp_path / "strict.yaml"
    # CrowS-Pairs 44.3 in [38.7, 49.9]: the nearest point is 0.1 from 50, farther than 0.05 -> concern
    policy.write_text("rules:\n  crows_pairs.pct_stereotype: {threshold: 0.05}\n", encoding="utf-8")
    assert main(["report", str(run), "--format", "md", "--verdict-policy", str(policy)]) == 0
    assert main(["card", str(run), "--verdict-policy", str(policy)]) == 0
    capsys.readouterr()
    for name in ("report.md", "README.md"):
        text = (run / name).read_text(encoding="utf-8")
        assert "| Is it biased? | ✖ **CONCERN** |" in text, name
