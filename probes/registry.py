"""Short registry names for probes and suites (no dotted-path wiring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from audit.errors import AuditError
from audit.types import Probe, ProbeInfo
from probes import crows_pairs, repetition
from probes.loading import ProbeConfig


@dataclass(frozen=True)
class ProbeEntry:
    info: ProbeInfo
    build: Callable[[ProbeConfig], Probe]


PROBES: dict[str, ProbeEntry] = {
    "crows_pairs": ProbeEntry(crows_pairs.INFO, crows_pairs.CrowsPairs),
    "repetition": ProbeEntry(repetition.INFO, repetition.Repetition),
}

SUITES: dict[str, tuple[str, ...]] = {
    # The offline demo: every probe that exists so far, small enough for a laptop CPU.
    "quick": ("crows_pairs", "repetition"),
    # The default audit of a real model.
    "standard": ("crows_pairs", "repetition"),
}


def resolve_probes(suite: str | None, probes: str | None) -> list[str]:
    """Probe names from --suite and/or --probes (comma separated); unknown names are errors."""
    names: list[str] = []
    if suite is not None:
        if suite not in SUITES:
            raise AuditError(f"--suite {suite!r}: unknown suite (known: {', '.join(SUITES)})")
        names.extend(SUITES[suite])
    if probes:
        for name in (p.strip() for p in probes.split(",")):
            if not name:
                continue
            if name not in PROBES:
                raise AuditError(f"--probes: unknown probe {name!r} (known: {', '.join(PROBES)})")
            if name not in names:
                names.append(name)
    if not names:
        raise AuditError("no probes selected: pass --suite or --probes")
    return names


def build_probe(name: str, config: ProbeConfig) -> Probe:
    """Construct a registered probe (reads its data)."""
    return PROBES[name].build(config)
