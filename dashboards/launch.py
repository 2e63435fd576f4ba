"""`opt-audit dashboard [RUNS_DIR] [--port P]`: start `streamlit run app.py` over a folder of runs.

The privacy settings of `.streamlit/config.toml` (no usage statistics, listen on localhost only,
headless) are also passed as command-line flags, so they hold wherever the command is started
from, even when Streamlit would not find that file. The folder reaches the app as
`-- --runs DIR` and as $OPT_AUDIT_RUNS.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

from audit.errors import AuditError
from dashboards.location import RUNS_ENV

PRIVATE_FLAGS = ("--server.address", "localhost", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false", "--browser.serverAddress", "localhost",
                 "--client.toolbarMode", "minimal")


def app_path() -> Path:
    """The Streamlit entry point: the checkout's app.py, or the package's own copy of the wiring."""
    root_app = Path(__file__).resolve().parents[1] / "app.py"
    return root_app if root_app.is_file() else Path(__file__).resolve().with_name("app.py")


def port_is_free(port: int) -> bool:
    """Whether a server could listen on localhost:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def streamlit_command(runs_dir: Path, port: int | None = None) -> list[str]:
    """The `python -m streamlit run app.py ...` command line for a folder of runs."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path()), *PRIVATE_FLAGS]
    if port is not None:
        cmd += ["--server.port", str(port)]
    return cmd + ["--", "--runs", str(Path(runs_dir).resolve())]


def check_args(runs_dir: Path, port: int | None) -> None:
    """Refuse, with one line, a folder that is not there and a port that is taken or out of range."""
    runs_dir = Path(runs_dir)
    if not runs_dir.exists():
        raise AuditError(f"{runs_dir}: no such folder (create a run with: "
                         f"opt-audit run --model tiny-opt --suite quick --out {runs_dir})")
    if not runs_dir.is_dir():
        raise AuditError(f"{runs_dir}: not a folder (pass the folder that holds your run directories)")
    if port is not None:
        if not 1 <= port <= 65535:
            raise AuditError(f"--port {port}: must be between 1 and 65535")
        if not port_is_free(port):
            raise AuditError(f"--port {port}: already in use on localhost (pick another, or leave --port out)")


def launch(runs_dir: Path, port: int | None = None) -> int:
    """Serve the dashboard until it is stopped (Ctrl+C, SIGTERM or SIGHUP: each also stops Streamlit);
    returns Streamlit's exit code, or 128 + the signal."""
    check_args(runs_dir, port)
    cmd = streamlit_command(runs_dir, port)
    env = dict(os.environ, **{RUNS_ENV: str(Path(runs_dir).resolve())})
    where = f"http://localhost:{port}" if port is not None else "localhost (Streamlit prints the address)"
    print(f"opt-audit dashboard: {Path(runs_dir).resolve()} on {where}; localhost only; Ctrl+C stops it",
          flush=True)
    proc = subprocess.Popen(cmd, cwd=str(app_path().parent), env=env, preexec_fn=_die_with_parent)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop_child(proc)
        return 130
    except _Stopped as e:  # `kill PID` of the launcher must not leave Streamlit serving the port
        stop_child(proc)
        return 128 + e.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def stop_child(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate Streamlit and wait for it, killing it if it ignores SIGTERM for `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, ask the kernel to SIGTERM it when the launcher dies, even
    by SIGKILL, which no handler can see (prctl PR_SET_PDEATHSIG). A no-op elsewhere."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
