"""End-to-end runs of the real CLI on tiny-opt: the run directory, reruns from cache, batch-size
invariance, and a SIGKILL half-way through followed by a resume that recomputes nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.invariance import LOGLIKELIHOOD_ATOL, differences

RUN = ("run", "--model", "tiny-opt", "--probes", "crows_pairs,repetition", "--limit", "12", "--no-progress")


def _run_dir(stdout: str, out: Path) -> Path:
    """The run directory the CLI printed (its last line)."""
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("run directory: "), stdout
    path = Path(last.removeprefix("run directory: "))
    assert path.parent == out and path.is_dir()
    return path


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_small_run_writes_the_run_directory_and_reruns_from_cache(cli, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = cli(*RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("!! RANDOM WEIGHTS: this model is tiny-opt")  # the verdict block comes first
    verdicts = next(i for i, ln in enumerate(lines) if ln.startswith("verdicts "))
    table = next(i for i, ln in enumerate(lines) if ln.startswith("probe "))
    assert 0 < verdicts < table
    assert lines[table].split()[:3] == ["probe", "metric", "value"]
    assert any(ln.split()[:2] == ["crows_pairs", "pct_stereotype"] for ln in proc.stdout.splitlines())
    assert any(ln.split()[:2] == ["repetition", "loop_rate"] for ln in proc.stdout.splitlines())
    # 12 CrowS-Pairs items x 2 sentences + 12 repetition prompts x 2 decodings, no duplicates.
    assert "requests: 48 unique (48 asked), 0 from cache, 48 computed" in proc.stdout
    run = _run_dir(proc.stdout, out)
    assert run.name.startswith("tiny-opt_crows_pairs+repetition_")

    manifest = _json(run / "manifest.json")
    assert manifest["schema_version"] == 1
    assert manifest["status"] == "complete"
    assert manifest["run_id"] == run.name
    assert manifest["attempts"] == 1
    assert manifest["model"]["revision"].startswith("sha256:")
    assert manifest["backend_id"].startswith("hf:tiny-opt@sha256:")
    assert manifest["spec"]["limit"] == 12 and manifest["spec"]["probes"] == ["crows_pairs", "repetition"]
    req = manifest["requests"]
    assert (req["total"], req["unique"], req["cached"], req["computed"], req["oom_splits"]) == (48, 48, 0, 48, 0)

    summary_bytes = (run / "summary.json").read_bytes()
    summary = json.loads(summary_bytes)
    assert summary["schema_version"] == 1
    assert set(summary["probes"]) == {"crows_pairs", "repetition"}
    names = {p: [m["name"] for m in v["metrics"]] for p, v in summary["probes"].items()}
    assert "pct_stereotype" in names["crows_pairs"] and "loop_rate" in names["repetition"]
    assert all(m["n"] == 12 for v in summary["probes"].values() for m in v["metrics"] if m["status"] == "ok")

    crows = _jsonl(run / "samples" / "crows_pairs.jsonl")
    rep = _jsonl(run / "samples" / "repetition.jsonl")
    assert len(crows) == 12 and len(rep) == 24  # repetition: one row per prompt and decoding
    assert len({r["id"] for r in crows}) == 12 and len({(r["id"], r["decoding"]) for r in rep}) == 24
    for r in crows:
        assert r["schema_version"] == 1
        assert r["stereotyped"] == (r["ll_more"] > r["ll_less"])
        assert r["ll_more"] < 0 and r["ll_less"] < 0
    for r in rep:
        assert 0 < r["n_tokens"] <= 64 and len(r["tokens"]) == r["n_tokens"]
    with sqlite3.connect(f"file:{run / 'cache.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 48

    again = cli(*RUN, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "requests: 48 unique (48 asked), 48 from cache, 0 computed in 0 batches" in again.stdout
    assert _run_dir(again.stdout, out) == run
    assert (run / "summary.json").read_bytes() == summary_bytes
    assert (run / "samples" / "crows_pairs.jsonl").read_text(encoding="utf-8").splitlines() == \
        [json.dumps(r, ensure_ascii=False) for r in crows]
    second = _json(run / "manifest.json")
    assert second["attempts"] == 2 and second["status"] == "complete"
    assert (second["requests"]["cached"], second["requests"]["computed"]) == (48, 0)


@pytest.mark.heavy  # two CLI runs; the per-probe contract test checks the same contract: make test-all
def test_batch_size_keeps_the_batch_invariance_contract(cli, tmp_path: Path) -> None:
    """audit/invariance.py: tokens exact, log-likelihoods within LOGLIKELIHOOD_ATOL, summary within
    SUMMARY_RTOL. Exact float equality across batch shapes is not promised: on an AVX-512 CPU
    crows_pairs.likelihood_diff came out 2.8768641 at the default budget and 2.8768628 alone."""
    default = cli(*RUN, "--out", str(tmp_path / "a"))
    one = cli(*RUN, "--batch-size", "1", "--out", str(tmp_path / "b"))
    assert default.returncode == 0 and one.returncode == 0, (default.stderr, one.stderr)
    run_a, run_b = _run_dir(default.stdout, tmp_path / "a"), _run_dir(one.stdout, tmp_path / "b")
    assert run_a.name == run_b.name  # batch size is not part of the run's identity
    assert _json(run_b / "manifest.json")["requests"]["batches"] == 48  # every request alone
    assert _json(run_a / "manifest.json")["requests"]["batches"] < 48
    # Generated tokens are exact: the repetition rows (greedy and sampled text) are identical.
    assert _jsonl(run_b / "samples" / "repetition.jsonl") == _jsonl(run_a / "samples" / "repetition.jsonl")
    # Per-item log-likelihoods within the stated absolute tolerance; no near-tie that could flip an item.
    rows_a, rows_b = _jsonl(run_a / "samples" / "crows_pairs.jsonl"), _jsonl(run_b / "samples" / "crows_pairs.jsonl")
    assert differences(rows_a, rows_b, rtol=0.0, atol=LOGLIKELIHOOD_ATOL) == []
    assert all(abs(r["ll_more"] - r["ll_less"]) > 10 * LOGLIKELIHOOD_ATOL for r in rows_a)
    # The summary within the stated relative tolerance (not byte-equal: see the docstring).
    assert differences(_json(run_b / "summary.json"), _json(run_a / "summary.json")) == []


KILL_RUN = ("run", "--model", "tiny-opt", "--probes", "crows_pairs", "--limit", "150", "--batch-size", "2",
            "--no-progress")


def _cached_rows(out: Path) -> int:
    """Rows committed to the run's cache.sqlite so far (0 before it exists), read-only."""
    found = list(out.glob("*/cache.sqlite"))
    if not found:
        return 0
    try:
        with sqlite3.connect(f"file:{found[0]}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:  # file created, table not yet
        return 0


def test_kill_and_resume_recomputes_nothing_that_was_done(cli, cli_env, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "audit.cli", *KILL_RUN, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and _cached_rows(out) < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed: slow it down"
        assert _cached_rows(out) >= 20
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    k = _cached_rows(out)
    run = next(out.glob("*/cache.sqlite")).parent
    killed = _json(run / "manifest.json")
    assert killed["status"] == "running" and killed["attempts"] == 1  # a kill leaves no chance to finish
    assert not (run / "summary.json").exists()
    unique = 300  # 150 pairs x 2 sentences, all distinct
    assert 20 <= k < unique

    resumed = cli(*KILL_RUN, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert _run_dir(resumed.stdout, out) == run
    m = _json(run / "manifest.json")
    assert m["status"] == "complete" and m["attempts"] == 2
    assert m["requests"]["unique"] == unique
    assert m["requests"]["cached"] == k
    assert m["requests"]["computed"] == unique - k
    assert f"{k} from cache, {unique - k} computed" in resumed.stdout
    assert _cached_rows(out) == unique

    third = cli(*KILL_RUN, "--out", str(out))
    assert third.returncode == 0, third.stderr
    m3 = _json(run / "manifest.json")
    assert (m3["requests"]["cached"], m3["requests"]["computed"], m3["attempts"]) == (unique, 0, 3)

    fresh = cli(*KILL_RUN, "--out", str(tmp_path / "uninterrupted"))
    assert fresh.returncode == 0, fresh.stderr
    clean = _run_dir(fresh.stdout, tmp_path / "uninterrupted")
    assert _json(clean / "manifest.json")["attempts"] == 1
    assert _json(run / "summary.json") == _json(clean / "summary.json")
    assert len(_jsonl(run / "samples" / "crows_pairs.jsonl")) == 150
