"""What a probe reads back from the engine's answers: the typed result of a request it asked.

The engine answers every probe with one `Mapping[Request, Result]`. A probe looks up the requests it
made; these helpers return the one result type each request kind has, so a wrong or missing answer
fails at the lookup with the request named, never as a misread number further on. `OutputsOnly` is
the part of the Probe protocol every probe scored from the model's own outputs (likelihoods, labels,
spans, vectors) shares: it asks for no classifier scores.
"""

from __future__ import annotations

from typing import Mapping

from audit.errors import AuditError
from audit.types import Generate, Generation, LogLikelihood, LogLikelihoodResult, Request, Result


class OutputsOnly:
    """A probe scored from the model's outputs alone: no score kinds, no texts to score."""

    score_kinds: tuple[str, ...] = ()

    def texts_to_score(self, results: Mapping[Request, Result]) -> list[str]:
        return []


def loglikelihood(results: Mapping[Request, Result], continuation: str, context: str = "") -> LogLikelihoodResult:
    """The answer to `LogLikelihood(context, continuation)` (empty context: the text given BOS alone)."""
    request = LogLikelihood(context, continuation)
    answer = results.get(request)
    if not isinstance(answer, LogLikelihoodResult):
        raise AuditError(f"no log-likelihood answered for {request}")
    return answer


def generation(results: Mapping[Request, Result], request: Generate, samples: int | None = None) -> Generation:
    """The answer to `request`, with exactly `samples` samples (None: at least one)."""
    answer = results.get(request)
    if not isinstance(answer, Generation) or not answer.samples or samples not in (None, len(answer.samples)):
        raise AuditError(f"no generation of {samples or 'any'} sample(s) answered for prompt {request.prompt!r}")
    return answer
