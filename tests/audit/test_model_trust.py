"""No code runs from a model folder or a checkpoint, and a local model's identity covers every file
that changes a result (audit.pinning, audit.backends.hf, audit.scoring.detoxify_scorer)."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from audit.backends.hf import HFBackend, ModelSpec, check_local_model
from audit.errors import AuditError
from audit.pinning import auto_map_file, pin_file, pin_folder, sha256_file

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this runs code: it writes `marker`. Nothing here may ever unpickle it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _copy(tiny_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_dir, dest)
    return dest


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


# ------------------------------------------------------------------------- trust_remote_code=False
def _calls(tree: ast.AST, names: tuple[str, ...]) -> list[ast.Call]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                out.append(node)
    return out


def test_every_loader_call_in_the_package_states_its_trust() -> None:
    """Source check over audit/: every from_pretrained / SentenceTransformer call passes
    trust_remote_code, and every torch.load passes weights_only=True (a literal)."""
    missing, unsafe = [], []
    for path in sorted((REPO / "audit").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree, ("from_pretrained", "SentenceTransformer")):
            if not any(k.arg in ("trust_remote_code", None) for k in call.keywords):  # None: **kwargs
                missing.append(f"{path.relative_to(REPO)}:{call.lineno}")
        for call in _calls(tree, ("load",)):
            func = call.func
            if isinstance(func, ast.Attribute) and getattr(func.value, "id", None) == "torch":
                ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in call.keywords)
                if not ok:
                    unsafe.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert missing == [], f"loader calls without trust_remote_code: {missing}"
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"


def test_hf_backend_loads_with_trust_remote_code_false(tiny_dir: Path, monkeypatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen: list[tuple[str, object]] = []
    for cls in (AutoTokenizer, AutoModelForCausalLM):
        original = cls.from_pretrained

        def spy(*args, _original=original, _name=cls.__name__, **kwargs):
            seen.append((_name, kwargs.get("trust_remote_code", "absent")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    HFBackend(ModelSpec("tiny-opt", device="cpu"))
    assert seen == [("AutoTokenizer", False), ("AutoModelForCausalLM", False)]


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_auto_map_is_refused_before_anything_loads(tiny_dir: Path, tmp_path: Path, monkeypatch,
                                                   config_file: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _copy(tiny_dir, tmp_path / "model")
    marker = tmp_path / "ran"
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n", encoding="utf-8")
    _edit_json(model / config_file, auto_map={"AutoModelForCausalLM": "evil.Evil", "AutoTokenizer": ["evil.Evil", None]})

    def never(*args, **kwargs):
        raise AssertionError("a loader was called for a folder with an auto_map")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", never)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", never)
    with pytest.raises(AuditError) as err:
        HFBackend(ModelSpec(str(model), device="cpu"))
    message = str(err.value)
    assert str(model / config_file) in message and "auto_map" in message and "--trust-remote-code" in message
    assert "\n" not in message
    assert not marker.exists()


def test_trust_remote_code_is_explicit_and_part_of_the_run_identity(tiny_dir: Path, tmp_path: Path) -> None:
    from dataclasses import asdict

    from audit.runner import RunSpec

    model = _copy(tiny_dir, tmp_path / "model")
    _edit_json(model / "config.json", auto_map={"AutoModelForCausalLM": "evil.Evil"})
    assert auto_map_file(model) == model / "config.json"
    check_local_model(ModelSpec(str(model), trust_remote_code=True), model)  # accepted only when asked
    with pytest.raises(AuditError, match="auto_map"):
        check_local_model(ModelSpec(str(model)), model)
    plain = RunSpec(model=ModelSpec(str(model)), probes=("crows_pairs",))
    trusted = RunSpec(model=ModelSpec(str(model), trust_remote_code=True), probes=("crows_pairs",))
    assert asdict(trusted)["model"]["trust_remote_code"] is True  # manifest.json records the spec verbatim
    assert plain.result_hash() != trusted.result_hash()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_config_that_is_not_a_json_object_is_named(tiny_dir: Path, tmp_path: Path, content: str) -> None:
    model = _copy(tiny_dir, tmp_path / "model")
    (model / "config.json").write_text(content, encoding="utf-8")
    with pytest.raises(AuditError, match=f"{model / 'config.json'} is not"):
        check_local_model(ModelSpec(str(model)), model)


# ------------------------------------------------------------------------- content pinning
def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the last tensor's data: the header stays valid
    path.write_bytes(bytes(data))


EDITS = {
    "config.json: activation": lambda d: _edit_json(d / "config.json", activation_function="gelu"),
    "config.json: layer-norm order": lambda d: _edit_json(d / "config.json", do_layer_norm_before=False),
    "generation_config.json": lambda d: _edit_json(d / "generation_config.json", top_k=7),
    "tokenizer.json": lambda d: (d / "tokenizer.json").write_bytes((d / "tokenizer.json").read_bytes() + b" "),
    "tokenizer_config.json": lambda d: _edit_json(d / "tokenizer_config.json", model_max_length=77),
    "model.safetensors": lambda d: _flip_last_byte(d / "model.safetensors"),
    "new chat_template.jinja": lambda d: (d / "chat_template.jinja").write_text("{{ messages }}"),
    "new file in a subfolder": lambda d: ((d / "extra").mkdir(), (d / "extra" / "a.json").write_text("{}")),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_input_file_changes_the_pin(tiny_dir: Path, tmp_path: Path, edit: str) -> None:
    model = _copy(tiny_dir, tmp_path / "model")
    before = pin_folder(model)
    EDITS[edit](model)
    after = pin_folder(model)
    assert after.digest != before.digest and after.revision != before.revision
    changed = {name for name, sha in set(after.files) ^ set(before.files)}
    assert len(changed) == 1, changed  # exactly the edited file's entry differs


@pytest.mark.parametrize("name", ["README.md", "notes.md", "LICENSE", ".gitattributes", ".git/HEAD",
                                  ".cache/huggingface/download/x.metadata"])
def test_files_no_loader_reads_do_not_change_the_pin(tiny_dir: Path, tmp_path: Path, name: str) -> None:
    model = _copy(tiny_dir, tmp_path / "model")
    before = pin_folder(model)
    (model / name).parent.mkdir(parents=True, exist_ok=True)
    (model / name).write_text("anything", encoding="utf-8")
    assert pin_folder(model) == before


def test_pin_is_the_sha256_of_a_sha256sum_listing(tiny_dir: Path) -> None:
    pin = pin_folder(tiny_dir)
    names = [name for name, _ in pin.files]
    assert names == sorted(names) and "model.safetensors" in names and "config.json" in names
    assert "README.md" not in names
    assert pin.listing() == "".join(f"{sha256_file(tiny_dir / n)}  {n}\n" for n in names)
    assert pin.digest == hashlib.sha256(pin.listing().encode()).hexdigest()
    assert pin.as_dict()["model.safetensors"] == sha256_file(tiny_dir / "model.safetensors")


def test_a_linked_file_is_pinned_by_its_content(tiny_dir: Path, tmp_path: Path) -> None:
    """A hub snapshot folder is made of links to blobs: the pin follows them."""
    linked = tmp_path / "linked"
    linked.mkdir()
    for f in tiny_dir.iterdir():
        (linked / f.name).symlink_to(f)
    assert pin_folder(linked) == pin_folder(tiny_dir)


def test_a_single_file_model_is_pinned_by_its_own_sha256(tmp_path: Path) -> None:
    gguf = tmp_path / "model.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    pin = pin_file(gguf)
    assert pin.digest == sha256_file(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert pin.revision == f"sha256:{pin.digest}" and pin.files == ((gguf.name, pin.digest),)
    with pytest.raises(AuditError, match="cannot be read"):
        pin_file(tmp_path / "missing.gguf")


def test_backend_id_and_facts_cover_the_config(tiny_dir: Path, tmp_path: Path) -> None:
    """Editing config.json alone (same weights) gives another backend id: the cache key cannot match."""
    model = _copy(tiny_dir, tmp_path / "model")
    first = HFBackend(ModelSpec(str(model), device="cpu"))
    _edit_json(model / "config.json", activation_function="gelu")
    second = HFBackend(ModelSpec(str(model), device="cpu"))
    assert first.id != second.id
    facts = second.describe()
    assert facts["files"] == pin_folder(model).as_dict() and facts["revision"] == pin_folder(model).revision
    assert facts["files"]["config.json"] == sha256_file(model / "config.json")
    assert facts["trust_remote_code"] is False and not second.id.endswith("|remote-code")


# ------------------------------------------------------------------------- detoxify checkpoints
def _detoxify_config(model_name: str = "BertForSequenceClassification") -> dict:
    return {"arch": {"args": {"model_type": "bert-base-uncased", "model_name": model_name,
                              "tokenizer_name": "BertTokenizer", "num_classes": 1}},
            "dataset": {"args": {"classes": ["toxic"]}}}


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"config": _detoxify_config(), "state_dict": OrderedDict(), "payload": _Payload(marker)}, path)
    return path


def test_a_malicious_custom_checkpoint_is_refused_unrun(tmp_path: Path) -> None:
    from audit.scoring.detoxify_scorer import DetoxifyScorer

    marker = tmp_path / "ran"
    ckpt = _malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(AuditError) as err:
        DetoxifyScorer(model_type="custom", checkpoint=ckpt, device="cpu")
    assert str(ckpt) in str(err.value) and "weights_only" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_the_published_checkpoint_is_read_weights_only_even_when_its_prefix_matches(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    """The sha256 prefix in a published file's name is 32 bits: a forged cache file can match it.
    The default `--scorer auto` path must still never unpickle code."""
    from audit.scoring import detoxify_scorer
    from audit.scoring.detoxify_scorer import DetoxifyScorer

    marker = tmp_path / "ran"
    ckpt = _malicious_checkpoint(tmp_path / "toxic_original-00000000.ckpt", marker)
    monkeypatch.setattr(DetoxifyScorer, "_published_checkpoint", staticmethod(lambda model_type: ckpt))
    monkeypatch.setattr(detoxify_scorer, "_expected_prefix", lambda file_name: sha256_file(ckpt)[:8])
    with pytest.raises(AuditError, match="is not a readable torch file of plain weights"):
        DetoxifyScorer(model_type="original", device="cpu")
    assert not marker.exists()


def test_a_published_checkpoint_with_the_wrong_hash_is_refused(tmp_path: Path, monkeypatch) -> None:
    from audit.scoring.detoxify_scorer import DetoxifyScorer

    ckpt = tmp_path / "toxic_original-c1212f89.ckpt"
    torch.save({"config": _detoxify_config(), "state_dict": OrderedDict()}, ckpt)
    monkeypatch.setattr(DetoxifyScorer, "_published_checkpoint", staticmethod(lambda model_type: ckpt))
    with pytest.raises(AuditError, match="is not the published 'original' model"):
        DetoxifyScorer(model_type="original", device="cpu")


def test_a_checkpoint_needing_an_allowed_global_is_refused(tmp_path: Path) -> None:
    """No allowlist: a Lightning-style checkpoint with an argparse.Namespace is refused, naming it."""
    import argparse

    from audit.scoring.detoxify_scorer import DetoxifyScorer

    ckpt = tmp_path / "lightning.ckpt"
    torch.save({"config": _detoxify_config(), "state_dict": OrderedDict(),
                "hyper_parameters": argparse.Namespace(lr=1e-4)}, ckpt)
    with pytest.raises(AuditError, match="argparse.Namespace"):
        DetoxifyScorer(model_type="custom", checkpoint=ckpt, device="cpu")


def test_a_checkpoint_naming_an_auto_class_is_refused(tmp_path: Path) -> None:
    from audit.scoring.detoxify_scorer import DetoxifyScorer

    ckpt = tmp_path / "auto.ckpt"
    torch.save({"config": _detoxify_config("AutoModelForSequenceClassification"), "state_dict": OrderedDict()},
               ckpt)
    with pytest.raises(AuditError, match="model_name must name a concrete transformers class"):
        DetoxifyScorer(model_type="custom", checkpoint=ckpt, device="cpu")


def test_a_scorer_config_folder_with_an_auto_map_is_refused(tmp_path: Path) -> None:
    from audit.scoring.detoxify_scorer import DetoxifyScorer

    ckpt = tmp_path / "plain.ckpt"
    torch.save({"config": _detoxify_config(), "state_dict": OrderedDict()}, ckpt)
    config_dir = tmp_path / "bert"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {"AutoConfig": "x.Y"}}))
    with pytest.raises(AuditError, match="auto_map"):
        DetoxifyScorer(model_type="custom", checkpoint=ckpt, config_dir=config_dir, device="cpu")
