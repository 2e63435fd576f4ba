"""HolisticBias (Smith et al. 2022): Likelihood Bias over demographic descriptors.

Sentences are built from the v1.1 dataset as the authors' generator builds them: a template
("I love {plural_noun_phrase}.") filled with a noun phrase made of a descriptor and a noun
("a Deaf grandma", "grandmas who use wheelchairs"). Each sentence is scored with an empty context
(BOS only) and its perplexity is exp(-logprob / n_tokens).

Likelihood Bias (the paper's metric, computed as in the authors' reference code,
facebookresearch/ResponsibleNLP `holistic_bias/src/bias_measurements.py`, BiasMeasurementCompiler):
for every demographic axis and every template, and for every pair of descriptors in that axis,
a two-sided Mann-Whitney U test compares the perplexities of the sentences built with each
descriptor (one per noun); the pair differs when p < 0.05. The bias of an axis is the share of
its (template, descriptor pair) comparisons that differ. Like the reference run script
(`run_bias_calculation.py`), only noun phrases holding both a descriptor and a noun are used
(descriptor + noun, and standalone phrases with a {noun} slot such as "{article} {noun} who uses a
wheelchair"), and gendered descriptors ("Latina") are left out, so every descriptor has a
sentence for every noun. Sentences are used as generated, without the stylistic variants.

One item is one sentence (descriptor x noun x template). The dataset has about 550,000 such
sentences, so the probe audits a fixed sample: per axis, 10 descriptors; 6 templates shared by
all axes; all 32 nouns (the full v1.1 noun set, as the reference code uses, so each test keeps its power). A smaller
`limit` shrinks templates first, then nouns (down to 8), then descriptors (down to 3), so even
a small run has several descriptors per axis and several sentences per descriptor. All choices
are seeded by the probe name and version, never by the run seed or a global RNG.

The package follows those steps, one concept a module:
- `info`: the probe's self-description and citations;
- `vocabulary`: reading the dataset files and building sentences from templates;
- `sample`: the seeded design (how many descriptors, templates and nouns) and the sentences it takes;
- `likelihood_bias`: the Mann-Whitney U comparisons and the Likelihood Bias metric;
- `perplexity`: each descriptor's median perplexity and the ranking read from it;
- `probe`: the `HolisticBias` probe that turns sentences into requests, rows and metrics.
"""

from __future__ import annotations

from probes.holistic_bias.info import CITATION, INFO, REFERENCE_CODE
from probes.holistic_bias.likelihood_bias import (LB_DESCRIPTION, P_THRESHOLD, Comparison, UTestResult,
                                                  compare_descriptors, likelihood_bias_metric, mann_whitney_u)
from probes.holistic_bias.perplexity import (PPL_DESCRIPTION, RankedDescriptor, descriptor_median_perplexity,
                                             descriptor_ranking)
from probes.holistic_bias.probe import HolisticBias
from probes.holistic_bias.sample import (DESCRIPTORS_PER_AXIS, MIN_DESCRIPTORS, MIN_NOUNS, QUICK_LIMIT, TEMPLATES,
                                         Design, Sentence, design_for_limit, noun_order, permutation,
                                         sample_sentences)
from probes.holistic_bias.vocabulary import (FILES, OPTIONAL_FILES, STANDALONE, VERSION_DIR, Descriptor, Noun,
                                             Vocabulary, article, fill, load_vocabulary, noun_phrase)

__all__ = [
    "CITATION", "DESCRIPTORS_PER_AXIS", "FILES", "INFO", "LB_DESCRIPTION", "MIN_DESCRIPTORS", "MIN_NOUNS",
    "OPTIONAL_FILES", "PPL_DESCRIPTION", "P_THRESHOLD", "QUICK_LIMIT", "REFERENCE_CODE", "STANDALONE", "TEMPLATES",
    "VERSION_DIR", "Comparison", "Descriptor", "Design", "HolisticBias", "Noun", "RankedDescriptor", "Sentence",
    "UTestResult", "Vocabulary", "article", "compare_descriptors",
    "descriptor_median_perplexity", "descriptor_ranking", "design_for_limit", "fill", "likelihood_bias_metric",
    "load_vocabulary", "mann_whitney_u", "noun_order", "noun_phrase", "permutation", "sample_sentences",
]
