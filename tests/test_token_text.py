"""Exact token texts (`token_text.token_pieces`) and the fields that show them: `predictor predict`'s
`tokens` and the `show` heatmap. A CJK + emoji chain, whose characters the embedded tokenizer spreads
over several byte-level tokens: no U+FFFD anywhere, and the pieces concatenate to the decoded text."""
from __future__ import annotations

import json

import pytest

from predictor.chains import as_chain
from predictor.cli import main
from predictor.layout import encode_chain
from predictor.token_text import char_groups, token_pieces

CJK = {"id": "zh", "question": "小明有几个苹果？",
       "reasoning": "小明有3个苹果🍎，又买了4个。3 + 4 = 7 🎉 👨\u200d👩\u200d👧 café", "answer": "7"}


def _decode(tok, ids):
    return tok.decode(ids, clean_up_tokenization_spaces=False)


def test_pieces_are_exact_and_go_to_the_token_that_completes_a_character(tokenizer):
    ids = encode_chain(tokenizer, as_chain(CJK)).reasoning_ids
    pieces = token_pieces(tokenizer, ids)
    assert len(pieces) == len(ids)
    assert any("\ufffd" in _decode(tokenizer, [t]) for t in ids)  # the per-token decode this replaces
    assert not any("\ufffd" in p for p in pieces)
    assert "".join(pieces) == _decode(tokenizer, ids) == CJK["reasoning"]
    for g in char_groups(tokenizer, ids):
        # every prefix of a run holds whole characters only: the decode up to token k, less its
        # incomplete tail, is what the pieces up to k spell
        for k in range(len(g)):
            upto = _decode(tokenizer, ids[: g[k] + 1]).rstrip("\ufffd")
            assert "".join(pieces[: g[k] + 1]) == upto
        if len(g) == 1:  # a token of whole characters is its own decode
            assert pieces[g[0]] == _decode(tokenizer, [ids[g[0]]])
    multi = [g for g in char_groups(tokenizer, ids) if len(g) > 1]
    assert multi and all(pieces[g[0]] in ("", " ") for g in multi)  # only a space before the first byte
    assert pieces[multi[0][-1]] == "小"


def test_predict_tokens_field_is_exact_for_cjk_and_emoji(tmp_path, model_dir, tokenizer):
    inp, out = tmp_path / "c.jsonl", tmp_path / "r.jsonl"
    inp.write_text(json.dumps(CJK, ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["predict", "--in", str(inp), "--out", str(out), "--scorer", "position", "--model", model_dir]) == 0
    (rec,) = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rec["tokens"]) == rec["n"] and not any("\ufffd" in t for t in rec["tokens"])
    assert "".join(rec["tokens"]) == CJK["reasoning"]


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # DejaVu Sans Mono has no CJK or emoji glyphs
def test_show_heatmap_shows_exact_tokens(tiny_lm, tmp_path):
    from test_show import Spans

    from predictor.show import render_html, render_png, token_view

    view = token_view(CJK, predictor="position", lm=tiny_lm, keep_ratio=0.5)
    assert not any("\ufffd" in t for t in view.tokens) and "".join(view.tokens) == CJK["reasoning"]
    page = render_html(view)
    assert "\ufffd" not in page
    parsed = Spans()
    parsed.feed(page)
    spans = parsed.panels["predicted"]
    assert len(spans) == view.n and "".join(s["text"] for s in spans) == CJK["reasoning"]
    boxes = render_png(view, tmp_path / "h.png")
    assert len(boxes) == view.n  # an empty piece still gets its box in its rank color


@pytest.mark.parametrize("text", ["plain ascii, 3 + 4 = 7.", "a\nb\n\nc", " leading and trailing "])
def test_pieces_of_plain_text_are_the_per_token_decodes(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert token_pieces(tokenizer, ids) == [_decode(tokenizer, [t]) for t in ids]


def test_a_literal_replacement_character_is_a_whole_character_of_its_own_token(tokenizer):
    """U+FFFD already in the text (mojibake of scraped data) is a complete character: its token is
    not glued to the next one (only bytes that a later token completes are), so its piece is its
    own, a run of them is not one ever-growing unit, and pruning can remove them one by one."""
    from predictor.pruning_units import pruning_units

    for text, want in [("caf\ufffd au lait", ["c", "af", "\ufffd", " au", " la", "it"]),
                       ("x \ufffd汤 y", ["x", " ", "\ufffd", "", "", "汤", " y"]),
                       ("a \ufffd\ufffd\ufffd b", ["a", " ", "\ufffd", "\ufffd", "\ufffd", " b"])]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert token_pieces(tokenizer, ids) == want
        assert "".join(token_pieces(tokenizer, ids)) == _decode(tokenizer, ids) == text
    ids = tokenizer("\ufffd" * 200 + " ok", add_special_tokens=False)["input_ids"]
    assert max(len(g) for g in pruning_units(tokenizer, ids, None).groups) == 1
