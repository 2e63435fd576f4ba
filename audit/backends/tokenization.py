"""Requests to token ids, under the conventions every backend shares (stated in audit/backends/hf.py).

Why its own object: the hf and vllm backends must see the same ids for the same request (vLLM gets
token ids, never text), and a token budget must mean the same on both. Each backend holds one
`Tokenization` over its tokenizer; neither re-implements the lm-evaluation-harness 0.4.13 rules,
the generation prompt rule or the cost of a request. `tests/audit/test_vllm_backend.py` checks a
tokenizer-only `Tokenization` against a loaded hf backend id for id.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, Sequence

from audit.errors import AuditError
from audit.types import Generate, LogLikelihood, Request, Sample


def sample_from_tokens(token_ids: Sequence[int], eos_id: int | None, decode: Callable[[list[int]], str]) -> Sample:
    """A Sample from generated ids: the tokens up to (not including) the first EOS, decoded. Every backend
    builds its samples here, so the same ids give the same text and `stopped` on hf and vLLM."""
    tokens = [int(t) for t in token_ids]
    end = tokens.index(eos_id) if eos_id is not None and eos_id in tokens else None
    if end is not None:
        tokens = tokens[:end]  # anything after EOS (hf: padding) is not part of the sample
    return Sample(decode(tokens), tuple(tokens), end is not None)


class Tokenization:
    """One tokenizer and context length, with the memos that make repeated contexts cheap.

    `chat_template` is the default for generation prompts (wrap them as one user turn); a caller may
    pass its own per call, and the memo is keyed on it, so two backends that share this object but
    differ in the choice never see each other's ids.
    """

    def __init__(self, tokenizer: Any, max_length: int, name: str, chat_template: bool = False) -> None:
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style models have no pad
        self.pad_id = int(tokenizer.pad_token_id)
        self.eos_id: int | None = tokenizer.eos_token_id
        self.bos_id: int | None = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self.eos_id
        self.max_length = int(max_length)
        self.name = name
        self.chat_template = chat_template
        self._memo: dict[Hashable, Any] = {}
        self._context_ids: dict[str, list[int]] = {}  # the options of a question share their context

    def encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def ll_tokens(self, req: LogLikelihood) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) under lm-evaluation-harness 0.4.13 conventions."""
        hit = self._memo.get(req)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        context, continuation = req.context, req.continuation
        ctx: list[int]
        if context == "":
            ctx, cont = [self.bos_id], self.encode(continuation, special=False)  # type: ignore[list-item]
        else:
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                continuation = context[-n_spaces:] + continuation
                context = context[:-n_spaces]
            whole = self.encode(context + continuation, special=True)
            ctx_ids = self._context_ids.get(context)
            if ctx_ids is None:  # the options of a question share it: encode it once
                ctx_ids = self._context_ids[context] = self.encode(context, special=True)
            ctx, cont = ctx_ids, whole[len(ctx_ids):]
        if not cont:
            raise AuditError(f"log-likelihood request has an empty continuation (context {req.context[:60]!r})")
        if len(cont) > self.max_length:
            raise AuditError(f"a continuation of {len(cont)} tokens does not fit {self.name}'s context of "
                             f"{self.max_length} tokens: {req.continuation[:60]!r}...")
        self._memo[req] = (ctx, cont)
        return ctx, cont

    def prompt_tokens(self, req: Generate, chat: bool | None = None) -> list[int]:
        """The generation prompt's ids, left-truncated so that it and its new tokens fit the context."""
        chat = self.chat_template if chat is None else chat
        key = ("prompt", req, chat)
        hit = self._memo.get(key)
        if hit is None:
            if req.params.max_new_tokens >= self.max_length:
                raise AuditError(f"max_new_tokens={req.params.max_new_tokens} leaves no room for a prompt in "
                                 f"{self.name}'s context of {self.max_length} tokens")
            keep = max(1, self.max_length - req.params.max_new_tokens)
            hit = self._memo[key] = self.full_prompt_tokens(req, chat)[-keep:]
        return hit

    def full_prompt_tokens(self, req: Generate, chat: bool | None = None) -> list[int]:
        """The prompt's tokens before truncation: trailing whitespace removed (GENERATION_PROMPT_RULE),
        then either encoded with the tokenizer's special tokens or wrapped in its chat template.
        Memoised: the runner asks for truncation counts before the engine asks for the tokens."""
        chat = self.chat_template if chat is None else chat
        key = ("full prompt", req, chat)
        hit = self._memo.get(key)
        if hit is None:
            text = req.prompt.rstrip()
            if chat:
                ids = self.tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                         add_generation_prompt=True, tokenize=True)
                hit = list(ids["input_ids"] if isinstance(ids, Mapping) else ids)
            else:
                hit = self.encode(text, special=True)
            self._memo[key] = hit
        return hit

    def prompt_truncation(self, req: Generate, chat: bool | None = None) -> int:
        """Tokens cut from the start of a generation prompt so that it and its new tokens fit the context."""
        if req.params.max_new_tokens >= self.max_length:
            return 0  # refused when it runs (`prompt_tokens`)
        room = max(1, self.max_length - req.params.max_new_tokens)
        return max(0, len(self.full_prompt_tokens(req, chat)) - room)

    def cost(self, request: Request, share_prompt: bool, chat: bool | None = None) -> int:
        """Tokens of the request's row(s). A log-likelihood row: its positions, up to the context. A
        generation: its prompt once for its n samples when the backend shares it (hf's prefix sharing,
        vLLM's prefix cache), else once per sample."""
        if isinstance(request, LogLikelihood):
            ctx, cont = self.ll_tokens(request)
            return min(len(ctx) + len(cont) - 1, self.max_length)
        if not isinstance(request, Generate):  # Classify, ExtractSpan, Embed: their backends cost them
            raise AuditError(f"{type(request).__name__} requests are not costed by the shared tokenization")
        p = request.params
        prompt = len(self.prompt_tokens(request, chat))
        return prompt + p.max_new_tokens * p.n if share_prompt else (prompt + p.max_new_tokens) * p.n

    def decode(self, ids: list[int]) -> str:
        """Generated ids as text, special tokens dropped (the `decode` of `sample_from_tokens`)."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def shareable(self, ctx: list[int], cont: list[int]) -> bool:
        """A context of one token (BOS) has nothing to share; one that is cut to fit the window is cut
        differently for each continuation, so it cannot be shared."""
        return len(ctx) >= 2 and len(ctx) + len(cont) - 1 <= self.max_length

    # the names these methods had on the hf backend (tests compare the two backends id for id)
    _ll_tokens = ll_tokens
    _prompt_tokens = prompt_tokens
