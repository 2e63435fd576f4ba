"""The layout rules of docs/design.md, checked on the source: one-way imports, and probe knowledge
only in probes/ (a module outside probes/ and tests/ never names a probe in its code)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from probes.registry import PROBES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audit", "reports", "dashboards", "model_cards")
COMPOSITION_ROOTS = {"audit/cli.py", "audit/api.py"}  # they build probes and pass them in
# audit/ never imports these; the views never import torch or the backends
NEVER = {
    "audit": ("probes", "reports", "dashboards", "model_cards"),
    "probes": ("reports", "dashboards", "model_cards", "audit.backends", "audit.runner", "audit.engine"),
    "reports": ("probes", "audit.backends", "audit.runner", "audit.engine", "torch"),
    "model_cards": ("probes", "audit.backends", "audit.runner", "audit.engine", "torch"),
    "dashboards": ("probes", "audit.backends", "audit.runner", "audit.engine", "torch"),
}
# documented departures (docs/design.md, "Departures"): a view reading today's registry for runs
# written before probes described themselves
DEPARTURES = {("reports/describe.py", "probes")}
# names that are keys of committed artifacts, not references to a probe: the embedded scorer's
# validity record sections and the shipped head's recipe record name the data sets they were
# measured on; renaming them would change the head's sha256 and so every scorer id and cache key
RECORDED = {
    ("audit/scoring/validity.py", "ethos"),
    ("audit/scoring/train_embedded.py", "toxigen"),
    ("audit/scoring/train_embedded.py", "bold"),
    ("audit/scoring/train_embedded.py", "rtp"),
}


def modules(*packages: str) -> list[Path]:
    files = [p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))]
    return [p for p in files if "__pycache__" not in p.parts]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants (prose may cite a data set)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def code_names(tree: ast.AST) -> set[str]:
    """Every identifier and every string constant of the code, docstrings excluded."""
    skip = docstrings(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found.add(node.value)
    return found


def test_the_walk_sees_names_strings_and_imports_but_not_docstrings() -> None:
    # a guard for the two tests below: a checker that saw nothing would pass them vacuously
    tree = ast.parse('"""cites crows_pairs in prose"""\nimport torch\nfrom probes import x\n'
                     'def f(bold):\n    """prose: toxigen"""\n    return {"ethos": bold.seat}\n')
    assert imported(tree) == ["torch", "probes"]
    names = code_names(tree)
    assert {"bold", "ethos", "seat"} <= names and "crows_pairs" not in names and "toxigen" not in names
    assert "cites crows_pairs in prose" not in names


@pytest.mark.parametrize("package", sorted(NEVER))
def test_imports_point_one_way(package: str) -> None:
    bad = []
    for path in modules(package):
        if rel(path) in COMPOSITION_ROOTS:
            continue
        for name in imported(ast.parse(path.read_text(encoding="utf-8"))):
            for banned in NEVER[package]:
                if (name == banned or name.startswith(banned + ".")) and (rel(path), banned) not in DEPARTURES:
                    bad.append(f"{rel(path)} imports {name}")
    assert not bad, "upward imports (docs/design.md, One-way imports):\n" + "\n".join(bad)


def test_no_module_outside_probes_names_a_probe() -> None:
    probe_names = set(PROBES) | {a for e in PROBES.values() for a in e.info.aliases}
    assert {"crows_pairs", "repetition", "rtp"} <= probe_names  # the registry and its aliases were read
    found = []
    for path in modules(*PACKAGES) + [ROOT / "app.py"]:
        if rel(path) in COMPOSITION_ROOTS:
            continue
        for name in sorted(code_names(ast.parse(path.read_text(encoding="utf-8"))) & probe_names):
            if (rel(path), name) not in RECORDED:
                found.append(f"{rel(path)}: {name!r}")
    assert not found, "probe knowledge outside probes/ (declare it in the probe's ProbeInfo):\n" + "\n".join(found)
