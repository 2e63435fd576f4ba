"""audit.store: atomic writes and the run-directory contract read back by `load_run`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from audit import store
from audit.errors import AuditError
from audit.store import (
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    load_manifest,
    load_run,
    write_manifest,
    write_samples,
    write_summary,
)
from audit.types import SCHEMA_VERSION, GroupValue, Metric, ProbeInfo, skipped_metric

INFO = ProbeInfo(name="crows_pairs", version="1", title="CrowS-Pairs", description="pairs",
                 citation="Nangia et al. 2020", data_license="CC BY-SA 4.0")
OK_METRIC = Metric(name="pct_stereotype", value=62.5, ci=(30.57, 86.32), n=8, higher_is_better=None,
                   description="share", citation="Nangia", ideal=50.0, unit="%", ci_method="Wilson score interval (95%)",
                   groups={"age": GroupValue(100.0, (20.65, 100.0), 1), "race-color": GroupValue(57.14, None, 7)})
SKIPPED = skipped_metric("likelihood_diff", "no items", higher_is_better=False, description="diff",
                         citation="Nangia")


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------


def test_atomic_write_text_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "f.txt"  # parents are created
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two ✓\n")
    assert target.read_text(encoding="utf-8") == "two ✓\n"
    assert _entries(target.parent) == ["f.txt"]


def test_failed_replace_keeps_old_content_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old", encoding="utf-8")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(AuditError, match=f"^{target}: cannot write it \\(disk vanished\\)$"):
        atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert _entries(tmp_path) == ["summary.json"]


def test_failed_write_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    # A lone surrogate cannot be encoded as UTF-8: the failure happens mid-write.
    target = tmp_path / "f.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "abc\ud800def")
    assert target.read_text(encoding="utf-8") == "old"
    assert _entries(tmp_path) == ["f.txt"]


def test_atomic_write_json_refuses_nan(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_json(target, {"v": 1.5})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"v": math.nan})
    with pytest.raises(ValueError):
        atomic_write_jsonl(tmp_path / "y.jsonl", [{"v": math.inf}])
    assert json.loads(target.read_text(encoding="utf-8")) == {"v": 1.5}
    assert _entries(tmp_path) == ["x.json"]


def test_atomic_write_jsonl_one_object_per_line(tmp_path: Path) -> None:
    target = tmp_path / "r.jsonl"
    atomic_write_jsonl(target, [{"a": 1}, {"b": "é"}])
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "é"}\n'


# ---------------------------------------------------------------------------------------------
# write_* + load_run
# ---------------------------------------------------------------------------------------------


def _write_run(run: Path, status: str = "complete", **extra) -> None:
    write_manifest(run, {"status": status, "model": "tiny-opt", "seed": 0, **extra})
    write_summary(run, {"crows_pairs": (INFO, [OK_METRIC, SKIPPED])})
    write_samples(run, "crows_pairs", [{"id": "0", "group": "age", "stereotyped": True},
                                        {"id": "1", "group": "race-color", "stereotyped": False}])


def test_round_trip(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _write_run(run_dir)
    run = load_run(run_dir)
    assert run.path == run_dir and run.status == "complete"
    assert run.manifest["schema_version"] == SCHEMA_VERSION and run.manifest["model"] == "tiny-opt"
    assert list(run.probes) == ["crows_pairs"]
    assert run.probes["crows_pairs"].info == INFO
    ok, skipped = run.probes["crows_pairs"].metrics
    assert ok == OK_METRIC
    assert ok == Metric.from_json(OK_METRIC.to_json())
    # The skipped metric comes back as NaN with its reason (NaN != NaN, so compare field by field).
    assert math.isnan(skipped.value) and skipped.status == "skipped: no items"
    assert skipped.to_json() == SKIPPED.to_json()
    assert run.metric("crows_pairs", "likelihood_diff").status == "skipped: no items"
    assert run.metric("crows_pairs", "nope") is None and run.metric("nope", "x") is None
    rows = list(run.samples("crows_pairs"))
    assert rows == [{"schema_version": SCHEMA_VERSION, "id": "0", "group": "age", "stereotyped": True},
                    {"schema_version": SCHEMA_VERSION, "id": "1", "group": "race-color", "stereotyped": False}]


def test_skipped_metric_is_stored_as_null(tmp_path: Path) -> None:
    _write_run(tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    stored = data["probes"]["crows_pairs"]["metrics"][1]
    assert stored["name"] == "likelihood_diff" and stored["value"] is None and stored["ci"] is None
    assert "NaN" not in (tmp_path / "summary.json").read_text(encoding="utf-8")


def test_no_temp_files_left_in_a_run(tmp_path: Path) -> None:
    _write_run(tmp_path)
    assert _entries(tmp_path) == ["manifest.json", "samples", "summary.json"]
    assert _entries(tmp_path / "samples") == ["crows_pairs.jsonl"]


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    with pytest.raises(AuditError, match="no such run directory") as e:
        load_run(missing)
    assert str(missing) in str(e.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"manifest\.json is missing") as e:
        load_run(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_unknown_schema_version(tmp_path: Path) -> None:
    _write_run(tmp_path)
    path = tmp_path / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["schema_version"] = 99
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(AuditError, match="schema_version 99 is not supported") as e:
        load_run(tmp_path)
    assert str(path) in str(e.value)


def test_missing_schema_version(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"status": "complete"}', encoding="utf-8")
    with pytest.raises(AuditError, match="schema_version None"):
        load_run(tmp_path)


def test_running_run_refused_unless_asked(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"status": "running"})
    with pytest.raises(AuditError, match="run is 'running', not complete") as e:
        load_run(tmp_path)
    assert str(tmp_path) in str(e.value)
    run = load_run(tmp_path, require_complete=False)  # no summary yet: still readable
    assert run.status == "running" and run.probes == {}
    assert load_manifest(tmp_path)["status"] == "running"


def test_failed_run_refused_with_its_error(tmp_path: Path) -> None:
    _write_run(tmp_path, status="failed", error="CUDA out of memory")
    with pytest.raises(AuditError, match=r"run is 'failed', not complete \(CUDA out of memory\)") as e:
        load_run(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert load_run(tmp_path, require_complete=False).metric("crows_pairs", "pct_stereotype") == OK_METRIC


@pytest.mark.parametrize("name, content, match", [
    pytest.param("manifest.json", b'{"schema_version": 1, "status": ', "not valid JSON", id="malformed-manifest-json"),
    pytest.param("manifest.json", b"[1, 2]", "expected a JSON object", id="manifest-not-an-object"),
    pytest.param("summary.json", b'{"schema_version": 1, "probes": {\xff', "not valid JSON",
                 id="malformed-summary-json"),
    pytest.param("summary.json", json.dumps({"schema_version": 1, "probes": {"x": {"info": {}}}}).encode(),
                 "malformed summary", id="summary-missing-a-key"),
])
def test_a_broken_run_file_is_named(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    if name == "summary.json":
        _write_run(tmp_path)  # a complete run whose summary is then broken; a broken manifest stands alone
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AuditError, match=match) as e:
        load_run(tmp_path)
    assert str(path) in str(e.value)


def test_summary_probes_not_an_object(tmp_path: Path) -> None:
    _write_run(tmp_path)
    (tmp_path / "summary.json").write_text('{"schema_version": 1, "probes": []}', encoding="utf-8")
    with pytest.raises(AuditError, match="summary.json"):
        load_run(tmp_path)


def test_summary_metric_value_not_a_number(tmp_path: Path) -> None:
    _write_run(tmp_path)
    path = tmp_path / "summary.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["probes"]["crows_pairs"]["metrics"][0]["value"] = "high"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(AuditError, match="summary.json"):
        load_run(tmp_path)


def test_complete_run_without_summary(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"status": "complete"})
    with pytest.raises(AuditError, match=r"summary\.json is missing"):
        load_run(tmp_path)


def test_malformed_sample_line_names_file_and_line(tmp_path: Path) -> None:
    _write_run(tmp_path)
    path = tmp_path / "samples" / "crows_pairs.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write("\n{not json\n")
    run = load_run(tmp_path)
    rows = run.samples("crows_pairs")
    assert next(rows)["id"] == "0" and next(rows)["id"] == "1"
    with pytest.raises(AuditError, match=r"crows_pairs\.jsonl:4: not valid JSON"):
        next(rows)  # line 3 is blank and skipped; line 4 is the bad one


def test_write_samples_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_samples(tmp_path, "p", [{"score": math.nan}])
    # The rows are serialised before any file is opened: nothing is written at all.
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# A full disk, hostile run files, and the run lock
# ---------------------------------------------------------------------------------------------

def test_full_disk_is_an_audit_error_naming_the_file_and_keeps_the_old_one(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    target = tmp_path / "summary.json"
    target.write_text("old", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(AuditError) as e:
        atomic_write_text(target, "new")
    assert str(e.value) == (f"{target}: cannot write it (No space left on device; free some space and rerun: "
                            "finished work is kept)")
    assert target.read_text(encoding="utf-8") == "old"
    assert _entries(tmp_path) == ["summary.json"]


def test_unwritable_folder_is_an_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(AuditError, match=f"^{blocker / 'run' / 'manifest.json'}: cannot write it"):
        write_manifest(blocker / "run", {"status": "running"})


@pytest.mark.parametrize("text, why", [
    ('{"schema_version": %d, "n": %s}' % (SCHEMA_VERSION, "9" * 5000), "Exceeds the limit (4300 digits)"),
    ('{"schema_version": %d, "n": %s}' % (SCHEMA_VERSION, "[" * 20000 + "]" * 20000), "RecursionError"),
])
def test_hostile_manifest_is_an_audit_error(tmp_path: Path, text: str, why: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(text, encoding="utf-8")
    with pytest.raises(AuditError, match="manifest.json: cannot read it") as e:
        load_run(run)
    assert why in str(e.value)


def test_run_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with store.lock_run_dir(run) as lock:
        assert lock == run / ".lock" and lock.read_text().strip() == str(os.getpid())
        with pytest.raises(store.RunLocked, match=f"^{run}: another opt-audit process is running this run now"):
            with store.lock_run_dir(run):
                pass  # pragma: no cover
    assert _entries(run) == []  # released and removed
    with store.lock_run_dir(run):  # and free to take again
        pass

