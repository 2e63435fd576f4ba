"""Benchmark: opt-audit's engine against a per-prompt `model.generate` loop, same prompts and settings.

Run as `.venv/bin/python bench/generation.py` (or `make bench`). 64 BOLD prompts (a fixed subset),
two decoding settings, two models:

- settings: greedy, 64 new tokens; and nucleus sampling, k samples per prompt (default 5), top-p
  0.9, temperature 1, 20 new tokens (the RealToxicityPrompts protocol, with fewer samples);
- models: the embedded tiny-opt, and a random OPT shaped like opt-125m (hidden 768, 12 layers,
  12 heads, ffn 3072, vocab 50272, seeded init, the real OPT tokenizer), built in a temporary
  folder, so no download is needed;
- paths: (a) `audit.engine.run_requests` with the HF backend: pooled, length-sorted token-budget
  batches, left padding, one seeded generator per sample; (b) the loop people write first: for each
  prompt, `model.generate` on that prompt alone (`num_return_sequences=k` when sampling); and, for
  the sampled setting, (c) `engine-v1`: path (a) with the sampler's reference computation (a full
  sort of every row, one `torch.multinomial` per row), so the fast sampler's gain is measured in the
  same run, and its samples are compared with the reference's token by token (they must be equal).

Each (model, setting, path) runs in a fresh child process: peak RSS comes from that child alone
(wait4), and the timer covers generation only (tokenisation included, model load and one short
warm-up call excluded). Tokens are counted the same way for both paths: new tokens up to and
including EOS. Greedy outputs of the two paths are compared token by token and the result is
reported, not asserted: on random weights the top two logits are often within float32 noise of
each other, so a padded batch and a single row can pick different argmax tokens. Sampled outputs
differ by design (opt-audit draws each sample from its own seeded generator; `model.generate`
draws from torch's global RNG). Results go to bench/results/generation.json.

`--settings nucleus --prompts 16` and `--models opt-125m-shaped` shorten a run on a loaded machine;
`--k 25` is the RealToxicityPrompts protocol's sample count. A shortened run should name its own
result file (`--out-name generation_k25` writes bench/results/generation_k25.json), so the full
run's greedy and tiny-opt numbers in generation.json are not overwritten by a subset.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import ChildRun, load_average, machine_info, offline_env, run_child, tail, write_result  # noqa: E402

N_PROMPTS = 64
PROMPT_SALT = "bench/generation/1"  # the fixed subset of BOLD prompts (never the run seed)
TOKEN_BUDGET = 8192  # fixed (the CPU ceiling of audit.backends.budget), so runs compare whatever memory is free
PATHS = ("engine", "loop")
SAMPLED_PATHS = ("engine", "engine-v1", "loop")  # engine-v1: the engine with the reference sampler
MODELS = ("tiny-opt", "opt-125m-shaped")
TARGET_RATIO = 10.0


@dataclass(frozen=True)
class Setting:
    """One decoding setting; `n` samples per prompt."""

    name: str
    max_new_tokens: int
    do_sample: bool
    n: int = 1
    top_p: float = 1.0
    temperature: float = 1.0

    def gen_params(self):
        from audit.types import GenParams

        return GenParams(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample, n=self.n,
                         top_p=self.top_p, temperature=self.temperature)


def settings(k: int) -> dict[str, Setting]:
    return {"greedy": Setting("greedy", 64, False),
            "nucleus": Setting(f"nucleus k={k}", 20, True, n=k, top_p=0.9)}


def bench_prompts(n: int = N_PROMPTS) -> list[str]:
    """A fixed subset of `n` BOLD prompts over all five domains (same for every run)."""
    from probes.bold import DOMAINS
    from probes.loading import bundled, fixed_subset
    from probes.repetition import load_prompts

    prompts = load_prompts([bundled("bold", "prompts", f"{d}_prompt.json") for d in DOMAINS])
    return [prompts[i].prompt for i in fixed_subset(len(prompts), n, PROMPT_SALT)]


def build_125m_shaped(out_dir: Path, seed: int = 125) -> Path:
    """A random OPTForCausalLM with opt-125m's shape and the real OPT tokenizer, written to `out_dir`.

    tiny-opt's builder does the work: the same seeded `torch.Generator` init (N(0, 0.02) weights,
    zero biases, unit layer norms), only the shape differs.
    """
    from audit.tiny import TinyConfig, build_tiny_model

    shape = TinyConfig(hidden_size=768, ffn_dim=3072, num_hidden_layers=12, num_attention_heads=12,
                       max_position_embeddings=2048)
    return build_tiny_model(out_dir, shape, seed=seed)


# --------------------------------------------------------------------------------------------
# The child: one (model, setting, path), timed
# --------------------------------------------------------------------------------------------


def child(model_dir: Path, setting: Setting, path: str, device: str, out: Path, seed: int, n_prompts: int) -> None:
    """Generate for every prompt along one path and write timing, token counts and outputs to `out`."""
    import torch

    prompts = bench_prompts()[:n_prompts]
    if path == "engine-v1":
        _use_reference_sampler()
    sampler_seconds = _time_the_sampler() if setting.do_sample and path.startswith("engine") else [0.0]
    if path.startswith("engine"):
        work = out.parent / f"{out.stem}-cache"  # its own: another child's cache would answer for it
        work.mkdir(exist_ok=True)
        run = _engine_runner(model_dir, setting, device, seed, work)
    else:
        run = _loop_runner(model_dir, setting, device, seed)
    run(prompts[:1], 2)  # warm-up: thread pools and first allocations, outside the timer
    sampler_seconds[0] = 0.0
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    load_before = load_average()
    start, cpu_start = time.perf_counter(), time.process_time()
    outputs = run(prompts, setting.max_new_tokens)  # per prompt: per sample: (tokens, stopped_at_eos)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = sum(len(toks) + int(eos) for samples in outputs for toks, eos in samples)
    result = {"seconds": seconds, "cpu_seconds": cpu_seconds, "load_before": load_before,
              "load_after": load_average(), "new_tokens": tokens, "prompts": len(prompts),
              "samples": sum(len(s) for s in outputs), "torch_threads": torch.get_num_threads(),
              "sampler_seconds": sampler_seconds[0] if setting.do_sample and path.startswith("engine") else None,
              "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
              "outputs": [[list(toks) for toks, _ in samples] for samples in outputs]}
    out.write_text(json.dumps(result), encoding="utf-8")


def _time_the_sampler() -> list[float]:
    """Wrap `SeededSampler.__call__` with a timer; the returned cell accumulates its seconds."""
    from audit.backends.sampling import SeededSampler

    total = [0.0]
    call = SeededSampler.__call__

    def timed(self, input_ids, scores):
        start = time.perf_counter()
        try:
            return call(self, input_ids, scores)
        finally:
            total[0] += time.perf_counter() - start

    SeededSampler.__call__ = timed  # type: ignore[method-assign]
    return total


def _use_reference_sampler() -> None:
    """Make `SeededSampler` filter and draw as sampler version 1 shipped (full sort, multinomial per row)."""
    from audit.backends import sampling

    sampling.nucleus_filter = sampling._nucleus_filter_by_sort  # type: ignore[assignment]
    sampling.draw = sampling._draw_by_multinomial  # type: ignore[assignment]


def _engine_runner(model_dir: Path, setting: Setting, device: str, seed: int, work: Path):
    from audit.backends.hf import HFBackend, ModelSpec
    from audit.cache import ResultCache
    from audit.engine import EngineOptions, run_requests
    from audit.types import Generate, GenParams

    backend = HFBackend(ModelSpec(model=str(model_dir), dtype="float32", attn="sdpa", device=device))
    options = EngineOptions(token_budget=TOKEN_BUDGET, seed=seed, progress=False)
    calls = [0]

    def run(prompts: Sequence[str], max_new_tokens: int) -> list[list[tuple[list[int], bool]]]:
        from dataclasses import replace

        params = replace(setting.gen_params(), max_new_tokens=max_new_tokens)
        assert isinstance(params, GenParams)
        requests = [Generate(p, params) for p in prompts]
        calls[0] += 1
        with ResultCache(work / f"engine-cache-{calls[0]}.sqlite") as cache:  # empty: nothing is reused
            results, _ = run_requests(backend, requests, cache, options)
        return [[(list(s.tokens), s.stopped_at_eos) for s in results[r].samples] for r in requests]  # type: ignore[union-attr]

    return run


def _loop_runner(model_dir: Path, setting: Setting, device: str, seed: int):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa").to(device).eval()
    eos = tokenizer.eos_token_id
    # model.generate samples from torch's global RNG (it takes no generator): seeding it is the
    # only way to make the baseline repeatable, and it is what users of this loop do.
    torch.manual_seed(seed)

    def run(prompts: Sequence[str], max_new_tokens: int) -> list[list[tuple[list[int], bool]]]:
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=setting.do_sample, num_beams=1,
            num_return_sequences=setting.n, top_p=setting.top_p if setting.do_sample else None,
            top_k=0 if setting.do_sample else None, temperature=setting.temperature if setting.do_sample else None,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, bos_token_id=tokenizer.bos_token_id)
        out = []
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt").to(device)
            with torch.inference_mode():
                seqs = model.generate(**enc, generation_config=config)
            samples = []
            for row in seqs[:, enc["input_ids"].shape[1]:].tolist():
                stopped = eos in row
                samples.append((row[:row.index(eos)] if stopped else row, stopped))
            out.append(samples)
        return out

    return run


# --------------------------------------------------------------------------------------------
# The parent: every combination, then ratios and the greedy comparison
# --------------------------------------------------------------------------------------------


def compare_greedy(engine: Sequence[Sequence[Sequence[int]]], loop: Sequence[Sequence[Sequence[int]]]) -> dict[str, Any]:
    """How many prompts got identical greedy tokens, and where the others first part."""
    same, first_diff = 0, []
    for i, (a, b) in enumerate(zip(engine, loop)):
        ta, tb = a[0], b[0]
        if ta == tb:
            same += 1
        else:
            pos = next((j for j, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
            first_diff.append({"prompt": i, "position": pos})
    return {"prompts": len(engine), "identical": same, "differing": first_diff}


def sampler_breakdown(rows: int, vocab: int = 50272, top_p: float = 0.9, repeats: int = 3) -> dict[str, Any]:
    """Per decode step, what the seeded nucleus sampler costs on `rows` rows of a flat distribution,
    for the reference computation (sampler version 1 as shipped) and the fast one, in one process.

    Why: on CPU these costs grow with rows x vocabulary and batching cannot share them, so they
    bound what any engine gains on sampled generation. Measured on random logits (std 0.5, the
    near-uniform distributions a random model gives): the top-p filter (a full sort of every row,
    against the histogram-and-band one) and the per-row seeded draws (`torch.multinomial` per row,
    against the batched exponential race), beside the softmax alone. Both give the same tokens.
    """
    import torch

    from audit.backends.sampling import _draw_by_multinomial, _nucleus_filter_by_sort, draw, nucleus_filter

    logits = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 0.5
    probs = nucleus_filter(logits, 1.0, top_p)

    def gens() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(i) for i in range(rows)]

    def best_ms(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return round(min(times) * 1000, 1)

    same = (torch.equal(probs, _nucleus_filter_by_sort(logits, 1.0, top_p))
            and torch.equal(draw(probs, gens()), _draw_by_multinomial(probs, gens())))
    sort_ms = best_ms(lambda: _nucleus_filter_by_sort(logits, 1.0, top_p))
    band_ms = best_ms(lambda: nucleus_filter(logits, 1.0, top_p))
    multinomial_ms = best_ms(lambda: _draw_by_multinomial(probs, gens()))
    race_ms = best_ms(lambda: draw(probs, gens()))
    return {"rows": rows, "vocab": vocab, "top_p": top_p, "torch_threads": torch.get_num_threads(),
            "softmax_ms": best_ms(lambda: torch.softmax(logits, dim=-1)),
            "top_p_filter_ms": {"reference (sort)": sort_ms, "fast (band)": band_ms},
            "seeded_draws_ms": {"reference (multinomial per row)": multinomial_ms, "fast (batched race)": race_ms},
            "step_ms": {"reference": round(sort_ms + multinomial_ms, 1), "fast": round(band_ms + race_ms, 1)},
            "identical_tokens": same}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--k", type=int, default=5, help="samples per prompt in the nucleus setting (default 5)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="runs of each combination; the fastest counts")
    p.add_argument("--settings", default="greedy,nucleus", help="comma-separated, from greedy, nucleus")
    p.add_argument("--prompts", type=int, default=N_PROMPTS,
                   help=f"the first N of the fixed prompt subset (default {N_PROMPTS})")
    p.add_argument("--out-name", default="generation",
                   help="result file bench/results/NAME.json (default generation; name a subset run's own)")
    p.add_argument("--child", nargs=4, metavar=("MODEL_DIR", "SETTING", "PATH", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    table = settings(args.k)
    if args.child:
        model_dir, setting, path, out = args.child
        child(Path(model_dir), table[setting], path, args.device, Path(out), args.seed, args.prompts)
        return 0
    chosen = [x.strip() for x in args.settings.split(",") if x.strip()]
    if not args.out_name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit("--out-name: letters, digits, - and _ only")
    if not chosen or any(x not in table for x in chosen) or not 1 <= args.prompts <= N_PROMPTS:
        raise SystemExit(f"--settings: from {', '.join(table)}; --prompts: 1 to {N_PROMPTS}")
    table = {k: v for k, v in table.items() if k in chosen}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")

    from audit.tiny import tiny_model_dir

    machine = machine_info()
    results: dict[str, Any] = {
        "schema_version": 1, "benchmark": "generation", "machine": machine,
        "device": args.device, "prompts": args.prompts, "prompt_source": f"BOLD, fixed subset ({PROMPT_SALT})",
        "token_budget": TOKEN_BUDGET, "repeats": args.repeats, "target_ratio_greedy": TARGET_RATIO,
        "settings": {k: vars(s) for k, s in table.items()},
        "paths": {"engine": "audit.engine.run_requests + HF backend (token-budget batches, seeded per-sample sampler)",
                  "engine-v1": "the engine with the sampler's reference computation (full sort, multinomial per row)",
                  "loop": "for each prompt: model.generate(prompt alone; num_return_sequences=k when sampling)"},
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        work = Path(tmp)
        dirs = {"tiny-opt": tiny_model_dir()}
        if "opt-125m-shaped" in models:
            print("building a random opt-125m-shaped model ...", flush=True)
            dirs["opt-125m-shaped"] = build_125m_shaped(work / "opt-125m-shaped")
        env = offline_env()
        for model in models:
            entry: dict[str, Any] = {"path": str(dirs[model]) if model == "tiny-opt" else "(temporary)"}
            for key, setting in table.items():
                paths = SAMPLED_PATHS if setting.do_sample else PATHS
                runs: dict[str, list[tuple[ChildRun, dict[str, Any]]]] = {p: [] for p in paths}
                for r in range(args.repeats):
                    for path in paths:
                        out = work / f"{model}-{key}-{path}-{r}.json"
                        cmd = [sys.executable, str(Path(__file__).resolve()), "--k", str(args.k), "--device",
                               args.device, "--seed", str(args.seed), "--prompts", str(args.prompts),
                               "--child", str(dirs[model]), key, path, str(out)]
                        done = run_child(cmd, work / f"{model}-{key}-{path}-{r}.log", env, cwd=REPO)
                        if done.returncode != 0:
                            raise SystemExit(f"{model} {key} {path} failed (exit {done.returncode}):\n{tail(done.log)}")
                        runs[path].append((done, json.loads(out.read_text(encoding="utf-8"))))
                        d = runs[path][-1][1]
                        in_sampler = f"  sampler {d['sampler_seconds']:.1f} s" if d.get("sampler_seconds") else ""
                        print(f"{model:16} {setting.name:12} {path:9} {d['seconds']:8.2f} s "
                              f"({d['cpu_seconds']:.1f} s CPU)  "
                              f"{d['new_tokens'] / d['seconds']:9.1f} tok/s  peak RSS {done.peak_rss_mib:6.0f} MiB"
                              f"{in_sampler}", flush=True)
                entry[key] = summarize(runs, setting)
            results["models"][model] = entry
    if "nucleus" in table:
        results["sampler_per_step"] = sampler_breakdown(args.prompts * args.k)
    results["machine"]["load_average_at_end"] = load_average()
    results["command"] = " ".join(["bench/generation.py", *(argv if argv is not None else sys.argv[1:])])
    path = write_result(args.out_name, results)
    print_summary(results)
    print(f"wrote {path.relative_to(REPO)}")
    return 0


def summarize(runs: Mapping[str, Sequence[tuple[ChildRun, dict[str, Any]]]], setting: Setting) -> dict[str, Any]:
    """Best run per path, tokens/s, the ratio, and the greedy comparison."""
    best = {p: min(rs, key=lambda x: x[1]["seconds"]) for p, rs in runs.items()}
    out: dict[str, Any] = {}
    for p, (done, d) in best.items():
        out[p] = {"seconds": round(d["seconds"], 3), "cpu_seconds": round(d["cpu_seconds"], 3),
                  "load_1min_before_after": [(d["load_before"] or [None])[0], (d["load_after"] or [None])[0]],
                  "new_tokens": d["new_tokens"], "samples": d["samples"],
                  "tokens_per_s": round(d["new_tokens"] / d["seconds"], 2),
                  "sampler_seconds": None if d.get("sampler_seconds") is None else round(d["sampler_seconds"], 3),
                  "peak_rss_mib": round(done.peak_rss_mib, 1), "peak_gpu_mib": d["peak_gpu_mib"],
                  "all_seconds": [round(x[1]["seconds"], 3) for x in runs[p]]}
    out["ratio_tokens_per_s"] = round(out["engine"]["tokens_per_s"] / out["loop"]["tokens_per_s"], 2)
    if not setting.do_sample:
        out["greedy_match"] = compare_greedy(best["engine"][1]["outputs"], best["loop"][1]["outputs"])
    else:
        out["ratio_tokens_per_s_engine_v1"] = round(out["engine-v1"]["tokens_per_s"] / out["loop"]["tokens_per_s"], 2)
        engine, v1 = best["engine"][1]["outputs"], best["engine-v1"][1]["outputs"]
        out["samples_identical_to_v1"] = {"samples": sum(len(s) for s in engine),
                                          "identical": sum(a == b for x, y in zip(engine, v1) for a, b in zip(x, y))}
    for p in out:
        if isinstance(out[p], dict):
            out[p].pop("outputs", None)
    return out


def print_summary(r: Mapping[str, Any]) -> None:
    m = r["machine"]
    print()
    print(f"machine: {m['processor']}, {m['cpus']} CPUs, load {m['load_average_at_start']} -> "
          f"{m['load_average_at_end']}, torch {m['torch']} ({m['torch_threads']} threads), device {r['device']}")
    print(f"prompts: {r['prompts']} BOLD prompts; engine token budget {r['token_budget']}; best of {r['repeats']}")
    print()
    print(f"{'model':17}{'setting':14}{'engine tok/s':>13}{'loop tok/s':>12}{'ratio':>8}"
          f"{'RSS engine':>12}{'RSS loop':>10}  greedy identical")
    for model, entry in r["models"].items():
        for key, s in entry.items():
            if key == "path":
                continue
            e, lp = s["engine"], s["loop"]
            match = s.get("greedy_match")
            same = f"{match['identical']}/{match['prompts']}" if match else "(sampled)"
            print(f"{model:17}{r['settings'][key]['name']:14}{e['tokens_per_s']:>13.1f}{lp['tokens_per_s']:>12.1f}"
                  f"{s['ratio_tokens_per_s']:>7.1f}x{e['peak_rss_mib']:>10.0f}Mi{lp['peak_rss_mib']:>8.0f}Mi  {same}")
            if "engine-v1" in s:
                v1, ident = s["engine-v1"], s["samples_identical_to_v1"]
                print(f"{'':17}{'  sampler v1':14}{v1['tokens_per_s']:>13.1f}{lp['tokens_per_s']:>12.1f}"
                      f"{s['ratio_tokens_per_s_engine_v1']:>7.1f}x{v1['peak_rss_mib']:>10.0f}Mi{'':10}  "
                      f"samples identical to v1: {ident['identical']}/{ident['samples']}")
                print(f"{'':17}time in the sampler: {e['sampler_seconds']} s of {e['seconds']} s (fast), "
                      f"{v1['sampler_seconds']} s of {v1['seconds']} s (v1)")
    print(f"target: engine >= {r['target_ratio_greedy']:.0f}x the per-prompt loop on CPU for the 64-prompt workload")
    b = r.get("sampler_per_step")
    if b:
        f, d = b["top_p_filter_ms"], b["seeded_draws_ms"]
        print(f"sampled decoding, per step on {b['rows']} rows x {b['vocab']} tokens (flat logits), reference -> fast: "
              f"top-p filter {f['reference (sort)']} -> {f['fast (band)']} ms, seeded draws "
              f"{d['reference (multinomial per row)']} -> {d['fast (batched race)']} ms (softmax alone "
              f"{b['softmax_ms']} ms); identical tokens: {b['identical_tokens']}")


if __name__ == "__main__":
    sys.exit(main())
