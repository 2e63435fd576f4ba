"""Build a Hugging Face model card (README.md) from an audit run directory.

    build_card(run, info)      -> the full text of a fresh card
    results_section(run)       -> only the audit-results section (what a merge puts in a card)
    write_card(run_dir, ...)   -> <run_dir>/README.md, merged into an existing card by default
                                  (model_cards.update)

The card has YAML front matter (license, tags, and a `model-index` with every metric that has a
Hub dataset, see `model_cards.metadata`) and a Markdown body in the sections of the OPT model
card, rendered from `templates/model_card.md.j2`. The results come right after the short intro,
between the opt-audit markers (`templates/results.md.j2`), so a later merge replaces exactly them.
It reads the run through `audit.store` and never runs a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from audit.store import Run
from audit.verdicts import VerdictPolicy
from model_cards.escape import (TO_BE_COMPLETED, Md, code_block, code_cell, code_span, md_cell, md_link_or_text,
                                md_or_missing, md_text)
from model_cards.info import CardInfo
from model_cards.metadata import dump_front_matter, front_matter
from model_cards.view import CardView, card_view
from reports.verdicts import POLICY_NOTE

TEMPLATE = "model_card.md.j2"
RESULTS_TEMPLATE = "results.md.j2"
BEGIN_MARKER = "<!-- opt-audit:begin -->"
END_MARKER = "<!-- opt-audit:end -->"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def build_card(run: Run, info: CardInfo, *, verdict_policy: VerdictPolicy | None = None) -> str:
    """The card's full text (front matter + body) for a loaded run and the human facts."""
    view = card_view(run, verdict_policy)
    text = _environment().get_template(TEMPLATE).render(
        front_matter=Md(dump_front_matter(front_matter(run, info))), i=info, **_common(view))
    return text.rstrip("\n") + "\n"


def results_section(run: Run, *, verdict_policy: VerdictPolicy | None = None) -> str:
    """The results section alone, markers included: what a merge writes into someone's card
    (the same text as in a fresh card, so merging into one changes nothing)."""
    view = card_view(run, verdict_policy)
    text = _environment().get_template(RESULTS_TEMPLATE).render(**_common(view))
    return text.strip("\n") + "\n"


def write_card(run_dir: Path, *, info: Path | None = None, out: Path | None = None,
               verdict_policy: VerdictPolicy | None = None) -> Path:
    """Write the card of a complete run (default `<run_dir>/README.md`) and return its path.

    An existing file is merged into (only opt-audit's results change, with a backup); see
    `model_cards.update.update_card`, which also reports what it did. `info` is an optional
    card.yaml with the facts only a person knows. Errors raise `AuditError`.
    """
    from model_cards.update import update_card  # update builds on this module

    return update_card(run_dir, info=info, out=out, verdict_policy=verdict_policy).path


def _common(view: CardView) -> dict[str, Any]:
    """Template values shared by the full card and the standalone results section."""
    versions = dict(view.versions)
    install = f'pip install "opt-audit=={versions.get("opt-audit", view.opt_audit_version)}"'
    command = view.command or "# the run's command was not recorded in its manifest"
    return {"v": view, "missing": Md(TO_BE_COMPLETED), "reproduce": code_block(f"{install}\n{command}", "bash"),
            "begin_marker": Md(BEGIN_MARKER), "end_marker": Md(END_MARKER), "policy_note": POLICY_NOTE}


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
