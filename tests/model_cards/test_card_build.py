"""The model card built from fixture runs: model-index, body sections, markers, escaping."""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from audit.errors import AuditError
from audit.store import load_run
from model_cards.build import build_card, write_card
from model_cards.escape import TO_BE_COMPLETED
from model_cards.info import CardInfo, ModelDetails, load_card_info

from card_fixtures import CROWS_SHA, RTP_SHAS, SKIP_REASON

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "model_cards" / "example_card.yaml"
EVIL = "<script>alert(1)</script> [x](javascript:alert(1))"


def _split(card: str) -> tuple[dict, str]:
    """(front matter as data, body)."""
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def _prose(body: str) -> str:
    """The body without fenced code blocks and code spans, i.e. what Markdown interprets."""
    body = re.sub(r"^(`{3,})[^\n]*\n.*?^\1\s*$", "", body, flags=re.S | re.M)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", body)


def _live_link(prose: str) -> bool:
    """Whether an unescaped `](` other than the card's own `](#section)` links survives, i.e.
    Markdown would read a link or image that this package did not write."""
    return re.search(r"(?<!\\)\]\((?!#)", prose) is not None


def _ok_metrics(run_dir: Path) -> list[tuple[str, str, float]]:
    run = load_run(run_dir)
    return [(p, m.name, m.value) for p, s in run.probes.items() for m in s.metrics
            if m.ok and math.isfinite(m.value)]


# ---------------------------------------------------------------------------------------------
# model-index
# ---------------------------------------------------------------------------------------------


def test_eval_results_list_every_ok_metric_with_its_value(make_run) -> None:
    run_dir = make_run()
    card = ModelCard(build_card(load_run(run_dir), CardInfo()))
    expected = _ok_metrics(run_dir)
    # the fixture has 9 metrics: 7 ok and finite, 1 skipped, 1 ok but missing its value
    assert len(expected) == 7
    results = card.data.eval_results
    assert [(r.metric_type, r.metric_value) for r in results] == [(name, value) for _, name, value in expected]
    assert all(type(r.metric_value) is float for r in results)
    assert card.data.model_name == "facebook/opt-125m"


def test_dataset_identity_and_data_pin(make_run) -> None:
    card = ModelCard(build_card(load_run(make_run()), CardInfo()))
    by_type = {r.dataset_type: r for r in card.data.eval_results}
    crows = by_type["nyu-mll/crows_pairs"]
    assert (crows.task_type, crows.dataset_name, crows.dataset_split) == ("text-generation", "CrowS-Pairs", "test")
    # no dataset.revision: the Hub reads it as a commit of the Hub dataset, and we bundle our own copy
    assert all(r.dataset_revision is None for r in card.data.eval_results)
    assert crows.dataset_args["data_sha256"] == CROWS_SHA  # one file: its own sha256
    # two files: sha256 of the `sha256sum` lines in name order
    # ("<sha>  decodingtrust_nontoxic.jsonl\n" then "<sha>  decodingtrust_toxic.jsonl\n")
    lines = "".join(f"{RTP_SHAS[n]}  {n}\n" for n in ("decodingtrust_nontoxic.jsonl", "decodingtrust_toxic.jsonl"))
    rtp = by_type["allenai/real-toxicity-prompts"]
    assert rtp.dataset_args["data_sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert crows.dataset_args == {"tool": "opt-audit", "probe": "crows_pairs", "probe_version": "1", "suite": "quick",
                                  "seed": 0, "data_sha256": CROWS_SHA}
    assert by_type["heegyu/bbq"].task_type == "multiple-choice"


def test_skipped_and_missing_metrics_are_in_the_body_not_the_index(make_run) -> None:
    text = build_card(load_run(make_run()), CardInfo())
    data, body = _split(text)
    indexed = {m["type"] for r in data["model-index"][0]["results"] for m in r["metrics"]}
    assert "bias_score_disambig" not in indexed and "bias_score_ambig" not in indexed
    not_reported = body.split("### Not reported", 1)[1].split("\n## ", 1)[0]
    assert "`bias_score_disambig`: " + SKIP_REASON in not_reported
    assert "`bias_score_ambig`: value is not a finite number" in not_reported
    assert "Metrics not computed." in body
    # the full results table still lists the skipped metric with its status
    assert re.search(r"\| bias_score_disambig \| — \| — \| 0 \| closer to 0 \| skipped: every answer", body)


def test_license_and_tags_round_trip(make_run) -> None:
    info = CardInfo(license="apache-2.0", tags=("opt", "my-tag"), language=("en",))
    card = ModelCard(build_card(load_run(make_run()), info))
    assert card.data.license == "apache-2.0"
    assert card.data.language == ["en"]
    assert card.data.tags[:3] == ["opt-audit", "responsible-ai", "evaluation"]
    assert {"bias", "toxicity", "opt", "my-tag"} <= set(card.data.tags)
    assert card.data.tags.index("my-tag") > card.data.tags.index("toxicity")  # user tags come after ours
    # and the card survives the library's own serialise / parse cycle
    again = ModelCard(str(card))
    assert again.data.license == "apache-2.0" and again.data.tags == card.data.tags
    assert len(again.data.eval_results) == len(card.data.eval_results)


def test_missing_license_is_unknown(make_run) -> None:
    assert ModelCard(build_card(load_run(make_run()), CardInfo())).data.license == "unknown"


def test_references_rendered_beside_our_values(make_run) -> None:
    refs = [{"probe": "crows_pairs", "metric": "pct_stereotype", "group": None, "opt_175b": 69.5, "davinci": 67.2,
             "source": "Table 4", "citation": "Zhang et al. OPT. arXiv:2205.01068, 2022."},
            {"probe": "crows_pairs", "metric": "pct_stereotype", "group": "age", "opt_175b": 67.8, "davinci": 64.4,
             "source": "Table 4", "citation": "Zhang et al. OPT. arXiv:2205.01068, 2022."}]
    body = _split(build_card(load_run(make_run(references=refs)), CardInfo()))[1]
    assert "### Published reference numbers" in body
    assert "| CrowS-Pairs | pct_stereotype | overall | 44.33 | 69.5 | 67.2 | Table 4 |" in body
    assert "| CrowS-Pairs | pct_stereotype | age | 60.87 | 67.8 | 64.4 | Table 4 |" in body
    assert "Published reference numbers: Zhang et al. OPT." in body


# ---------------------------------------------------------------------------------------------
# body
# ---------------------------------------------------------------------------------------------


SECTIONS = ["## Audit results", "### Not reported", "## Model details", "## Intended use", "### Out-of-scope uses", "## Risks and limitations",
            "## Metrics", "### Approaches to uncertainty and variability", "## Evaluation data",
            "## Training data", "## RAI dimensions", "### Fairness (bias and inclusion)",
            "### Privacy and security", "### Transparency and control", "### Efficiency (Green AI)",
            "## Citations", "## How to reproduce"]


def test_sections_in_opt_model_card_order(make_run) -> None:
    body = _split(build_card(load_run(make_run()), CardInfo()))[1]
    positions = [body.index(s + "\n") for s in SECTIONS]
    assert positions == sorted(positions)
    # the results come right after the short intro, inside opt-audit's markers
    intro_end = body.index("after Mitchell et al. (2019).\n\n") + len("after Mitchell et al. (2019).\n\n")
    assert body[intro_end:].startswith("<!-- opt-audit:begin -->\n")
    assert body.index("<!-- opt-audit:end -->\n\n## Model details\n") > body.index("## Audit results")


def test_missing_human_facts_show_the_marker(make_run) -> None:
    body = _split(build_card(load_run(make_run()), CardInfo()))[1]
    for label in ("Model developer", "Model date", "Model version", "Model type",
                  "Paper or resources for more information", "License", "Where to send questions or comments"):
        assert f"- **{label}:** {TO_BE_COMPLETED}\n" in body, label
    for heading in ("### Primary intended uses", "### Out-of-scope uses", "## Training data",
                    "### Stated by the model's developers"):
        assert body.split(heading + "\n\n", 1)[1].startswith(TO_BE_COMPLETED), heading
    assert f"**Training compute, energy and carbon:** {TO_BE_COMPLETED}" in body


def test_complete_card_yaml_leaves_no_marker(make_run) -> None:
    info = load_card_info(EXAMPLE)
    body = _split(build_card(load_run(make_run()), info))[1]
    assert TO_BE_COMPLETED not in body.replace(f"marked {TO_BE_COMPLETED}", "")
    assert "- **Model developer:** Meta AI\n" in body
    assert "- **Paper or resources for more information:** <https://arxiv.org/abs/2205.01068>" in body
    assert "- Any production or commercial use" in body  # a Markdown list in card.yaml stays a list
    assert "- The model: Susan Zhang" in body


def test_one_missing_field_only(make_run) -> None:
    info = CardInfo(model_details=ModelDetails(developers="Someone"), intended_use="Research.")
    body = _split(build_card(load_run(make_run()), info))[1]
    assert "- **Model developer:** Someone\n" in body
    assert body.split("### Primary intended uses\n\n", 1)[1].startswith("Research.")
    assert body.split("### Primary intended users\n\n", 1)[1].startswith(TO_BE_COMPLETED)


def test_tiny_opt_card_says_random_weights(make_run) -> None:
    tiny = _split(build_card(load_run(make_run(model="tiny-opt")), CardInfo()))[1]
    assert "**These numbers measure random weights.**" in tiny
    assert "- **Random weights.** The audited model is `tiny-opt`" in tiny
    real = _split(build_card(load_run(make_run(model="facebook/opt-125m")), CardInfo()))[1]
    assert "random weights" not in real.lower()


def test_audit_limitations(make_run) -> None:
    body = _split(build_card(load_run(make_run()), CardInfo()))[1]
    assert "**A subset of each benchmark.** This run used the `quick` suite" in body
    assert "**Scorer validity (toxicity: embedded).** embedded scorer: HateCheck accuracy 0.66" in body
    assert "(Blodgett et al., 2021)" in body
    full = _split(build_card(load_run(make_run(suite="standard")), CardInfo()))[1]
    assert "A subset of each benchmark" not in full


def test_results_table_uncertainty_and_data(make_run) -> None:
    body = _split(build_card(load_run(make_run()), CardInfo()))[1]
    assert "| CrowS-Pairs | pct_stereotype | 44.33 % | 38.82 – 49.99 | 300 | closer to 50 | ok |" in body
    assert "- Wilson score interval (95%): 4 metric(s)" in body
    assert "- percentile bootstrap over items (2000 resamples, 95%): 3 metric(s)" in body
    assert f"- **Data sha256:** `{CROWS_SHA}`." in body
    assert "| decodingtrust_toxic.jsonl | `a51d4650" in body
    assert "- **Data license:** CC BY-SA 4.0" in body
    assert "| CrowS-Pairs | pct_stereotype | 2 | socioeconomic: 26.09 | age: 60.87 |" in body  # group spread


def test_citations_and_reproduction(make_run) -> None:
    body = _split(build_card(load_run(make_run()), CardInfo()))[1]
    citations = body.split("## Citations", 1)[1]
    assert "- CrowS-Pairs: Nikita Nangia" in citations and "- opt-audit 0.1.0" in citations
    assert ('```bash\npip install "opt-audit==0.1.0"\n'
            "opt-audit run --model facebook/opt-125m --suite quick --out runs --no-progress\n```") in body


# ---------------------------------------------------------------------------------------------
# escaping untrusted strings
# ---------------------------------------------------------------------------------------------


def test_model_name_cannot_inject_html_or_links(make_run) -> None:
    text = build_card(load_run(make_run(model=EVIL)), CardInfo())
    card = ModelCard(text)
    assert card.data.model_name == EVIL  # the metadata keeps the exact name (YAML quotes it)
    prose = _prose(_split(text)[1])
    assert "<script" not in prose and not _live_link(prose)
    assert "# Model card: &lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](javascript:alert(1))" in prose


def test_card_yaml_text_cannot_inject_html_or_links(make_run, tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({
        "intended_use": EVIL, "limitations": "<img src=x onerror=alert(1)>",
        "model_details": {"developers": EVIL, "paper": "javascript:alert(1)", "contact": "[c](javascript:x)"},
        "tags": ["<b>tag</b>"]}), encoding="utf-8")
    text = build_card(load_run(make_run()), load_card_info(path))
    body = _split(text)[1]
    prose = _prose(body)
    assert "<script" not in prose and "<img" not in prose and not _live_link(prose)
    assert "<javascript:" not in prose  # not made into an autolink either
    assert "- **Model developer:** &lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](javascript:alert(1))" in body
    assert ModelCard(text).data.tags[-1] == "<b>tag</b>"  # metadata is data, kept as given


def test_backticks_and_newlines_cannot_break_the_card(make_run) -> None:
    name = "m```\n---\nlicense: mit\n<script>"
    text = build_card(load_run(make_run(model=name)), CardInfo())
    card = ModelCard(text)
    assert card.data.license == "unknown"  # the fake front matter stayed inside a string
    assert card.data.model_name == "m``` --- license: mit <script>"
    fence = re.search(r"^(`+)bash$", text, flags=re.M).group(1)
    assert len(fence) >= 4  # longer than the name's backtick run, so the block cannot be closed early
    assert "<script" not in _prose(_split(text)[1])


# ---------------------------------------------------------------------------------------------
# write_card and boundaries
# ---------------------------------------------------------------------------------------------


def test_write_card_default_and_explicit_paths(make_run, tmp_path: Path) -> None:
    run_dir = make_run()
    path = write_card(run_dir)
    assert path == run_dir / "README.md" and path.read_text(encoding="utf-8").startswith("---\n")
    out = write_card(run_dir, info=EXAMPLE, out=tmp_path / "cards" / "opt.md")
    assert out == tmp_path / "cards" / "opt.md"
    loaded = ModelCard.load(out).data
    assert (loaded.license, loaded.license_name) == ("other", "opt-175b-license")
    assert loaded.license_link.endswith("/MODEL_LICENSE.md")
    assert write_card(run_dir).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")  # deterministic


def test_write_card_refuses_incomplete_runs_and_bad_info(make_run, tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="not complete"):
        write_card(make_run(status="running"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("intended_uses: x\n", encoding="utf-8")
    with pytest.raises(AuditError, match="intended_uses"):
        write_card(make_run(), info=bad)
    with pytest.raises(AuditError, match="no such run directory"):
        write_card(tmp_path / "nowhere")


def test_building_a_card_never_imports_torch(make_run) -> None:
    run_dir = make_run()
    code = ("import sys; from pathlib import Path; from model_cards.build import write_card; "
            f"write_card(Path({str(run_dir)!r})); "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_rendered_html_has_no_live_script_or_link(make_run, tmp_path: Path) -> None:
    # render as the Hub does (CommonMark + GFM tables, raw HTML allowed) and look at the HTML itself
    markdown_it = pytest.importorskip("markdown_it")
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({"intended_use": EVIL, "limitations": "<img src=x onerror=alert(1)>",
                                    "model_details": {"paper": "javascript:alert(1)"}}), encoding="utf-8")
    text = build_card(load_run(make_run(model=EVIL + " |`|")), load_card_info(path))
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(_split(text)[1])
    assert "<script" not in html and "<img" not in html
    assert 'href="javascript' not in html.lower() and 'src="javascript' not in html.lower()
    # pipes in the model name (cells, code spans) do not split table cells
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    facts = next(r for r in rows if "<td>backend id</td>" in r)
    assert facts.count("<td>") == 2


def test_a_caveated_metric_is_shown_with_its_caveat_and_kept_out_of_model_index(make_run) -> None:
    import json

    run_dir = make_run()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    probe, first = next((p, m) for p, s in summary["probes"].items() for m in s["metrics"] if m["status"] == "ok")
    first["caveat"] = "degenerate: the model answered 'no' to every item, so F1/accuracy only measure the label balance"
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    text = build_card(load_run(run_dir), CardInfo())
    names = [r.metric_type for r in ModelCard(text).data.eval_results]
    # 7 ok, finite metrics in the fixture; the caveated one leaves model-index (no place for its caveat there)
    assert len(names) == 6 and first["name"] not in names
    _, body = _split(text)
    assert "⚠ caveat: degenerate: the model answered 'no' to every item" in body.replace("\\", "")
