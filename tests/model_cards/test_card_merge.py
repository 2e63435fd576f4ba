"""`opt-audit card --out EXISTING`: merging into a real model card, `--force`, backups, bad input.

The real card is the OPT model card from the Hub (fixtures/opt-1.3b-README.md, see
fixtures/SOURCE.md); the runs are fixture run directories written with `audit.store`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard, parse_eval_result_entries

from audit.cli import main
from audit.errors import AuditError
from audit.store import load_run
from audit.types import GroupValue, Metric, ProbeInfo
from card_fixtures import CROWS_SHA, fixture_metrics
from model_cards.build import BEGIN_MARKER, END_MARKER, build_card
from model_cards.eval_results import HubBenchmarkTask
from model_cards.info import CardInfo
from model_cards.merge import split_card
from model_cards.update import update_card

OPT_CARD = Path(__file__).parent / "fixtures" / "opt-1.3b-README.md"

# Another tool's model-index (the Hub autoevaluator's, see fixtures/SOURCE.md), with keys around it
# that opt-audit does not know: a merge must keep all of it.
FOREIGN_FRONT = """\
language: en
# base model of this fine-tune
base_model: facebook/opt-125m
inference: false
tags:
- text-generation
- opt
license: other
commercial: false
model-index:
- name: facebook/opt-125m
  results:
  - task:
      type: zero-shot-classification
      name: Zero-Shot Text Classification
    dataset:
      name: futin/guess
      type: futin/guess
      config: en
      split: test
    metrics:
    - name: Accuracy
      type: accuracy
      value: 0.3731193580742227
      verified: true
    - name: Loss
      type: loss
      value: 2.057969347790203
      verified: true

widget:
- text: 'Once upon a time,'
"""
FUTIN_RESULT = yaml.safe_load(FOREIGN_FRONT)["model-index"][0]["results"][0]

OURS = re.compile(re.escape(BEGIN_MARKER) + r"\n.*?" + re.escape(END_MARKER) + r"\n\n", re.S)
MODEL_INDEX = re.compile(r"^model-index:\n(?:[ -].*\n)*", re.M)


def _card(tmp_path: Path, text: str | None = None) -> Path:
    out = tmp_path / "model" / "README.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        shutil.copyfile(OPT_CARD, out)
    else:
        out.write_bytes(text.encode("utf-8"))
    return out


def _without_ours(text: str) -> str:
    """The card with opt-audit's body section and model-index block cut out."""
    parts = split_card(text, "card")
    front = MODEL_INDEX.sub("", parts.front or "")
    return parts.opening + front + parts.closing + OURS.sub("", parts.body, count=1)


# ---------------------------------------------------------------------------------------------
# merging into the OPT card
# ---------------------------------------------------------------------------------------------


def test_merge_into_the_opt_card_changes_only_our_part(make_run, tmp_path: Path) -> None:
    original = OPT_CARD.read_bytes()
    out = _card(tmp_path)
    done = update_card(make_run(), out=out)
    assert done.action == "merged"
    merged = out.read_text(encoding="utf-8")
    # every byte outside the opt-audit section and the model-index block is the original's
    assert _without_ours(merged).encode("utf-8") == original
    # the backup holds the original bytes
    assert done.backup == out.with_name("README.md.bak") and done.backup.read_bytes() == original
    # the results sit after the title and disclaimer, before the card's first section
    body = split_card(merged, "card").body
    assert body.index("Content from **this** model card") < body.index(BEGIN_MARKER) < body.index("## Intro")
    assert body.count("## Audit results") == 1
    # the Hub library reads every original key, and our metrics
    card = ModelCard(merged)
    assert (card.data.license, card.data.language, card.data.tags) == ("other", "en", ["text-generation", "opt"])
    assert card.data.to_dict()["inference"] is False and card.data.to_dict()["commercial"] is False
    # the fixture run's 7 ok, finite metrics on benchmarks with a Hub id (crows 2, rtp 3, bbq 2)
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [
        ("pct_stereotype", 44.333333333333336), ("likelihood_diff", 5.115760968526204),
        ("expected_max_toxicity", 0.483136779664176), ("toxicity_probability", 0.375),
        ("empty_continuation_rate", 0.0), ("accuracy_ambig", 72.54901960784314),
        ("accuracy_disambig", 17.77777777777778)]
    # the section names the run and how to reproduce it, since the card around it is not ours
    section = body[body.index(BEGIN_MARKER):body.index(END_MARKER)]
    assert "`fixture_run_0123456789`" in section and "opt-audit run --model facebook/opt-125m" in section
    assert f"`crows_pairs` `{CROWS_SHA}`" in section
    assert done.eval_results == () and "no .eval_results/ file written" in done.note
    assert not (out.parent / ".eval_results").exists()


def test_second_merge_is_byte_identical_and_makes_no_new_backup(make_run, tmp_path: Path) -> None:
    run_dir, out = make_run(), _card(tmp_path)
    update_card(run_dir, out=out)
    first = out.read_bytes()
    again = update_card(run_dir, out=out)
    assert again.action == "unchanged" and again.backup is None
    assert out.read_bytes() == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["README.md", "README.md.bak"]


def test_force_replaces_the_card_and_keeps_the_merged_one_as_a_second_backup(make_run, tmp_path: Path) -> None:
    run_dir, out = make_run(), _card(tmp_path)
    update_card(run_dir, out=out)
    merged = out.read_bytes()
    done = update_card(run_dir, out=out, force=True)
    assert done.action == "replaced"
    assert out.read_text(encoding="utf-8") == build_card(load_run(run_dir), CardInfo())
    assert "# OPT : Open Pre-trained" not in out.read_text(encoding="utf-8")
    # the first backup (the original card) is never overwritten: the merged card goes to .bak.1
    assert out.with_name("README.md.bak").read_bytes() == OPT_CARD.read_bytes()
    assert done.backup == out.with_name("README.md.bak.1") and done.backup.read_bytes() == merged


def test_a_fresh_card_is_a_fixed_point_of_merging(make_run, tmp_path: Path) -> None:
    run_dir = make_run()
    out = tmp_path / "README.md"
    update_card(run_dir, out=out)
    fresh = out.read_bytes()
    assert update_card(run_dir, out=out).action == "unchanged" and out.read_bytes() == fresh


# ---------------------------------------------------------------------------------------------
# other tools' results and unknown keys
# ---------------------------------------------------------------------------------------------


def test_other_results_and_unknown_keys_are_kept(make_run, tmp_path: Path) -> None:
    body = split_card(OPT_CARD.read_text(encoding="utf-8"), "opt").body
    original = f"---\n{FOREIGN_FRONT}---\n{body}"
    out = _card(tmp_path, original)
    update_card(make_run(), out=out)
    merged = out.read_text(encoding="utf-8")
    parts = split_card(merged, "card")
    # outside the model-index block the front matter keeps its bytes: comment, base_model, the
    # blank line and widget after the block
    assert MODEL_INDEX.sub("", parts.front) == MODEL_INDEX.sub("", FOREIGN_FRONT)
    assert "# base model of this fine-tune\nbase_model: facebook/opt-125m\n" in parts.front
    assert parts.front.endswith("\nwidget:\n- text: 'Once upon a time,'\n")
    data = yaml.safe_load(parts.front)
    assert data["base_model"] == "facebook/opt-125m" and data["widget"] == [{"text": "Once upon a time,"}]
    results = data["model-index"][0]["results"]
    assert len(data["model-index"]) == 1 and data["model-index"][0]["name"] == "facebook/opt-125m"
    assert results[0] == FUTIN_RESULT  # the other tool's result, as it was, first
    assert len(results) == 1 + 3  # then ours: CrowS-Pairs, RealToxicityPrompts, BBQ
    assert {r["dataset"]["args"]["tool"] for r in results[1:]} == {"opt-audit"}
    assert _without_ours(merged).replace(MODEL_INDEX.search(original).group(0), "") \
        == original.replace(MODEL_INDEX.search(original).group(0), "")


def test_a_new_run_replaces_only_our_results(make_run, tmp_path: Path) -> None:
    out = _card(tmp_path, f"---\n{FOREIGN_FRONT}---\n# A model\n\nIntro.\n\n## Usage\n\nText.\n")
    update_card(make_run(), out=out)
    metrics = fixture_metrics()
    info, crows = metrics["crows_pairs"]
    # the second run measured CrowS-Pairs only, with a different value
    crows2 = [Metric("pct_stereotype", 51.0, (45.0, 57.0), 300, None, crows[0].description, crows[0].citation,
                     ideal=50.0, unit="%", ci_method=crows[0].ci_method)]
    update_card(make_run(metrics={"crows_pairs": (info, crows2)}), out=out)
    text = out.read_text(encoding="utf-8")
    results = yaml.safe_load(split_card(text, "card").front)["model-index"][0]["results"]
    assert results[0] == FUTIN_RESULT
    assert [(r["dataset"]["type"], [m["value"] for m in r["metrics"]]) for r in results[1:]] == [
        ("nyu-mll/crows_pairs", [51.0])]
    body = split_card(text, "card").body
    assert body.count(BEGIN_MARKER) == 1 and "| CrowS-Pairs | pct_stereotype | 51 % |" in body
    assert "RealToxicityPrompts" not in body
    assert body.startswith("# A model\n\nIntro.\n\n" + BEGIN_MARKER) and body.endswith("\n\n## Usage\n\nText.\n")


def test_a_card_without_front_matter_or_headings(make_run, tmp_path: Path) -> None:
    out = _card(tmp_path, "Just a paragraph.\n")
    update_card(make_run(), out=out)
    text = out.read_text(encoding="utf-8")
    parts = split_card(text, "card")
    assert list(yaml.safe_load(parts.front)) == ["model-index"]
    assert parts.body.startswith(BEGIN_MARKER) and parts.body.endswith(END_MARKER + "\n\nJust a paragraph.\n")


def test_crlf_line_endings_are_kept(make_run, tmp_path: Path) -> None:
    original = OPT_CARD.read_text(encoding="utf-8").replace("\n", "\r\n")
    out = _card(tmp_path, original)
    update_card(make_run(), out=out)
    merged = out.read_bytes().decode("utf-8")
    assert "\n" not in merged.replace("\r\n", "")  # no bare LF was introduced
    assert _without_ours(merged.replace("\r\n", "\n")) == original.replace("\r\n", "\n")


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------------

MALFORMED = [
    ("unclosed", "---\nlicense: mit\n# Title\n", "the opening '---' has no closing '---' line"),
    ("bad-yaml", "---\nlicense: [mit\n---\n# Title\n", "not valid YAML"),
    ("not-a-mapping", "---\n- a\n- b\n---\n# Title\n", "expected a mapping of metadata keys"),
    ("index-not-a-list", "---\nmodel-index: 3\n---\n# Title\n", "model-index must be a list"),
    ("flow-index", "---\n{license: mit, model-index: []}\n---\n# Title\n",
     "cannot edit the front matter's model-index"),
    ("two-begins", f"# T\n\n{BEGIN_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n", "markers are unbalanced"),
    ("end-first", f"# T\n\n{END_MARKER}\nx\n{BEGIN_MARKER}\n", "markers are unbalanced"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_card_is_one_line_exit_2_and_untouched(make_run, tmp_path: Path, capsys, text: str,
                                                         expected: str) -> None:
    run_dir = make_run()
    out = _card(tmp_path, text)
    code = main(["card", str(run_dir), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("opt-audit: error: "), err
    assert str(out) in lines[0] and expected in lines[0], lines[0]
    assert out.read_bytes() == text.encode("utf-8")
    assert sorted(p.name for p in out.parent.iterdir()) == ["README.md"]  # no backup, no temp file


def test_info_with_an_existing_card_needs_force(make_run, tmp_path: Path) -> None:
    info = tmp_path / "card.yaml"
    info.write_text("license: apache-2.0\n", encoding="utf-8")
    out = _card(tmp_path)
    with pytest.raises(AuditError, match="pass --force to rebuild the whole card"):
        update_card(make_run(), info=info, out=out)
    assert out.read_bytes() == OPT_CARD.read_bytes()
    done = update_card(make_run(), info=info, out=out, force=True)
    assert ModelCard.load(done.path).data.license == "apache-2.0"


def test_cli_reports_backup_merge_and_note(make_run, tmp_path: Path, capsys) -> None:
    run_dir, out = make_run(), _card(tmp_path)
    assert main(["card", str(run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"backup {out}.bak", f"merged results into {out}",
        "note: no .eval_results/ file written: none of this run's benchmarks is a registered Hub benchmark "
        "with a known task id (see model_cards/eval_results.py)"]
    assert main(["card", str(run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"unchanged {out} (its opt-audit results are current)"
    assert main(["card", str(run_dir), "--out", str(out), "--force"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [f"backup {out}.bak.1", f"wrote {out}"]


# ---------------------------------------------------------------------------------------------
# metadata honesty and the Hub's .eval_results format
# ---------------------------------------------------------------------------------------------


def test_no_hub_revision_and_no_placeholder_dataset_ids(make_run) -> None:
    holistic = ProbeInfo(name="holistic_bias", version="2", title="HolisticBias", description="d.",
                         citation="Smith et al. 2022.", data_license="CC BY-SA 4.0")
    metrics = dict(fixture_metrics())
    metrics["holistic_bias"] = (holistic, [Metric(
        "descriptor_gap", 1.5, (1.0, 2.0), 40, False, "Gap.", holistic.citation, ci_method="bootstrap",
        groups={"a": GroupValue(1.0, (0.5, 1.5), 20), "b": GroupValue(2.0, (1.5, 2.5), 20)})])
    run_dir = make_run(metrics=metrics)
    text = build_card(load_run(run_dir), CardInfo())
    card = ModelCard(text)
    assert all(r.dataset_revision is None for r in card.data.eval_results)  # the Hub reads it as a commit
    assert {r.dataset_type for r in card.data.eval_results} == {
        "nyu-mll/crows_pairs", "allenai/real-toxicity-prompts", "heegyu/bbq"}
    crows = next(r for r in card.data.eval_results if r.dataset_type == "nyu-mll/crows_pairs")
    assert crows.dataset_args["data_sha256"] == CROWS_SHA  # our pin, in our own field
    assert "opt-audit/" not in text.split("\n---\n", 1)[0]
    # HolisticBias has no Hub dataset with our data: it stays in the table, out of model-index, with why
    assert "descriptor_gap" not in {r.metric_type for r in card.data.eval_results}
    assert "- HolisticBias / `descriptor_gap`: no Hub dataset holds this benchmark's data" in text
    assert "| HolisticBias | descriptor_gap | 1.5 | 1 – 2 | 40 | lower | ok |" in text


def test_eval_results_files_follow_the_documented_format(make_run, tmp_path: Path) -> None:
    # No Hub benchmark task is confirmed for our probes (the shipped table is empty); this row is
    # a test input only, to check the writer against huggingface_hub's own parser.
    tasks = {"crows_pairs": HubBenchmarkTask("example-org/crows-benchmark", "example_task", "pct_stereotype"),
             "bbq": HubBenchmarkTask("example-org/bbq-benchmark", "ambig", "bias_score_disambig")}  # skipped metric
    out = tmp_path / "model" / "README.md"
    done = update_card(make_run(), out=out, tasks=tasks)
    assert [p.name for p in done.eval_results] == ["crows_pairs.yaml"] and done.note == ""
    data = yaml.safe_load(done.eval_results[0].read_text(encoding="utf-8"))
    (entry,) = parse_eval_result_entries(data)
    assert (entry.dataset_id, entry.task_id, entry.value) == (
        "example-org/crows-benchmark", "example_task", 44.333333333333336)
    assert entry.date == "2026-11-22T09:54:34+00:00" and entry.dataset_revision is None
    assert entry.verify_token is None and entry.source_url is None
    assert "probe crows_pairs v1, metric pct_stereotype %, 95% CI 38.82 to 49.99, n=300" in entry.notes
    assert set(data[0]) == {"dataset", "value", "date", "notes"} and set(data[0]["dataset"]) == {"id", "task_id"}
    assert json.loads(json.dumps(data)) == data  # plain data, nothing YAML-specific
