"""Exact text of each token: byte-level pieces decoded so that no token shows U+FFFD.

A byte-level BPE tokenizer splits a CJK character or an emoji into tokens that each hold some of its
UTF-8 bytes; decoding such a token alone gives U+FFFD. `token_pieces` gives every token the whole
characters it completes instead ("" for a token that only starts a character), in context (with the
leading space a SentencePiece tokenizer drops at the start of a decode), so that
"".join(token_pieces(tok, ids)) == tok.decode(ids, clean_up_tokenization_spaces=False) (for every
tokenizer whose decode of a run after the previous one extends the previous decode: byte-level BPE,
SentencePiece).
"""
from __future__ import annotations


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, clean_up_tokenization_spaces=False)


MAX_CONTINUATION_TOKENS = 3  # a UTF-8 character has at most 3 bytes after its first, each token at least 1


def _ends_incomplete(tokenizer, ids: list[int], run: list[int]) -> bool:
    """Whether the decoded run ends in an incomplete UTF-8 sequence that the next tokens complete.
    Its decode then ends in U+FFFD, which the next <= 3 tokens replace by the character; a U+FFFD
    that is part of the text itself (or bytes no later token completes) stays a prefix."""
    text = _decode(tokenizer, [ids[j] for j in run])
    if not text.endswith("\ufffd"):
        return False
    ahead = ids[run[-1] + 1: run[-1] + 1 + MAX_CONTINUATION_TOKENS]
    return bool(ahead) and not _decode(tokenizer, [ids[j] for j in run] + ahead).startswith(text)


def char_groups(tokenizer, ids: list[int]) -> list[list[int]]:
    """Token index runs that each decode to whole characters: a run grows while it ends in an
    incomplete UTF-8 sequence that the next tokens complete (its decode ends in U+FFFD; a U+FFFD of
    the text itself is a whole character)."""
    groups, cur = [], []
    for i in range(len(ids)):
        cur.append(i)
        if not _ends_incomplete(tokenizer, ids, cur):
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def group_texts(tokenizer, ids: list[int], groups: list[list[int]]) -> list[str]:
    """Each group's text in context (decoded after the previous group, whose text is then cut off),
    so tokenizers that drop a word's leading space at the start of a decode (SentencePiece) keep it."""
    texts, prev = [], []
    for g in groups:
        cur = [ids[i] for i in g]
        head = _decode(tokenizer, prev) if prev else ""
        both = _decode(tokenizer, prev + cur)
        alone = both[len(head):] if both.startswith(head) else None
        texts.append(alone if alone is not None else _decode(tokenizer, cur))
        prev = cur
    return texts


def token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """list[str] [len(ids)]: the exact text of each token, its pieces concatenating to the decoded ids.

    Within a run of tokens that decodes to whole characters only together (`char_groups`: the bytes
    of one CJK character or emoji spread over tokens), each token gets the characters that are
    complete once it is added (the decode up to it, less its trailing incomplete sequence: U+FFFD),
    so a character's text goes to the token that completes it and the tokens before get "" (or the
    whole characters they hold before the partial one)."""
    groups = char_groups(tokenizer, ids)
    texts = group_texts(tokenizer, ids, groups)
    pieces = [""] * len(ids)
    prev: list[int] = []
    for g, text in zip(groups, texts):
        done = 0
        if len(g) > 1:
            head = _decode(tokenizer, prev) if prev else ""
            for k, i in enumerate(g[:-1]):
                part = _decode(tokenizer, prev + [ids[j] for j in g[:k + 1]])
                stable = part[len(head):].rstrip("\ufffd") if part.startswith(head) else ""
                if len(stable) > done and text.startswith(stable):
                    pieces[i], done = stable[done:], len(stable)
        pieces[g[-1]] = text[done:]
        prev = [ids[i] for i in g]
    return pieces
