"""The gate's outputs: a console table, Markdown for $GITHUB_STEP_SUMMARY, and JUnit XML.

All three render the same `GateResult`, so a CI log, a job summary and a test report never
disagree. JUnit has one testcase per rule: a regression is a <failure>, an undecided rule an
<error>, a rule whose probe neither run includes is <skipped>.

Run paths, the policy file name and rule names are user text: through `audit.textsafe` the
console and the XML drop their control characters (no ANSI escape reaches a CI log, the XML
stays well-formed) and the Markdown escapes them (no link, image or HTML from a folder name).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping

from audit.errors import AuditError
from audit.gate import GateResult, RuleOutcome
from audit.store import atomic_write_text
from audit.textsafe import clean_text, markdown_code_span, markdown_text, one_line

_VERDICT = {"pass": "pass", "regression": "REGRESSION", "undecided": "UNDECIDED", "not run": "not run"}
_ICON = {"pass": "✅ pass", "regression": "❌ regression", "undecided": "⚠️ undecided", "not run": "➖ not run"}


def _num(v: float | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    text = f"{v:+.4f}" if signed else f"{v:.4f}"
    if abs(v) >= 100:
        text = f"{v:+.2f}" if signed else f"{v:.2f}"
    return text


def _ci(o: RuleOutcome) -> str:
    return f"[{_num(o.ci[0], True)}, {_num(o.ci[1], True)}]" if o.ci else "—"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p < 0.001 else f"{p:.4f}"


def _label(o: RuleOutcome) -> str:
    """The rule's metric; a target-valued one shows its ideal, since its delta is a change of distance."""
    # baseline and candidate are the metric's own values; for a target-valued metric the delta and
    # its CI are of the distance from the ideal, and the label says so
    return o.rule.metric if o.quantity == "value" else f"{o.rule.metric} (delta of {o.quantity})"


def _not_run(result: GateResult) -> list[str]:
    return [o.rule.metric for o in result.outcomes if o.verdict == "not run"]


def _methods(result: GateResult) -> list[str]:
    return list(dict.fromkeys(o.method for o in result.outcomes if o.method))


def _details(o: RuleOutcome) -> tuple[str, ...]:
    """An outcome's reasons, then its caveats: a verdict on a degenerate metric must say so."""
    return o.reasons + o.caveats


def format_console(result: GateResult) -> str:
    """The table a CI log shows: metric, baseline, candidate, delta, CI of the delta, p, verdict."""
    rows = [(one_line(_label(o)), _num(o.baseline), _num(o.candidate), _num(o.delta, True), _ci(o), _p(o.p),
             _VERDICT[o.verdict]) for o in result.outcomes if o.verdict != "not run"]
    head = ("rule", "baseline", "candidate", "delta", "95% CI of delta", "p", "verdict")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    align = ["<", ">", ">", ">", "<", ">", "<"]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [f"gate: baseline {one_line(result.baseline)}", f"      candidate {one_line(result.candidate)}",
           f"      policy {one_line(result.policy.source)}", ""]
    out += [line(head), "-" * len(line(head))] + [line(r) for r in rows]
    if _not_run(result):
        out.append(f"not run (probe in neither run): {one_line(', '.join(_not_run(result)))}")
    details = [(o, r) for o in result.outcomes for r in _details(o) if o.verdict != "not run"]
    if details:
        out.append("")
        out += [one_line(f"{_label(o)}: {r}") for o, r in details]
    if result.blockers:
        out.append("")
        out.append("the runs are not comparable:")
        out += [f"  - {one_line(b)}" for b in result.blockers]
    if result.notes:
        out.append("")
        out.append("differences (what is being compared): " + one_line("; ".join(result.notes)))
    for k, v in result.extra.items():
        out.append(one_line(f"{k}: {v}"))
    methods = _methods(result)
    if methods:
        out.append("")
        out.append("tests: delta = candidate - baseline, signed so that positive is worse (for a metric with an "
                   "ideal, the change of |value - ideal|); p is one-sided")
        out += [f"  - {one_line(m)}" for m in methods]
    out.append("")
    out.append(f"gate: {result.verdict} (exit {result.exit_code})")
    return "\n".join(out)


def _md(text: str) -> str:
    """Escape user text (run paths, policy name, reasons) for one line or table cell of Markdown."""
    return markdown_text(text, newline=" ")


def _code(text: str, in_table: bool = False) -> str:
    """A rule or metric name as inline code (the name cannot close the span)."""
    return markdown_code_span(text, in_table=in_table)


def format_markdown(result: GateResult) -> str:
    """A job summary: the verdict first, then the table, reasons, comparability and the tests used."""
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[result.exit_code]
    out = [f"## {icon} opt-audit gate: {result.verdict}", "",
           f"- baseline: {_md(result.baseline)}", f"- candidate: {_md(result.candidate)}",
           f"- policy: {_md(result.policy.source)}", ""]
    out.append("| rule | baseline | candidate | delta | 95% CI of delta | p | verdict |")
    out.append("|---|---:|---:|---:|---|---:|---|")
    for o in (o for o in result.outcomes if o.verdict != "not run"):
        out.append(f"| {_code(_label(o), in_table=True)} | {_num(o.baseline)} | {_num(o.candidate)} | "
                   f"{_num(o.delta, True)} | {_ci(o)} | {_p(o.p)} | {_ICON[o.verdict]} |")
    if _not_run(result):
        out += ["", "Not run (probe in neither run): " + ", ".join(_code(m) for m in _not_run(result))]
    details = [(o, r) for o in result.outcomes for r in _details(o) if o.verdict != "not run"]
    if details:
        out.append("")
        out += [f"- {_code(_label(o))}: {_md(r)}" for o, r in details]
    if result.blockers:
        out += ["", "**The runs are not comparable:**", ""] + [f"- {_md(b)}" for b in result.blockers]
    if result.notes:
        out += ["", "Differences (what is being compared): " + _md("; ".join(result.notes))]
    for k, v in result.extra.items():
        out += ["", f"{_md(k)}: {_md(v)}"]
    methods = _methods(result)
    if methods:
        out += ["", "<details><summary>Tests</summary>", "",
                "delta = candidate − baseline, signed so that positive is worse (for a metric with an ideal, "
                "the change of |value − ideal|); p is one-sided.", ""]
        out += [f"- {_md(m)}" for m in methods]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def junit_xml(result: GateResult) -> str:
    """JUnit XML, one testcase per rule, for CI test-report widgets; every value from the runs or the
    policy passes `clean_text`, because a control character makes XML 1.0 not well-formed."""
    x = clean_text
    failures = sum(o.verdict == "regression" for o in result.outcomes)
    errors = sum(o.verdict == "undecided" for o in result.outcomes)
    skipped = sum(o.verdict == "not run" for o in result.outcomes)
    suites = ET.Element("testsuites", name="opt-audit gate", tests=str(len(result.outcomes)),
                        failures=str(failures), errors=str(errors), skipped=str(skipped))
    suite = ET.SubElement(suites, "testsuite", name="opt-audit gate", tests=str(len(result.outcomes)),
                          failures=str(failures), errors=str(errors), skipped=str(skipped))
    props = ET.SubElement(suite, "properties")
    for name, value in (("baseline", result.baseline), ("candidate", result.candidate),
                        ("policy", result.policy.source), ("verdict", result.verdict)):
        ET.SubElement(props, "property", name=name, value=x(value))
    for o in result.outcomes:
        case = ET.SubElement(suite, "testcase", classname=x(f"opt_audit.gate.{o.rule.probe}"), name=x(o.rule.name))
        summary = x(f"baseline {_num(o.baseline)}, candidate {_num(o.candidate)}, delta {_num(o.delta, True)} "
                    f"{_ci(o)}, p {_p(o.p)}; {o.method or 'no test'}")
        reasons = x("; ".join(o.reasons))
        if o.verdict == "regression":
            ET.SubElement(case, "failure", message=reasons, type="regression").text = summary
        elif o.verdict == "undecided":
            why = reasons + ("; " + x("; ".join(result.blockers)) if result.blockers else "")
            ET.SubElement(case, "error", message=why, type="undecided").text = summary
        elif o.verdict == "not run":
            ET.SubElement(case, "skipped", message=reasons)
        else:
            ET.SubElement(case, "system-out").text = summary + (f"; {reasons}" if reasons else "")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _write(path: Path, text: str) -> None:
    """A regular file is replaced atomically; a device or pipe (/dev/stdout, a FIFO) is written to,
    never renamed over."""
    if path.exists() and not path.resolve().is_file():
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        atomic_write_text(path, text)


def write_outputs(result: GateResult, *, junit: Path | None = None, markdown: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> list[Path]:
    """Write the JUnit and Markdown files asked for, and append the Markdown to $GITHUB_STEP_SUMMARY
    when it is set (GitHub Actions shows that file on the run's page). Returns the files written."""
    env = os.environ if environ is None else environ
    written: list[Path] = []
    md = format_markdown(result)
    for path, text in ((junit, junit_xml(result) if junit else ""), (markdown, md)):
        if path is not None:
            try:
                _write(Path(path), text)
            except OSError as e:
                raise AuditError(f"{path}: cannot write it ({e.strerror or e})") from None
            written.append(Path(path))
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(md)
        except OSError as e:
            raise AuditError(f"$GITHUB_STEP_SUMMARY {summary}: cannot append to it ({e.strerror or e})") from None
        written.append(Path(summary))
    return written
