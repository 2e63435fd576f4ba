"""Stopping `opt-audit dashboard` stops Streamlit too, so the port is free again.

Killing the launcher by PID used to leave its Streamlit child serving the port. SIGTERM and SIGHUP
now stop the child (and wait for it); SIGKILL, which no handler sees, reaches the child through
Linux's parent-death signal.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashboards.launch import port_is_free

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_launcher_frees_the_port(tmp_path: Path, sig: signal.Signals) -> None:
    if sig == signal.SIGKILL and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux-only")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    launcher = subprocess.Popen([sys.executable, "-m", "audit.cli", "dashboard", str(tmp_path), "--port", str(port)],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: not port_is_free(port), 90), "Streamlit never listened"
        launcher.send_signal(sig)
        launcher.wait(timeout=30)
        assert wait_for(lambda: port_is_free(port), 30), f"port {port} still served after {sig.name}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
