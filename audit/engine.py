"""The engine: pool every probe's requests, answer what the cache knows, batch the rest.

    requests of all probes -> dedupe -> cache lookup -> misses
    misses -> (per kind) length-sorted token-budget batches (audit.batching) -> backend
              (log-likelihood requests whose context the backend can share are batched together)
    each finished batch -> cache (committed at once, so a kill loses at most one batch)
    -> {request: result}

The progress bar counts work units (audit.progress), not requests: a generation costs tens of
log-likelihoods per token. Every batch is planned before the first runs, so the bar's total (cached
requests included, shown as done) is known up front, and tqdm's rate and ETA are in work.

Out-of-memory on a batch halves it and retries, down to single requests; only then does the
error propagate (and everything finished so far is already in the cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from audit.batching import Batch, plan_batches, restore
from audit.cache import ResultCache, keys_for
from audit.heap import release_free_memory
from audit.progress import request_work, units, work_bar
from audit.types import Backend, Classify, Embed, ExtractSpan, Generate, LogLikelihood, Request, Result, dedupe


@dataclass(frozen=True)
class EngineStats:
    """How a run's requests were answered (resume tests assert `computed == 0`)."""

    total: int  # requests as the probes asked them, duplicates included
    unique: int
    cached: int  # answered from cache.sqlite
    computed: int  # answered by the model in this process
    batches: int
    oom_splits: int  # batches halved after an out-of-memory error


@dataclass(frozen=True)
class EngineOptions:
    # padded tokens per batch (rows x longest row; a shared prefix counts once); None: chosen from the
    # model and the free memory when the run starts (audit.backends.budget.choose_token_budget)
    token_budget: int | None = None
    max_batch_size: int | None = None  # optional cap on rows per batch
    # sampling seed (part of the cache key of sampled requests), for callers of `run_requests`; a run's
    # seed is its RunSpec's, and `audit.runner.execute` sets it here (whatever the caller passed)
    seed: int = 0
    progress: bool = True


def run_requests(
    backend: Backend,
    requests: Sequence[Request],
    cache: ResultCache,
    options: EngineOptions = EngineOptions(),
    is_oom: Callable[[BaseException], bool] = lambda e: False,
) -> tuple[Mapping[Request, Result], EngineStats]:
    """Answer every request, from the cache where possible; return results keyed by request."""
    unique = dedupe(requests)
    keys = keys_for(backend.id, unique, options.seed)
    key_of = dict(zip(unique, keys))
    found = cache.get_many(keys)
    results: dict[Request, Result] = {r: found[k] for r, k in key_of.items() if k in found}
    misses = [r for r in unique if key_of[r] not in found]

    splits = 0
    n_batches = 0
    budget = options.token_budget
    if budget is None:  # a caller other than the runner, which has chosen and recorded it already
        from audit.backends.budget import choose_token_budget

        budget = choose_token_budget(None, backend).tokens
    plans: list[tuple[Any, list[Request], list[Batch]]] = []  # planned before the bar: its total
    for kind in (LogLikelihood, Generate, Classify, ExtractSpan, Embed):
        todo = [r for r in misses if isinstance(r, kind)]
        if not todo:
            continue
        costs = [backend.cost(r) for r in todo]
        groups = [r.params for r in todo if isinstance(r, Generate)] if kind is Generate else None
        shared = [backend.shared_prefix(r) for r in todo]  # what each request shares with others
        plans.append((kind, todo, plan_batches(costs, budget, options.max_batch_size, groups, shared)))
    bar = _progress(backend, unique, misses, plans, options.progress)
    try:
        for kind, todo, batches in plans:
            outputs: list[list[Result]] = []
            for batch in batches:
                per_row = batch.padded_tokens // len(batch.indices)
                bar.set_description(f"{kind.kind} ({len(batch.indices)} x {per_row} tok)")
                items = [todo[i] for i in batch.indices]
                out, n_split = _run_with_backoff(backend, items, options.seed, is_oom)
                splits += n_split
                cache.put_many(backend.id, ((key_of[r], r.kind, res) for r, res in zip(items, out)))
                outputs.append(out)
                if not bar.disable:
                    bar.update(units([request_work(backend, r) for r in items]))
            n_batches += len(batches)
            release_free_memory()  # this kind's freed activations go back to the OS (audit.heap)
            for r, res in zip(todo, restore(len(todo), batches, outputs)):
                results[r] = res
    finally:
        bar.close()
    stats = EngineStats(total=len(requests), unique=len(unique), cached=len(unique) - len(misses),
                        computed=len(misses), batches=n_batches, oom_splits=splits)
    return results, stats


def _run_with_backoff(backend: Backend, items: list[Request], seed: int,
                      is_oom: Callable[[BaseException], bool]) -> tuple[list[Result], int]:
    """Run one batch; on out-of-memory, halve it and retry each half."""
    try:
        if isinstance(items[0], LogLikelihood):
            return list(backend.loglikelihood(items)), 0  # type: ignore[arg-type]
        if isinstance(items[0], (Classify, ExtractSpan)):  # model heads (audit.backends.heads)
            return _run_head(backend, items), 0
        if isinstance(items[0], Embed):  # pooled hidden states (SEAT)
            return list(backend.embed(items)), 0  # type: ignore[arg-type]
        return list(backend.generate(items, seed)), 0  # type: ignore[arg-type]
    except Exception as e:  # noqa: BLE001 - only OOM is handled; everything else re-raises
        if not is_oom(e) or len(items) == 1:
            raise
        _free_accelerator_memory()
    half = len(items) // 2
    left, s1 = _run_with_backoff(backend, items[:half], seed, is_oom)
    right, s2 = _run_with_backoff(backend, items[half:], seed, is_oom)
    return left + right, 1 + s1 + s2


def _run_head(backend: Backend, items: list[Request]) -> list[Result]:
    """A classification or span batch, on a backend that has the head (a causal LM has neither)."""
    from audit.errors import AuditError

    method = "classify" if isinstance(items[0], Classify) else "extract_span"
    run = getattr(backend, method, None)
    if run is None:
        raise AuditError(f"{type(items[0]).__name__} requests need a model with that head; "
                         f"the {type(backend).__name__} backend has no {method}()")
    return list(run(items))


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _progress(backend: Backend, unique: Sequence[Request], misses: Sequence[Request],
              plans: Sequence[tuple[Any, list[Request], list[Batch]]], enabled: bool) -> Any:
    """A bar over work units (audit.progress), its total known before any batch runs: every batch's
    units, plus the cached requests' units, shown as done at once. Silent when disabled or when
    nothing is left to compute (and then nothing is tokenized for it)."""
    if not enabled or not misses:
        return work_bar(0, 0, enabled=False)
    missed = set(misses)
    # cached requests of the kinds every backend can cost (a head request is costed only when it runs)
    cached = units([request_work(backend, r) for r in unique
                    if r not in missed and isinstance(r, (LogLikelihood, Generate))])
    todo = sum(units([request_work(backend, items[i]) for i in batch.indices])
               for _, items, batches in plans for batch in batches)
    return work_bar(cached + todo, cached, enabled=True)
