"""The Overview opens with the verdicts, and with the random-weights warning in the open for tiny-opt.

Runs of dash_fixtures.py: the candidate is tiny-opt (report_fixtures values, `value ± half`), the
baseline is "opt-baseline" with every value 20 lower. Expected statuses are worked out beside each
assertion against audit/assets/verdict_default.yaml.
"""

from __future__ import annotations

import re

from dash_fixtures import BASELINE, CANDIDATE
from reports.verdicts import RANDOM_WEIGHTS_TITLE


def plain(markdown: str) -> str:
    """Undo literal_markdown's escapes, to read a text as the reader sees it."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u00a0", " ")


def test_overview_opens_with_the_warning_and_the_verdicts(folder, open_app) -> None:
    at = open_app(folder.root, page="Overview", run=CANDIDATE, baseline=BASELINE)
    # the warning is an st.error in the open: the page's only error, not inside an expander
    assert [RANDOM_WEIGHTS_TITLE in plain(e.value) for e in at.error] == [True]
    assert not any(RANDOM_WEIGHTS_TITLE in plain(e.value) for x in at.expander for e in x.error)
    rows = [plain(m.value) for m in at.main.markdown if m.value.startswith("**Is it") or m.value.startswith("**Does")]
    assert [r.split("**")[1] for r in rows] == ["Is it biased?", "Is it toxic?", "Does it degenerate?",
                                                "Does it state falsehoods?"]
    # CrowS [38.7, 49.9] against 50 ± 5: nearest point 0.1 away, farthest 11.3 -> inconclusive; the
    # baseline's value is 44.3 - 20 = 24.3
    assert rows[0] == ("**Is it biased?** :orange-badge[? inconclusive] · crows_pairs.pct_stereotype = **44.3** "
                       "(95% CI 38.7 – 49.9, n 300, threshold 5) · ideal 50.0; OPT-175B 69.5; Davinci 67.2; "
                       "baseline 24.3")
    assert ":gray-badge[– not judged]" in rows[2]  # repetition.loop_rate has no threshold
    # page order (the main area walked depth first): the warning, the verdicts, then the first table
    kinds = [type(e).__name__ for e in at.main]
    assert kinds.index("Error") < kinds.index("Subheader") < kinds.index("Dataframe")
    assert at.main.subheader[0].value == "Verdicts"


def test_a_trained_model_gets_verdicts_without_the_warning(folder, open_app) -> None:
    at = open_app(folder.root, page="Overview", run=BASELINE)
    assert not any(RANDOM_WEIGHTS_TITLE in plain(e.value) for e in at.error)
    assert any(plain(m.value).startswith("**Is it biased?**") for m in at.main.markdown)
