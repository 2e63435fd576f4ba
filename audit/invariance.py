"""The batch-invariance contract: what batch size, token budget and request order may change.

Batching reorders and pads requests (audit.batching); the numbers must not depend on it. Floating
point does not allow "identical" everywhere: a float32 sum over a padded row is reduced in an order
that depends on the batch's shape (MKL picks kernels by shape and CPU), so the same log-likelihood
can differ in its last bits between a batch of 1 and a batch of 64. The contract is therefore:

- **tokens are exact**: greedy and sampled continuations (each sample has its own seeded generator,
  audit.backends.sampling) are identical at any batch size, token budget or order;
- **a log-likelihood moves by at most LOGLIKELIHOOD_ATOL** (a sum of token log-probs; measured: at
  most 3.1e-5 on sums near -150 on tiny-opt and opt-125m shapes);
- **a summary metric, its CI bounds and group values move by at most SUMMARY_RTOL relative or
  SUMMARY_ATOL absolute, whichever is larger**: a value made of log-likelihoods (a mean |difference|
  in nats near 0.05, or a bootstrap bound of it) inherits their absolute wobble, so the absolute
  tolerance is the log-likelihood one (measured: 1.5e-5 on a CrowS group CI bound of 0.0474). A
  comparison-based item (CrowS's "more likely" sentence) can only flip on a near-tie below
  LOGLIKELIHOOD_ATOL, which the tests check is absent in their data.

A resume reads cached values, so a resumed summary is byte-identical to the uninterrupted one;
that stronger property is tested separately (tests/e2e/test_run_resume.py).
"""

from __future__ import annotations

import math
from typing import Any

LOGLIKELIHOOD_ATOL = 1e-4
SUMMARY_RTOL = 1e-4
SUMMARY_ATOL = LOGLIKELIHOOD_ATOL


def differences(a: Any, b: Any, *, rtol: float = SUMMARY_RTOL, atol: float = SUMMARY_ATOL,
                path: str = "") -> list[str]:
    """Where two JSON values differ beyond the contract: floats within rtol/atol, everything else
    (keys, strings, integers, booleans, list lengths) exactly. Empty when they agree."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return [] if a == b and type(a) is type(b) else [f"{path or '.'}: {a!r} != {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return [] if a == b else [f"{path or '.'}: {a} != {b}"]
        fa, fb = float(a), float(b)
        if math.isnan(fa) and math.isnan(fb):
            return []
        ok = fa == fb or math.isclose(fa, fb, rel_tol=rtol, abs_tol=atol)
        return [] if ok else [f"{path or '.'}: {fa!r} != {fb!r} (rtol {rtol:g}, atol {atol:g})"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path or '.'}: keys differ: {sorted(set(a) ^ set(b))}"]
        return [d for k in sorted(a) for d in differences(a[k], b[k], rtol=rtol, atol=atol, path=f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path or '.'}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b))
                for d in differences(x, y, rtol=rtol, atol=atol, path=f"{path}[{i}]")]
    return [f"{path or '.'}: {type(a).__name__} != {type(b).__name__}"]
