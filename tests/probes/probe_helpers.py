"""Helpers the probe tests share: hand-made data files, and building a probe under other global RNGs.

Imported by name (`from probe_helpers import ...`): pytest puts tests/probes on sys.path.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import numpy as np

T = TypeVar("T")


def write_file(path: Path, text: str | bytes) -> Path:
    """Write one data file and return its path: text as UTF-8, bytes as given (a BOM or a bad byte is
    the point of some tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_files(folder: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write a data folder (file name -> content) and return it: probes that read a folder of files."""
    for name, text in files.items():
        write_file(folder / name, text)
    folder.mkdir(parents=True, exist_ok=True)  # an empty mapping still makes the folder
    return folder


def built_under_two_global_seeds(build: Callable[[], T]) -> tuple[T, T]:
    """`build()` twice, with Python's and NumPy's global RNGs seeded differently (and advanced) before
    each, so a --limit subset that leaned on global state would come out different."""
    np.random.seed(1)
    random.seed(1)
    first = build()
    np.random.seed(999)
    random.seed(999)
    np.random.random(10)
    return first, build()
