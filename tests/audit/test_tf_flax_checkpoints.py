"""OPT checkpoints saved by transformers 4.x's TF and Flax classes load through the HF backend
(audit.backends.convert), and any tensor that does not fit OPTForCausalLM is refused by name.

The fixtures (tests/fixtures/tf_flax, made once by make_fixtures.py with transformers 4.49) are real
`tf_model.h5` / `flax_model.msgpack` files converted from a seeded PyTorch OPT, with that PyTorch
model's logits on a fixed input. TF and Flax themselves reproduced those logits to at most 1.2e-6
when the fixtures were made, so 1e-5 is the tolerance for our conversion. Every tensor, layer norms
included, was random (std 0.2), so a swapped or transposed tensor moves logits by ~0.1 or more.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from audit.backends.convert import foreign_checkpoint, load_converted
from audit.backends.hf import ModelSpec, load_backend
from audit.errors import AuditError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tf_flax"
REPO = FIXTURES.parents[2]
TF_SCOPE = "model/tfopt_for_causal_lm/"  # h5 path = Keras layer group + weight name
TF_L0 = TF_SCOPE + "model/decoder/layers.0/"
CASES = [("tf", "pre_ln", "tf_model.h5"),
         ("flax", "pre_ln", "flax_model.msgpack"),
         ("tf_post_ln_proj", "post_ln_proj", "tf_model.h5"),
         ("flax_post_ln_proj", "post_ln_proj", "flax_model.msgpack")]


def copy_fixture(name: str, tmp_path: Path) -> Path:
    """A private copy: tests edit weights, and the backend pins whatever folder it is given."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def reference(variant: str) -> tuple[Any, np.ndarray]:
    import torch

    ids = torch.tensor(json.loads((FIXTURES / "reference" / "input_ids.json").read_text(encoding="utf-8")))
    return ids, np.load(FIXTURES / "reference" / f"logits_{variant}.npy", allow_pickle=False)


def logits(model: Any, ids: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits.float().numpy()  # (B, T, V)


def convert(folder: Path) -> Any:
    """The converted model alone (no tokenizer, no backend), for the refusal tests."""
    import torch

    ckpt = foreign_checkpoint("m", folder)
    assert ckpt is not None
    return load_converted("m", ckpt, {"dtype": torch.float32, "attn_implementation": "sdpa"})[0]


def edit_h5(path: Path, edit: Callable[[Any], None]) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        edit(f)


def edit_msgpack(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite a Flax file, keeping its array extensions as they are."""
    import msgpack

    tree = msgpack.unpackb(path.read_bytes(), ext_hook=msgpack.ExtType, raw=False)
    edit(tree)
    path.write_bytes(msgpack.packb(tree))


def flax_array(array: np.ndarray) -> Any:
    """An array as Flax writes it: extension 1 holding (shape, dtype name, raw bytes)."""
    import msgpack

    return msgpack.ExtType(1, msgpack.packb((list(array.shape), array.dtype.name, array.tobytes())))


@pytest.mark.parametrize(("folder", "variant", "weights"), CASES)
def test_tf_and_flax_checkpoints_load_with_the_pytorch_logits(folder: str, variant: str, weights: str,
                                                               tmp_path: Path) -> None:
    model_dir = copy_fixture(folder, tmp_path)
    backend = load_backend(ModelSpec(str(model_dir), device="cpu"))
    ids, ref = reference(variant)
    assert ref.std() > 0.5  # logits of order 1 (std 1.02 pre-LN, 0.51 post-LN): 1e-5 is a tight check
    assert np.abs(logits(backend.model, ids) - ref).max() < 1e-5
    assert type(backend.model).__name__ == "OPTForCausalLM"
    assert backend.model.lm_head.weight is backend.model.model.decoder.embed_tokens.weight  # OPT ties them
    assert weights in backend.files and backend.revision.startswith("sha256:")  # pinned like any folder


def test_a_renamed_tf_tensor_is_one_error_naming_it(tmp_path: Path) -> None:
    folder = copy_fixture("tf", tmp_path)
    edit_h5(folder / "tf_model.h5", lambda f: f.move(TF_L0 + "self_attn/q_proj/kernel:0", TF_L0 + "self_attn/query:0"))
    with pytest.raises(AuditError) as err:
        convert(folder)
    message = str(err.value)
    assert message == ("--model m: tf_model.h5: tensor 'tfopt_for_causal_lm/model/decoder/layers.0/self_attn/query:0' "
                       "is not a weight of an OPT TF checkpoint (its last part is not one of kernel, bias, gamma, "
                       "beta, embeddings, weight)")


def test_a_renamed_flax_leaf_is_one_error_naming_it(tmp_path: Path) -> None:
    folder = copy_fixture("flax", tmp_path)

    def rename(tree: dict) -> None:
        norm = tree["model"]["decoder"]["final_layer_norm"]
        norm["gamma"] = norm.pop("scale")  # a TF name in a Flax file

    edit_msgpack(folder / "flax_model.msgpack", rename)
    with pytest.raises(AuditError, match=r"tensor 'model/decoder/final_layer_norm/gamma' is not a weight of an OPT "
                                         r"FLAX checkpoint"):
        convert(folder)


@pytest.mark.parametrize("fmt", ["tf", "flax"])
def test_a_wrong_shape_names_the_tensor_and_both_shapes(fmt: str, tmp_path: Path) -> None:
    folder = copy_fixture(fmt, tmp_path)
    short = np.zeros((16, 31), dtype=np.float32)  # fc1 kernel is (hidden 16, ffn 32) in both files
    if fmt == "tf":
        def swap(f: Any) -> None:
            del f[TF_L0 + "fc1/kernel:0"]
            f.create_dataset(TF_L0 + "fc1/kernel:0", data=short)
        edit_h5(folder / "tf_model.h5", swap)
        name = "tfopt_for_causal_lm/model/decoder/layers.0/fc1/kernel:0"
    else:
        edit_msgpack(folder / "flax_model.msgpack",
                     lambda tree: tree["model"]["decoder"]["layers"]["0"]["fc1"].update(kernel=flax_array(short)))
        name = "model/decoder/layers/0/fc1/kernel"
    with pytest.raises(AuditError) as err:
        convert(folder)
    assert f"tensor '{name}' has shape (16, 31), but model.decoder.layers.0.fc1.weight needs (16, 32)" in str(err.value)


@pytest.mark.parametrize("fmt", ["tf", "flax"])
def test_a_missing_tensor_is_refused(fmt: str, tmp_path: Path) -> None:
    folder = copy_fixture(fmt, tmp_path)
    if fmt == "tf":
        edit_h5(folder / "tf_model.h5", lambda f: f.__delitem__(TF_SCOPE + "model/decoder/final_layer_norm/gamma:0"))
    else:
        edit_msgpack(folder / "flax_model.msgpack",
                     lambda tree: tree["model"]["decoder"]["final_layer_norm"].pop("scale"))
    with pytest.raises(AuditError, match=r"no tensor for 1 weight\(s\) of OPTForCausalLM "
                                         r"\(model\.decoder\.final_layer_norm\.weight\)"):
        convert(folder)


def test_pytorch_weights_win_over_tf_weights(tmp_path: Path) -> None:
    """A folder with both keeps loading its safetensors through transformers, as before."""
    import torch

    folder = copy_fixture("tf", tmp_path)
    model = convert(folder)
    with torch.no_grad():
        model.model.decoder.final_layer_norm.bias += 0.5  # every logit moves by 0.5 x sum of its embedding row
    model.save_pretrained(str(folder))  # model.safetensors beside tf_model.h5
    ids, ref = reference("pre_ln")
    expected = logits(model, ids)
    assert foreign_checkpoint("m", folder) is None
    backend = load_backend(ModelSpec(str(folder), device="cpu"))
    got = logits(backend.model, ids)
    assert np.abs(got - expected).max() < 1e-5  # the safetensors model ...
    assert np.abs(got - ref).max() > 0.1  # ... not the TF one
    assert {"model.safetensors", "tf_model.h5"} <= set(backend.files)


def test_only_opt_is_converted(tmp_path: Path) -> None:
    folder = copy_fixture("flax", tmp_path)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}), encoding="utf-8")
    with pytest.raises(AuditError, match="converts for OPT models only .*'gpt2'"):
        convert(folder)


def test_a_sharded_tf_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tf_model.h5.index.json").write_text('{"weight_map": {}}', encoding="utf-8")
    with pytest.raises(AuditError, match="sharded tf_model.h5 checkpoints are not supported"):
        foreign_checkpoint("m", tmp_path)


def test_a_msgpack_extension_other_than_flax_arrays_is_refused(tmp_path: Path) -> None:
    """Only Flax's array extension is decoded: anything else is refused, never interpreted."""
    import msgpack

    folder = copy_fixture("flax", tmp_path)
    edit_msgpack(folder / "flax_model.msgpack",
                 lambda tree: tree["model"]["decoder"]["final_layer_norm"].update(bias=msgpack.ExtType(3, b"\x00")))
    with pytest.raises(AuditError, match="msgpack extension 3 is not a Flax array"):
        convert(folder)


def test_an_h5_tensor_stored_in_another_file_is_refused(tmp_path: Path) -> None:
    """HDF5 external storage would read weight bytes from outside the pinned folder."""
    folder = copy_fixture("tf", tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(16, dtype=np.float32).tobytes())

    def external(f: Any) -> None:
        del f[TF_L0 + "fc2/bias:0"]
        f.create_dataset(TF_L0 + "fc2/bias:0", shape=(16,), dtype="float32", external=[(str(outside), 0, 64)])

    edit_h5(folder / "tf_model.h5", external)
    with pytest.raises(AuditError, match=r"tensor 'tfopt_for_causal_lm/model/decoder/layers\.0/fc2/bias:0' is stored "
                                         r"in another file"):
        convert(folder)


def test_a_missing_reader_package_is_one_line_naming_it(tmp_path: Path) -> None:
    """Without h5py (an optional extra) the error names the package; `sys.modules[...] = None` is how
    Python itself marks a module as not importable."""
    folder = copy_fixture("tf", tmp_path)
    code = ("import sys; sys.modules['h5py'] = None\n"
            "from pathlib import Path\n"
            "from audit.backends.convert import foreign_checkpoint, load_converted\n"
            "from audit.errors import AuditError\n"
            f"folder = Path({str(folder)!r})\n"
            "try:\n"
            "    load_converted('m', foreign_checkpoint('m', folder), {})\n"
            "except AuditError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == ("--model m: reading tf_model.h5 needs the h5py package, which is not installed: "
                                  "pip install 'opt-audit[tf-flax]' (or pip install h5py)"), out.stderr


def test_cli_runs_a_flax_checkpoint_and_refuses_a_broken_one(tmp_path: Path, _private_cache: Path) -> None:
    """End to end: `opt-audit run` on the Flax fixture (its byte-level tokenizer covers any text), and
    exit 2 with one line for a TF file with a renamed tensor."""
    from audit.cli import main

    def run(model: Path) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", "--model", str(model), "--probes", "crows_pairs", "--limit", "3", "--no-progress",
                         "--out", str(tmp_path / "runs")])
        return code, err.getvalue()

    code, err = run(copy_fixture("flax", tmp_path))
    assert code == 0, err
    manifests = list((tmp_path / "runs").rglob("manifest.json"))
    assert len(manifests) == 1 and '"flax_model.msgpack"' in manifests[0].read_text(encoding="utf-8")

    broken = copy_fixture("tf", tmp_path)
    edit_h5(broken / "tf_model.h5", lambda f: f.move(TF_L0 + "fc2", TF_L0 + "fc3"))
    code, err = run(broken)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "'tfopt_for_causal_lm/model/decoder/layers.0/fc3/" in lines[0]
