"""`opt-audit scorers`: listing, validating the embedded scorer, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_scorers_list(cli) -> None:
    proc = cli("scorers", "list")
    assert proc.returncode == 0
    names = proc.stdout.split()
    assert {"auto", "embedded", "vader", "detoxify:original", "detoxify:unbiased", "detoxify:custom"} <= set(names)


@pytest.mark.validity  # recomputes the whole record: about 90 s of encoding
def test_validate_embedded_prints_every_functionality_and_writes_record(cli, tmp_path: Path) -> None:
    out = tmp_path / "validity.json"
    proc = cli("scorers", "validate", "--scorer", "embedded", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "HateCheck (n=3728)" in proc.stdout
    assert "ETHOS binary (n=998)" in proc.stdout
    record = json.loads(out.read_text(encoding="utf-8"))
    assert len(record["hatecheck"]["functionalities"]) == 29
    assert 0.0 <= record["ethos"]["roc_auc"] <= 1.0
    # the same numbers as the record shipped beside the head: scoring is deterministic
    shipped = json.loads((Path(__file__).resolve().parents[2] / "audit" / "scoring" / "assets"
                          / "embedded_head_v2.validity.json").read_text(encoding="utf-8"))
    assert record["hatecheck"]["accuracy"] == shipped["hatecheck"]["accuracy"]
    assert record["ethos"]["roc_auc"] == shipped["ethos"]["roc_auc"]


def test_unknown_scorer_and_missing_checkpoint_exit_2(cli, tmp_path: Path) -> None:
    proc = cli("scorers", "validate", "--scorer", "perspective")
    assert proc.returncode == 2 and "--scorer 'perspective': unknown scorer" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli("scorers", "validate", "--scorer", "detoxify:custom",
               "--scorer-checkpoint", str(tmp_path / "nope.ckpt"))
    assert proc.returncode == 2 and "nope.ckpt" in proc.stderr
    assert "Traceback" not in proc.stderr
