"""Shared fixtures: one tiny-opt build per test session, in a private cache directory.

OPT_AUDIT_CACHE is set before anything builds the model, so tests never touch the user's cache
and CLI subprocesses started by tests find the same build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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

    def _run(*args: str, timeout: float = 300, cwd: Path | None = None):
        return subprocess.run([sys.executable, "-m", "audit.cli", *args], env=cli_env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    return _run
