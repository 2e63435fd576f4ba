"""Hostile and broken input through the CLI: exit 2, exactly one `opt-audit: error:` line, no traceback,
no model work, and a complete run left exactly as it was.

Most cases call `audit.cli.main` in this process (torch is imported once; a case costs milliseconds)
and fail before any model loads; `load_backend` is replaced by a recorder, so "nothing executed" is
checked, not assumed. The rerun cases reuse one completed tiny-opt run (module scope): crows_pairs plus
two of your prompts, one holding a lone surrogate and one longer than tiny-opt's 512-token context.
Two cases go through `python -m audit.cli` to prove the real entry point behaves the same.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

LONG_PROMPT = " ".join(f"word{i}" for i in range(300))  # ~900 OPT tokens: more than 512 - 20


class Outcome(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture()
def main_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """audit.cli.main in this process: main("run", ...) -> Outcome(exit code, stdout, stderr)."""
    from audit.cli import main

    def _run(*argv: str) -> Outcome:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return _run


@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any attempt to load a model (the case must fail before it)."""
    import audit.runner

    loaded: list[str] = []

    def _refuse(spec, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - load_backend's signature
        loaded.append(spec.model)
        raise AssertionError(f"a model was loaded: {spec.model}")

    monkeypatch.setattr(audit.runner, "load_backend", _refuse)
    return loaded


class DoneRun(NamedTuple):
    path: Path  # the run directory
    argv: tuple[str, ...]  # the command that made it (rerun it to resume)
    err: str  # what the first run printed on stderr


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory, _private_cache: Path) -> DoneRun:
    """One complete run: crows_pairs (2 items) + 2 prompts (one longer than tiny-opt's context)."""
    import contextlib
    import io

    from audit.cli import main

    root = tmp_path_factory.mktemp("adversarial")
    prompts = root / "prompts.jsonl"
    prompts.write_text('{"prompt": "Hello world", "id": "s"}\n'
                       + json.dumps({"prompt": LONG_PROMPT, "id": "long"}) + "\n", encoding="utf-8")
    argv = ("run", "--model", "tiny-opt", "--probes", "crows_pairs", "--prompts", str(prompts), "--limit", "2",
            "--no-progress", "--scorer", "embedded", "--out", str(root / "runs"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    assert code == 0, err.getvalue()
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("run directory: "), out.getvalue()
    return DoneRun(Path(last.removeprefix("run directory: ")), argv, err.getvalue())


def _one_error_line(result: Outcome, code: int = 2, *, after_model: bool = False) -> str:
    """The single error line of a refused command (nothing else on stderr, no traceback). A failure
    `after_model` may follow the run's own warning lines (the done run's truncated prompt)."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    lines = [ln for ln in result.err.splitlines() if ln.strip()
             and not (after_model and ln.startswith("opt-audit: warning: "))]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("opt-audit: error: "), lines[0]
    assert "\x1b" not in lines[0] and "\x07" not in lines[0]
    return lines[0]


def _snapshot(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of a run directory, by relative path."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Bad input refused before any model work
# ---------------------------------------------------------------------------------------------

def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _rtp(extra: str) -> str:
    return '{"prompt": {"text": "The cat", "toxicity": 0.1}, "filename": "a", "begin": 0, "end": 1' + extra + "}\n"


RUN = ("run", "--model", "tiny-opt", "--no-progress")

# (id, argv builder(tmp) -> argv, expected fragment of the error line)
PRE_MODEL_CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # argparse: one line, not the usage block
    ("limit-zero", lambda t: [*RUN, "--probes", "crows_pairs", "--limit", "0"],
     "argument --limit: must be at least 1, got 0 (see 'opt-audit run --help')"),
    ("limit-text", lambda t: [*RUN, "--probes", "crows_pairs", "--limit", "abc"],
     "argument --limit: expected a positive integer, got 'abc'"),
    ("model-missing", lambda t: ["run", "--probes", "crows_pairs"], "the following arguments are required: --model"),
    ("data-syntax", lambda t: [*RUN, "--data", "crows_pairs"], "argument --data: expected PROBE=PATH"),
    ("unknown-flag", lambda t: ["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ("unknown-command", lambda t: ["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ("bad-choice", lambda t: [*RUN, "--backend", "tpu"], "argument --backend: invalid choice: 'tpu'"),
    ("gate-no-baseline", lambda t: ["gate", "--candidate", str(t)], "the following arguments are required: --baseline"),
    # NaN / Infinity / out of range / absurd shapes in --prompts JSONL: file and line named
    ("prompts-nan", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '{"prompt": "a"}\n{"prompt": "b", "x": NaN}\n')],
     "p.jsonl, row ending at line 2: NaN is not a number"),
    ("prompts-inf", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '{"prompt": "a", "x": Infinity}\n')],
     "p.jsonl, row ending at line 1: Infinity is not a number"),
    ("prompts-minus-inf", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '\n\n{"prompt": "a", "x": [-Infinity]}\n')],
     "p.jsonl, row ending at line 3: -Infinity is not a number"),
    ("prompts-1e400", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '{"prompt": "a", "x": 1e400}\n')],
     "number 1e400 is out of range"),
    ("prompts-5000-digits", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '{"prompt": "a", "x": ' + "9" * 5000 + "}\n")],
     "p.jsonl, row ending at line 1: a value cannot be read (Exceeds the limit (4300 digits)"),
    ("prompts-deep", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '{"prompt": "a", "x": ' + _deep_json(20000) + "}\n")],
     "p.jsonl, row ending at line 1: nested too deeply to read"),
    ("prompts-not-json", lambda t: [*RUN, "--prompts", _write(t, "p.jsonl", '{"prompt": "a"\n')], "not valid JSON"),
    ("prompts-directory", lambda t: [*RUN, "--prompts", str(t)], "no such file"),
    ("prompts-missing", lambda t: [*RUN, "--prompts", str(t / "nope.jsonl")], "no such file"),
    # the same rules for a probe's --data file
    ("rtp-nan", lambda t: [*RUN, "--probes", "real_toxicity_prompts", "--data",
                           "real_toxicity_prompts=" + _write(t, "r.jsonl", _rtp(', "x": NaN'))],
     "r.jsonl, row ending at line 1: NaN is not a number"),
    ("rtp-begin-infinity", lambda t: [*RUN, "--probes", "real_toxicity_prompts", "--data", "real_toxicity_prompts="
                                      + _write(t, "r.jsonl", _rtp("") + _rtp("").replace("0, ", "Infinity, "))],
     "r.jsonl, row ending at line 2: Infinity is not a number"),
    ("repetition-nan", lambda t: [*RUN, "--probes", "repetition", "--data", "repetition="
                                  + _write(t, "science_prompt.json", '\n{"g": {"e": ["x"]}, "n": NaN}')],
     "science_prompt.json, row ending at line 2: NaN is not a number"),
    # --out that cannot be written
    ("out-under-a-file", lambda t: [*RUN, "--probes", "crows_pairs", "--out", _write(t, "f.txt", "x") + "/sub"],
     "not writable"),
    # policy YAML: huge numbers, absurd nesting, non-finite values, control characters in names
    ("policy-5000-digits", lambda t: ["gate", "--baseline", str(t), "--candidate", str(t), "--policy",
                                      _write(t, "g.yaml", "crows_pairs.pct_stereotype: {max_increase: " + "9" * 5000 + "}\n")],
     "g.yaml: a value cannot be read (Exceeds the limit (4300 digits)"),
    ("policy-deep", lambda t: ["gate", "--baseline", str(t), "--candidate", str(t), "--policy",
                               _write(t, "g.yaml", "a: " + _deep_json(20000) + "\n")], "g.yaml: nested too deeply to read"),
    ("policy-deep-block", lambda t: ["gate", "--baseline", str(t), "--candidate", str(t), "--policy",
                                     _write(t, "g.yaml", "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n")],
     "g.yaml: nested deeper than 64 levels"),
    ("policy-nan", lambda t: ["gate", "--baseline", str(t), "--candidate", str(t), "--policy",
                              _write(t, "g.yaml", "crows_pairs.pct_stereotype: {max_increase: .nan}\n")],
     "max_increase: expected a finite number, got nan"),
    ("policy-ansi-rule", lambda t: ["gate", "--baseline", str(t), "--candidate", str(t), "--policy",
                                    _write(t, "g.yaml", '"cr\\e[31mows\\a.x": {max_increase: 1}\n')],
     "unknown probe"),
    ("policy-missing", lambda t: ["gate", "--baseline", str(t), "--candidate", str(t), "--policy", str(t / "no.yaml")],
     "no such file"),
    # card YAML (checked before the run is read)
    ("card-5000-digits", lambda t: ["card", str(t), "--info", _write(t, "c.yaml", "model_details:\n  version: " + "7" * 5000 + "\n")],
     "c.yaml: a value cannot be read (Exceeds the limit (4300 digits)"),
    ("card-deep", lambda t: ["card", str(t), "--info", _write(t, "c.yaml", "tags: " + _deep_json(20000) + "\n")],
     "c.yaml: nested too deeply to read"),
    ("card-javascript-link", lambda t: ["card", str(t), "--info", _write(t, "c.yaml", "license_link: javascript:alert(1)\n")],
     "field 'license_link': 'javascript:alert(1)' is not an http(s) URL"),
    ("card-data-link", lambda t: ["card", str(t), "--info", _write(t, "c.yaml", "license_link: 'data:text/html,<b>x</b>'\n")],
     "field 'license_link'"),
]


@pytest.mark.parametrize("build, expected", [c[1:] for c in PRE_MODEL_CASES], ids=[c[0] for c in PRE_MODEL_CASES])
def test_bad_input_is_one_line_before_any_model_work(main_cli, no_model, tmp_path: Path,
                                                     build: Callable[[Path], list[str]], expected: str) -> None:
    (tmp_path / "in").mkdir()
    argv = build(tmp_path / "in")
    if argv[:1] == ["run"] and "--out" not in argv:
        argv += ["--out", str(tmp_path / "runs")]
    line = _one_error_line(main_cli(*argv))
    assert expected in line, line
    assert no_model == []  # nothing executed
    assert not list(tmp_path.rglob("manifest.json"))  # no run directory was started
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_card_yaml_problems_leave_the_run_untouched(main_cli, done_run: DoneRun, tmp_path: Path) -> None:
    before = _snapshot(done_run.path)
    for text in ("license_link: javascript:alert(1)\n", "tags: " + _deep_json(20000) + "\n",
                 "model_details: {version: " + "1" * 5000 + "}\n"):
        info = _write(tmp_path, "card.yaml", text)
        _one_error_line(main_cli("card", str(done_run.path), "--info", info))
    assert _snapshot(done_run.path) == before
    assert not (done_run.path / "README.md").exists()


# ---------------------------------------------------------------------------------------------
# Reruns of a complete run: the previous results stay intact
# ---------------------------------------------------------------------------------------------

def _corrupt(cache: Path) -> None:
    cache.write_bytes(b"this is not a sqlite file\n" * 200)


def _truncate(cache: Path) -> None:
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])


def _foreign(cache: Path) -> None:
    cache.unlink()
    with sqlite3.connect(cache) as db:
        db.execute("CREATE TABLE results (id INTEGER, payload BLOB)")


@pytest.mark.parametrize("damage, expected", [
    (_corrupt, "the cache is corrupt or not an opt-audit cache (file is not a database)"),
    (_truncate, "the cache is corrupt"),
    (_foreign, "not an opt-audit cache (its results table has columns id, payload"),
], ids=["garbage", "truncated", "foreign"])
def test_rerun_with_a_bad_cache_refuses_and_keeps_the_run(main_cli, no_model, done_run: DoneRun,
                                                          damage: Callable[[Path], None], expected: str) -> None:
    cache = done_run.path / "cache.sqlite"
    _checkpoint(cache)
    saved = cache.read_bytes()
    try:
        damage(cache)
        before = _snapshot(done_run.path)
        line = _one_error_line(main_cli(*done_run.argv))
        assert str(cache) in line and expected in line and "move it aside" in line
        assert no_model == []
        assert _snapshot(done_run.path) == before  # manifest, summary, samples: byte for byte
        assert main_cli("report", str(done_run.path), "--format", "md", "--out",
                        str(done_run.path.parent / "r.md")).code == 0  # the run is still reportable
    finally:
        cache.write_bytes(saved)


def test_second_run_while_the_first_holds_the_lock(main_cli, no_model, done_run: DoneRun) -> None:
    before = _snapshot(done_run.path)
    fd = os.open(done_run.path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `opt-audit run` holds it
        line = _one_error_line(main_cli(*done_run.argv))
    finally:
        os.close(fd)
        (done_run.path / ".lock").unlink()
    assert line == (f"opt-audit: error: {done_run.path}: another opt-audit process is running this run now "
                    f"(it holds {done_run.path / '.lock'}); wait for it to finish, then rerun to reuse its results")
    assert no_model == []
    assert _snapshot(done_run.path) == before  # attempts not counted: this process never ran it


def test_failed_rerun_keeps_the_complete_manifest(main_cli, done_run: DoneRun, monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.runner

    manifest_path = done_run.path / "manifest.json"
    before = json.loads(manifest_path.read_text(encoding="utf-8"))
    results = {p: (done_run.path / p).read_bytes() for p in ("summary.json", "samples/crows_pairs.jsonl")}

    def boom(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("scorer exploded")

    monkeypatch.setattr(audit.runner, "evaluate", boom)
    line = _one_error_line(main_cli(*done_run.argv), code=1, after_model=True)
    assert line == ("opt-audit: error: internal error: RuntimeError: scorer exploded (a bug in opt-audit; rerun "
                    "with --debug for the traceback and report it)")
    after = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert after["status"] == "complete"
    for kept in ("requests", "timings_s", "scorers", "finished_at", "started_at"):
        assert after[kept] == before[kept], kept
    assert after["attempts"] == before["attempts"] + 1
    assert after["failed_attempts"][-1]["error"] == "RuntimeError: scorer exploded"
    assert after["failed_attempts"][-1]["attempt"] == after["attempts"]
    assert "rerun" not in after
    assert {p: (done_run.path / p).read_bytes() for p in results} == results
    assert main_cli("report", str(done_run.path), "--format", "md", "--out",
                    str(done_run.path.parent / "r.md")).code == 0

    monkeypatch.undo()  # a rerun that succeeds replaces it, with the history kept and nothing recomputed
    assert main_cli(*done_run.argv).code == 0
    final = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert final["status"] == "complete" and final["attempts"] == after["attempts"] + 1
    assert final["failed_attempts"] == after["failed_attempts"]
    assert final["requests"]["computed"] == 0
    assert not (done_run.path / ".lock").exists()


def test_full_disk_while_writing_samples_is_one_line_and_keeps_the_run(main_cli, done_run: DoneRun,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.store

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see which file is being written")
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        if "/samples/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    before = _snapshot(done_run.path)
    monkeypatch.setattr(audit.store.os, "fsync", full_disk)
    line = _one_error_line(main_cli(*done_run.argv), after_model=True)
    monkeypatch.undo()
    assert line.startswith(f"opt-audit: error: {done_run.path / 'samples'}/")
    assert line.endswith(": cannot write it (No space left on device; free some space and rerun: finished work "
                         "is kept)")
    after = _snapshot(done_run.path)
    changed = {p for p in before if before[p] != after.get(p)}
    assert changed <= {"manifest.json", "cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm"}, changed
    manifest = json.loads((done_run.path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete" and "No space left" in manifest["failed_attempts"][-1]["error"]
    assert not [p for p in done_run.path.iterdir() if p.name.startswith(".")]  # no staging folder, no lock


def test_internal_error_is_one_line_unless_debug(main_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.cli

    def broken() -> int:
        raise KeyError("probe table\nwith a second line")

    monkeypatch.setattr(audit.cli, "cmd_probes", broken)
    line = _one_error_line(main_cli("probes"), code=1)
    assert line.startswith("opt-audit: error: internal error: KeyError: 'probe table\\nwith a second line'")
    assert line.endswith("rerun with --debug for the traceback and report it)")
    with pytest.raises(KeyError):
        main_cli("probes", "--debug")


# ---------------------------------------------------------------------------------------------
# What the complete run recorded: repaired surrogates, truncated prompts
# ---------------------------------------------------------------------------------------------

def test_lone_surrogate_is_replaced_and_recorded(main_cli, tmp_path: Path) -> None:
    prompts = tmp_path / "s.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{"prompt": "Hello \\ud800 world", "id": "s", "meta": "\\udfff"}\n',
                       encoding="utf-8")
    result = main_cli("run", "--model", "tiny-opt", "--prompts", str(prompts), "--no-progress", "--scorer", "embedded",
                      "--out", str(tmp_path / "runs"))
    assert result.code == 0, result.err
    assert [ln for ln in result.err.splitlines() if ln.strip()] == [
        f"opt-audit: warning: {prompts}, line 2: 2 text value(s) held a lone surrogate (\\ud800-\\udfff escape), "
        "replaced with U+FFFD"]
    run = Path(result.out.strip().splitlines()[-1].removeprefix("run directory: "))
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["input_warnings"] == [f"{prompts}, line 2: 2 text value(s) held a lone surrogate "
                                          "(\\ud800-\\udfff escape), replaced with U+FFFD"]
    row = next(json.loads(ln) for ln in (run / "samples" / "custom_prompts.jsonl").read_text("utf-8").splitlines()
               if json.loads(ln)["id"] == "s")
    assert row["prompt"] == "Hello \ufffd world" and row["meta"] == {"meta": "\ufffd"}


def test_truncated_prompt_is_recorded_on_the_row_and_counted(done_run: DoneRun, main_cli, tmp_path: Path) -> None:
    from audit.tiny import load_opt_tokenizer

    full = len(load_opt_tokenizer()(LONG_PROMPT)["input_ids"])
    rows = {r["id"]: r for r in (json.loads(ln) for ln in
                                 (done_run.path / "samples" / "custom_prompts.jsonl").read_text("utf-8").splitlines())}
    assert rows["s"]["truncated_tokens"] == 0
    assert rows["long"]["truncated_tokens"] == full - (512 - 20) > 0  # the prompt keeps its last 492 tokens
    manifest = json.loads((done_run.path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["truncation"]["prompts"] == 1 and manifest["truncation"]["tokens"] == full - 492
    assert "keeps its last" in manifest["truncation"]["rule"]
    assert any("do not fit tiny-opt's context of 512 tokens" in ln for ln in done_run.err.splitlines())
    assert all("truncated_tokens" not in json.loads(ln) for ln in
               (done_run.path / "samples" / "crows_pairs.jsonl").read_text("utf-8").splitlines())
    assert main_cli("report", str(done_run.path), "--format", "md", "--out", str(tmp_path / "r.md")).code == 0
    report = (tmp_path / "r.md").read_text("utf-8")
    assert (f"1 generation prompt did not fit the model's context of 512 tokens with the new tokens and kept only "
            f"the last tokens that fit; {full - 492} tokens were cut in all") in report


# ---------------------------------------------------------------------------------------------
# Gate outputs with hostile names
# ---------------------------------------------------------------------------------------------

def test_gate_outputs_neutralise_control_characters_and_markdown(main_cli, done_run: DoneRun, tmp_path: Path) -> None:
    run = tmp_path / "![i](x.png)[x](javascript:alert(1))"
    shutil.copytree(done_run.path, run)
    policy = tmp_path / "pol\x1b[2Jicy\x07.yaml"
    policy.write_text('crows_pairs.pct_stereotype: {max_increase: 100}\n'
                      '"bold.t\\e[31mox\\x01ic\\x0b": {max_increase: 1, required: false}\n', encoding="utf-8")
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    result = main_cli("gate", "--baseline", str(run), "--candidate", str(run), "--policy", str(policy),
                      "--junit", str(junit), "--markdown", str(md))
    assert result.code == 0, result
    for stream in (result.out, result.err):
        assert not any(c in stream for c in "\x1b\x07\x01\x0b"), stream
    suite = ET.parse(junit).getroot().find("testsuite")  # well-formed
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["pct_stereotype", "t[31moxic"]
    text = md.read_text(encoding="utf-8")
    assert "](javascript" not in text and "](x.png" not in text and "![" not in text
    assert "\\!\\[i\\]\\(x.png\\)\\[x\\]\\(javascript:alert\\(1\\)\\)" in text
    assert not any(c in text for c in "\x1b\x07\x01\x0b")


# ---------------------------------------------------------------------------------------------
# The real entry point
# ---------------------------------------------------------------------------------------------

def test_real_entry_point_argument_error_is_one_line(cli, tmp_path: Path) -> None:
    proc = cli("run", "--model", "tiny-opt", "--limit", "-3", "--out", str(tmp_path))
    line = _one_error_line(Outcome(proc.returncode, proc.stdout, proc.stderr))
    assert line == "opt-audit: error: argument --limit: must be at least 1, got -3 (see 'opt-audit run --help')"
    assert proc.stdout == ""


def test_real_entry_point_nan_prompts_refused_before_the_model(cli, tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "ok", "score": NaN}\n', encoding="utf-8")
    proc = cli("run", "--model", "tiny-opt", "--prompts", str(prompts), "--no-progress", "--out", str(tmp_path / "runs"))
    line = _one_error_line(Outcome(proc.returncode, proc.stdout, proc.stderr))
    assert line == (f"opt-audit: error: {prompts}, row ending at line 1: NaN is not a number a data file may hold "
                    "(write null for a missing value)")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def _checkpoint(cache: Path) -> None:
    """Fold the WAL into cache.sqlite, so the file alone holds every result (and can be damaged)."""
    with sqlite3.connect(cache) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ("-wal", "-shm"):
        Path(str(cache) + side).unlink(missing_ok=True)
