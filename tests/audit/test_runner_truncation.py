"""audit.runner.prompt_truncation: which generation prompts the backend cuts, and by how many tokens.

A fake backend with a whitespace tokenizer: BOS + one token per word. Context 16, 4 new tokens:
a prompt keeps its last 16 - 4 = 12 tokens.
"""

from __future__ import annotations

from audit.runner import _with_truncation, prompt_truncation
from audit.types import Generate, GenParams, LogLikelihood

PARAMS = GenParams(max_new_tokens=4)


class _Tokenizer:
    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [2] * add_special_tokens + [7] * len(text.split())}


class _Backend:
    tokenizer = _Tokenizer()
    max_length = 16
    name = "fake"


def test_only_prompts_longer_than_the_room_are_counted() -> None:
    long = " ".join(["w"] * 20)  # 1 + 20 = 21 tokens; keeps 12, cuts 9
    edge = " ".join(["w"] * 11)  # 1 + 11 = 12 tokens: fits exactly
    asked = {"gen": [Generate("short", PARAMS), Generate(long, PARAMS), Generate(edge, PARAMS)],
             "ll": [LogLikelihood("context", " continuation")]}
    assert prompt_truncation(_Backend(), asked) == {"gen": {"short": 0, long: 9, edge: 0}}


def test_the_same_prompt_with_more_new_tokens_counts_its_largest_cut() -> None:
    long = " ".join(["w"] * 14)  # 15 tokens: 3 cut with 4 new tokens, 7 with 8
    asked = {"repetition": [Generate(long, PARAMS), Generate(long, GenParams(max_new_tokens=8))]}
    assert prompt_truncation(_Backend(), asked) == {"repetition": {long: 7}}


def test_a_backend_rule_wins_and_a_backend_without_tokenizer_measures_nothing() -> None:
    class Own(_Backend):
        def prompt_truncation(self, request: Generate) -> int:
            return 5

    assert prompt_truncation(Own(), {"gen": [Generate("x", PARAMS)]}) == {"gen": {"x": 5}}
    assert prompt_truncation(object(), {"gen": [Generate("x", PARAMS)]}) == {}  # type: ignore[arg-type]


def test_rows_get_truncated_tokens_by_prompt() -> None:
    rows = {"gen": [{"prompt": "a"}, {"prompt": "b"}], "ll": [{"prompt": "a"}]}
    out = _with_truncation(rows, {"gen": {"a": 3, "b": 0}})
    assert out == {"gen": [{"prompt": "a", "truncated_tokens": 3}, {"prompt": "b", "truncated_tokens": 0}],
                   "ll": [{"prompt": "a"}]}  # a log-likelihood probe's rows are left as they were
