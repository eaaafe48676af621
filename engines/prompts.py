"""Prompts: the Message and Prompt types, chat-message normalisation, filler text for speed tests, and the
stop-string buffer the in-process engines stream their replies through."""

from __future__ import annotations

import random
from collections.abc import Sequence

from core.errors import BadParameter

Message = dict[str, str]
"""One chat turn: {"role": "system" | "user" | "assistant", "content": str}."""

Prompt = str | Sequence[Message] | Sequence[int]
"""Plain-completion text, a chat conversation, or raw token ids (benchmarks)."""

_WORDS = (
    "the model reads every token of this prompt before it writes a single word of its answer and "
    "the time it takes grows with the length of the text so we measure it apart from generation "
    "memory bandwidth sets the pace of decoding while compute sets the pace of prompt processing"
).split()


def filler_text(n_tokens: int, seed: int = 0) -> str:
    """Deterministic English-like text of roughly `n_tokens` tokens (about one token per word)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(max(1, n_tokens)))


def random_tokens(n_tokens: int, n_vocab: int, special: set[int], seed: int = 0) -> list[int]:
    """`n_tokens` random token ids below `n_vocab`, none of them special (llama-bench's prompts)."""
    rng = random.Random(seed)
    tokens: list[int] = []
    while len(tokens) < n_tokens:
        t = rng.randrange(n_vocab)
        if t not in special:
            tokens.append(t)
    return tokens


def hf_prompt_tokens(tok, prompt: Prompt, name: str, chat_template: bool) -> list[int]:
    """Token ids through a Hugging Face tokenizer: raw ids as given, chat through the model's template,
    plain text with the tokenizer's special tokens otherwise (the MLX and torch engines)."""
    if is_token_prompt(prompt):
        return list(prompt)
    if is_chat_prompt(prompt) or chat_template:
        if not getattr(tok, "chat_template", None):
            raise BadParameter(f"{name} has no chat template — use plain completion")
        text = tok.apply_chat_template(as_messages(prompt), add_generation_prompt=True, tokenize=False)
        return list(tok.encode(text, add_special_tokens=False))
    return list(tok.encode(str(prompt), add_special_tokens=True))


def check_logits_input(tokens: Sequence[int], name: str, context_length: int | None) -> list[int]:
    """The tokens as a list, if there is at least one and they fit the model's context."""
    from core.errors import PromptTooLong

    tokens = list(tokens)
    if not tokens:
        raise BadParameter("logits need at least one token")
    if context_length and len(tokens) > context_length:
        raise PromptTooLong(f"{len(tokens)} tokens exceed {name}'s context of {context_length} tokens")
    return tokens


def as_messages(prompt: str | Sequence[Message], system_prompt: str = "") -> list[Message]:
    """A chat conversation from a user string or a message list, with an optional system turn."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [dict(m) for m in prompt]
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def check_prompt(prompt: Prompt) -> None:
    """Reject empty prompts with a clear message."""
    if isinstance(prompt, str):
        empty = not prompt.strip()
    elif len(prompt) == 0:
        empty = True
    elif isinstance(prompt[0], dict):
        empty = not any(str(m.get("content", "")).strip() for m in prompt)
    else:
        empty = False
    if empty:
        raise BadParameter("the prompt is empty — type something to send")


def is_token_prompt(prompt: Prompt) -> bool:
    return not isinstance(prompt, str) and len(prompt) > 0 and isinstance(prompt[0], int)


def is_chat_prompt(prompt: Prompt) -> bool:
    return not isinstance(prompt, str) and len(prompt) > 0 and isinstance(prompt[0], dict)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where the first of `stops` begins in `text`, or None."""
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


class StopBuffer:
    """A streamed reply with its stop strings cut off: text that may be the start of a stop string is
    held back until it cannot be, so no part of a stop string is ever shown."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.stopped = False
        """True once a stop string appeared: the reply ends where it began."""

    @property
    def pending(self) -> bool:
        """True while some text is held back."""
        return len(self.text) > self.emitted

    def add(self, piece: str, final: bool = False) -> str:
        """Append `piece`; returns the text now safe to show (all of it when `final` or stopped)."""
        if self.stopped:
            return ""
        self.text += piece
        cut = find_stop(self.text, self.stops)
        if cut is not None:
            self.text, self.stopped = self.text[:cut], True
        safe = len(self.text) if self.stopped or final else max(len(self.text) - self.hold, self.emitted)
        out = self.text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return out
