"""tiny-opt: deterministic builds, OPT's real config ids, OPT's real tokenizer, and the CLI command."""

from __future__ import annotations

import json
import re
from pathlib import Path

from audit.pinning import sha256_file
from audit.tiny import TINY_NAME, build_tiny_model


def test_two_builds_are_byte_identical(tmp_path: Path, tiny_dir: Path) -> None:
    a = build_tiny_model(tmp_path / "a")
    b = build_tiny_model(tmp_path / "b")
    sha_a = sha256_file(a / "model.safetensors")
    sha_b = sha256_file(b / "model.safetensors")
    assert re.fullmatch(r"[0-9a-f]{64}", sha_a)
    assert sha_a == sha_b
    # The session's cached build (conftest) is the same bytes too.
    assert sha256_file(tiny_dir / "model.safetensors") == sha_a
    # The build is atomic: no temporary sibling directories are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_config_has_opt_vocabulary_and_special_ids(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "opt"
    assert config["vocab_size"] == 50272
    assert config["pad_token_id"] == 1
    assert config["bos_token_id"] == 2
    assert config["eos_token_id"] == 2
    assert config["num_hidden_layers"] == 2
    assert config["num_attention_heads"] == 4
    assert config["max_position_embeddings"] == 512


def test_saved_tokenizer_is_opts(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    # The example from transformers' OPT docs: a leading </s> (id 2), then BPE ids.
    assert tok("Hello, my dog is cute")["input_ids"] == [2, 31414, 6, 127, 2335, 16, 11962]
    assert tok("Hello, my dog is cute", add_special_tokens=False)["input_ids"] == [31414, 6, 127, 2335, 16, 11962]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (1, 2, 2)


def test_cli_tiny_model_writes_model_and_prints_sha(cli, tmp_path: Path, tiny_dir: Path) -> None:
    out = tmp_path / "my-tiny"
    proc = cli("tiny-model", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    sha = sha256_file(out / "model.safetensors")
    assert sha == sha256_file(tiny_dir / "model.safetensors")
    assert f"wrote {TINY_NAME} to {out}" in proc.stdout
    assert f"sha256 {sha}" in proc.stdout
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "README.md",
                 "TOKENIZER_LICENSE", "TOKENIZER_SOURCE.md"):
        assert (out / name).is_file(), name
