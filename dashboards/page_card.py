"""Model card: a preview of the Hugging Face card built from the selected run (`model_cards.build`),
with an optional card.yaml for the human facts, and downloads of the card and of the HTML report
(`reports.render`), exactly as `opt-audit card` and `opt-audit report` would write them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st
import yaml

from audit.errors import AuditError
from audit.store import Run
from dashboards.context import Context
from dashboards.runs import Fingerprint, fingerprint
from dashboards.text import literal_markdown
from dashboards.ui import page_run
from model_cards.build import build_card
from model_cards.info import CardInfo, card_info_from_mapping
from reports.render import write_report


def card_info(text: str, source: str) -> CardInfo:
    """A card.yaml's text as `CardInfo` (safe_load only); malformed input raises AuditError naming `source`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise AuditError(f"{source}: not valid YAML ({e})") from None
    return CardInfo() if data is None else card_info_from_mapping(data, source=source)


@st.cache_data(show_spinner=False, max_entries=16)
def card_text(_run: Run, path: str, fp: Fingerprint, info_yaml: str, info_name: str) -> str:
    """The card of a run (keyed on the run's fingerprint and the card.yaml text)."""
    info = card_info(info_yaml, info_name) if info_yaml else CardInfo()
    return build_card(_run, info)


@st.cache_data(show_spinner=False, max_entries=4)
def report_html(path: str, fp: Fingerprint) -> bytes:
    """The self-contained HTML report of a run, rendered by `reports.render` into a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="opt-audit-report-") as tmp:
        out, = write_report(Path(path), formats=("html",), out=Path(tmp) / "report.html")
        return out.read_bytes()


def split_front_matter(card: str) -> tuple[str, str]:
    """(YAML front matter without its --- fences, Markdown body) of a card; ("", card) without one."""
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end != -1:
            return card[4:end + 1], card[end + 5:]
    return "", card


def render(ctx: Context) -> None:
    run = page_run(ctx, "Model card")
    if run is None:
        return
    path = str(run.path)
    fp = fingerprint(run.path)
    upload = st.file_uploader("card.yaml with the facts only a person knows (optional)", type=["yaml", "yml"],
                              key="card_info")
    info_yaml, info_name = "", ""
    if upload is not None:
        info_name = upload.name
        info_yaml = upload.getvalue().decode("utf-8", errors="replace")
    try:
        card = card_text(run, path, fp, info_yaml, info_name)
    except AuditError as e:
        st.error(literal_markdown(str(e)))
        card = card_text(run, path, fp, "", "")
    if not info_yaml:
        st.caption("Without a card.yaml, every human fact shows **[to be completed]**; see "
                   "model_cards/example_card.yaml for the fields.")

    c1, c2 = st.columns(2)
    c1.download_button("Download model card (README.md)", data=card.encode("utf-8"), file_name="README.md",
                       mime="text/markdown", key="card_download", on_click="ignore")
    c2.download_button("Download HTML report", data=lambda: report_html(path, fp),
                       file_name=f"{run.path.name}_report.html", mime="text/html", key="report_download",
                       on_click="ignore")
    front, body = split_front_matter(card)
    preview, source = st.tabs(["Preview", "Markdown source"])
    with preview:
        if front:
            with st.expander("YAML front matter (model-index)"):
                st.code(front, language="yaml")
        st.markdown(body)
    with source:
        st.code(card, language="markdown")
