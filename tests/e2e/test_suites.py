"""The suites end to end: `opt-audit suites`, every probe of the quick suite through the real CLI,
engine, tiny-opt and scorers, the opt-paper reference rows, and custom prompts."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest


from probes.registry import PROBES, SUITES

# metrics whose groups are not a partition of the items (documented in their probes)
NOT_A_PARTITION = {
    ("holistic_bias", "descriptor_median_perplexity"),  # a descriptor's sentences; n counts sentences
}


def _run_dir(stdout: str) -> Path:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("run directory: "), stdout
    return Path(last.removeprefix("run directory: "))


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_suites_lists_three_suites_with_counts(cli) -> None:
    start = time.monotonic()
    proc = cli("suites")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # an estimated time per suite, for tiny-opt on this device, from a calibration of a few seconds
    # (55 s in all on 2 cores at load 9.5; the bound leaves room for a busier machine)
    blocks = ("\n" + out).split("\n\n")
    for name in SUITES:
        block = next(b for b in blocks if b.strip().startswith(f"{name}: "))
        line = r"\n    estimated time: \d+ (s|min \d\d s|h \d\d min) for tiny-opt on cpu \(model "
        assert re.search(line, block), block
    assert re.search(r"time estimates: tiny-opt on cpu, from a [\d.]+ s calibration: [\d.]+ ms per log-likelihood "
                     r"or prompt token, [\d.]+ ms per decode step \+ [\d.]+ ms per row", out), out
    assert elapsed < 300, elapsed
    for name in ("quick", "standard", "opt-paper"):
        assert f"\n{name}: " in "\n" + out
    quick = out.split("\nstandard: ")[0]
    for probe in SUITES["quick"].probes:
        assert f"    {probe} " in quick
    # crows_pairs at its quick limit: 300 pairs, 600 log-likelihoods, no generations
    assert any(line.split() == ["crows_pairs", "300", "600", "0"] for line in quick.splitlines())
    # RealToxicityPrompts in the standard suite: 2,392 prompts x 25 samples
    standard = out.split("\nstandard: ")[1].split("\nopt-paper: ")[0]
    assert any(line.split() == ["real_toxicity_prompts", "2392", "0", "59800"] for line in standard.splitlines())
    assert "published reference rows (OPT paper)" in out
    assert "custom_prompts" in out.split("\nopt-paper: ")[1]  # listed as needing --prompts


def test_suites_no_estimate_skips_the_calibration(cli) -> None:
    proc = cli("suites", "--no-estimate")
    assert proc.returncode == 0, proc.stderr
    assert "estimated time" not in proc.stdout and "time estimates" not in proc.stdout
    quick = proc.stdout.split("\nstandard: ")[0]
    assert any(line.split() == ["crows_pairs", "300", "600", "0"] for line in quick.splitlines())


def test_quick_suite_produces_every_probe_with_cis_and_groups(quick_run) -> None:
    run, output = quick_run
    summary = _json(run / "summary.json")
    causal = [p for p in SUITES["quick"].probes if PROBES[p].family == "causal-lm"]
    assert list(summary["probes"]) == causal  # the head probes are recorded skips for tiny-opt:
    skipped = _json(run / "manifest.json")["skipped_probes"]
    assert sorted(skipped) == sorted(set(SUITES["quick"].probes) - set(causal)), skipped
    for probe, body in summary["probes"].items():
        assert body["info"]["citation"] and body["info"]["data_license"]
        assert body["metrics"], probe
        for m in body["metrics"]:
            where = f"{probe}.{m['name']}"
            if m["status"] != "ok":
                assert m["status"].startswith("skipped: ") and m["value"] is None, where
                continue
            assert m["value"] is not None and math.isfinite(m["value"]), where
            assert m["description"] and m["citation"], where
            assert m["n"] > 0, where
            if m["groups"] and (probe, m["name"]) not in NOT_A_PARTITION:
                assert sum(g["n"] for g in m["groups"].values()) == m["n"], where
        assert (run / "samples" / f"{probe}.jsonl").is_file()
    ok_with_ci = [m for b in summary["probes"].values() for m in b["metrics"] if m["status"] == "ok" and m["ci"]]
    assert len(ok_with_ci) >= 40
    assert "!! RANDOM WEIGHTS: this model is tiny-opt" in output  # the verdict block's banner


def test_toxicity_metrics_carry_scorer_name_sha256_and_validity(quick_run) -> None:
    run, output = quick_run
    summary = _json(run / "summary.json")
    tagged = [(p, m) for p, b in summary["probes"].items() for m in b["metrics"] if m.get("scorer")]
    kinds = {m["scorer"]["kind"] for _, m in tagged}
    assert kinds == {"toxicity", "sentiment"}
    assert {p for p, m in tagged if m["scorer"]["kind"] == "toxicity"} == {"real_toxicity_prompts", "toxigen", "bold"}
    for _, m in tagged:
        rec = m["scorer"]
        assert len(rec["sha256"]) == 64 and rec["name"] and rec["version"]
        assert rec["validity"]["summary"]
        if rec["kind"] == "toxicity":  # offline, `auto` falls back to the embedded scorer
            assert rec["name"] == "embedded"
            assert rec["validity"]["summary"].startswith("embedded scorer: HateCheck accuracy")
    manifest = _json(run / "manifest.json")
    assert manifest["scorers"]["toxicity"]["scorer"] == "embedded"
    assert manifest["scorers"]["sentiment"]["scorer"] == "vader"
    assert manifest["spec"]["scorer"]["name"] == "auto"
    assert "using the embedded offline toxicity scorer instead" in output  # the visible warning
    assert "toxicity: embedded scorer: HateCheck accuracy" in output


@pytest.mark.heavy  # a second full CLI run: make test-all
def test_opt_paper_suite_prints_reference_rows(cli, tmp_path: Path) -> None:
    proc = cli("run", "--model", "tiny-opt", "--suite", "opt-paper", "--limit", "3", "--no-progress",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "published (OPT paper)" in proc.stdout
    assert any(line.split()[:1] == ["crows_pairs.pct_stereotype"] and line.split()[2:4] == ["69.500", "67.200"]
               for line in proc.stdout.splitlines())
    summary = _json(_run_dir(proc.stdout) / "summary.json")
    assert set(summary["probes"]) == {"ethos", "crows_pairs", "stereoset", "real_toxicity_prompts"}
    refs = {(r["probe"], r["metric"], r["group"]): (r["opt_175b"], r["davinci"]) for r in summary["references"]}
    assert refs[("ethos", "f1_zero_shot", None)] == (0.667, 0.628)
    assert refs[("stereoset", "overall_icat", None)] == (60.0, 60.8)
    for probe, metric, _ in refs:  # every reference row names a metric the run actually has
        assert metric in {m["name"] for m in summary["probes"][probe]["metrics"]}


@pytest.mark.heavy  # a second full CLI run: make test-all
def test_custom_prompts_run_per_group(cli, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "probes" / "data" / "custom_prompts" / "example.jsonl"
    proc = cli("run", "--model", "tiny-opt", "--prompts", str(example), "--limit", "3", "--no-progress",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run = _run_dir(proc.stdout)
    summary = _json(run / "summary.json")
    assert list(summary["probes"]) == ["custom_prompts"]  # --prompts alone audits just the prompts
    metrics = {m["name"]: m for m in summary["probes"]["custom_prompts"]["metrics"]}
    assert metrics["expected_max_toxicity"]["n"] == 3
    assert sum(g["n"] for g in metrics["expected_max_toxicity"]["groups"].values()) == 3
    assert metrics["expected_max_toxicity"]["scorer"]["kind"] == "toxicity"
    assert _json(run / "manifest.json")["spec"]["data"][0][0] == "custom_prompts"
