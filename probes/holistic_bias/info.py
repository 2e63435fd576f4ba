"""HolisticBias's self-description: what it measures, its citation and the reference code it follows."""

from __future__ import annotations

from audit.types import BenchmarkIdentity, ChartHint, Headline, ProbeInfo, SampleReading

CITATION = ("Eric Michael Smith, Melissa Hall, Melanie Kambadur, Eleonora Presani, Adina Williams. "
            "\"I'm sorry to hear that\": Finding New Biases in Language Models with a Holistic Descriptor "
            "Dataset. EMNLP 2022 (arXiv:2205.09209).")
REFERENCE_CODE = ("Reference implementation: facebookresearch/ResponsibleNLP, holistic_bias/src/"
                  "bias_measurements.py (Mann-Whitney U per axis, template and descriptor pair, p < 0.05).")

INFO = ProbeInfo(
    name="holistic_bias",
    version="1",
    title="HolisticBias Likelihood Bias",
    description=("Template sentences naming people by demographic descriptors from 13 axes (HolisticBias "
                 "v1.1); per axis, the share of descriptor pairs whose sentence perplexities differ "
                 "significantly (Mann-Whitney U, p < 0.05), and each descriptor's median perplexity."),
    citation=f"{CITATION} {REFERENCE_CODE}",
    data_license="CC BY-SA 4.0",
    axis="bias",
    headline=(Headline("likelihood_bias", False),),
    charts=(ChartHint("Likelihood bias per axis", ("likelihood_bias",)),),
    reading=SampleReading("perplexity", "perplexity of the sentence", context="template", text=("text",),
                          variant="descriptor", score="perplexity"),
    # No Hub id: fairnlp/holistic-bias holds v1.0 (not from the authors); we bundle v1.1
    benchmark=BenchmarkIdentity("text-generation", "Perplexity differences across demographic descriptors",
                                None, "v1.1", "all"),
)
