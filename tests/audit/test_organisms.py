"""The organisms' cache: a build is reused only when it was made by today's recipe and version."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from audit.organisms import ORGANISMS, ORGANISMS_VERSION, is_current


def _fake_build(target: Path, version: str, recipe: dict) -> None:
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"weights")
    (target / "organism.json").write_text(json.dumps({"version": version, "recipe": recipe}), encoding="utf-8")


def test_only_a_build_by_the_current_recipe_is_reused(tmp_path: Path) -> None:
    recipe = asdict(ORGANISMS["toxic"])
    assert not is_current(tmp_path / "missing", "toxic")
    _fake_build(tmp_path / "current", ORGANISMS_VERSION, recipe)
    assert is_current(tmp_path / "current", "toxic")
    assert not is_current(tmp_path / "current", "clean")  # another organism's recipe
    _fake_build(tmp_path / "old_version", "0", recipe)
    assert not is_current(tmp_path / "old_version", "toxic")
    _fake_build(tmp_path / "old_recipe", ORGANISMS_VERSION, asdict(replace(ORGANISMS["toxic"], steps=300)))
    assert not is_current(tmp_path / "old_recipe", "toxic")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"w")
    (tmp_path / "broken" / "organism.json").write_text("{not json", encoding="utf-8")
    assert not is_current(tmp_path / "broken", "toxic")
