"""Small Streamlit pieces every page uses: the page header and empty states, charts, sample-file
problems, and run-derived text shown literally."""

from __future__ import annotations

import streamlit as st

from audit.store import Run
from dashboards.context import Context
from dashboards.figures import plotly_spec
from dashboards.runs import ProbeSamples, Samples
from dashboards.text import literal_markdown
from reports.charts import ChartData

RUN_KEY = "run"  # session key (and URL query parameter) of the selected run
BASELINE_KEY = "baseline"  # session key (and URL query parameter) of the baseline to compare against
NO_BASELINE = "(none)"


def empty_folder(ctx: Context) -> None:
    """The friendly empty state: where the dashboard looked, and the command that makes a run."""
    where = "does not exist" if not ctx.runs_dir.exists() else "has no runs yet"
    st.info(f"The runs folder {literal_markdown(str(ctx.runs_dir))} {where}. Create a run with:")
    st.code(ctx.create_command, language="bash")
    st.caption("then reload this page. Point the dashboard at another folder with "
               "`opt-audit dashboard FOLDER`.")


def needs_run(ctx: Context) -> bool:
    """Show why a page has nothing to show, and return True, when no run is selected."""
    if ctx.run is not None:
        return False
    if not ctx.entries:
        empty_folder(ctx)
    else:
        st.warning("No run in this folder can be opened (see the problems on the Runs page). "
                   "Finish or re-create a run with:")
        st.code(ctx.create_command, language="bash")
    return True


def keep_valid(key: str, options: list) -> None:
    """Drop a widget's remembered choices that are no longer among its options (before it is drawn).

    Options change with the run or probe shown; Streamlit refuses a remembered value that is not an
    option, so a multiselect keeps only the choices still offered and a selectbox falls back to
    its first option.
    """
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if isinstance(value, list):
        kept = [v for v in value if v in options]
        if kept != value:
            st.session_state[key] = kept
    elif value not in options:
        del st.session_state[key]


def write(text: object) -> None:
    """Untrusted text (model output, prompts, names from a run) as literal Markdown."""
    st.markdown(literal_markdown(text))


def run_title(ctx: Context, page: str) -> None:
    """The page header with the run it shows."""
    st.header(page)
    if ctx.entry is not None:
        st.caption(f"Run {literal_markdown(ctx.entry.id)} · model {literal_markdown(ctx.entry.model or '—')}"
                   f" · suite {literal_markdown(ctx.entry.suite or '—')}")


def page_run(ctx: Context, page: str) -> Run | None:
    """Draw a page's header and return the run it shows; None (after saying why) when no run is selected."""
    run_title(ctx, page)
    return None if needs_run(ctx) else ctx.run


def show_chart(chart: ChartData, key: str) -> None:
    """One of the report's charts as a plotly figure, with its note (skipped metrics, groups cut) below."""
    st.plotly_chart(plotly_spec(chart), key=key, config={"displaylogo": False})
    if chart.note:
        st.caption(literal_markdown(chart.note))


def samples_listed(loaded: ProbeSamples, missing: str) -> bool:
    """Whether one probe's samples can be listed; if not, show why (the file's problem, or `missing`)."""
    if loaded.problem:
        st.warning(literal_markdown(loaded.problem))
    elif loaded.missing:
        st.caption(missing)
    return not (loaded.problem or loaded.missing)


def show_sample_problems(loaded: Samples) -> None:
    """The files of several probes that could not be read, and the probes that wrote none."""
    for problem in loaded.problems:
        st.warning(literal_markdown(problem))
    if loaded.missing:
        st.caption("No samples file for: " + literal_markdown(", ".join(loaded.missing)))
