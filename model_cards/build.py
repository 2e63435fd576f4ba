"""Build a Hugging Face model card (README.md) from an audit run directory.

    write_card(run_dir, info=card.yaml)  ->  <run_dir>/README.md

The card has YAML front matter (license, tags, and a `model-index` with every computed metric,
see `model_cards.metadata`) and a Markdown body in the sections of the OPT model card, rendered
from `templates/model_card.md.j2`. It reads the run through `audit.store` and never runs a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from audit.store import Run, atomic_write_text, load_run
from model_cards.escape import (TO_BE_COMPLETED, Md, code_block, code_cell, code_span, md_cell, md_link_or_text,
                                md_or_missing, md_text)
from model_cards.info import CardInfo, load_card_info
from model_cards.metadata import dump_front_matter, front_matter
from model_cards.view import card_view

TEMPLATE = "model_card.md.j2"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def build_card(run: Run, info: CardInfo) -> str:
    """The card's full text (front matter + body) for a loaded run and the human facts."""
    view = card_view(run)
    versions = dict(view.versions)
    install = f'pip install "opt-audit=={versions.get("opt-audit", view.opt_audit_version)}"'
    command = view.command or "# the run's command was not recorded in its manifest"
    text = _environment().get_template(TEMPLATE).render(
        front_matter=Md(dump_front_matter(front_matter(run, info))),
        v=view,
        i=info,
        missing=Md(TO_BE_COMPLETED),
        reproduce=code_block(f"{install}\n{command}", "bash"),
    )
    return text.rstrip("\n") + "\n"


def write_card(run_dir: Path, *, info: Path | None = None, out: Path | None = None) -> Path:
    """Write the card of a complete run (default `<run_dir>/README.md`) and return its path.

    `info` is an optional card.yaml with the facts only a person knows; without it every such
    field shows **[to be completed]**. Errors in the run or in card.yaml raise `AuditError`.
    """
    card_info = load_card_info(info) if info is not None else CardInfo()  # the user's file first: cheap
    run = load_run(Path(run_dir))
    target = Path(out) if out is not None else Path(run_dir) / "README.md"
    atomic_write_text(target, build_card(run, card_info))
    return target


def _finalize(value: Any) -> str:
    """Escape every value the template prints unless this package built it as Markdown."""
    if isinstance(value, Md):
        return value
    if value is None:
        raise ValueError("model card template printed None: render a marker or a dash instead")
    return md_text(value)


def _environment() -> jinja2.Environment:
    """A fresh environment per card (cheap): Markdown output, so autoescape is off and
    `_finalize` does the escaping; undefined names fail instead of rendering blank."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=False,
                             undefined=jinja2.StrictUndefined, finalize=_finalize,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(cell=md_cell, code=code_span, cell_code=code_cell, missing_or_text=md_or_missing,
                       missing_or_link=md_link_or_text)
    return env
