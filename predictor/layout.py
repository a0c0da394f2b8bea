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
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_prompt(tokenizer, question: str) -> list[int]:
    """Chat-templated user turn with the generation prompt; plain question + newline without a template."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
    else:
        text = question.strip() + "\n"
    return _encode(tokenizer, text)


def encode_chain(tokenizer, chain: Chain, max_length: int | None = None) -> Layout:
    """Encode a chain in the default layout; raises ChainError for empty or over-long chains."""
    reasoning = chain.reasoning.strip()
    if not reasoning:
        raise EmptyReasoningError(f"chain {chain.id or '?'}: reasoning is empty")
    prompt = encode_prompt(tokenizer, chain.question)
    answer = _encode(tokenizer, "\nThe answer is " + chain.answer + ".")
    if tokenizer.eos_token_id is not None:
        answer.append(int(tokenizer.eos_token_id))
    layout = Layout(prompt, _encode(tokenizer, reasoning), answer)
    if layout.n == 0:
        raise EmptyReasoningError(f"chain {chain.id or '?'}: reasoning encodes to no tokens")
    if max_length is not None and layout.total > max_length:
        raise TooLongError(
            f"chain {chain.id or '?'}: {layout.total} tokens exceed the LM's context of {max_length}"
        )
    return layout
