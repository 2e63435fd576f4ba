"""Shared fixtures: one tiny-opt build per test session, in a private cache directory.

OPT_AUDIT_CACHE is set before anything builds the model, so tests never touch the user's cache
and CLI subprocesses started by tests find the same build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from audit.threads import prefer_sleeping_waits

REPO = Path(__file__).resolve().parents[1]
# tests run models in this process: their torch waits by sleeping, as `opt-audit`'s does (audit/threads.py)
prefer_sleeping_waits()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("opt-audit-cache")
    os.environ["OPT_AUDIT_CACHE"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return cache


@pytest.fixture(scope="session")
def tiny_dir(_private_cache: Path) -> Path:
    """The built tiny-opt directory (model + tokenizer)."""
    from audit.tiny import tiny_model_dir

    return tiny_model_dir()


@pytest.fixture(scope="session")
def backend(tiny_dir: Path):
    """The real HF backend over tiny-opt on CPU, fp32, SDPA."""
    from audit.backends.hf import ModelSpec, load_backend

    return load_backend(ModelSpec("tiny-opt", device="cpu"))


@pytest.fixture()
def cli_env(_private_cache: Path) -> dict[str, str]:
    """Environment for `python -m audit.cli` subprocesses (same private cache, offline)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture()
def cli(cli_env: dict[str, str]):
    """Run the CLI in a subprocess: cli("run", "--model", ...) -> CompletedProcess."""
    import subprocess

    def _run(*args: str, timeout: float = 900, cwd: Path | None = None):
        return subprocess.run([sys.executable, "-m", "audit.cli", *args], env=cli_env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    return _run


QUICK_RUN_LIMIT = 4  # items per probe in the shared quick-suite run


@pytest.fixture(scope="session")
def quick_run(_private_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> "QuickRun":
    """One real `opt-audit run --model tiny-opt --suite quick --limit 4` through the CLI, shared by the
    suite, report and model-card tests (every probe end to end; made once per session)."""
    import subprocess

    out = tmp_path_factory.mktemp("quick-run")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "audit.cli", "run", "--model", "tiny-opt", "--suite", "quick",
                           "--limit", str(QUICK_RUN_LIMIT), "--no-progress", "--out", str(out)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("run directory: "), proc.stdout
    return QuickRun(Path(last.removeprefix("run directory: ")), proc.stdout + proc.stderr)


class QuickRun(NamedTuple):
    path: Path  # the run directory
    output: str  # everything the CLI printed (stdout + stderr)
