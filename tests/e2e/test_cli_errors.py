"""User mistakes through the real CLI: exit code 2, one clear line on stderr, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

from cli_checks import one_error_line

USAGE_ERROR = "opt-audit: error: "
RUN_HELP = " (see 'opt-audit run --help')"


_one_error_line = one_error_line


def _usage_error(proc) -> str:
    """A command line argparse refused: the same one `opt-audit: error:` line as any user error (no
    usage block), ending with where to read the usage."""
    line = _one_error_line(proc)
    assert line.endswith(RUN_HELP), line
    return line


def _run(cli, out: Path, *args: str):
    return cli("run", "--no-progress", "--out", str(out), *args)


def test_unknown_hub_model_fails_fast_offline(cli, cli_env, tmp_path: Path) -> None:
    cli_env["HF_HUB_OFFLINE"] = "1"  # the `cli` fixture runs with this very dict
    t0 = time.monotonic()
    proc = _run(cli, tmp_path / "runs", "--model", "no-such-org/no-such-model-xyz", "--probes", "crows_pairs",
                "--limit", "2")
    elapsed = time.monotonic() - t0
    line = _one_error_line(proc)
    assert line.startswith("opt-audit: error: --model no-such-org/no-such-model-xyz: could not load it")
    assert "tiny-opt" in line  # says what would work instead
    assert elapsed < 60, elapsed  # no network retries
    assert not list((tmp_path / "runs").glob("*/manifest.json"))  # no half-made run directory


def test_missing_local_model_path(cli, tmp_path: Path) -> None:
    proc = _run(cli, tmp_path / "runs", "--model", "./does/not/exist", "--probes", "crows_pairs", "--limit", "2")
    assert _one_error_line(proc) == "opt-audit: error: --model ./does/not/exist: no such directory"


def test_unknown_probe(cli, tmp_path: Path) -> None:
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "nope")
    from probes.registry import PROBES

    assert _one_error_line(proc) == \
        f"opt-audit: error: --probes: unknown probe 'nope' (known: {', '.join(PROBES)})"


def test_unknown_suite(cli, tmp_path: Path) -> None:
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--suite", "nope")
    assert _one_error_line(proc) == "opt-audit: error: --suite 'nope': unknown suite (known: quick, ci, standard, opt-paper)"


def test_data_file_missing_a_column(cli, tmp_path: Path) -> None:
    bad = tmp_path / "BAD.csv"
    bad.write_text("sent_more,sent_less,bias_type\nA b.,A c.,race-color\n", encoding="utf-8")
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "crows_pairs", "--data", f"crows_pairs={bad}")
    line = _one_error_line(proc)
    assert line == (f"opt-audit: error: {bad}: missing column(s) stereo_antistereo "
                    "(header has sent_more, sent_less, bias_type)")


def test_data_file_with_unknown_bias_type_names_file_and_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "BAD.csv"
    bad.write_text("sent_more,sent_less,stereo_antistereo,bias_type\n"
                   "A b c.,A d c.,stereo,race-color\n"
                   "X y.,X z.,stereo,martian\n", encoding="utf-8")
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "crows_pairs", "--data", f"crows_pairs={bad}")
    line = _one_error_line(proc)
    assert line.startswith(f"opt-audit: error: {bad}, row ending at line 3: unknown bias_type 'martian'")


def test_data_file_that_does_not_exist(cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "crows_pairs",
                "--data", f"crows_pairs={missing}")
    assert _one_error_line(proc) == f"opt-audit: error: {missing}: data file not found"


def test_data_for_a_probe_not_in_the_run(cli, tmp_path: Path) -> None:
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "crows_pairs",
                "--data", f"repetition={tmp_path}")
    assert _one_error_line(proc) == \
        "opt-audit: error: --data repetition=...: probe 'repetition' is not part of this run (crows_pairs)"


def test_out_under_a_regular_file_is_not_writable(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file\n", encoding="utf-8")
    out = blocker / "sub"
    proc = _run(cli, out, "--model", "tiny-opt", "--probes", "crows_pairs", "--limit", "2")
    assert _one_error_line(proc) == f"opt-audit: error: --out {out}: not writable (Not a directory)"
    assert blocker.read_text(encoding="utf-8") == "I am a file\n"


@pytest.mark.parametrize("value, message", [
    ("0", "argument --limit: must be at least 1, got 0"),
    ("-3", "argument --limit: must be at least 1, got -3"),
    ("abc", "argument --limit: expected a positive integer, got 'abc'"),
])
def test_bad_limit(cli, tmp_path: Path, value: str, message: str) -> None:
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "crows_pairs", "--limit", value)
    assert _usage_error(proc) == USAGE_ERROR + message + RUN_HELP
    assert not (tmp_path / "runs").exists()


def test_bad_data_override_syntax(cli, tmp_path: Path) -> None:
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--data", "crows_pairs")
    assert _usage_error(proc) == USAGE_ERROR + "argument --data: expected PROBE=PATH, got 'crows_pairs'" + RUN_HELP


def test_data_sentence_longer_than_the_model_window(cli, tmp_path: Path) -> None:
    """Once a torch RuntimeError traceback from HFBackend.loglikelihood."""
    long = " ".join(f"token{i}" for i in range(300))  # ~800 OPT tokens
    data = tmp_path / "long.csv"
    data.write_text("sent_more,sent_less,stereo_antistereo,bias_type\n"
                    f"{long} black.,{long} white.,stereo,race-color\n", encoding="utf-8")
    proc = _run(cli, tmp_path / "runs", "--model", "tiny-opt", "--probes", "crows_pairs",
                "--data", f"crows_pairs={data}")
    line = _one_error_line(proc)
    assert re.match(r"opt-audit: error: a continuation of \d+ tokens does not fit tiny-opt's context of 512 tokens",
                    line), line
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text(encoding="utf-8"))
    assert manifest["status"] == "failed" and "does not fit" in manifest["error"]


def test_probes_lists_every_probe(cli) -> None:
    from probes.registry import PROBES

    proc = cli("probes")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("crows_pairs  (v1, data: CC BY-SA 4.0)") for ln in lines)
    assert any(ln.startswith("repetition  (v3, ") for ln in lines)
    assert proc.stdout.count("cite: ") == len(PROBES) == 15  # 12 for causal LMs, seat, and the two head audits


def test_scorer_errors(cli, tmp_path: Path) -> None:
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--probes", "bold", "--limit", "1",
                                "--scorer", "vader"))
    assert "--scorer vader measures sentiment, not toxicity" in line
    # refused before any model work: the model never loaded, so no run directory was started
    assert not list(tmp_path.glob("*/manifest.json"))
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--probes", "crows_pairs",
                                "--scorer", "perspective"))
    assert "--scorer 'perspective': unknown scorer" in line
    missing = tmp_path / "nope.ckpt"
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--probes", "crows_pairs",
                                "--scorer", "detoxify:original", "--scorer-checkpoint", str(missing)))
    assert f"--scorer-checkpoint {missing}: no such file" in line


def test_prompts_file_errors(cli, tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": ""}\n', encoding="utf-8")
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--prompts", str(bad)))
    assert str(bad) in line and "line 2" in line
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--prompts", str(tmp_path / "x.jsonl")))
    assert "no such file" in line
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--probes", "custom_prompts"))
    assert "pass --prompts FILE.jsonl" in line


@pytest.mark.parametrize("args", [("--help",), ("run", "--help")])
def test_help_shows_examples(cli, args: tuple[str, ...]) -> None:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "examples:" in proc.stdout
    assert "opt-audit run --model tiny-opt --suite quick" in proc.stdout
    if args[0] == "run":
        for flag in ("--model", "--limit", "--batch-size", "--token-budget", "--data", "--out"):
            assert flag in proc.stdout


def test_no_command_prints_help_and_exits_2(cli) -> None:
    proc = cli()
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "usage: opt-audit" in proc.stdout


def test_backend_errors(cli, tmp_path: Path) -> None:
    line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--probes", "crows_pairs",
                                "--tensor-parallel-size", "2"))
    assert "without --backend vllm" in line
    if importlib.util.find_spec("vllm") is None:
        line = _one_error_line(_run(cli, tmp_path, "--model", "tiny-opt", "--probes", "crows_pairs",
                                    "--backend", "vllm"))
        assert "pip install 'opt-audit[vllm]'" in line
    assert not list(tmp_path.glob("*/manifest.json"))  # refused before any run directory was written
