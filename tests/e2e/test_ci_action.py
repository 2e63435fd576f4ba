"""The GitHub Action (action.yml) and the example workflow (docs/examples/opt-audit-gate.yml).

Structure: both parse with PyYAML; every `uses:` is pinned to a major version, a release or a
commit sha; the cache is restored and saved under one key, and the save runs even when the gate
fails; every `inputs.*` and `steps.*` an expression names exists.

Behaviour: the action's steps run here, in order, as GitHub would run them: each `run:` script
through `bash --noprofile --norc -eo pipefail` (GitHub's shell for `shell: bash`) with its `env:`
and `${{ }}` expressions filled in, `if:` conditions evaluated, and GITHUB_OUTPUT /
GITHUB_STEP_SUMMARY files. The `uses:` steps are played by small stand-ins: setup-python does
nothing (the repository's venv is the Python), cache restore/save copy the folder to and from a
local cache keyed like the real one, upload-artifact checks that the listed files exist. Two
"pull requests" run on fresh workspaces that share the cache: the first audits the baseline and
saves it although its gate fails; the second restores it and audits only the candidate.

The install step is the one `run:` script not executed: `pip install "${{ github.action_path }}"`
would fetch torch and every dependency from the network (tests run offline) and reinstall into the
shared venv. The test checks that the step installs from the action's own folder, and puts the
repository's venv first on PATH instead: its `opt-audit` is an editable install of this same
checkout, i.e. what that pip command installs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import pytest

# three tiny-opt audits through the action's own scripts (about 80 CPU-seconds): make test-all
pytestmark = pytest.mark.heavy
import yaml

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
WORKFLOW = REPO / "docs" / "examples" / "opt-audit-gate.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
CONTEXT = re.compile(r"\b(inputs|steps|github|env)\.([\w.-]+)")


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _expressions(node: Any) -> list[str]:
    """Every expression: inside ${{ }}, and the bare `if:` conditions."""
    found = [e for s in _strings(node) for e in EXPRESSION.findall(s)]
    steps = node.get("runs", {}).get("steps", []) if isinstance(node, dict) else []
    return found + [s["if"] for s in steps if "if" in s]


def test_action_structure() -> None:
    action = _load(ACTION)
    inputs, steps = action["inputs"], action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    ids = [s.get("id") for s in steps]
    for step in steps:
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"unpinned: {step['uses']}"
        else:
            assert step["shell"] == "bash", step["name"]  # a composite run step must name its shell
    for expr in _expressions(action):
        for ctx, path in CONTEXT.findall(expr):
            name = path.split(".")[0]
            if ctx == "inputs":
                assert name in inputs, f"unknown input in {expr!r}"
            elif ctx == "steps":
                assert name in ids, f"unknown step in {expr!r}"
    for name, out in action["outputs"].items():
        step = CONTEXT.search(out["value"]).group(2).split(".")[0]
        assert step in ids, name
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert 'python -m pip install "${{ github.action_path }}"' in install["run"]  # its own checkout
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore@"))
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save@"))
    assert restore["with"] == save["with"]  # same path, same key
    assert "always()" in save["if"]  # a failing gate still keeps the baseline it paid for
    key_script = next(s for s in steps if s.get("id") == "key")["run"]
    for part in ("BASELINE_REVISION", "SUITE", "LIMIT", "SCORER", "policy", "version"):
        assert part in key_script
    assert steps.index(save) > ids.index("gate")  # after the gate, whatever its exit code


def test_example_workflow_uses_the_action_correctly() -> None:
    workflow = _load(WORKFLOW)
    action = _load(ACTION)
    assert "pull_request" in workflow.get("on", workflow.get(True))  # PyYAML reads the key `on` as True
    steps = workflow["jobs"]["gate"]["steps"]
    for step in steps:
        if "uses" in step:
            assert step["uses"].startswith("./") or PINNED.match(step["uses"]), step["uses"]
    gate = next(s for s in steps if s.get("id") == "gate")
    given = set(gate["with"])
    assert given <= set(action["inputs"]), given - set(action["inputs"])
    required = {k for k, v in action["inputs"].items() if v.get("required")}
    assert required <= given
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "# uses: OWNER/opt-audit@v0.1.0" in text  # the hosted form, with what to replace


# --------------------------------------------------------------------------------------------
# Running the action's steps here
# --------------------------------------------------------------------------------------------


@dataclass
class Runner:
    """Plays one job of the action on a fresh workspace; `cache` outlives it (the Actions cache)."""

    inputs: dict[str, str]
    workspace: Path
    cache: Path
    env: dict[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)

    def lookup(self, ctx: str, path: str) -> str:
        parts = path.split(".")
        if ctx == "inputs":
            return self.inputs.get(parts[0], "")
        if ctx == "github":
            return {"action_path": str(REPO), "workspace": str(self.workspace)}[parts[0]]
        if ctx == "steps":
            if parts[1] == "outcome":
                return self.outcomes.get(parts[0], "")
            return self.outputs.get(parts[0], {}).get(parts[2], "")
        raise AssertionError(f"context {ctx} not played")

    def fill(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: str(self.evaluate(m.group(1))), text)

    def evaluate(self, expr: str) -> Any:
        """GitHub's expression language, as far as action.yml uses it: contexts, '' strings, ==, !=,
        &&, ||, !, always(), success()."""
        tokens = re.findall(r"'[^']*'|&&|\|\||==|!=|!|\(|\)|[A-Za-z_][\w.-]*\(\)|[A-Za-z_][\w.-]*", expr)
        assert "".join(tokens) == re.sub(r"\s+", "", expr), f"cannot play {expr!r}"
        words = []
        for t in tokens:
            if t in ("&&", "||", "!"):
                words.append({"&&": "and", "||": "or", "!": "not"}[t])
            elif t == "always()":
                words.append("True")
            elif t == "success()":
                words.append(repr("failure" not in self.outcomes.values()))
            elif CONTEXT.fullmatch(t):
                ctx, path = CONTEXT.fullmatch(t).groups()
                words.append(repr(self.lookup(ctx, path)))
            else:
                words.append(t)
        return eval(" ".join(words), {"__builtins__": {}}, {})  # noqa: S307 - our own action.yml, checked above

    def step(self, step: dict[str, Any]) -> None:
        name = step.get("id") or step["name"]
        condition = step.get("if", "success()")
        if not self.evaluate(condition):
            self.outcomes[name] = "skipped"
            return
        if "uses" in step:
            self.outcomes[name] = self.play(step["uses"].split("@")[0], {k: self.fill(str(v)) for k, v in
                                                                        step.get("with", {}).items()}, name)
            return
        if "pip install" in step["run"]:
            self.outcomes[name] = "success"  # see the module docstring: the venv is first on PATH instead
            return
        output, summary = self.workspace / ".output", self.workspace / ".summary"
        output.write_text("", encoding="utf-8")
        script = self.workspace / ".step.sh"
        script.write_text(self.fill(step["run"]), encoding="utf-8")
        env = dict(self.env, GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary),
                   GITHUB_ACTION_PATH=str(REPO), GITHUB_WORKSPACE=str(self.workspace),
                   **{k: self.fill(str(v)) for k, v in step.get("env", {}).items()})
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=self.workspace,
                              env=env, capture_output=True, text=True, timeout=600)
        self.logs[name] = proc.stdout + proc.stderr
        self.outputs[name] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        self.outcomes[name] = "success" if proc.returncode == 0 else "failure"

    def play(self, action: str, args: dict[str, str], name: str) -> str:
        if action == "actions/setup-python":
            return "success"
        if action == "actions/cache/restore":
            saved = self.cache / args["key"]
            self.outputs[name] = {"cache-hit": "true" if saved.is_dir() else "false"}
            if saved.is_dir():
                shutil.copytree(saved, self.workspace / args["path"])
            return "success"
        if action == "actions/cache/save":
            if not (self.cache / args["key"]).exists():  # like GitHub: a key is written once
                shutil.copytree(self.workspace / args["path"], self.cache / args["key"])
            return "success"
        if action == "actions/upload-artifact":
            for pattern in args["path"].split():
                self.uploaded += glob(str(self.workspace / pattern))
            return "success"
        raise AssertionError(f"no stand-in for {action}")

    def run(self) -> None:
        for step in _load(ACTION)["runs"]["steps"]:
            self.step(step)


def test_action_steps_run_here(tmp_path: Path, cli_env: dict[str, str]) -> None:
    action = _load(ACTION)
    policy = tmp_path / "policy.yaml"  # a floor no percentage reaches: the gate fails (exit 1) every time
    policy.write_text("rules:\n  crows_pairs.pct_stereotype: {min_value: 101}\n", encoding="utf-8")
    inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    inputs.update({"model": "tiny-opt", "baseline-model": "tiny-opt", "suite": "ci", "limit": "1",
                   "policy": str(policy)})
    venv_bin = str(Path(sys.executable).parent)
    env = dict(cli_env, PATH=f"{venv_bin}{os.pathsep}{cli_env.get('PATH', '')}")
    cache = tmp_path / "actions-cache"
    t0 = time.perf_counter()

    first = Runner(inputs, tmp_path / "pr-1", cache, env)
    first.workspace.mkdir()
    first.run()
    logs = "\n".join(f"--- {k}\n{v}" for k, v in first.logs.items())
    assert first.outcomes["audit-baseline"] == "success", logs
    assert first.outputs["gate"]["exit-code"] == "1", logs  # the planted policy fails
    assert first.outcomes["Verdict"] == "failure"  # ... and so does the job
    key = first.outputs["key"]["key"]
    assert key.startswith("opt-audit-baseline-tiny-opt-embedded-ci-limit1-embedded-policy-")
    assert (cache / key / "RUN").is_file()  # saved although the gate failed: if: always()
    summary = (first.workspace / ".summary").read_text(encoding="utf-8")
    assert "opt-audit gate: FAIL: regression" in summary  # the gate's Markdown, in the job summary
    uploaded = {Path(p).name for p in first.uploaded}
    assert {"gate.xml", "gate.md", "summary.json", "manifest.json"} <= uploaded

    second = Runner(inputs, tmp_path / "pr-2", cache, env)  # the next pull request, a fresh runner
    second.workspace.mkdir()
    second.run()
    logs = "\n".join(f"--- {k}\n{v}" for k, v in second.logs.items())
    assert second.outputs["key"]["key"] == key
    assert second.outputs["restore"]["cache-hit"] == "true"
    assert second.outcomes["audit-baseline"] == "skipped", logs  # the baseline is not audited again
    assert second.outputs["gate"]["exit-code"] == "1", logs
    assert "baseline run: opt-audit-gate/baseline/" in second.logs["baseline"]
    print(f"two gated pull requests in {time.perf_counter() - t0:.0f} s")


@pytest.mark.parametrize("given", [{"baseline-model": ""}, {"baseline-run": "runs/x"}])
def test_action_refuses_zero_or_two_baselines(tmp_path: Path, cli_env: dict[str, str], given: dict[str, str]) -> None:
    action = _load(ACTION)
    inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    inputs.update({"model": "tiny-opt", "baseline-model": "tiny-opt", **given})
    env = dict(cli_env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{cli_env.get('PATH', '')}")
    runner = Runner(inputs, tmp_path, tmp_path / "cache", env)
    runner.step(next(s for s in action["runs"]["steps"] if s.get("id") == "key"))
    assert runner.outcomes["key"] == "failure"
    assert "::error::opt-audit gate: give baseline-model or baseline-run" in runner.logs["key"]
