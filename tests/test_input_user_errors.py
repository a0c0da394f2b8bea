"""New-user errors: --device cuda without CUDA, a closed output pipe, a cheap token bound for huge lines, CSV
and plain-text inputs, the lines of every skipped chain, label's hint for other formats, a missing --model
directory, API type errors and scorer options, and a negative --limit."""
from __future__ import annotations

import io
import json
import os
import sys

import pytest

from predictor.chains import Chain, ChainFormatError, iter_jsonl_lines, read_chains
from predictor.cli import SIGPIPE_EXIT, build_parser, main
from predictor.engines.chain_io import LABEL_INPUT_HINT, ChainList, Skips
from predictor.lm import LMLoadError, _resolve, max_token_bytes, min_tokens, resolve_device

GOOD = {"question": "Tom has 3 apples and buys 4 more. How many?", "reasoning": "Tom has 3 + 4 = 7 apples.",
        "answer": "7"}


def chains_file(path, n: int = 3):
    path.write_text("".join(json.dumps({"id": f"c{i}", **GOOD}) + "\n" for i in range(n)))
    return str(path)


# 1. --device cuda on a torch without CUDA -------------------------------------------------------------------

def test_device_cuda_without_cuda_is_one_line_error_before_loading(tmp_path, model_dir, monkeypatch, capsys):
    import torch

    import predictor.lm as lm_mod

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LMLoadError, match=r"^--device cuda:1: this torch has no CUDA support \(torch.cuda."
                                          r"is_available\(\) is False\)$"):
        resolve_device("cuda:1")
    assert resolve_device(None).type == "cpu"

    def no_load(*a, **k):
        raise AssertionError("the model was looked up before the device was checked")

    monkeypatch.setattr(lm_mod, "_resolve", no_load)
    inp = chains_file(tmp_path / "in.jsonl")
    for argv in (["predict", "--in", inp, "--out", str(tmp_path / "r.jsonl"), "--scorer", "position"],
                 ["label", "--in", inp, "--out", str(tmp_path / "l.jsonl")]):
        assert main([*argv, "--model", model_dir, "--device", "cuda", "--threads", "1"]) == 2
        err = capsys.readouterr().err
        assert (f"predictor {argv[0]}: error: --device cuda: this torch has no CUDA support "
                "(torch.cuda.is_available() is False)") in err
        assert "Traceback" not in err and "AssertionError" not in err


# 2. a closed standard output -----------------------------------------------------------------------------

def test_closed_stdout_pipe_exits_quietly(tmp_path, model_dir, monkeypatch, capsys):
    """`predictor prune --out - | head -c 100`: the reader goes away; no traceback, exit 141, standard
    output sent to devnull (so the flush at exit raises nothing)."""
    r, w = os.pipe()
    os.close(r)  # the reader is gone: every write raises BrokenPipeError (Python ignores SIGPIPE)
    out = io.TextIOWrapper(os.fdopen(w, "wb"))
    monkeypatch.setattr(sys, "stdout", out)
    try:
        argv = ["prune", "--in", chains_file(tmp_path / "in.jsonl"), "--out", "-", "--keep", "0.5",
                "--scorer", "position", "--model", model_dir, "--threads", "1", "--batch", "1"]
        assert main(argv) == SIGPIPE_EXIT
        assert os.path.samestat(os.fstat(w), os.stat(os.devnull))
        out.write("more\n")
        out.flush()  # goes to devnull now: no second BrokenPipeError
    finally:
        monkeypatch.undo()
        out.close()
    assert "Traceback" not in capsys.readouterr().err


# 3. a lower bound on the tokens of a text, without tokenizing it ------------------------------------------

def _sentencepiece_tokenizer(normalizer=None):
    """A Gemma-style tokenizer: BPE with byte fallback over "▁"-marked spaces."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{f"<0x{i:02X}>": 1 + i for i in range(256)}}
    for t in ("▁", "▁▁", "▁▁▁▁", "a", "b", "ab", "abab", "▁ab", "▁▁▁▁▁▁▁▁"):
        vocab[t] = len(vocab)
    merges = [("▁", "▁"), ("▁▁", "▁▁"), ("a", "b"), ("ab", "ab"), ("▁", "ab"), ("▁▁▁▁", "▁▁▁▁")]
    tk = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizer or normalizers.Replace(" ", "▁")
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tk)


TEXTS = ["Tom has 3 + 4 = 7 apples. " * 20, " " * 300, "\u2581" * 300, "数学题 答案是 7。" * 30, "🎉" * 50,
         "a" * 500, "\n" * 200, "-" * 300, "=" * 700, "ab ab abab " * 30, "\u2581\u2581 ab\u2581" * 40, "ü日本 x" * 20]


def _count(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def test_min_tokens_is_a_lower_bound_byte_level(tokenizer):
    most = max_token_bytes(tokenizer)
    assert most is not None and most == max_token_bytes(tokenizer)  # computed once, then cached
    for text in TEXTS:
        assert 0 < min_tokens(tokenizer, text) <= _count(tokenizer, text), text[:20]
    huge = "x" * (most * 8192 + 1)  # over a context of 8192 for sure, known without tokenizing
    assert min_tokens(tokenizer, huge) > 8192


def test_min_tokens_is_a_lower_bound_sentencepiece():
    tok = _sentencepiece_tokenizer()
    assert max_token_bytes(tok) == 8  # "▁▁▁▁▁▁▁▁": 8 spaces (the byte-fallback "<0xE6>": 6)
    for text in TEXTS:
        assert 0 < min_tokens(tok, text) <= _count(tok, text), text[:20]
    # a literal "▁" in the text (3 bytes) is tokenized as a space mark: counted as 1 byte, or the bound breaks
    assert min_tokens(tok, "\u2581" * 24) == _count(tok, "\u2581" * 24) == 3


def test_no_bound_for_a_tokenizer_that_can_shrink_the_text():
    from tokenizers import normalizers

    tok = _sentencepiece_tokenizer(normalizers.NFKC())  # "ｆ" (3 bytes) -> "f" (1 byte)
    assert max_token_bytes(tok) is None and min_tokens(tok, "ｆ" * 1000) == 0
    assert max_token_bytes(object()) is None  # not a Hugging Face fast tokenizer


# 4. CSV and plain text -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, looks", [
    ("id,question,reasoning,answer\n1,q,r,a\n2,q,r,a\n", "CSV (comma-separated values with a header line)"),
    ("id\tquestion\treasoning\tanswer\n1\tq\tr\ta\n", "TSV (tab-separated values with a header line)"),
    ("\nTom has 3 apples.\nHe buys 4 more.\n", "plain text"),
])
def test_csv_and_plain_text_are_one_file_level_error(tmp_path, text, looks):
    p = tmp_path / "chains.csv"
    p.write_text(text)
    with pytest.raises(ChainFormatError) as e:
        list(iter_jsonl_lines(p))
    msg = str(e.value)
    assert msg.startswith(f"{p}: not JSON Lines: line ") and f"the file looks like {looks}" in msg
    assert "this tool reads JSON Lines, one JSON object per line" in msg and "one JSON array" in msg
    assert "invalid JSON" not in msg
    with pytest.raises(ChainFormatError, match="not JSON Lines"):
        read_chains(p)


@pytest.mark.parametrize("text", [
    "Tom has 3 apples, and buys 4 more.\n",  # one line of prose with a comma
    "\nTom has 3 apples, then 4 more.\nSo he has 7, in all.\n",  # prose with a comma on every line
    "Tom has 3 apples and buys 4 more\n",  # no separator
    "id,question,reasoning,answer\n",  # a header without a row
    "id,question,reasoning,answer\n1,q\n",  # a row of other width
])
def test_prose_with_a_comma_is_plain_text_not_csv(tmp_path, text):
    """CSV / TSV needs a header of column names and a next line of as many fields; anything else that is
    not JSON is said to look like plain text."""
    from predictor.record_files import _stdin_records

    p = tmp_path / "notes.txt"
    p.write_text(text)
    with pytest.raises(ChainFormatError) as e:
        list(iter_jsonl_lines(p))
    assert "the file looks like plain text;" in str(e.value) and "CSV" not in str(e.value)
    with pytest.raises(ChainFormatError, match="the file looks like plain text;"):
        list(_stdin_records(io.BytesIO(text.encode())))


def test_csv_on_stdin_is_a_file_level_error():
    from predictor.record_files import _stdin_records

    with pytest.raises(ChainFormatError, match=r"^<stdin>: not JSON Lines: line 1 .*looks like CSV"):
        list(_stdin_records(io.BytesIO(b"id,question,reasoning,answer\n1,q,r,a\n")))


def test_cli_prune_of_a_csv_file_says_so_once(tmp_path, model_dir, capsys):
    p = tmp_path / "chains.csv"
    p.write_text("id,question,reasoning,answer\n" + "1,Tom has 3,He has 3,3\n" * 5)
    assert main(["prune", "--in", str(p), "--out", str(tmp_path / "o.jsonl"), "--keep", "0.5", "--scorer",
                 "position", "--model", model_dir, "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("not JSON Lines") == 1 and "looks like CSV" in err and "Expecting value" not in err


def test_a_malformed_json_first_line_stays_a_line_error(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": "a", "question": \n' + json.dumps(GOOD) + "\n" + "plain words, later\n")
    got = [v for _, v in iter_jsonl_lines(p)]
    assert str(got[0]).startswith(f"{p}:1: invalid JSON") and got[1] == GOOD
    assert str(got[2]).startswith(f"{p}:3: invalid JSON")  # only the first line tells the file's format


# 5. the lines of every skipped chain ---------------------------------------------------------------------

def test_skips_report_the_lines_after_the_examples():
    s = Skips()
    for line in (2, 5, 7, 11, 13, 14, 16):
        s.add("malformed JSONL line", f"in/data.jsonl:{line}: invalid JSON: Expecting value at column 1")
    s.add_chain_error(ValueError("x"), None)
    out = io.StringIO()
    s.report(out)
    text = out.getvalue()
    assert "skipped 7 chain(s): malformed JSONL line" in text and text.count("  e.g. ") == 4
    assert "  ... and 4 more: lines 11, 13, 14, 16: invalid JSON: Expecting value at column N\n" in text


def test_skips_report_caps_the_lines():
    s = Skips()
    for line in range(1, 31):
        where = f"a:b.json:{line} (item {line})" if line % 2 else f"a:b.json:{line}"
        s.add_chain_error(ValueError("too long"), where)
    out = io.StringIO()
    s.report(out)
    more = out.getvalue().splitlines()[-1]
    assert more.startswith("  ... and 27 more: lines 4, 5 (item 5), 6, ")
    assert more.endswith(", 13 (item 13), ... (27 in all): too long") and more.count(",") == 10


def test_skips_report_groups_the_lines_after_the_examples_by_reason():
    """Beyond the examples, each reason once with its lines ("lines 7, 9, 12: missing field 'answer'"),
    not bare line numbers; chain names and numbers do not split a reason; the lines of a reason and the
    reasons of a kind are capped."""
    s = Skips()
    for line in (2, 3, 4, 7, 9, 12):
        s.add("malformed JSONL line", f"in.jsonl:{line}: missing field 'answer'")
    for line in (8, 10):
        s.add("malformed JSONL line", f"in.jsonl:{line}: invalid JSON: Expecting value at column {line}")
    for line in range(20, 45):
        s.add_chain_error(ValueError(f"chain 'c{line}': {line * 10} tokens exceed the LM's context of 64"),
                          f"in.jsonl:{line}")
    for line in range(50, 58):
        s.add("duplicate id", f"in.jsonl:{line}: duplicate id 'c{line}'")
    for k, line in enumerate(range(60, 70)):
        s.add("odd", f"in.jsonl:{line}: reason {'abcdefghij'[k]}")
    out = io.StringIO()
    s.report(out)
    text = out.getvalue()
    assert ("skipped 8 chain(s): malformed JSONL line\n" + "".join(f"  e.g. in.jsonl:{n}: missing field 'answer'\n"
                                                                  for n in (2, 3, 4))
            + "  ... and 5 more:\n    lines 7, 9, 12: missing field 'answer'\n"
            "    lines 8, 10: invalid JSON: Expecting value at column N\n") in text
    assert ("  ... and 22 more: lines 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, ... (22 in all): N tokens exceed "
            "the LM's context of N\n") in text
    assert "  ... and 5 more: lines 53, 54, 55, 56, 57: duplicate id\n" in text
    assert ("  ... and 7 more:\n    line 63: reason d\n    line 64: reason e\n    line 65: reason f\n"
            "    line 66: reason g\n    line 67: reason h\n    lines 68, 69: other reasons\n") in text


# 7. label's hint for JSON arrays and messages records ----------------------------------------------------

def test_label_reader_names_what_reads_arrays_and_messages(tmp_path):
    one_line = tmp_path / "array.json"
    one_line.write_text(json.dumps([{"id": "a", **GOOD}]) + "\n")
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps([{"id": "a", **GOOD}], indent=1) + "\n")
    for p in (one_line, pretty):
        with pytest.raises(ChainFormatError) as e:
            ChainList(p)
        assert str(e.value) == f"{p}: a JSON array of records, not JSON Lines; {LABEL_INPUT_HINT}"
    msgs = tmp_path / "msgs.jsonl"
    msgs.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "<think>r</think>7"}]}) + "\n")
    with pytest.raises(ChainFormatError) as e:
        ChainList(msgs)
    assert str(e.value) == f"{msgs}:1: missing field 'question' (a messages record); {LABEL_INPUT_HINT}"
    assert "predict/prune also read JSON arrays and messages records: `predictor prune --help`" in LABEL_INPUT_HINT
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"id": "a", "question": "q", "answer": "1"}) + "\n")
    with pytest.raises(ChainFormatError) as e:
        ChainList(plain)  # a chain record with a missing field: no hint
    assert str(e.value) == f"{plain}:1: missing field 'reasoning'"


# 8. --model naming a missing local directory -------------------------------------------------------------

@pytest.mark.parametrize("value", ["/nonexistent", "./nope", "../nope", "~/nope-predictor-test", "runs/a/model"])
def test_missing_local_model_directory(value):
    with pytest.raises(LMLoadError, match=rf"^cannot load LM: --model {value}: no such directory$"):
        _resolve(value)


def test_hub_ids_are_left_to_the_hub():
    assert _resolve("HuggingFaceTB/SmolLM2-135M-Instruct") == ("HuggingFaceTB/SmolLM2-135M-Instruct",) * 2
    assert _resolve("gpt2") == ("gpt2", "gpt2")


def test_cli_missing_model_directory(tmp_path, capsys):
    assert main(["predict", "--in", chains_file(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o.jsonl"),
                 "--scorer", "position", "--model", "/nonexistent", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "--model /nonexistent: no such directory" in err and "Repo id" not in err


# 9. the API ----------------------------------------------------------------------------------------------

def test_predict_ranks_of_none_says_what_it_takes(tiny_lm):
    from predictor.rank_predictor import RankPredictor, prune
    from predictor.scorers import get_scorer

    rp = RankPredictor(tiny_lm, get_scorer("position"))
    for bad in (None, "Tom has 3 apples", 42):
        with pytest.raises(TypeError, match=r"^chains must be one chain \(a dict with 'question', 'reasoning' and "
                                            r"'answer', or a Chain\) or a list of them, got "):
            rp.predict_ranks(bad)
    with pytest.raises(TypeError, match="got NoneType"):
        prune(None, 0.5, predictor=rp)
    assert len(rp.predict_ranks([GOOD])) == 1 and rp.predict_ranks(Chain(**GOOD)).ndim == 1


def test_search_options_apply_only_to_greedy(tiny_lm):
    from predictor.rank_predictor import RankPredictor

    with pytest.raises(ValueError, match=r'^budget applies only to "greedy" \(the greedy search\), not to '
                                         r"'surprisal'$"):
        RankPredictor.load("surprisal", lm=tiny_lm, budget=0.3)
    with pytest.raises(ValueError, match=r'^shortlist, proposer apply only to "greedy"'):
        RankPredictor.load("position", lm=tiny_lm, shortlist=4, proposer="none")
    with pytest.raises(ValueError, match=r"^scorer 'position' takes the options reverse, got seed$"):
        RankPredictor.load("position", lm=tiny_lm, seed=1)
    assert RankPredictor.load("position", lm=tiny_lm, reverse=True).scorer.reverse


# 10. --limit -1 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["predict", "prune", "label"])
@pytest.mark.parametrize("limit", ["-1", "0"])
def test_a_limit_below_one_is_refused(command, limit, capsys):
    """--limit -1 was Python's slice from the end (the last chain silently dropped); --limit 0 loaded the LM
    to process nothing."""
    extra = ["--keep", "0.5"] if command == "prune" else []
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--in", "x", "--out", "y", *extra, "--limit", limit])
    assert e.value.code == 2
    assert f"argument --limit: expected an integer >= 1, got {limit}" in capsys.readouterr().err
    assert build_parser().parse_args([command, "--in", "x", "--out", "y", *extra, "--limit", "3"]).limit == 3


def test_a_text_far_past_the_context_is_refused_before_tokenizing(tokenizer, monkeypatch):
    """encode_chain refuses a chain whose byte-length bound already exceeds the context, without calling
    the tokenizer on it (a 20 MB line took minutes and gigabytes to tokenize before being refused)."""
    from predictor.layout import TooLongError, encode_chain

    huge = Chain(id="big", question="q", reasoning="x" * (max_token_bytes(tokenizer) * 64 + 1), answer="1")

    def no_tokenizing(*a, **k):
        raise AssertionError("tokenized a text known to be too long")

    monkeypatch.setattr(tokenizer, "encode", no_tokenizing)
    monkeypatch.setattr(tokenizer, "__call__", no_tokenizing, raising=False)
    monkeypatch.setattr(type(tokenizer), "__call__", no_tokenizing)
    with pytest.raises(TooLongError, match=r"chain 'big': at least \d+ tokens exceed the LM's context of 64"):
        encode_chain(tokenizer, huge, max_length=64)


def test_a_gzip_file_is_one_file_level_error(tmp_path):
    """A compressed chains file was a "not valid UTF-8" error per line; it is said once, with what to do."""
    import gzip

    p = tmp_path / "chains.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"id": "a", "question": "q", "reasoning": "r", "answer": "1"}\n' * 50))
    with pytest.raises(ChainFormatError, match=rf"^{p}: gzip-compressed \(magic bytes 1F 8B\).*gunzip -k {p}"):
        list(iter_jsonl_lines(p))


# 11. a refused resume, in the options' words --------------------------------------------------------------

def test_resume_refusals_name_the_option_both_values_and_the_remedy(tmp_path, model_dir, capsys):
    """predict / prune --out F written with other settings: the stored field, then what F was written with
    and what this run asks in options ("--keep 0.5" / "--keep 0.3"), the option that resumes F, another
    --out, or deleting F."""
    inp = chains_file(tmp_path / "in.jsonl", 2)
    pruned, ranks = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    prune = ["prune", "--in", inp, "--out", str(pruned), "--scorer", "position", "--model", model_dir, "--threads", "1"]
    predict = ["predict", "--in", inp, "--out", str(ranks), "--scorer", "position", "--model", model_dir,
               "--threads", "1"]
    assert main([*prune, "--keep", "0.5"]) == 0 and main(predict) == 0
    before = {p: p.read_bytes() for p in (pruned, ranks)}
    capsys.readouterr()
    cases = [
        ([*prune, "--keep", "0.3"], f"{pruned}:1: field 'settings.keep' is 0.5 but this run uses 0.3, i.e. {pruned} "
         "was written with --keep 0.5 and this run asks --keep 0.3; outputs of different settings cannot be mixed: "
         f"pass --keep 0.5 to resume it, use another --out, or delete {pruned} (and p.jsonl.partial) to start over"),
        ([*prune, "--keep-tokens", "3"], "was written with --keep 0.5 and this run asks --keep-tokens 3; outputs of "
         "different settings cannot be mixed: pass --keep 0.5 to resume it"),
        ([*prune, "--keep", "0.5", "--step-aware"], "was written with no --step-aware and this run asks "
         "--step-aware; outputs of different settings cannot be mixed: drop --step-aware to resume it"),
        ([*prune, "--keep", "0.5", "--protect", "numbers"], "was written with no --protect and this run asks "
         "--protect numbers;"),
        ([*predict, "--refresh", "2"], f"i.e. {ranks} was written with --refresh 1 and this run asks --refresh 2; "
         "outputs of different settings cannot be mixed: pass --refresh 1 to resume it"),
        ([*predict[:5], "--scorer", "surprisal", *predict[7:]], "was written with --scorer position and this run "
         "asks --scorer surprisal; outputs of different settings cannot be mixed: pass --scorer position"),
    ]
    for argv, said in cases:
        assert main(argv) == 2, argv
        assert said in capsys.readouterr().err, argv
    # another LM (checked after the load): both LMs named, a shipped LM by name, and its --model
    rec = json.loads(ranks.read_text().splitlines()[0])
    this_lm, rec["lm"] = rec["lm"], "cc48c957381e"  # the fingerprint of the shipped Gemma 3 270M
    other = tmp_path / "gemma.jsonl"
    other.write_text(json.dumps(rec) + "\n")
    assert main([*predict[:3], "--out", str(other), *predict[5:]]) == 2
    assert (f"{other}:1: field 'lm' is 'cc48c957381e' but this run uses '{this_lm}', i.e. {other} was written with "
            f"LM 'gemma-3-270m.Q4_K_M' (fingerprint cc48c957381e) and this run asks LM 'tiny-llama' (fingerprint "
            f"{this_lm}); outputs of different settings cannot be mixed: pass --model gemma3-270m to resume it, use "
            "another --out") in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before
