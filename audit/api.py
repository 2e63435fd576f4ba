"""opt-audit from Python: run an audit, read a run, gate two runs.

    from audit import api

    base = api.run("tiny-opt", suite="ci", out="runs")              # a store.Run, complete
    cand = api.run("./checkpoint", suite="ci", out="runs")
    result = api.gate(base, cand)                                   # a gate.GateResult
    print(result.verdict, result.exit_code)                         # "PASS" 0 / regression 1 / undecided 2
    api.export(cand, "lm-eval")                                     # lm-eval's results JSON, in the run

Thin, typed wrappers over what the CLI calls (`audit.runner.execute`, `audit.store.load_run`,
`audit.gate.gate_runs`, `audit.export.export_run`), so a notebook or a training loop gets the same
runs, hashes and verdicts as `opt-audit run` and `opt-audit gate`, without building argparse
namespaces. Bad input raises
`audit.errors.AuditError` with the same one-line message the CLI prints.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from audit.cli import DEFAULT_SUITE  # the suite `opt-audit run` takes without --suite/--probes
from audit.errors import AuditError
from audit.gate import GateResult
from audit.gate_policy import Policy
from audit.store import Run


def run(model: str, *, suite: str | None = None, probes: Sequence[str] = (), limit: int | None = None,
        out: Path | str = "runs", seed: int = 0, revision: str | None = None, device: str = "auto",
        dtype: str = "auto", attn: str = "auto", scorer: str = "auto", token_budget: int | None = None,
        progress: bool = False) -> Run:
    """Audit `model` (hub id, local directory, .gguf file or "tiny-opt") and return its complete run.

    With neither `suite` nor `probes` it runs the quick suite, as the CLI does. Rerunning the same
    arguments resumes from the run's cache, exactly like rerunning the command.
    """
    from audit.backends.heads import model_family
    from audit.contract import ModelSpec, RunSpec, ScorerSpec
    from audit.engine import EngineOptions
    from audit.runner import execute
    from audit.scoring.registry import SCORERS
    from audit.store import load_run as _load
    from probes.registry import missing_user_data, resolve_probes, split_by_family

    if limit is not None and limit < 1:
        raise AuditError(f"limit must be at least 1, got {limit}")
    if scorer not in SCORERS:
        raise AuditError(f"scorer {scorer!r}: unknown scorer (known: {', '.join(SCORERS)})")
    chosen = suite if suite is not None or probes else DEFAULT_SUITE
    names = resolve_probes(chosen, ",".join(probes) or None)
    # the probes of the model's family (causal LM, classifier, QA), as `opt-audit run` picks them
    names = split_by_family(names, model_family(ModelSpec(model, revision)), list(probes)).run
    missing = missing_user_data(names)  # api.run takes no user data: such a probe runs from the CLI only
    if missing is not None:
        raise AuditError(f"{missing} to `opt-audit run`")
    spec = RunSpec(model=ModelSpec(model, revision, dtype, attn, device), probes=tuple(names), suite=chosen,
                   limit=limit, seed=seed, scorer=ScorerSpec(scorer))
    # the manifest's "how to reproduce" line: the equivalent command, not the Python process's argv
    words = ["opt-audit", "run", "--model", model, *(["--suite", chosen] if chosen else []),
             *(["--probes", ",".join(probes)] if probes else []), *(["--limit", str(limit)] if limit else []),
             *(["--revision", revision] if revision else []), "--seed", str(seed), "--scorer", scorer,
             *[w for flag, v in (("--device", device), ("--dtype", dtype), ("--attn", attn)) if v != "auto"
               for w in (flag, v)], "--out", str(out)]
    outcome = execute(spec, Path(out), options=EngineOptions(token_budget=token_budget, seed=seed, progress=progress),
                      command=shlex.join(words))
    return _load(outcome.run_dir)


def load_run(path: Path | str) -> Run:
    """A complete run directory as a typed `Run` (manifest, per-probe metrics, streamed samples)."""
    from audit.store import load_run as _load

    return _load(Path(path))


def gate(baseline: Run | Path | str, candidate: Run | Path | str,
         policy: Policy | Path | str | None = None) -> GateResult:
    """Gate `candidate` against `baseline` under `policy` (a Policy, a policy YAML path, or None for
    the bundled default): the verdict and exit code `opt-audit gate` would give."""
    from audit.gate import gate_runs
    from audit.gate_policy import load_policy

    rules = policy if isinstance(policy, Policy) else load_policy(None if policy is None else Path(policy))
    base = baseline if isinstance(baseline, Run) else load_run(baseline)
    cand = candidate if isinstance(candidate, Run) else load_run(candidate)
    return gate_runs(base, cand, rules)


def export(run: Run | Path | str, fmt: str, out: Path | str | None = None) -> Path:
    """Write `run`'s metrics as "lm-eval" results JSON, "csv" or "parquet" (`opt-audit export`);
    the file written (default: inside the run directory)."""
    from audit.export import export_run

    from audit.cli import bundled_full_size  # api.py is a composition root, like cli.py
    from reports.describe import registered_info  # a run from before probes declared their lm-eval tasks

    path = run.path if isinstance(run, Run) else Path(run)
    return export_run(path, fmt, None if out is None else Path(out), full_size=bundled_full_size,
                      registered=registered_info).path
