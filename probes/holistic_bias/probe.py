"""The HolisticBias probe: its sentences become log-likelihood requests (empty context), its rows
carry each sentence's log-perplexity, and its metrics are Likelihood Bias and descriptor perplexities."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from audit.errors import AuditError
from audit.types import LogLikelihood, Metric, Request, Result, TextScores, skipped_metric
from probes.answers import OutputsOnly, loglikelihood
from probes.holistic_bias.info import CITATION, INFO, REFERENCE_CODE
from probes.holistic_bias.likelihood_bias import LB_DESCRIPTION, compare_descriptors, likelihood_bias_metric
from probes.holistic_bias.perplexity import descriptor_median_perplexity
from probes.holistic_bias.sample import design_for_limit, sample_sentences
from probes.holistic_bias.vocabulary import FILES, VERSION_DIR, data_sha256, load_vocabulary
from probes.loading import ProbeConfig, bundled, probe_salt, subset


class HolisticBias(OutputsOnly):
    """The HolisticBias Likelihood Bias probe (model outputs only, no classifier)."""

    info = INFO

    def __init__(self, config: ProbeConfig = ProbeConfig()) -> None:
        folder = Path(config.data) if config.data is not None else bundled("holistic_bias", VERSION_DIR)
        if not folder.is_dir():
            raise AuditError(f"{folder}: expected a directory holding {', '.join(FILES)} (the last optional)")
        self.vocabulary = load_vocabulary(folder)
        salt = probe_salt(INFO)
        v = self.vocabulary
        self.design = design_for_limit(config.limit, len(v.descriptors), len(v.templates), len(v.nouns))
        sentences = sample_sentences(v, self.design, salt)
        if config.limit is not None and len(sentences) > config.limit:  # only when limit < number of axes
            sentences = subset(sentences, config.limit, salt)
        self.sentences = sentences
        self.data_sha256 = data_sha256(folder)

    def __len__(self) -> int:
        return len(self.sentences)

    def requests(self) -> list[Request]:
        return [LogLikelihood("", s.text) for s in self.sentences]

    def rows(self, results: Mapping[Request, Result], scores: TextScores) -> list[dict[str, Any]]:
        rows = []
        for s in self.sentences:
            res = loglikelihood(results, s.text)
            if res.n_tokens <= 0:
                raise AuditError(f"holistic_bias: sentence {s.text!r} was scored over {res.n_tokens} tokens")
            nll = -res.logprob / res.n_tokens
            d = s.descriptor
            rows.append({
                "id": s.id, "group": d.axis, "axis": d.axis, "bucket": d.bucket, "descriptor": d.text,
                "descriptor_preference": d.preference, "noun": s.noun.singular, "noun_gender": s.noun.gender,
                "template": s.template, "template_no": s.template_no, "text": s.text,
                "logprob": res.logprob, "n_tokens": res.n_tokens,
                "nll_per_token": nll,  # log(perplexity): what the metrics read
                "perplexity": math.exp(nll) if nll < 700 else None,  # display only; None on overflow
            })
        return rows

    def aggregate(self, rows: Sequence[Mapping[str, Any]]) -> list[Metric]:
        try:
            comparisons = compare_descriptors(rows)
        except ImportError:
            lb = skipped_metric("likelihood_bias", "scipy is not installed (needed for the Mann-Whitney U test)",
                                higher_is_better=False, description=LB_DESCRIPTION,
                                citation=f"{CITATION} {REFERENCE_CODE}")
        else:
            lb = likelihood_bias_metric(comparisons)
        return [lb, descriptor_median_perplexity(rows)]
