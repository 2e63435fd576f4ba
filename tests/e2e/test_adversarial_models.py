"""Hostile and broken model folders and checkpoints through the real CLI.

Each case: exit code 2, exactly one `opt-audit: error:` line on stderr naming the bad file, no
traceback, and nothing from the folder executed (the marker file its code or pickle would write is
absent). Then: a local model's run identity covers every file that changes a result, so an edited
config, generation config, tokenizer or weight file reruns everything instead of reading the cache,
and a broken rerun leaves the previous results intact.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import pytest

from cli_checks import one_error_line


_one_error_line = one_error_line


class _Payload:
    """Unpickling this runs code that writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _code_that_marks(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\n"


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


# Each case breaks a copy of tiny-opt and returns the file the error line must name.
Case = Callable[[Path, Path], str]


def _safetensors_random(d: Path, marker: Path) -> str:
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    return str(d / "model.safetensors")


def _safetensors_truncated(d: Path, marker: Path) -> str:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    return str(d / "model.safetensors")


def _safetensors_empty(d: Path, marker: Path) -> str:
    (d / "model.safetensors").write_bytes(b"")
    return str(d / "model.safetensors")


def _safetensors_bad_header(d: Path, marker: Path) -> str:
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 12) + b"not json!!!!" + bytes(64))
    return str(d / "model.safetensors")


def _bin_instead(d: Path, data: bytes) -> str:
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(data)
    return str(d / "pytorch_model.bin")


def _bin_malicious_torch_save(d: Path, marker: Path) -> str:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"model.decoder.embed_tokens.weight": torch.zeros(2), "x": _Payload(marker)}, buffer)
    return _bin_instead(d, buffer.getvalue())


def _bin_malicious_plain_pickle(d: Path, marker: Path) -> str:
    return _bin_instead(d, pickle.dumps(OrderedDict(x=_Payload(marker)), protocol=4))


def _bin_random(d: Path, marker: Path) -> str:
    return _bin_instead(d, os.urandom(4096))


def _bin_truncated(d: Path, marker: Path) -> str:
    import io

    import torch
    from safetensors.torch import load_file

    buffer = io.BytesIO()
    torch.save(load_file(d / "model.safetensors"), buffer)
    return _bin_instead(d, buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _config_auto_map(d: Path, marker: Path) -> str:
    (d / "modeling_evil.py").write_text(_code_that_marks(marker), encoding="utf-8")
    _edit_json(d / "config.json", auto_map={"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"})
    return str(d / "config.json")


def _config_auto_map_unknown_type(d: Path, marker: Path) -> str:
    """An architecture transformers does not know: the old loader would have asked to run the code."""
    (d / "configuration_evil.py").write_text(_code_that_marks(marker), encoding="utf-8")
    _edit_json(d / "config.json", model_type="evil-lm",
               auto_map={"AutoConfig": "configuration_evil.EvilConfig",
                         "AutoModelForCausalLM": "configuration_evil.EvilForCausalLM"})
    return str(d / "config.json")


def _tokenizer_auto_map(d: Path, marker: Path) -> str:
    (d / "tokenization_evil.py").write_text(_code_that_marks(marker), encoding="utf-8")
    _edit_json(d / "tokenizer_config.json", auto_map={"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]})
    return str(d / "tokenizer_config.json")


def _config_not_json(d: Path, marker: Path) -> str:
    (d / "config.json").write_text("{'model_type': 'opt'", encoding="utf-8")
    return str(d / "config.json")


def _config_a_list(d: Path, marker: Path) -> str:
    (d / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    return str(d / "config.json")


def _tokenizer_config_not_json(d: Path, marker: Path) -> str:
    (d / "tokenizer_config.json").write_bytes(b"\xff\xfe garbage")
    return str(d / "tokenizer_config.json")


def _config_shape_mismatch(d: Path, marker: Path) -> str:
    _edit_json(d / "config.json", hidden_size=32)  # the weights are 64 wide
    return "could not load it"


MODEL_CASES: dict[str, Case] = {
    "safetensors: random bytes": _safetensors_random,
    "safetensors: truncated": _safetensors_truncated,
    "safetensors: empty": _safetensors_empty,
    "safetensors: header is not JSON": _safetensors_bad_header,
    "pytorch_model.bin: pickle that runs code (torch.save)": _bin_malicious_torch_save,
    "pytorch_model.bin: pickle that runs code (plain pickle)": _bin_malicious_plain_pickle,
    "pytorch_model.bin: random bytes": _bin_random,
    "pytorch_model.bin: truncated": _bin_truncated,
    "config.json: auto_map": _config_auto_map,
    "config.json: auto_map of an unknown architecture": _config_auto_map_unknown_type,
    "tokenizer_config.json: auto_map": _tokenizer_auto_map,
    "config.json: not JSON": _config_not_json,
    "config.json: not an object": _config_a_list,
    "tokenizer_config.json: not UTF-8 JSON": _tokenizer_config_not_json,
    "config.json: shapes that do not match the weights": _config_shape_mismatch,
}


@pytest.fixture()
def guarded_env(cli_env: dict[str, str], tmp_path: Path) -> Path:
    """Dynamic modules (if anything ever loaded one) go to tmp, never to the user's cache; the marker path."""
    cli_env["HF_MODULES_CACHE"] = str(tmp_path / "hf-modules")
    return tmp_path / "MARKER-code-ran"


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_hostile_or_broken_model_folder(cli, tiny_dir: Path, tmp_path: Path, guarded_env: Path, case: str) -> None:
    model = shutil.copytree(tiny_dir, tmp_path / "model")
    named = MODEL_CASES[case](model, guarded_env)
    out = tmp_path / "runs"
    proc = cli("run", "--no-progress", "--model", str(model), "--probes", "crows_pairs", "--limit", "2",
               "--out", str(out))
    line = _one_error_line(proc)
    assert line.startswith(f"opt-audit: error: --model {model}: ") and named in line, line
    assert not guarded_env.exists(), "code from the model folder ran"
    assert not list(out.glob("*/manifest.json"))  # refused before a run directory was started


def _scorer_checkpoint_that_runs_code(tmp_path: Path, marker: Path) -> Path:
    import torch

    path = tmp_path / "toxic_evil.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": "bert-base-uncased",
                                             "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": 1}},
                           "dataset": {"args": {"classes": ["toxic"]}}},
                "state_dict": OrderedDict(), "callbacks": _Payload(marker)}, path)
    return path


def _scorer_checkpoint_legacy_format(tmp_path: Path, marker: Path) -> Path:
    """torch's pre-1.6 (non-zip) format, which torch.load still unpickles."""
    import torch

    path = tmp_path / "toxic_legacy.ckpt"
    torch.save({"config": {}, "state_dict": _Payload(marker)}, path, _use_new_zipfile_serialization=False)
    return path


@pytest.mark.parametrize("make", [_scorer_checkpoint_that_runs_code, _scorer_checkpoint_legacy_format],
                         ids=["torch.save", "legacy torch.save"])
def test_hostile_scorer_checkpoint(cli, tmp_path: Path, guarded_env: Path, make) -> None:
    ckpt = make(tmp_path, guarded_env)
    proc = cli("scorers", "validate", "--scorer", "detoxify:custom", "--scorer-checkpoint", str(ckpt))
    line = _one_error_line(proc)
    assert f"detoxify checkpoint {ckpt} is not a readable torch file of plain weights" in line, line
    assert not guarded_env.exists(), "code from the checkpoint ran"


# ------------------------------------------------------------------------- no stale results
def _run(cli, model: Path, out: Path) -> dict:
    proc = cli("run", "--no-progress", "--model", str(model), "--probes", "crows_pairs", "--limit", "3",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = out.iterdir()
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def _perturb_weights(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    name = "model.decoder.final_layer_norm.weight"
    tensors[name] = tensors[name] * 1.5
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})


EDITS: dict[str, Callable[[Path], None]] = {
    "config.json": lambda d: _edit_json(d / "config.json", activation_function="gelu"),
    "generation_config.json": lambda d: _edit_json(d / "generation_config.json", max_length=64),
    "tokenizer_config.json": lambda d: _edit_json(d / "tokenizer_config.json", model_max_length=500),
    "model.safetensors": _perturb_weights,
}


@pytest.mark.heavy  # several CLI runs: make test-all
def test_editing_any_model_file_recomputes_everything(cli, tiny_dir: Path, tmp_path: Path) -> None:
    """The run directory is found again (same command), but the backend id in every cache key has
    changed, so nothing is read from the cache; the manifest records every file's sha256."""
    model = shutil.copytree(tiny_dir, tmp_path / "model")
    out = tmp_path / "runs"
    first = _run(cli, model, out)
    assert first["requests"]["cached"] == 0 and first["requests"]["computed"] > 0
    again = _run(cli, model, out)  # unchanged folder: everything comes from the cache
    assert again["requests"]["computed"] == 0 and again["backend_id"] == first["backend_id"]
    previous = first
    for name, edit in EDITS.items():
        edit(model)
        now = _run(cli, model, out)
        assert now["requests"]["cached"] == 0, f"results for the edited {name} came from the cache"
        assert now["backend_id"] != previous["backend_id"]
        assert now["model"]["files"][name] != previous["model"]["files"][name]
        previous = now


def test_a_broken_rerun_leaves_the_previous_results_intact(cli, tiny_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_dir, tmp_path / "model")
    out = tmp_path / "runs"
    _run(cli, model, out)
    (run_dir,) = out.iterdir()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    _safetensors_truncated(model, tmp_path / "unused")
    proc = cli("run", "--no-progress", "--model", str(model), "--probes", "crows_pairs", "--limit", "3",
               "--out", str(out))
    assert "model.safetensors is not a readable safetensors file" in _one_error_line(proc)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
