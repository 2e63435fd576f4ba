"""`opt-audit report`: render a run directory as one self-contained HTML file and a Markdown file.

The HTML opens from disk with no network: plotly.js is inlined once, each figure is embedded as
JSON in a `<script type="application/json">` element (with `<`, `>` and `&` escaped) and drawn
by one small bootstrap script, and a Content-Security-Policy allows only those two scripts (by
hash) and no outside requests at all, so even a rendering bug could not load or run anything.
Jinja2 autoescapes every value in the HTML; the Markdown environment escapes every value through
`reports.escaping.markdown_text`, so model output is always shown as text.
"""

from __future__ import annotations

import base64
import hashlib
import functools
from pathlib import Path
from typing import Sequence

from audit.compare import compare_runs
from audit.errors import AuditError
from audit.store import atomic_write_text, load_run
from audit.verdicts import VerdictPolicy, load_verdict_policy
from reports.describe import described
from reports.escaping import inline_script, markdown_code_block, markdown_text, script_json
from reports.view import ReportView, build_view

FORMATS = {"html": "report.html", "md": "report.md"}

_BOOT_JS = """(function () {
  "use strict";
  var blocks = document.querySelectorAll('script[type="application/json"][data-chart]');
  for (var i = 0; i < blocks.length; i++) {
    var target = document.getElementById(blocks[i].getAttribute("data-chart"));
    var fig = JSON.parse(blocks[i].textContent);
    Plotly.newPlot(target, fig.data, fig.layout,
                   {responsive: true, displaylogo: false, typesetMath: false});
  }
})();"""


@functools.lru_cache(maxsize=1)
def _environments():
    """The two Jinja2 environments (built on first use, not at import)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    loader = PackageLoader("reports", "templates")
    html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True)
    md = Environment(loader=loader, autoescape=False, undefined=StrictUndefined, trim_blocks=True,
                     lstrip_blocks=True, keep_trailing_newline=True, finalize=markdown_text)
    md.filters["codeblock"] = markdown_code_block
    return html, md


@functools.lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return inline_script(get_plotlyjs())


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def render_html(view: ReportView) -> str:
    """The self-contained HTML report of a view (plotly.js inlined, charts drawn from embedded JSON)."""
    from markupsafe import Markup

    from reports.charts import figure_json

    html, _ = _environments()
    plotly_js = _plotly_js()
    figures = {c.data.id: Markup(script_json(figure_json(c.data))) for c in view.charts}
    csp = ("default-src 'none'; "
           f"script-src {_csp_hash(plotly_js)} {_csp_hash(_BOOT_JS)}; "
           "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'")
    return html.get_template("report.html.j2").render(
        view=view, figures=figures, csp=csp, plotly_js=Markup(plotly_js), boot_js=Markup(_BOOT_JS), **_verdict_text())


def render_markdown(view: ReportView) -> str:
    """The Markdown report of a view: the same content, charts as tables of their numbers."""
    _, md = _environments()
    return md.get_template("report.md.j2").render(view=view, **_verdict_text())


def _verdict_text() -> dict[str, str]:
    """The verdict block's fixed sentences (reports.verdicts), for both templates."""
    from reports.verdicts import POLICY_NOTE, RANDOM_WEIGHTS_TEXT, RANDOM_WEIGHTS_TITLE

    return {"random_title": RANDOM_WEIGHTS_TITLE, "random_text": RANDOM_WEIGHTS_TEXT, "policy_note": POLICY_NOTE}


def parse_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Normalise formats ("html", "md", or "html,md" as the CLI passes them); unknown ones are an error."""
    if isinstance(formats, str):
        formats = [formats]
    out: list[str] = []
    for item in formats:
        for f in str(item).split(","):
            f = f.strip().lower()
            if not f:
                continue
            if f not in FORMATS:
                raise AuditError(f"--format {f}: unknown report format (choose from {', '.join(FORMATS)})")
            if f not in out:
                out.append(f)
    if not out:
        raise AuditError(f"--format: no report format given (choose from {', '.join(FORMATS)})")
    return tuple(out)


def output_paths(run_dir: Path, formats: Sequence[str], out: Path | None) -> dict[str, Path]:
    """Where each format goes: `out` is a folder (default: the run directory) holding report.html and
    report.md, or a file path ending in .html or .md, whose stem then names every format's file."""
    if out is not None and Path(out).suffix.lower() in (".html", ".md"):
        base = Path(out)
        return {f: base.with_suffix("." + f) for f in formats}
    folder = Path(out) if out is not None else Path(run_dir)
    if folder.exists() and not folder.is_dir():
        raise AuditError(f"--out {folder}: exists and is not a folder (or name a .html/.md file)")
    return {f: folder / FORMATS[f] for f in formats}


def write_report(run_dir: Path, *, compare: Path | None = None, formats: Sequence[str] = ("html", "md"),
                 out: Path | None = None, verdict_policy: Path | VerdictPolicy | None = None) -> list[Path]:
    """Render a finished run (optionally against a baseline run) and write the report files.

    Refuses, with one AuditError line, a run that is not a complete run directory, an unknown
    format, a verdict policy file that is missing or malformed, and a baseline that cannot be
    compared (different probes, probe versions or data, or scorer ids), naming what differs.
    `verdict_policy`: a policy file or a loaded policy (default: audit/assets/verdict_default.yaml).
    Returns the paths written, in `formats` order.
    """
    wanted = parse_formats(formats)
    policy = verdict_policy if isinstance(verdict_policy, VerdictPolicy) else load_verdict_policy(verdict_policy)
    run = described(load_run(Path(run_dir)))  # old runs: the registered descriptions (reports.describe)
    comparison, base = None, None
    if compare is not None:
        base = described(load_run(Path(compare)))
        comparison = compare_runs(base, run)
        if not comparison.comparable:
            raise AuditError(f"--compare {compare}: not comparable with {run_dir}: " + "; ".join(comparison.reasons))
    paths = output_paths(Path(run_dir), wanted, out)
    view = build_view(run, comparison, policy=policy, baseline=base)
    written = []
    for f in wanted:
        text = render_html(view) if f == "html" else render_markdown(view)
        atomic_write_text(paths[f], text)
        written.append(paths[f])
    return written
