"""The default scoring layout (shared/DESIGN.md): prompt | reasoning | answer token ids.

Labels are reproducible only if every tool encodes chains exactly this way.
"""
from __future__ import annotations

from dataclasses import dataclass

from .chains import Chain


class ChainError(ValueError):
    """A chain cannot be scored (empty reasoning, too long for the LM, ...)."""


class EmptyReasoningError(ChainError):
    """The chain's reasoning is empty or encodes to no tokens."""


class TooLongError(ChainError):
    """The chain's scored sequence exceeds the LM's context."""


class ProbeTooLongError(TooLongError):
    """The chain fits the LM's context, but not with the appended probe its scorer reads."""


class MaxTokensError(ChainError):
    """The chain has more reasoning tokens than a command's --max-tokens allows."""


@dataclass(frozen=True)
class Layout:
    """Token ids of one chain: the scored sequence is prompt + kept reasoning + answer."""

    prompt_ids: list[int]
    reasoning_ids: list[int]
    answer_ids: list[int]

    @property
    def n(self) -> int:
        return len(self.reasoning_ids)

    @property
    def total(self) -> int:
        return len(self.prompt_ids) + len(self.reasoning_ids) + len(self.answer_ids)

    def sequence(self, kept: list[int] | None = None) -> list[int]:
        """Full id sequence keeping reasoning tokens at indices `kept` (default: all)."""
        r = self.reasoning_ids if kept is None else [self.reasoning_ids[i] for i in kept]
        return self.prompt_ids + r + self.answer_ids


def _encode(tokenizer, text: str) -> list[int]:
    """Data text: special-token strings in it (e.g. "<|im_end|>") stay plain text, never control tokens."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def _encode_markup(tokenizer, text: str) -> list[int]:
    """Template text: its special-token strings are control tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def adds_bos(tokenizer) -> bool:
    """True when the tokenizer puts a BOS token first by default (Gemma, Llama), as the LM was trained."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


_SENTINEL = "\x00PREDICTOR-QUESTION\x00"


def prompt_format(tokenizer) -> str:
    """Name of the prompt format `encode_prompt` uses for this tokenizer (stored in ranked records):
    "chat" (the tokenizer's chat template, user turn + generation prompt), "plain+bos" (BOS, then the
    question and a newline) or "plain" (the question and a newline)."""
    if getattr(tokenizer, "chat_template", None):
        return "chat"
    return "plain+bos" if adds_bos(tokenizer) else "plain"


def encode_prompt(tokenizer, question: str) -> list[int]:
    """Prompt ids of the default layout (shared/DESIGN.md).

    With a chat template: the user turn with the generation prompt; the template's markup is encoded
    with its control tokens and the question as plain text. Without one (a base LM): BOS when the
    tokenizer adds one by default, then `question.strip() + "\n"`."""
    fmt = prompt_format(tokenizer)
    if fmt == "chat":
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": _SENTINEL}], add_generation_prompt=True, tokenize=False
        )
        if text.count(_SENTINEL) != 1:  # a template that transforms the content: render it directly
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
            return _encode_markup(tokenizer, text)
        before, after = text.split(_SENTINEL)
        return _encode_markup(tokenizer, before) + _encode(tokenizer, question) + _encode_markup(tokenizer, after)
    bos = [int(tokenizer.bos_token_id)] if fmt == "plain+bos" else []
    return bos + _encode(tokenizer, question.strip() + "\n")


def chain_name(chain: Chain) -> str:
    """How errors name a chain: "chain 'gsm8k-3'" (or "chain (no id)")."""
    return f"chain {chain.id!r}" if chain.id else "chain (no id)"


def encode_chain(tokenizer, chain: Chain, max_length: int | None = None) -> Layout:
    """Encode a chain in the default layout; raises ChainError for empty or over-long chains."""
    reasoning = chain.reasoning.strip()
    if not reasoning:
        raise EmptyReasoningError(f"{chain_name(chain)}: reasoning is empty")
    if max_length is not None:  # a text far past the context is refused before tokenizing (minutes for 20 MB)
        from .lm import min_tokens

        low = sum(min_tokens(tokenizer, t) for t in (chain.question, reasoning, chain.answer))
        if low > max_length:
            raise TooLongError(f"{chain_name(chain)}: at least {low} tokens exceed the LM's context of {max_length}")
    prompt = encode_prompt(tokenizer, chain.question)
    answer = _encode(tokenizer, "\nThe answer is " + chain.answer + ".")
    if tokenizer.eos_token_id is not None:
        answer.append(int(tokenizer.eos_token_id))
    layout = Layout(prompt, _encode(tokenizer, reasoning), answer)
    if layout.n == 0:
        raise EmptyReasoningError(f"{chain_name(chain)}: reasoning encodes to no tokens")
    if max_length is not None and layout.total > max_length:
        raise TooLongError(
            f"{chain_name(chain)}: {layout.total} tokens exceed the LM's context of {max_length}"
        )
    return layout
