"""audit.cache: keys that include everything that changes an output, and a sqlite store that
round-trips results exactly and survives a reopen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from audit.cache import ResultCache, check_cache, keys_for, request_key
from audit.errors import AuditError
from audit.types import Generate, Generation, GenParams, LogLikelihood, LogLikelihoodResult, Sample

SAMPLED = GenParams(max_new_tokens=16, do_sample=True, temperature=0.7, top_p=0.9, n=2)
GREEDY = GenParams(max_new_tokens=16)


def test_key_is_a_stable_sha256_hex() -> None:
    k = request_key("m@rev/fp32", Generate("Hello", GREEDY), seed=0)
    assert len(k) == 64 and all(c in "0123456789abcdef" for c in k)
    assert request_key("m@rev/fp32", Generate("Hello", GenParams(max_new_tokens=16)), seed=0) == k


def test_key_changes_with_backend_id() -> None:
    # The lm-evaluation-harness regret: a key without the model mixed two models' answers.
    r = LogLikelihood("ctx", " cont")
    assert request_key("opt-125m@abc/fp16", r, 0) != request_key("opt-350m@abc/fp16", r, 0)
    assert request_key("opt-125m@abc/fp16", r, 0) != request_key("opt-125m@abc/bf16", r, 0)


def test_key_changes_with_prompt_context_and_continuation() -> None:
    keys = {
        request_key("m", Generate("a", GREEDY), 0),
        request_key("m", Generate("b", GREEDY), 0),
        request_key("m", Generate("a ", GREEDY), 0),
        request_key("m", LogLikelihood("", "a"), 0),
        request_key("m", LogLikelihood("a", ""), 0),
        request_key("m", LogLikelihood("x", "a"), 0),
    }
    assert len(keys) == 6


@pytest.mark.parametrize("change", [
    {"max_new_tokens": 17},
    {"do_sample": False, "n": 1},
    {"temperature": 0.8},
    {"top_p": 0.95},
    {"n": 3},
])
def test_key_changes_with_every_gen_param(change: dict) -> None:
    base = request_key("m", Generate("p", SAMPLED), 0)
    other = request_key("m", Generate("p", dataclasses.replace(SAMPLED, **change)), 0)
    assert other != base


def test_every_gen_param_field_is_covered_above() -> None:
    # If GenParams grows a field, the parametrised test above must grow with it.
    assert {f.name for f in dataclasses.fields(GenParams)} == {
        "max_new_tokens", "do_sample", "temperature", "top_p", "n"}


def test_sampled_key_depends_on_seed() -> None:
    r = Generate("p", SAMPLED)
    assert request_key("m", r, 0) != request_key("m", r, 1)


def test_greedy_and_loglikelihood_keys_ignore_seed() -> None:
    # Greedy decoding and log-likelihoods are deterministic: a rerun with another seed reuses them.
    g = Generate("p", GREEDY)
    assert request_key("m", g, 0) == request_key("m", g, 12345)
    ll = LogLikelihood("c", "x")
    assert request_key("m", ll, 0) == request_key("m", ll, 12345)


def test_equal_requests_have_equal_keys() -> None:
    a = Generate("p", GenParams(4, do_sample=True, temperature=1))
    b = Generate("p", GenParams(4, do_sample=True, temperature=1.0))
    assert a == b and hash(a) == hash(b)
    assert request_key("m", a, 0) == request_key("m", b, 0)


def test_keys_for_keeps_order() -> None:
    reqs = [LogLikelihood("", "a"), LogLikelihood("", "b")]
    assert keys_for("m", reqs, 3) == [request_key("m", reqs[0], 3), request_key("m", reqs[1], 3)]


# ---------------------------------------------------------------------------------------------
# ResultCache
# ---------------------------------------------------------------------------------------------

GEN = Generation((
    Sample("Grüße, 世界 — ok 🙂", (0, 2, 50264, 7), stopped_at_eos=True),
    Sample("", (), stopped_at_eos=False),  # an empty continuation is a real result
))
LL = LogLikelihoodResult(logprob=-12.345678901234567, n_tokens=5, is_greedy=False)
LL_INF = LogLikelihoodResult(logprob=float("-inf"), n_tokens=1, is_greedy=False)


def test_put_get_round_trip_is_exact(tmp_path: Path) -> None:
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        cache.put_many("m", [("k1", "generate", GEN), ("k2", "loglikelihood", LL),
                             ("k3", "loglikelihood", LL_INF)])
        got = cache.get_many(["k1", "k2", "k3", "absent"])
    assert got == {"k1": GEN, "k2": LL, "k3": LL_INF}
    assert isinstance(got["k1"].samples[0].tokens, tuple)
    assert got["k1"].samples[0].text == "Grüße, 世界 — ok 🙂"
    assert got["k1"].samples[1].text == "" and got["k1"].samples[1].tokens == ()


def test_reopen_keeps_results(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"  # parent folders are created
    cache = ResultCache(path)
    cache.put_many("m", [("k1", "generate", GEN)])
    cache.close()
    with ResultCache(path) as again:
        assert again.count() == 1
        assert again.get_many(["k1"]) == {"k1": GEN}


def test_count_and_replace(tmp_path: Path) -> None:
    with ResultCache(tmp_path / "c.sqlite") as cache:
        assert cache.count() == 0
        cache.put_many("m", [("a", "loglikelihood", LL), ("b", "loglikelihood", LL)])
        assert cache.count() == 2
        # The same key again replaces, it does not add a row.
        newer = LogLikelihoodResult(-1.5, 2, True)
        cache.put_many("m", [("a", "loglikelihood", newer)])
        assert cache.count() == 2
        assert cache.get_many(["a"]) == {"a": newer}


def test_get_many_over_the_parameter_chunk(tmp_path: Path) -> None:
    # 1,200 keys span three 500-key chunks (500 + 500 + 200).
    items = [(f"k{i}", "loglikelihood", LogLikelihoodResult(-float(i), i, i % 2 == 0)) for i in range(1200)]
    with ResultCache(tmp_path / "c.sqlite") as cache:
        cache.put_many("m", items)
        assert cache.count() == 1200
        got = cache.get_many([k for k, _, _ in items] + ["missing"])
    assert len(got) == 1200
    assert got["k0"] == LogLikelihoodResult(-0.0, 0, True)
    assert got["k1199"] == LogLikelihoodResult(-1199.0, 1199, False)
    assert got["k500"] == LogLikelihoodResult(-500.0, 500, True)


# ---------------------------------------------------------------------------------------------
# A cache.sqlite that is corrupt, truncated or foreign: a clear error, never a sqlite traceback
# ---------------------------------------------------------------------------------------------

def _filled(path: Path) -> Path:
    with ResultCache(path) as cache:
        cache.put_many("m", [(f"k{i}", "loglikelihood", LogLikelihoodResult(-1.0 * i, 1, True)) for i in range(200)])
    return path


def test_check_cache_accepts_a_sound_missing_or_empty_file(tmp_path: Path) -> None:
    check_cache(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()  # checking creates nothing
    (tmp_path / "empty.sqlite").write_bytes(b"")
    check_cache(tmp_path / "empty.sqlite")
    check_cache(_filled(tmp_path / "c.sqlite"))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"not sqlite\n" * 500), "the cache is corrupt or not an opt-audit cache (file is not a database)"),
    (lambda p: p.write_bytes(p.read_bytes()[:8192]), "the cache is corrupt"),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "the cache is corrupt"),
], ids=["garbage", "truncated", "header-only"])
def test_corrupt_cache_is_an_audit_error_naming_the_file(tmp_path: Path, damage, message: str) -> None:
    path = _filled(tmp_path / "cache.sqlite")
    damage(path)
    before = path.read_bytes()
    with pytest.raises(AuditError) as e:
        check_cache(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    assert "move it aside (or delete it) and rerun" in str(e.value)
    assert path.read_bytes() == before  # never repaired, moved or deleted behind the user's back


def test_foreign_sqlite_files_are_refused(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(AuditError, match="not an opt-audit cache \\(tables: notes\\)"):
        ResultCache(other)
    shaped = tmp_path / "shaped.sqlite"
    with sqlite3.connect(shaped) as db:
        db.execute("CREATE TABLE results (key TEXT, value TEXT)")
    with pytest.raises(AuditError, match="its results table has columns key, value, expected key, kind, backend, value"):
        ResultCache(shaped)


def test_unreadable_cached_value_is_an_audit_error(tmp_path: Path) -> None:
    import sqlite3

    path = _filled(tmp_path / "cache.sqlite")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE results SET value = '{not json' WHERE key = 'k1'")
    with ResultCache(path) as cache, pytest.raises(AuditError, match="the cache is corrupt or not an opt-audit cache"):
        cache.get_many(["k1"])
