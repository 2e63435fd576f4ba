"""SEAT: the WEAT statistics on hand-worked vectors, the bundled word sets, the Embed request through the
real hf backend and engine (tiny-opt and an OPTModel folder without the LM head), and the CLI end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from audit.errors import AuditError
from audit.types import Embed, Embedding, result_from_json
from probes.loading import ProbeConfig
from probes.seat import (INFO, LAYER, POOLING, Seat, association, effect_size, load_tests, permutation_p,
                         target_scores)

# --------------------------------------------------------------------------------------------
# The statistics, worked by hand
# --------------------------------------------------------------------------------------------
#
# A = {(1, 0)}, B = {(0, 1)}; targets X = {(1, 0), (1, 1)}, Y = {(0, 1), (1, 1)}.
#   s(w) = cos(w, a) - cos(w, b):  s(1,0) = 1 - 0 = 1;  s(1,1) = 1/sqrt2 - 1/sqrt2 = 0;  s(0,1) = 0 - 1 = -1.
#   s over X = [1, 0] (mean 0.5), over Y = [-1, 0] (mean -0.5): difference 1.
#   std of [1, 0, -1, 0] with ddof=1: mean 0, squares sum to 2, 2 / 3 -> sqrt(2/3) = 0.8165.
#   d = 1 / sqrt(2/3) = sqrt(3/2) = 1.2247.
#   Permutations: C(4, 2) = 6 ways to choose the two values that play X; the statistic is
#   sum_Xi - sum_Yi = 2 sum_Xi (the total is 0), observed sum_X = 1. The six sums:
#   {1,0}=1, {1,-1}=0, {1,0'}=1, {0,-1}=-1, {0,0'}=0, {-1,0'}=-1: two reach 1, so p = 2/6 = 1/3.
X = np.array([[1.0, 0.0], [1.0, 1.0]])
Y = np.array([[0.0, 1.0], [1.0, 1.0]])
A = np.array([[1.0, 0.0]])
B = np.array([[0.0, 1.0]])


def test_hand_worked_association_effect_size_and_exact_p() -> None:
    sx, sy = association(X, A, B).s, association(Y, A, B).s
    assert sx == pytest.approx([1.0, 0.0], abs=1e-12) and sy == pytest.approx([-1.0, 0.0], abs=1e-12)
    assert effect_size(sx, sy) == pytest.approx(math.sqrt(1.5), rel=1e-12)  # 1.2247
    test = permutation_p(sx, sy, "hand")
    assert test.exact and test.partitions == 6
    assert test.p == pytest.approx(1 / 3, rel=1e-12)
    assert effect_size(sy, sx) == pytest.approx(-math.sqrt(1.5), rel=1e-12)  # swapping X and Y flips d


def test_effect_size_is_undefined_when_every_target_is_alike() -> None:
    assert math.isnan(effect_size([0.2, 0.2], [0.2, 0.2]))  # std 0: no number, never a 0


def test_sampled_permutation_p_above_the_exact_limit() -> None:
    # X = eight 1s, Y = eight 0s: C(16, 8) = 12,870 partitions > 10,000, so 10,000 are drawn. Only the
    # observed partition reaches sum_Xi = 8, so the exact p is 1/12,870 = 7.8e-5; a draw hits it with
    # probability 1/12,870, so about 0.78 of 10,000 draws do: p = (1 + hits) / 10,001, a few 1e-4 at most.
    sx, sy = [1.0] * 8, [0.0] * 8
    sampled = permutation_p(sx, sy, "seat/test")
    assert not sampled.exact and sampled.partitions == 10_000
    assert 1 / 10_001 <= sampled.p < 6 / 10_001
    assert permutation_p(sx, sy, "seat/test") == sampled  # seeded by the salt: the same every time
    exact = permutation_p(sx, sy, "seat/test", exact_max=20_000)
    assert exact.exact and exact.p == pytest.approx(1 / 12_870)


def test_the_bootstrap_keeps_a_words_sentences_together() -> None:
    # Rows of one test: X words "a" (s = 1, 1) and "b" (s = 0, 0); Y words "c" (s = -1, -1) and "d" (0, 0).
    rows = [{"test": "t", "set": st, "word": w, "s": v} for st, w, v in
            [("X", "a", 1.0), ("X", "a", 1.0), ("X", "b", 0.0), ("X", "b", 0.0),
             ("Y", "c", -1.0), ("Y", "c", -1.0), ("Y", "d", 0.0), ("Y", "d", 0.0)]]
    (scores,) = target_scores(rows)
    assert [ix.tolist() for ix in scores.words_x] == [[0, 1], [2, 3]]
    # d: means 0.5 and -0.5; std of [1,1,0,0,-1,-1,0,0] with ddof=1 = sqrt(4/7), so d = 1 / sqrt(4/7) = 1.3229.
    metrics = {m.name: m for m in Seat(ProbeConfig()).aggregate(rows)}
    d = metrics["effect_size"]
    assert d.value == pytest.approx(math.sqrt(7 / 4), rel=1e-12) and d.groups["t"].n == 8
    assert metrics["mean_abs_effect_size"].value == pytest.approx(math.sqrt(7 / 4), rel=1e-12)
    # With two words a side, each resample takes whole words: X is {a,a}, {a,b} or {b,b}, so every
    # resample's X values come in equal pairs, and the CI lies within the range of those d values.
    assert d.ci is not None and d.ci[0] <= d.value <= d.ci[1]
    # exact p: C(8, 4) = 70 ways to pick the four values that play X; the observed sum_X = 2 is the
    # largest possible, reached by both 1s with two of the four 0s: C(4, 2) = 6 ways, so p = 6/70.
    # One test: the Bonferroni factor is 1.
    assert metrics["permutation_p"].value == pytest.approx(6 / 70, rel=1e-12)
    assert metrics["permutation_p"].groups["t"].value == pytest.approx(6 / 70, rel=1e-12)


def test_no_rows_gives_every_metric_skipped_with_its_reason() -> None:
    metrics = Seat(ProbeConfig()).aggregate([])
    assert [m.name for m in metrics] == ["mean_abs_effect_size", "effect_size", "permutation_p"]
    assert all(m.status == "skipped: no rows" and math.isnan(m.value) for m in metrics)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def test_bundled_tests_and_their_sentences() -> None:
    probe = Seat(ProbeConfig())
    assert [t.id for t in probe.tests] == ["weat6", "weat7", "weat8"]
    counts = {t.id: [len(ws.sentences()) for ws in t.sets().values()] for t in probe.tests}
    # 8 words x 2 templates = 16; the male / female terms lose one template for he/him and she/her
    assert counts == {"weat6": [16, 16, 16, 16], "weat7": [16, 16, 14, 14], "weat8": [16, 16, 14, 14]}
    weat6 = probe.tests[0]
    assert [s.text for s in weat6.X.sentences()[:2]] == ["This is John.", "John is here."]
    assert [s.text for s in weat6.A.sentences()[:2]] == ["This is an executive.", "The executive is here."]
    he = [s.text for s in probe.tests[1].A.sentences() if s.word in ("he", "him")]
    assert he == ["He is here.", "This is him."]
    assert all(r == Embed(r.text, -1, "mean") for r in probe.requests())  # last layer, mean pooling
    assert (LAYER, POOLING) == (-1, "mean") and "mean-pooled" in INFO.description
    assert len(Seat(ProbeConfig(limit=1))) == 1


@pytest.mark.parametrize("bad, message", [
    ({"tests": []}, "non-empty 'tests'"),
    ({"tests": [{"id": "t", "X": {"words": ["a", "b"]}, "Y": {"words": ["c", "d"]}, "A": {"words": ["e"]}}]},
     "set B"),
    ({"tests": [{"id": "t", "X": {"words": [{"word": "a", "this": None, "here": None}]}, "Y": {"words": ["c"]},
                 "A": {"words": ["e"]}, "B": {"words": ["f"]}}]}, "not both"),
    ({"tests": [{"id": "t", "X": {"words": ["a"]}, "Y": {"words": ["c"]}, "A": {"words": ["e"]},
                 "B": {"words": ["f"]}}] * 2}, "appears twice"),
])
def test_malformed_data_is_one_clear_error(tmp_path: Path, bad: dict, message: str) -> None:
    path = tmp_path / "weat.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(AuditError, match=message):
        load_tests(path)


# --------------------------------------------------------------------------------------------
# The Embed request through the real backend, engine and cache
# --------------------------------------------------------------------------------------------


def test_embed_request_key_and_result_round_trip() -> None:
    from audit.cache import request_key

    keys = {request_key("b", Embed("This is John.", layer, pooling), 0)
            for layer in (-1, 0) for pooling in ("mean", "last")}
    assert len(keys) == 4  # layer and pooling are in the cache key
    with pytest.raises(ValueError, match="pooling"):
        Embed("x", -1, "max")
    e = Embedding((0.5, -1.0), 3)
    assert result_from_json("embed", json.loads(json.dumps(e.to_json()))) == e


def test_hf_embed_pools_the_bodys_states_and_ignores_batching(backend) -> None:
    import torch

    texts = ["This is John.", "The executive is here.", "This is an extraordinarily long sentence indeed."]
    together = backend.embed([Embed(t) for t in texts])
    alone = [backend.embed([Embed(t)])[0] for t in texts]
    for a, b in zip(together, alone):  # left padding and batch shape change nothing beyond rounding
        assert np.allclose(a.vector, b.vector, atol=1e-5) and a.n_tokens == b.n_tokens
    # by hand: BOS then the text, the body's last hidden state, mean over the text's positions
    ids = [backend.bos_id, *backend.tokenizer(texts[0], add_special_tokens=False)["input_ids"]]
    with torch.inference_mode():
        h = backend.model.base_model(input_ids=torch.tensor([ids])).last_hidden_state[0]  # (T, H)
    assert np.allclose(together[0].vector, h[1:].mean(0).numpy(), atol=1e-5)
    assert together[0].n_tokens == len(ids) - 1 and len(together[0].vector) == 64  # tiny-opt's hidden size
    last = backend.embed([Embed(texts[0], -1, "last")])[0]
    assert np.allclose(last.vector, h[-1].numpy(), atol=1e-5)
    first_layer = backend.embed([Embed(texts[0], 0, "mean")])[0]
    assert not np.allclose(first_layer.vector, together[0].vector)
    with pytest.raises(AuditError, match="layer 7 does not exist"):
        backend.embed([Embed(texts[0], 7)])


def test_engine_caches_embeddings(backend, tmp_path: Path) -> None:
    from audit.cache import ResultCache
    from audit.engine import EngineOptions, run_requests

    requests = Seat(ProbeConfig(limit=1)).requests()
    opts = EngineOptions(token_budget=64, progress=False)  # several batches
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        first, s1 = run_requests(backend, requests, cache, opts)
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        second, s2 = run_requests(backend, requests, cache, opts)
    assert s1.computed == s1.unique > 0 and s1.batches > 1
    assert s2.computed == 0 and s2.cached == s1.unique
    assert all(first[r] == second[r] for r in requests)  # floats survive the JSON round trip exactly


def test_vllm_backend_refuses_embed_clearly() -> None:
    from audit.backends.vllm import VLLMBackend

    with pytest.raises(AuditError, match="not supported on the vllm backend"):
        VLLMBackend.embed(object.__new__(VLLMBackend), [Embed("This is John.")])


def test_probe_on_an_opt_model_folder_without_lm_head(backend, tiny_dir: Path, tmp_path: Path) -> None:
    """An OPTModel checkpoint (architectures ['OPTModel'], no lm_head weights), built from tiny-opt's config
    and body, gives the same SEAT numbers as tiny-opt: OPT ties its head to the input embeddings, so
    the body is the whole model and the vectors are the body's."""
    from safetensors import safe_open
    from transformers import OPTConfig, OPTModel

    from audit.backends.hf import ModelSpec, load_backend
    from audit.engine import EngineOptions
    from audit.runner import evaluate
    from audit.tiny import load_opt_tokenizer

    config = OPTConfig.from_pretrained(str(tiny_dir))
    config.architectures = ["OPTModel"]
    body = OPTModel(config)
    body.load_state_dict(backend.model.base_model.state_dict())
    folder = tmp_path / "opt-body"
    body.save_pretrained(str(folder))
    load_opt_tokenizer().save_pretrained(str(folder))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert not any("lm_head" in k for k in f.keys())
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["OPTModel"]

    other = load_backend(ModelSpec(str(folder), device="cpu"))
    probe = Seat(ProbeConfig(limit=1))
    opts = EngineOptions(token_budget=4096, progress=False)
    ours = evaluate({"seat": probe}, other, tmp_path / "a.sqlite", options=opts)
    ref = evaluate({"seat": probe}, backend, tmp_path / "b.sqlite", options=opts)
    assert [r["s"] for r in ours.rows["seat"]] == pytest.approx([r["s"] for r in ref.rows["seat"]], abs=1e-6)
    d = {m.name: m.value for m in ours.metrics["seat"][1]}
    assert d["effect_size"] == pytest.approx({m.name: m.value for m in ref.metrics["seat"][1]}["effect_size"],
                                             abs=1e-4)


# --------------------------------------------------------------------------------------------
# End to end through the CLI: run, report, card
# --------------------------------------------------------------------------------------------


def test_cli_run_report_and_card(cli, tmp_path: Path) -> None:
    run = cli("run", "--model", "tiny-opt", "--probes", "seat", "--limit", "2", "--no-progress",
              "--out", str(tmp_path))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    run_dir = Path(run.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    summary = json.loads((run_dir / "summary.json").read_text())
    seat = summary["probes"]["seat"]
    names = [m["name"] for m in seat["metrics"]]
    assert names == ["mean_abs_effect_size", "effect_size", "permutation_p"]
    assert all(m["status"] == "ok" for m in seat["metrics"])
    assert len(seat["metrics"][1]["groups"]) == 2  # two tests at --limit 2
    rows = [json.loads(line) for line in (run_dir / "samples" / "seat.jsonl").read_text().splitlines()]
    assert rows and {r["layer"] for r in rows} == {-1} and {r["pooling"] for r in rows} == {"mean"}
    assert "mean_abs_effect_size" in run.stdout
    report = cli("report", str(run_dir))
    assert report.returncode == 0, report.stderr[-2000:]
    assert "SEAT" in (run_dir / "report.md").read_text()
    card = cli("card", str(run_dir))
    assert card.returncode == 0, card.stderr[-2000:]
    assert "mean_abs_effect_size" in (run_dir / "README.md").read_text()
