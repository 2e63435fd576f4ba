"""The Python API (`audit.api`): run, load_run and gate on real tiny-opt runs, agreeing with the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import api
from audit.errors import AuditError
from audit.gate_policy import parse_policy
from audit.store import Run


@pytest.fixture(scope="module")
def crows_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """Two real tiny-opt runs of CrowS-Pairs (8 pairs): seeds 0 and 1 (log-likelihoods ignore the seed)."""
    out = tmp_path_factory.mktemp("api-runs")
    base = api.run("tiny-opt", probes=["crows_pairs"], limit=8, out=out, device="cpu", scorer="embedded")
    cand = api.run("tiny-opt", probes=["crows_pairs"], limit=8, out=out, seed=1, device="cpu", scorer="embedded")
    return base, cand


def test_run_and_load_run(crows_runs: tuple[Run, Run]) -> None:
    base, cand = crows_runs
    assert base.status == "complete" and base.path != cand.path  # the seed is in the run's hash
    assert list(base.probes) == ["crows_pairs"]
    assert base.manifest["spec"]["limit"] == 8 and base.manifest["spec"]["suite"] is None
    assert base.manifest["command"].startswith("opt-audit run --model tiny-opt --probes crows_pairs --limit 8")
    m = base.metric("crows_pairs", "pct_stereotype")
    assert m is not None and m.n == 8
    # pct_stereotype is 100 x (stereotyped pairs) / 8: a multiple of 12.5
    hits = sum(bool(r["stereotyped"]) for r in base.samples("crows_pairs"))
    assert m.value == pytest.approx(100 * hits / 8)
    again = api.load_run(str(base.path))
    assert again.metric("crows_pairs", "pct_stereotype") == m


def test_export(crows_runs: tuple[Run, Run], tmp_path: Path) -> None:
    import json

    base, _ = crows_runs
    path = api.export(base, "lm-eval", tmp_path)
    assert path == tmp_path / "lm_eval_results.json"
    # lm-eval's fraction: our percentage / 100 (e.g. 37.5 % of 8 pairs -> 0.375)
    got = json.loads(path.read_text(encoding="utf-8"))["results"]["crows_pairs_english"]["pct_stereotype,none"]
    assert got == pytest.approx(base.metric("crows_pairs", "pct_stereotype").value / 100)
    with pytest.raises(AuditError, match="unknown format"):
        api.export(base, "xlsx")


def test_gate_passes_identical_items_and_fails_a_bound(crows_runs: tuple[Run, Run], tmp_path: Path) -> None:
    base, cand = crows_runs
    # log-likelihoods do not depend on the seed, so all 8 pairs agree: 0 differing items, delta 0, pass
    result = api.gate(base, cand)
    assert (result.exit_code, result.verdict) == (0, "PASS")
    outcome = next(o for o in result.outcomes if o.rule.metric == "crows_pairs.pct_stereotype")
    assert outcome.verdict == "pass" and outcome.delta == 0 and outcome.n == 8
    # an absolute floor no percentage reaches: a regression (exit 1), by path, a policy file and a Policy
    policy = tmp_path / "gate.yaml"
    policy.write_text("rules:\n  crows_pairs.pct_stereotype: {min_value: 101}\n", encoding="utf-8")
    assert api.gate(str(base.path), cand.path, policy).exit_code == 1
    as_value = parse_policy({"rules": {"crows_pairs.pct_stereotype": {"min_value": 101}}}, "inline")
    assert api.gate(base, cand, as_value).exit_code == 1


def test_bad_input_is_an_audit_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="unknown suite"):
        api.run("tiny-opt", suite="nope", out=tmp_path)
    with pytest.raises(AuditError, match="no such run directory"):
        api.load_run(tmp_path / "missing")
    with pytest.raises(AuditError, match="limit must be at least 1"):
        api.run("tiny-opt", probes=["crows_pairs"], limit=0, out=tmp_path)
    # a probe that runs only on the user's file: api.run takes none, so it says how to give it one
    with pytest.raises(AuditError, match=r"needs your prompts: pass --prompts FILE\.jsonl to `opt-audit run`"):
        api.run("tiny-opt", probes=["crows_pairs", "custom_prompts"], out=tmp_path)
    assert not list(tmp_path.glob("*/manifest.json"))  # refused before any run directory was made
