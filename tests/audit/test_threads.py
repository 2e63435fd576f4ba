"""OpenMP's wait policy is set for torch before it loads, and never over the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys

from audit.threads import POLICY, prefer_sleeping_waits


def test_sets_passive_before_torch_loads() -> None:
    env: dict[str, str] = {}
    assert prefer_sleeping_waits(env, frozenset({"json"})) is True
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"} and POLICY == "PASSIVE"


def test_the_users_choice_stands() -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert prefer_sleeping_waits(env, frozenset()) is False
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_too_late_once_torch_is_loaded() -> None:
    # libgomp reads the policy when torch loads it: setting it afterwards would claim an effect it has not
    env: dict[str, str] = {}
    assert prefer_sleeping_waits(env, frozenset({"torch"})) is False
    assert env == {}


def test_the_cli_sets_it_before_torch_is_imported() -> None:
    # a real `opt-audit suites` (it imports torch to estimate times) in a clean environment: the policy
    # must be in os.environ by the time torch is in sys.modules
    code = ("import os, sys\n"
            "from audit.cli import main\n"
            "assert 'torch' not in sys.modules\n"
            "rc = main(['probes'])\n"
            "print('policy', os.environ.get('OMP_WAIT_POLICY'), rc)\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "policy PASSIVE 0"
