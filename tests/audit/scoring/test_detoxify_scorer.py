"""DetoxifyScorer against real detoxify objects, over a tiny random BERT checkpoint in detoxify's format.

The checkpoint is built once per module: a 2-layer BERT (hidden 32) with a hand-written wordpiece
vocabulary, saved exactly as detoxify's published .ckpt files are laid out (config.arch.args,
config.dataset.args.classes, state_dict). Its scores mean nothing; what is tested is that the
chunked scorer reproduces detoxify's own predict, does not move with batching, and fails clearly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from audit.errors import AuditError
from audit.scoring.base import Scorer
from audit.scoring.detoxify_scorer import DetoxifyScorer, sha256_file

JIGSAW_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
STANDARD_CLASSES = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
WORDS = ("the a an and or but if of to in on at for with by from as is are was were be been "
         "i you he she it we they me him her us them my your his its our their this that these those "
         "good bad nice kind stupid idiot hate love fool awful great people man woman men women person "
         "black white asian muslim christian jewish gay straight old young poor rich doctor nurse "
         "teacher kill hurt hit help run walk say said think know like want need go went come came "
         "day night home work school city car dog cat food water money time year week not no yes "
         "very so too much many more most some any all every each other same new first last long "
         "little own right big high different small large next early important few public able").split()


def build_tiny_detoxify(root: Path, classes: list[str] = JIGSAW_CLASSES, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny BERT config/tokenizer dir and a detoxify-format checkpoint; (checkpoint, config_dir)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    config_dir = root / "tiny-bert"
    config_dir.mkdir(parents=True, exist_ok=True)
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(dict.fromkeys(WORDS))
    pieces += list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-")
    pieces += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces += ["##s", "##ed", "##ing", "##ly", "##er"]
    pieces = list(dict.fromkeys(pieces))
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab), do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(str(config_dir))
    config = BertConfig(vocab_size=len(pieces), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(classes))
    config.save_pretrained(str(config_dir))
    torch.manual_seed(seed)  # the only RNG the builder uses; weights are fixed for a given seed
    model = BertForSequenceClassification(config)
    checkpoint = root / f"tiny-{seed}-{len(classes)}.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": "bert-base-uncased",
                                             "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": len(classes)}},
                           "dataset": {"args": {"classes": classes}}},
                "state_dict": model.state_dict()}, checkpoint)
    return checkpoint, config_dir


TEXTS = [
    "You are a wonderful person and I love working with you.",
    "You stupid idiot, I hate you.",
    "",
    "the",
    "Black people and white people went to school.",
    "She said the doctor was very kind to the old man.",
    "I will hurt you.",
    "Muslim, Christian and Jewish women came home early.",
    "a " * 40,
    "Rich people think poor people are lazy fools!!!",
    "unknownwordzzz qqq xyz",
    "12345 67890",
    "What a great day for a long walk with the dog.",
    "THIS IS SHOUTING IN CAPITALS",
    "tabs\tand\nnewlines\r\n",
    "émigré café naïve",
    "中文文本",
    "👍🔥",
    "It is not not bad, it is good.",
    "they were the first and the last",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_tiny_detoxify(tmp_path_factory.mktemp("detoxify"))


@pytest.fixture(scope="module")
def scorer(tiny: tuple[Path, Path]) -> DetoxifyScorer:
    checkpoint, config_dir = tiny
    return DetoxifyScorer(model_type="custom", checkpoint=checkpoint, config_dir=config_dir, device="cpu")


def _close(a: dict[str, list[float]], b: dict[str, list[float]], tol: float = 1e-6) -> None:
    assert set(a) == set(b)
    for key in a:
        assert len(a[key]) == len(b[key])
        for x, y in zip(a[key], b[key]):
            assert abs(x - y) <= tol, (key, x, y)


def test_matches_detoxify_predict(scorer: DetoxifyScorer) -> None:
    """The peer baseline: detoxify's own predict over the same real model, padded as one batch."""
    baseline = scorer._detox.predict(TEXTS)  # the same Detoxify object the scorer was built from
    _close(scorer.score(TEXTS), {k: list(v) for k, v in baseline.items()})


def test_matches_independently_built_detoxify(tiny: tuple[Path, Path], scorer: DetoxifyScorer,
                                              tmp_path: Path) -> None:
    """A Detoxify built separately through the same offline route (checkpoint rewritten to the dir)."""
    from detoxify import Detoxify

    checkpoint, config_dir = tiny
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)
    loaded["config"]["arch"]["args"]["model_type"] = str(config_dir)
    local = tmp_path / "local.ckpt"
    torch.save(loaded, local)
    peer = Detoxify(checkpoint=str(local), device="cpu")
    _close(scorer.score(TEXTS), peer.predict(TEXTS))


def test_batching_does_not_move_scores(tiny: tuple[Path, Path], scorer: DetoxifyScorer) -> None:
    checkpoint, config_dir = tiny
    small = DetoxifyScorer(model_type="custom", checkpoint=checkpoint, config_dir=config_dir, device="cpu",
                           token_budget=512)  # forces many chunks: 512 // longest row
    texts = TEXTS + ["word " * n for n in range(0, 300, 7)]
    _close(small.score(texts), scorer.score(texts))
    one = scorer.score(["just one text"])
    assert all(isinstance(v, list) and len(v) == 1 for v in one.values())
    assert scorer.score([]) == {k: [] for k in scorer.keys}


def test_keys_standardised_and_stable(scorer: DetoxifyScorer) -> None:
    assert isinstance(scorer, Scorer) and scorer.keys == STANDARD_CLASSES
    assert tuple(scorer.score(["a"])) == tuple(scorer.score(TEXTS)) == STANDARD_CLASSES
    assert scorer.name == "detoxify:custom"
    prov = scorer.provenance()
    assert prov["sha256"] == sha256_file(scorer.checkpoint) and len(prov["sha256"]) == 64
    assert prov["classes"] == list(STANDARD_CLASSES) and prov["max_tokens"] == 512
    assert prov["device"] == "cpu" and prov["dtype"] == "float32"
    assert scorer.id == f"detoxify:custom@{prov['sha256'][:16]}|v{scorer.version}"


def test_edge_texts_are_scored(scorer: DetoxifyScorer) -> None:
    texts = ["", " ".join(["people"] * 2000), "bad \udcff byte", "\ud800"]
    scores = scorer.score(texts)
    for values in scores.values():
        assert len(values) == 4 and all(0.0 <= v <= 1.0 and math.isfinite(v) for v in values)
    # the long text is truncated at 512 tokens: 600 more words change nothing
    longer = scorer.score([" ".join(["people"] * 2600)])
    assert all(abs(scores[k][1] - longer[k][0]) <= 1e-6 for k in scores)


def test_offline_nothing_touches_the_hub(tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("something tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # any hub call would have to connect
    monkeypatch.setattr(socket, "create_connection", no_network)
    checkpoint, config_dir = tiny
    offline = DetoxifyScorer(model_type="custom", checkpoint=checkpoint, config_dir=config_dir, device="cpu")
    assert len(offline.score(["hello"])["toxicity"]) == 1


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="nope.ckpt"):
        DetoxifyScorer(model_type="custom", checkpoint=tmp_path / "nope.ckpt", device="cpu")


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "random.ckpt"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(AuditError, match="random.ckpt.*not a readable torch file"):
        DetoxifyScorer(model_type="custom", checkpoint=bad, device="cpu")


def test_torch_file_without_config(tmp_path: Path) -> None:
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}}, bare)
    with pytest.raises(AuditError, match="bare.ckpt.*lacks config"):
        DetoxifyScorer(model_type="custom", checkpoint=bare, device="cpu")


def test_sha256_prefix_mismatch(tiny: tuple[Path, Path]) -> None:
    checkpoint, config_dir = tiny
    actual = sha256_file(checkpoint)
    with pytest.raises(AuditError, match=f"c1212f89.*{actual}"):
        DetoxifyScorer(model_type="original", checkpoint=checkpoint, config_dir=config_dir, device="cpu")


def test_classes_without_toxicity(tmp_path: Path) -> None:
    checkpoint, config_dir = build_tiny_detoxify(tmp_path, classes=["joy", "anger"])
    with pytest.raises(AuditError, match=r"no 'toxicity' class.*\['joy', 'anger'\]"):
        DetoxifyScorer(model_type="custom", checkpoint=checkpoint, config_dir=config_dir, device="cpu")


def test_unknown_model_type_and_missing_published_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuditError, match="unknown detoxify model type 'bogus'"):
        DetoxifyScorer(model_type="bogus")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(AuditError, match="--scorer-checkpoint.*--scorer-config"):
        DetoxifyScorer(model_type="original", device="cpu")
