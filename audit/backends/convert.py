"""Load an OPT checkpoint saved by transformers 4.x's TensorFlow or Flax classes into PyTorch OPT.

Why: many OPT checkpoints on the hub were saved by `TFOPTForCausalLM` (`tf_model.h5`) or
`FlaxOPTForCausalLM` (`flax_model.msgpack`), and transformers 5 dropped TensorFlow and Flax, so it
can no longer read them. A local folder whose only weights are one of these files is converted here,
in memory, at load time; nothing is written to disk and no TensorFlow or JAX runtime is needed.

Safety: both files are read as data only. `h5py` reads HDF5 float datasets (one stored in another
file, external or virtual, is refused: the pin covers only the folder); `msgpack` decodes plain
values plus Flax's one array extension (shape, dtype name, raw bytes); nothing is unpickled and no
code from the folder runs. The folder is pinned by the sha256 of every file like any local model
(audit.pinning.pin_folder, done by the HF backend), so the h5/msgpack file is in the cache key.

The name mapping, read from files that transformers 4.49 wrote (tests/fixtures/tf_flax):
  TF   <scope>/model/decoder/layers.0/fc1/kernel:0  (in, out)  -> model.decoder.layers.0.fc1.weight (out, in)
       .../self_attn_layer_norm/gamma:0, beta:0               -> ...self_attn_layer_norm.weight, .bias
       .../embed_tokens/weight:0, embed_positions/embeddings:0 -> ...embed_tokens.weight, embed_positions.weight
       (<scope> is the Keras name scope, `tfopt_for_causal_lm` or `tfopt_for_causal_lm_1`: dropped)
  Flax model/decoder/layers/0/fc1/kernel  (in, out)         -> model.decoder.layers.0.fc1.weight (out, in)
       .../final_layer_norm/scale, bias; .../embed_tokens/embedding -> ....weight, .bias; ....weight
A Keras/Flax `kernel` is the transpose of a torch Linear `weight`. The LM head is tied to the token
embedding in OPT, so neither file stores it. Every tensor must map onto a weight of OPTForCausalLM
with the right shape, and every weight must be filled: anything else is an error naming the tensor.

Scope: OPT only (config.json `model_type` "opt"), one unsharded file. Both the pre-LN layout
(OPT-125m and most sizes) and the OPT-350m layout (post-LN, project_in/project_out) are covered.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from audit.errors import AuditError

if TYPE_CHECKING:
    import numpy as np
    import torch

TF_FILE = "tf_model.h5"
FLAX_FILE = "flax_model.msgpack"
# Any of these means the folder has PyTorch weights, which transformers loads itself (and prefers).
TORCH_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
FLAX_NDARRAY_EXT = 1  # flax.serialization's msgpack extension code for an ndarray; 2, 3 are refused
FLAX_DTYPES = ("float32", "float16", "bfloat16", "float64")  # what a weight file may hold

# Leaf name in the file -> (leaf name in torch, transposed?). A leaf not listed is an error.
TF_LEAVES = {"kernel": ("weight", True), "bias": ("bias", False), "gamma": ("weight", False),
             "beta": ("bias", False), "embeddings": ("weight", False), "weight": ("weight", False)}
FLAX_LEAVES = {"kernel": ("weight", True), "bias": ("bias", False), "scale": ("weight", False),
               "embedding": ("weight", False)}


@dataclass(frozen=True)
class ForeignCheckpoint:
    """A TF or Flax weight file that transformers 5 cannot read, found in a local model folder."""

    path: Path  # the tf_model.h5 or flax_model.msgpack
    format: Literal["tf", "flax"]


@dataclass(frozen=True)
class FileTensor:
    """One tensor of the file, under the torch name it maps to."""

    name: str  # as the file spells it (what error messages name)
    array: Any  # numpy array, in the file's layout
    transposed: bool  # a kernel: torch wants array.T


def foreign_checkpoint(model: str, directory: Path) -> ForeignCheckpoint | None:
    """The TF/Flax weight file to convert, or None when the folder has PyTorch weights (or neither).

    PyTorch weights win, as they always have: a folder with both loads through transformers as before.
    Of TF and Flax, TF is taken when both are present (either gives the same model). A sharded
    TF/Flax checkpoint (only an index) is refused here rather than failing inside transformers.
    """
    if any((directory / name).is_file() for name in TORCH_WEIGHTS):
        return None
    for name, fmt in ((TF_FILE, "tf"), (FLAX_FILE, "flax")):
        if (directory / name).is_file():
            return ForeignCheckpoint(directory / name, fmt)  # type: ignore[arg-type]
    for name in (TF_FILE, FLAX_FILE):
        if (directory / f"{name}.index.json").is_file():
            raise AuditError(f"--model {model}: {name}.index.json: sharded {name} checkpoints are not supported; "
                             "convert it to safetensors with transformers 4.x (save_pretrained) first")
    return None


def load_converted(model: str, ckpt: ForeignCheckpoint, kwargs: dict[str, Any]) -> tuple[Any, dict[str, list[str]]]:
    """Build OPTForCausalLM from the folder's config.json and fill it with the converted tensors.

    `kwargs` are the HF backend's from_pretrained arguments (dtype, attn_implementation, device_map);
    trust_remote_code is always False: only transformers' own OPT class is ever built. Returns the model and
    transformers' loading info, like `from_pretrained(..., output_loading_info=True)`; any missing,
    unexpected or mismatched key has already been refused here.
    """
    from transformers import OPTForCausalLM

    config = opt_config(model, ckpt.path.parent)
    expected = expected_shapes(config)
    tensors = read_tensors(model, ckpt)
    state = to_state_dict(model, ckpt, tensors, expected)
    options = {**kwargs, "trust_remote_code": False}  # transformers' own OPT class; the folder's code never runs
    result: Any = OPTForCausalLM.from_pretrained(None, config=config, state_dict=state, output_loading_info=True,
                                                 **options)
    loaded, info = result
    leftover = sorted({*info.get("missing_keys", ()), *info.get("unexpected_keys", ()),
                       *(str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys", ()))})
    if leftover:  # our own checks above should make this unreachable; never load a half-filled model
        raise AuditError(f"--model {model}: {ckpt.path.name} did not load cleanly into OPTForCausalLM "
                         f"({', '.join(leftover[:3])})")
    return loaded, info


def opt_config(model: str, directory: Path) -> Any:
    """The folder's OPTConfig; any other model_type is refused (the mapping is OPT's)."""
    from transformers import OPTConfig

    path = directory / "config.json"
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise AuditError(f"--model {model}: {path} is not a readable JSON object ({exc})") from None
    if model_type != "opt":
        raise AuditError(f"--model {model}: its weights are only in TF/Flax format, which opt-audit converts "
                         f"for OPT models only (config.json model_type is {model_type!r}, not 'opt')")
    return OPTConfig.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)


def expected_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor OPTForCausalLM must be given, with its torch shape, from a weightless (meta) build.

    A tied weight (the LM head, when tie_word_embeddings) is listed once, under the embedding's name,
    because `named_parameters` yields a shared parameter once.
    """
    import torch
    from transformers import OPTForCausalLM

    with torch.device("meta"):
        skeleton = OPTForCausalLM(config)
    owned = {name for name, _ in skeleton.named_parameters()} | {name for name, _ in skeleton.named_buffers()}
    return {name: tuple(t.shape) for name, t in skeleton.state_dict().items() if name in owned}


def read_tensors(model: str, ckpt: ForeignCheckpoint) -> list[tuple[str, "np.ndarray"]]:
    """(name as the file spells it, array) for every tensor of the file, read as data only."""
    reader = read_tf_h5 if ckpt.format == "tf" else read_flax_msgpack
    try:
        return reader(ckpt.path)
    except AuditError as exc:
        raise AuditError(f"--model {model}: {exc}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:  # truncated, not HDF5/msgpack, bad payload
        raise AuditError(f"--model {model}: {ckpt.path} is not a readable {ckpt.path.name} ({exc})") from None


def read_tf_h5(path: Path) -> list[tuple[str, "np.ndarray"]]:
    """Every dataset of a Keras h5 weight file, named as Keras lists it (`<scope>/model/.../kernel:0`).

    Keras stores each layer's weights under a group named for the layer; the dataset path below that
    group is the weight name. Attributes are never evaluated; only numeric datasets are read.
    """
    h5py = _require("h5py", path)
    found: list[tuple[str, Any]] = []
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                weight = name.split("/", 1)[1] if "/" in name else name  # below the layer's group
                if obj.dtype.kind != "f":
                    raise AuditError(f"{path.name}: tensor '{weight}' has dtype {obj.dtype}, not a float weight")
                if obj.external or obj.is_virtual:  # its bytes would come from outside the pinned folder
                    raise AuditError(f"{path.name}: tensor '{weight}' is stored in another file, which is refused")
                found.append((weight, obj[()]))
        f.visititems(visit)
    return found


def read_flax_msgpack(path: Path) -> list[tuple[str, "np.ndarray"]]:
    """Every array of a Flax msgpack weight file, named by its path in the nested dict (`model/.../kernel`).

    Flax writes an array as msgpack extension 1 holding (shape, dtype name, raw bytes); those are
    rebuilt with numpy from the bytes. Any other extension, or a value that is not a dict of arrays,
    is refused.
    """
    msgpack = _require("msgpack", path)
    import numpy as np
    import torch

    def ext_hook(code: int, data: bytes) -> Any:
        if code != FLAX_NDARRAY_EXT:
            raise AuditError(f"{path.name}: msgpack extension {code} is not a Flax array")
        shape, dtype, buffer = msgpack.unpackb(data, raw=False)
        if dtype not in FLAX_DTYPES:
            raise AuditError(f"{path.name}: an array has dtype {dtype!r}, not a float weight")
        if dtype == "bfloat16":  # numpy has no bfloat16: widen through torch, exactly
            return torch.frombuffer(bytearray(buffer), dtype=torch.bfloat16).float().numpy().reshape(shape)
        return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)

    with path.open("rb") as f:
        tree = msgpack.unpack(f, ext_hook=ext_hook, raw=False, strict_map_key=False)
    found: list[tuple[str, Any]] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            if "__msgpack_chunked_array__" in node:
                raise AuditError(f"{path.name}: '{prefix}' is a chunked array (over 1 GiB), which is not supported")
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, np.ndarray):
            found.append((prefix, node))
        else:
            raise AuditError(f"{path.name}: '{prefix}' is a {type(node).__name__}, not an array")

    walk(tree, "")
    return found


def torch_name(name: str, fmt: Literal["tf", "flax"]) -> tuple[str, bool]:
    """The OPTForCausalLM parameter a file tensor maps to, and whether it is stored transposed.

    Raises AuditError naming the tensor when its last component is not a known weight leaf.
    """
    parts = re.sub(r":\d+$", "", name).split("/")
    if fmt == "tf":
        parts = parts[1:]  # the Keras scope (tfopt_for_causal_lm, tfopt_for_causal_lm_1, ...)
    leaves = TF_LEAVES if fmt == "tf" else FLAX_LEAVES
    if len(parts) < 2 or parts[-1] not in leaves:
        raise AuditError(f"tensor '{name}' is not a weight of an OPT {fmt.upper()} checkpoint "
                         f"(its last part is not one of {', '.join(leaves)})")
    leaf, transposed = leaves[parts[-1]]
    if parts[0] == "decoder":  # saved by the base model class (TFOPTModel / FlaxOPTModel)
        parts = ["model", *parts]
    return ".".join([*parts[:-1], leaf]), transposed


def to_state_dict(model: str, ckpt: ForeignCheckpoint, tensors: list[tuple[str, "np.ndarray"]],
                  expected: dict[str, tuple[int, ...]]) -> dict[str, "torch.Tensor"]:
    """Map every file tensor onto OPTForCausalLM, refusing unknown names, wrong shapes and gaps."""
    import torch

    where = f"--model {model}: {ckpt.path.name}"
    mapped: dict[str, FileTensor] = {}
    for name, array in tensors:
        try:
            target, transposed = torch_name(name, ckpt.format)
        except AuditError as exc:
            raise AuditError(f"{where}: {exc}") from None
        if target not in expected:
            raise AuditError(f"{where}: tensor '{name}' (read as {target}) is not a weight of OPTForCausalLM "
                             "with this config.json")
        if target in mapped:
            raise AuditError(f"{where}: tensors '{mapped[target].name}' and '{name}' both map to {target}")
        want = expected[target][::-1] if transposed else expected[target]
        if tuple(array.shape) != want:
            raise AuditError(f"{where}: tensor '{name}' has shape {tuple(array.shape)}, but {target} "
                             f"needs {want} (from config.json)")
        mapped[target] = FileTensor(name, array, transposed)
    missing = [name for name in expected if name not in mapped]
    if missing:
        raise AuditError(f"{where}: no tensor for {len(missing)} weight(s) of OPTForCausalLM "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                         "they would be filled randomly")
    import numpy as np

    state: dict[str, torch.Tensor] = {}
    for target, t in mapped.items():
        array = np.ascontiguousarray(t.array.T if t.transposed else t.array)  # (out, in) for a Linear
        state[target] = torch.from_numpy(array if array.flags.writeable else array.copy())  # msgpack: read-only
    return state


def _require(module: str, path: Path) -> Any:
    """Import the optional reader, or one line naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AuditError(f"reading {path.name} needs the {module} package, which is not installed: "
                         f"pip install 'opt-audit[tf-flax]' (or pip install {module})") from None
