"""OpenMP's wait policy for torch's CPU threads: wait by sleeping, not by spinning.

torch's CPU kernels run in OpenMP parallel regions (libgomp in the PyPI wheels). By default a thread
that finishes its share spins, waiting for the others, before it sleeps. On a machine whose cores
are shared (a CI runner, a laptop running a browser, two audits at once) the thread it waits for
is often not running, and the spinning thread takes the core it needs: measured on this project's
2-core machine at a load average of 5 (bench/threads.py), a 20 x 576 x 1,536 matmul took 23 ms
instead of 0.7 ms, and SmolLM2-135M's greedy decode ran 11x slower than with sleeping waits. On an
idle machine the two policies run within a few percent of each other (README, Performance).

The policy is read once, when torch loads libgomp, so it must be in the environment before the
first `import torch`: `opt-audit` sets it at the top of `main`, and never overrides a value the
user set (OMP_WAIT_POLICY=ACTIVE restores spinning). It changes only speed, never a number.
"""

from __future__ import annotations

import os
import sys
from typing import MutableMapping

POLICY = "PASSIVE"


def prefer_sleeping_waits(environ: MutableMapping[str, str] | None = None,
                          loaded: frozenset[str] | None = None) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; True when it takes effect
    (torch not yet imported), False when the user's choice stands or torch already loaded OpenMP."""
    env = os.environ if environ is None else environ
    modules = frozenset(sys.modules) if loaded is None else loaded
    if "OMP_WAIT_POLICY" in env or "torch" in modules:
        return False
    env["OMP_WAIT_POLICY"] = POLICY
    return True
