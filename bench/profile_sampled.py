"""Where a sampled decoding run spends its time: model body, LM head, sampler, and the rest.

Run as `.venv/bin/python bench/profile_sampled.py` after `bench/generation.py` says the sampled ratio
is short of its target. Same workload as generation.py's nucleus setting (BOLD prompts, top-p 0.9,
k samples per prompt, the random opt-125m-shaped model), both paths in this one process, one after
the other: opt-audit's engine (all prompts' samples in token-budget batches) and the per-prompt
`model.generate(num_return_sequences=k)` loop. Timers wrap the model's forward, its LM head and the
engine's sampler; for the loop, everything outside the forward is generate's own work (top-p by a
full sort, softmax, torch.multinomial on the global RNG). Prints a table and writes
bench/results/profile_sampled.json. Timings are wall seconds on whatever the machine is doing, so
read them as shares, not as rates.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import load_average, machine_info, write_result  # noqa: E402
from bench.generation import bench_prompts, build_125m_shaped, settings  # noqa: E402


class Timer:
    """Accumulates wall seconds of the wrapped calls."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
        return timed


def profile_engine(model_dir: Path, prompts: Sequence[str], k: int, max_new_tokens: int) -> dict[str, Any]:
    import torch  # noqa: F401

    from audit.backends import sampling
    from audit.backends.hf import HFBackend, ModelSpec
    from audit.types import Generate

    backend = HFBackend(ModelSpec(model=str(model_dir), dtype="float32", attn="sdpa", device="cpu"))
    model = backend.model
    fwd, head, sampler = Timer(), Timer(), Timer()
    model.forward = fwd.wrap(model.forward)
    model.lm_head.forward = head.wrap(model.lm_head.forward)
    sampling.SeededSampler.__call__ = sampler.wrap(sampling.SeededSampler.__call__)  # type: ignore[method-assign]
    from dataclasses import replace

    params = replace(settings(k)["nucleus"].gen_params(), max_new_tokens=max_new_tokens)
    backend.generate([Generate(prompts[0], replace(params, max_new_tokens=2))], seed=0)  # warm-up
    fwd.seconds = head.seconds = sampler.seconds = 0.0
    fwd.calls = head.calls = sampler.calls = 0
    start, cpu = time.perf_counter(), time.process_time()
    out = backend.generate([Generate(p, params) for p in prompts], seed=0)
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(len(s.tokens) + int(s.stopped_at_eos) for g in out for s in g.samples)
    return {"path": "engine (one generate call, all prompts' samples in one batch)", "seconds": total,
            "cpu_seconds": cpu_total, "new_tokens": tokens, "forward_calls": fwd.calls,
            "body_s": fwd.seconds - head.seconds, "lm_head_s": head.seconds, "sampler_s": sampler.seconds,
            "rest_s": total - fwd.seconds - sampler.seconds}


def profile_loop(model_dir: Path, prompts: Sequence[str], k: int, max_new_tokens: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa").eval()
    fwd, head = Timer(), Timer()
    model.forward = fwd.wrap(model.forward)
    model.lm_head.forward = head.wrap(model.lm_head.forward)
    torch.manual_seed(0)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=True, num_beams=1, num_return_sequences=k,
                              top_p=0.9, top_k=0, temperature=1.0, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)

    def run(ps: Sequence[str]) -> int:
        n = 0
        for p in ps:
            enc = tok(p, return_tensors="pt")
            with torch.inference_mode():
                seqs = model.generate(**enc, generation_config=config)
            n += int(seqs[:, enc["input_ids"].shape[1]:].numel())
        return n

    run(prompts[:1])
    fwd.seconds = head.seconds = 0.0
    fwd.calls = head.calls = 0
    start, cpu = time.perf_counter(), time.process_time()
    tokens = run(prompts)
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu
    return {"path": f"loop (model.generate per prompt, num_return_sequences={k})", "seconds": total,
            "cpu_seconds": cpu_total, "new_tokens_upper_bound": tokens, "forward_calls": fwd.calls,
            "body_s": fwd.seconds - head.seconds, "lm_head_s": head.seconds, "sampler_s": None,
            "rest_s": total - fwd.seconds}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, default=25)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=20)
    args = p.parse_args(argv)
    machine = machine_info()
    prompts = bench_prompts()[:args.prompts]
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        model_dir = build_125m_shaped(Path(tmp) / "opt-125m-shaped")
        engine = profile_engine(model_dir, prompts, args.k, args.max_new_tokens)
        loop = profile_loop(model_dir, prompts, args.k, args.max_new_tokens)
    machine["load_average_at_end"] = load_average()
    result = {"schema_version": 1, "benchmark": "profile_sampled", "machine": machine,
              "command": " ".join(["bench/profile_sampled.py", *(argv if argv is not None else sys.argv[1:])]),
              "workload": {"model": "opt-125m-shaped (random)", "prompts": args.prompts, "k": args.k,
                           "max_new_tokens": args.max_new_tokens, "top_p": 0.9},
              "engine": {k: round(v, 3) if isinstance(v, float) else v for k, v in engine.items()},
              "loop": {k: round(v, 3) if isinstance(v, float) else v for k, v in loop.items()}}
    path = write_result("profile_sampled", result)
    print(f"machine: {machine['cpus']} CPUs, load {machine['load_average_at_start']} -> {machine['load_average_at_end']}")
    print(f"{'':8}{'total s':>9}{'CPU s':>9}{'body s':>9}{'LM head s':>11}{'sampler s':>11}{'rest s':>9}{'fwd calls':>11}")
    for row in (result["engine"], result["loop"]):
        sampler = "-" if row["sampler_s"] is None else f"{row['sampler_s']:.1f}"
        print(f"{row['path'][:6]:8}{row['seconds']:>9.1f}{row['cpu_seconds']:>9.1f}{row['body_s']:>9.1f}"
              f"{row['lm_head_s']:>11.1f}{sampler:>11}{row['rest_s']:>9.1f}{row['forward_calls']:>11}")
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
