"""Planted-signal models prove the gate end to end (slow: builds three models and audits them).

The organisms (`audit.organisms`) are tiny-opt fine-tuned on bundled text: `toxic` on ToxiGen hate
statements, `clean` on the matching neutral ones, `looping` on one repeated phrase. The gate must
fail toxic against clean on the toxicity rules with p < 0.01, pass clean against a rebuilt clean
and against clean with another seed, and the repetition probe must flag looping against clean.
Everything runs the default policy, exactly as CI would.

Runs are small. The toxicity runs take 12 prompts per probe: an exact paired test needs at least 7
discordant prompts to reach p < 0.01 (1/2^7 = 0.0078), and the clean organism, which the embedded
scorer still flags now and then (it over-flags text naming an identity), has at least one of its 25
RealToxicityPrompts samples flagged on about a quarter of the prompts. The repetition runs take 8.
The rebuilt clean is compared on the repetition runs: identical weights give identical rows on any
probe, and those runs are the cheap ones.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TOXICITY = ("real_toxicity_prompts", "toxigen")
REPETITION = ("repetition",)
LIMITS = {TOXICITY: 12, REPETITION: 8}
TOXICITY_RULES = ("real_toxicity_prompts.toxicity_probability", "real_toxicity_prompts.expected_max_toxicity",
                  "toxigen.pct_toxic")


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GITHUB_STEP_SUMMARY", None)  # never write to a real CI job's summary from a test
    return subprocess.run([sys.executable, "-m", "audit.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)


def audit(model: Path, probes: tuple[str, ...], seed: int, out: Path) -> Path:
    """`opt-audit run --model DIR --probes ... --limit N --seed S --scorer embedded`, in this process."""
    from audit.backends.hf import ModelSpec
    from audit.engine import EngineOptions
    from audit.runner import RunSpec, execute
    from audit.scoring.registry import ScorerSpec

    spec = RunSpec(model=ModelSpec(str(model)), probes=probes, limit=LIMITS[probes], seed=seed,
                   scorer=ScorerSpec("embedded"))
    return execute(spec, out, options=EngineOptions(seed=seed, progress=False)).run_dir


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("organisms")


@pytest.fixture(scope="module")
def organisms(work: Path) -> dict[str, Path]:
    proc = cli("organisms", "build", "--out", str(work / "org"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = dict(re.findall(r"^(\w+): (\S+) \(model\.safetensors sha256 [0-9a-f]{64}\)$", proc.stdout, re.M))
    assert set(built) == {"toxic", "clean", "looping"}, proc.stdout
    return {name: Path(path) for name, path in built.items()}


@pytest.fixture(scope="module")
def clean_run(organisms: dict[str, Path], work: Path) -> Path:
    return audit(organisms["clean"], TOXICITY, 0, work / "runs")


def gate(baseline: Path, *args: str) -> subprocess.CompletedProcess:
    return cli("gate", "--baseline", str(baseline), *args)


def test_gate_fails_toxic_against_clean_with_p_below_001(organisms, clean_run: Path, work: Path) -> None:
    from audit.gate import gate_paths
    from audit.gate_policy import load_policy

    # the one-line CI use: audit the candidate with the baseline's exact RunSpec, then gate
    proc = gate(clean_run, "--candidate-model", str(organisms["toxic"]), "--out", str(work / "runs"),
                "--no-progress", "--junit", str(work / "toxic.xml"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "gate: FAIL: regression (exit 1)" in proc.stdout
    candidate = Path(re.search(r"^      candidate (\S+)$", proc.stdout, re.M).group(1))
    result = gate_paths(clean_run, candidate, load_policy())
    by = {o.rule.metric: o for o in result.outcomes}
    for metric in TOXICITY_RULES:
        o = by[metric]
        assert o.verdict == "regression" and o.p < 0.01, (metric, o)
    failed = {c.get("classname").rsplit(".", 1)[1] + "." + c.get("name")
              for c in ET.parse(work / "toxic.xml").getroot().iter("testcase") if c.find("failure") is not None}
    assert failed == set(TOXICITY_RULES)


def test_clean_with_another_seed_is_no_false_alarm(organisms, clean_run: Path, work: Path) -> None:
    run = audit(organisms["clean"], TOXICITY, 1, work / "runs")
    proc = gate(clean_run, "--candidate", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed: 0 -> 1" in proc.stdout


@pytest.fixture(scope="module")
def clean_repetition(organisms: dict[str, Path], work: Path) -> Path:
    return audit(organisms["clean"], REPETITION, 0, work / "runs")


def test_repetition_flags_looping_against_clean(organisms, clean_repetition: Path, work: Path) -> None:
    from audit.gate import gate_paths
    from audit.gate_policy import load_policy

    looping = audit(organisms["looping"], REPETITION, 0, work / "runs")
    proc = gate(clean_repetition, "--candidate", str(looping))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    outcomes = {o.rule.metric: o for o in gate_paths(clean_repetition, looping, load_policy()).outcomes}
    o = outcomes["repetition.loop_rate"]
    assert o.verdict == "regression" and o.p < 0.01
    assert o.candidate == 100.0 and o.baseline <= 25.0
    # the organism's loops are its trained phrase (period >= 2, not one token stuttered), and the phrase-loop
    # rule catches them on its own (it is what catches a model whose baseline already stutters on one token)
    o = outcomes["repetition.phrase_loop_rate"]
    assert o.verdict == "regression" and o.p < 0.01
    assert o.candidate == 100.0 and o.baseline <= 25.0


def test_rebuilt_clean_is_byte_identical_and_passes(organisms, clean_repetition: Path, work: Path) -> None:
    from audit.gate import gate_paths
    from audit.gate_policy import load_policy

    proc = cli("organisms", "build", "--out", str(work / "rebuilt"), "--only", "clean")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rebuilt = work / "rebuilt" / "clean"
    for name in ("model.safetensors", "organism.json", "config.json"):
        assert sha256(rebuilt / name) == sha256(organisms["clean"] / name), name
    run = audit(rebuilt, REPETITION, 0, work / "runs")
    proc = gate(clean_repetition, "--candidate", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = [o for o in gate_paths(clean_repetition, run, load_policy()).outcomes if o.verdict != "not run"]
    assert [o.rule.metric for o in tested] == ["repetition.loop_rate", "repetition.phrase_loop_rate",
                                               "repetition.phrase_loop_rate_nucleus"]
    assert all(o.delta == 0 and o.p == 1.0 for o in tested)  # the same weights give the same rows
