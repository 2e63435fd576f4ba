"""audit.contract: the typed run contract reads every manifest.json this project has written.

tests/fixtures/manifest_v1/manifest.json was written by opt-audit before `sampler` was a field:
`opt-audit run --model tiny-opt --probes crows_pairs --limit 5` (commit 454efc4).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.contract import (Attempt, Manifest, ModelFacts, ModelSpec, ProbeRecord, RunSpec, ScorerSpec,
                            VLLMOptions, legacy_sampler)
from audit.errors import AuditError
from audit.store import load_manifest, write_manifest

FIXTURE = Path(__file__).parent.parent / "fixtures" / "manifest_v1"


def _fixture_json() -> dict:
    return json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))


def test_a_v1_manifest_reads_into_typed_fields() -> None:
    m = Manifest.from_json(_fixture_json())
    assert m.schema_version == 1 and m.status == "complete" and m.run_id == "tiny-opt_crows_pairs_f456fb1296"
    assert m.spec == RunSpec(model=ModelSpec("tiny-opt"), probes=("crows_pairs",), limit=5)
    # the spec read back hashes to the run's own name: the directory name is unchanged by the contract
    assert m.spec is not None and m.spec.run_name() == m.run_id
    assert (m.suite, m.seed, m.limit) == (None, 0, 5)
    assert m.facts.model == "tiny-opt" and m.facts.dtype == "float32" and m.facts.device == "cpu"
    assert m.facts.details["params"] == 3_350_400  # untyped facts are kept as the backend wrote them
    # 5 CrowS-Pairs items, two sentences each: 10 log-likelihood requests
    assert m.probes["crows_pairs"] == ProbeRecord(m.probes["crows_pairs"].version,
                                                  m.probes["crows_pairs"].data_sha256, 10)
    assert m.engine is not None and m.engine.token_budget is not None
    assert m.requests is not None and m.requests["unique"] == 10
    # written before `sampler` was a field: derived from the backend id ("...|cpu|sampler1|prompt-rstrip")
    assert m.sampler == "sampler1" and m.prompt_rule == "prompt-rstrip"
    assert m.extra == {}  # every key of a v1 manifest is typed


def test_a_v1_manifest_round_trips_with_only_the_sampler_added() -> None:
    raw = _fixture_json()
    assert Manifest.from_json(raw).to_json() == {**raw, "sampler": "sampler1"}


def test_load_manifest_and_the_mapping_view(tmp_path: Path) -> None:
    m = load_manifest(FIXTURE)
    assert isinstance(m, Manifest)
    # the read-only JSON view that readers not yet moved to the fields use
    assert m["spec"]["limit"] == 5 and m.get("status") == "complete" and m.get("nothing") is None
    write_manifest(tmp_path, m)
    assert load_manifest(tmp_path) == m


def test_legacy_sampler_under_each_backend() -> None:
    assert legacy_sampler("hf:x@r|float32|sdpa|cpu|sampler1|prompt-rstrip") == "sampler1"
    assert legacy_sampler("vllm:b@abc|bfloat16|tp1|vllm0.11.0|seeds1") == "vllm seeds1"
    assert legacy_sampler("hf:x@r|float32|sdpa|cpu") is None  # older than samplers: unknown
    assert Manifest.from_json({"backend_id": "x|sampler2", "sampler": "sampler1"}).sampler == "sampler1"


def test_values_of_the_wrong_type_are_kept_untyped() -> None:
    # a hand-written manifest (tests/audit/test_store.py writes these): nothing is lost, nothing is guessed
    raw = {"status": "complete", "model": "tiny-opt", "seed": 0, "spec": {"suite": "quick", "limit": 3},
           "attempts": "two", "probes": {"p": {"version": "1", "data_sha256": "d"}}}
    m = Manifest.from_json(raw)
    assert m.model is None and m.facts == ModelFacts() and m.spec is None and m.attempts is None
    assert (m.suite, m.limit) == ("quick", 3)  # a partial spec still answers what it holds
    assert m.extra == {"model": "tiny-opt", "seed": 0, "spec": {"suite": "quick", "limit": 3}, "attempts": "two"}
    assert m["model"] == "tiny-opt" and Manifest.from_json(m.to_json()) == m


def test_failed_attempts_and_other_versions() -> None:
    raw = {"status": "failed", "error": "ValueError: x",
           "failed_attempts": [{"attempt": 1, "started_at": "a", "finished_at": None, "error": "boom"}]}
    m = Manifest.from_json(raw)
    assert m.failed_attempts == (Attempt(1, "a", None, "boom"),) and m.error == "ValueError: x"
    with pytest.raises(AuditError, match="schema_version 2 is not supported"):
        Manifest.from_json({"schema_version": 2})


def test_runspec_json_round_trip_keeps_the_hash() -> None:
    spec = RunSpec(model=ModelSpec("m", chat_template=True), probes=("bold", "toxigen"), suite="quick", limit=4,
                   seed=3, data=(("bold", "/d/b.jsonl"),), scorer=ScorerSpec("embedded"), backend="vllm",
                   vllm=VLLMOptions(tensor_parallel_size=2))
    back = RunSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and back.result_hash() == spec.result_hash()
    assert spec.backend_spec.name == "vllm" and spec.backend_spec.options == VLLMOptions(tensor_parallel_size=2)
    assert RunSpec(ModelSpec("m"), ("bold",)).backend_spec.options is None  # hf takes no options


def test_a_new_run_records_its_sampler_and_reads_back_whole(tmp_path: Path) -> None:
    from audit.engine import EngineOptions
    from audit.runner import execute

    spec = RunSpec(model=ModelSpec("tiny-opt", device="cpu"), probes=("crows_pairs",), limit=2, seed=4)
    run = execute(spec, tmp_path, options=EngineOptions(progress=False, seed=99)).run_dir
    raw = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert raw["sampler"] == "sampler1" and raw["spec"]["seed"] == 4
    m = Manifest.from_json(raw)
    assert m.to_json() == raw and m.spec == spec and m.status == "complete"
