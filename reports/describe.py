"""A probe's self-description as the views read it, for runs written before probes described themselves.

A run's summary.json carries each probe's description (`audit.types.ProbeInfo`: axis, headline
metrics, chart hints, how to read a sample, benchmark identity, paired statistics), and the
report, the dashboard and the card render from it. A summary written before that holds only the
first six fields (name, version, title, description, citation, data license); for such a probe
the views use this opt-audit's registered description of the probe with that name, keeping the
run's own six fields. This is the one place presentation reaches for the probes' code, and only
for old runs: `audit/` never does (the gate pairs only on what the runs themselves declare).
"""

from __future__ import annotations

from dataclasses import replace

from audit.store import ProbeSummary, Run
from audit.types import ProbeInfo


def registered_info(probe: str) -> ProbeInfo | None:
    """This opt-audit's description of the probe registered under `probe`, or None (unknown name)."""
    from probes.registry import PROBES  # read lazily: only old runs need it

    entry = PROBES.get(probe)
    return None if entry is None else entry.info


def full_info(probe: str, info: ProbeInfo) -> ProbeInfo:
    """`info` as the run wrote it when it describes the probe; otherwise the registered description of
    the probe with that name under the run's own name, version, title, text, citation and license."""
    if info.described:
        return info
    current = registered_info(probe)
    if current is None:
        return info
    return replace(current, name=info.name, version=info.version, title=info.title, description=info.description,
                   citation=info.citation, data_license=info.data_license)


def described(run: Run) -> Run:
    """`run` with every probe's description filled in as `full_info` says (the same run when nothing is missing)."""
    if all(s.info.described for s in run.probes.values()):
        return run
    probes = {p: ProbeSummary(full_info(p, s.info), s.metrics) for p, s in run.probes.items()}
    return replace(run, probes=probes)
