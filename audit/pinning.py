"""Pinning and safely loading external resources: the one streamed sha256 every checkpoint, lexicon
and data file uses; the content pin of an unversioned local model (a folder, or one file such as a
GGUF); and the one way a torch pickle is read (`load_weights_only`), which can never run code.

A local model has no hub commit, so its identity is its content. Every file that can change a
result must be in it: weights, but also config.json (activation, layer-norm order), the generation
config, the tokenizer files and chat template, and any code the folder carries. The simplest rule
that cannot miss one: hash every regular file, recursively, except the few that no loader reads
(see `is_model_input`). A file too many costs a cache miss; a file too few serves stale results.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import AuditError


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed so a multi-GB checkpoint never sits in memory."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ContentPin:
    """The content identity of a local model; `revision` goes into the backend id (the cache key).

    For one file, `digest` is that file's sha256, so `sha256sum FILE` checks it. For a folder, it is
    the sha256 of `listing()`: what `sha256sum` prints for the pinned files, run in the folder with
    the paths in sorted order ("<sha256>  <relative path>\\n" per file).
    """

    digest: str  # hex sha256 (see above)
    files: tuple[tuple[str, str], ...]  # (path relative to the folder, or the file name; hex sha256), by path

    @property
    def revision(self) -> str:
        """What backends record as the model's revision: `sha256:<digest>`."""
        return f"sha256:{self.digest}"

    def listing(self) -> str:
        """The `sha256sum`-format listing the folder digest is taken over."""
        return _listing(self.files)

    def as_dict(self) -> dict[str, str]:
        """Per-file hashes for the manifest's model facts."""
        return dict(self.files)


def is_model_input(relative: str) -> bool:
    """False only for files no model or tokenizer loader reads: hidden entries (.git, .cache,
    .gitattributes), Markdown and README files (model cards), and LICENSE files."""
    parts = relative.split("/")
    if any(p.startswith(".") for p in parts):
        return False
    name = parts[-1].upper()
    return not (name.endswith(".MD") or name.startswith(("README", "LICENSE", "LICENCE")))


def pin_file(path: Path | str) -> ContentPin:
    """Pin a single-file model (e.g. a .gguf) by the file's own sha256."""
    path = Path(path)
    digest = _hash(path)
    return ContentPin(digest, ((path.name, digest),))


def pin_folder(directory: Path | str) -> ContentPin:
    """Pin a local model folder by every file that can change a result (see the module docstring).

    Symbolic links to files are followed (a hub snapshot folder is made of them); linked folders
    are not entered, so a link loop cannot hang a run.
    """
    directory = Path(directory)
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            path = Path(root) / name
            relative = path.relative_to(directory).as_posix()
            if path.is_file() and is_model_input(relative):  # regular files (or links to them) only
                found.append((relative, path))
    files = tuple(sorted((relative, _hash(path)) for relative, path in found))
    return ContentPin(hashlib.sha256(_listing(files).encode("utf-8")).hexdigest(), files)


def _hash(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise AuditError(f"{path}: cannot be read to pin the model ({exc.strerror or exc})") from None


def _listing(files: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"{sha}  {name}\n" for name, sha in files)


def load_weights_only(path: Path | str, what: str) -> Any:
    """torch.load restricted to tensors and plain containers (torch's weights_only unpickler).

    A torch checkpoint is a pickle, and unpickling anything else can run code, so no allowlist is
    added: a checkpoint that needs one is refused. `what` names the file's role in the one-line error.
    """
    import torch

    try:
        with warnings.catch_warnings():  # torch warns before refusing a protocol-4 pickle: one line only
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a refused global, bad zip, truncation: all one answer for the user
        raise AuditError(f"{what} {path} is not a readable torch file of plain weights ({first_line(exc)}); "
                         "torch checkpoints are only read with weights_only=True, which refuses code") from None


def first_line(exc: BaseException) -> str:
    """The informative line of a loader's error, so the CLI prints exactly one line.

    torch's refusal of a pickle spans many lines; the part naming the refused global says what was wrong.
    """
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if text.startswith("Weights only load failed"):  # torch's boilerplate first, then the reason
        marker = "WeightsUnpickler error:"
        if marker in text:
            reason = text.split(marker, 1)[1].strip().splitlines()[0]
            lines = [reason.split(" was not an allowed global", 1)[0]]
        else:
            lines = [ln for ln in lines[1:] if not ln.startswith("Check the documentation")] or lines
    line = lines[0] if lines else type(exc).__name__
    return line[:297] + "..." if len(line) > 300 else line.removesuffix(".")


REMOTE_CODE_FILES = ("config.json", "tokenizer_config.json")  # where transformers reads an `auto_map`


def auto_map_file(directory: Path | str) -> Path | None:
    """The first file of a Hugging Face folder whose `auto_map` would load the folder's own Python
    (None: transformers' built-in classes only). An unreadable or non-object JSON file is an error
    naming it, so it cannot hide an auto_map from this check yet fail later inside transformers."""
    for name in REMOTE_CODE_FILES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AuditError(f"{path} is not readable JSON ({first_line(exc)})") from None
        if not isinstance(config, dict):
            raise AuditError(f"{path} is not a JSON object")
        if "auto_map" in config:
            return path
    return None
