"""prune(): exact budgets, token order, protect, step-aware, threshold; the predict/prune CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.cli import main
from predictor.layout import encode_chain
from predictor.chains import as_chain
from predictor.pruning import keep_count
from predictor.rank_predictor import prune
from predictor.rank_predictor import RankPredictor
from test_scorers import STEP_CHAIN


@pytest.fixture(scope="module")
def rp(tiny_lm):
    return RankPredictor.load("surprisal", lm=tiny_lm)


def ids_of(rp, chain):
    return encode_chain(rp.lm.tokenizer, as_chain(chain)).reasoning_ids


def test_keep_count_rounds_half_up_and_keeps_one():
    assert [keep_count(n, 0.5) for n in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
    assert keep_count(10, 0.15) == 2 and keep_count(10, 0.01) == 1 and keep_count(7, 1.0) == 7
    assert keep_count(5, keep_tokens=9) == 5


def test_budget_exact_and_order_kept(rp, chains):
    for chain in chains + [STEP_CHAIN]:
        ids = ids_of(rp, chain)
        n = len(ids)
        ranks = rp.predict_ranks(chain)
        for ratio in (0.01, 0.1, 0.33, 0.5, 0.77, 1.0):
            for step_aware in (False, True):
                res = prune(chain, ratio, predictor=rp, step_aware=step_aware)
                assert len(res.kept) == keep_count(n, ratio)
                assert res.kept == sorted(set(res.kept)) and res.ratio == len(res.kept) / n
                # ASCII chains: the text is the kept tokens' decode, with a space only where two numbers would glue
                assert res.text.replace(" ", "") == rp.lm.tokenizer.decode(
                    [ids[i] for i in res.kept], clean_up_tokenization_spaces=False).replace(" ", "")
                if not step_aware:  # plain mode keeps exactly the highest-ranked tokens
                    assert set(res.kept) == set(np.flatnonzero(ranks > n - len(res.kept)).tolist())
        for k in (1, 3, n, n + 5):
            assert len(prune(chain, keep_tokens=k, predictor=rp).kept) == min(k, n)


def test_tiny_chain_one_token(rp):
    chain = {"id": "t", "question": "q?", "reasoning": "7", "answer": "7"}
    res = prune(chain, 0.01, predictor=rp)
    assert res.kept == [0] and res.text == "7" and res.ratio == 1.0


def test_list_input_and_method(rp, chains):
    out = rp.prune(chains, 0.5)
    assert isinstance(out, list) and [r.chain.id for r in out] == ["c1", "c2"]
    assert out[1].pruned_chain().reasoning == out[1].text


def test_protect_digits_and_impossible_budget(rp, chains):
    chain = chains[1]
    toks = [rp.lm.tokenizer.decode([t]) for t in ids_of(rp, chain)]
    digits = [i for i, t in enumerate(toks) if any(c.isdigit() for c in t)]
    res = prune(chain, keep_tokens=len(digits) + 2, protect="digits", predictor=rp)
    assert set(digits) <= set(res.kept) and len(res.kept) == len(digits) + 2
    res = prune(chain, keep_tokens=4, protect={0, 1, 2}, predictor=rp)
    assert {0, 1, 2} <= set(res.kept) and len(res.kept) == 4
    res = prune(chain, keep_tokens=3, protect=lambda t: "pen" in t, predictor=rp)
    assert any("pen" in toks[i] for i in res.kept)
    res = prune(chain, keep_tokens=2, protect="digits", predictor=rp)  # over budget: every protected token stays
    assert res.kept == digits and res.budget == 2 and res.over_budget and res.ratio == len(digits) / len(toks)
    with pytest.raises(ValueError, match="protect index 999"):
        prune(chain, 0.5, protect=[999], predictor=rp)
    with pytest.raises(ValueError, match="unknown protect preset 'nums'; choose from digits, numbers, math"):
        prune(chain, 0.5, protect="nums", predictor=rp)


def test_step_aware_removes_whole_steps_first(rp):
    from predictor.lexical import token_steps

    toks = [rp.lm.tokenizer.decode([t]) for t in ids_of(rp, STEP_CHAIN)]
    steps = token_steps(toks)
    for ratio in (0.2, 0.4, 0.6, 0.8):
        res = prune(STEP_CHAIN, ratio, predictor=rp, step_aware=True)
        gone = sorted(set(range(len(toks))) - set(res.kept))
        partial = {s for s in set(steps[gone]) if not set(np.flatnonzero(steps == s)) <= set(gone)}
        assert len(partial) <= 1  # at most the boundary step is cut inside


def test_threshold_keeps_high_scores(rp, chains):
    scores = rp.score(chains[1])
    norm = (scores - scores.min()) / (scores.max() - scores.min())
    res = prune(chains[1], threshold=0.5, predictor=rp)
    assert res.kept == np.flatnonzero(norm >= 0.5).tolist()
    assert len(prune(chains[1], threshold=1.0, predictor=rp).kept) == 1


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "0.5", True])
def test_bad_keep_ratio(rp, chains, bad):
    with pytest.raises(ValueError, match=r"keep_ratio must be a number in \(0, 1\]"):
        prune(chains[0], bad, predictor=rp)


def test_bad_budget_combinations(rp, chains):
    with pytest.raises(ValueError, match="exactly one of keep_ratio, keep_tokens, threshold"):
        prune(chains[0], 0.5, keep_tokens=3, predictor=rp)
    with pytest.raises(ValueError, match="exactly one"):
        prune(chains[0], predictor=rp)
    with pytest.raises(ValueError, match="keep_tokens must be an integer >= 1, got 0"):
        prune(chains[0], keep_tokens=0, predictor=rp)
    with pytest.raises(ValueError, match="threshold must be"):
        prune(chains[0], threshold=2, predictor=rp)
    with pytest.raises(ValueError, match="reasoning is empty"):
        prune({"question": "q", "reasoning": "", "answer": "1"}, 0.5, predictor=rp)


def test_refresh_prune_is_exact(rp, chains):
    res = prune(chains[1], 0.3, predictor=rp, refresh=3)
    assert len(res.kept) == keep_count(res.n, 0.3)


# --- CLI -----------------------------------------------------------------------------------------

@pytest.fixture
def chains_file(tmp_path, chains):
    lines = [json.dumps(c) for c in chains]
    lines += ["{not json", json.dumps({"id": "x", "question": "q"}),
              json.dumps({"id": "empty", "question": "q", "reasoning": " ", "answer": "1"}),
              json.dumps({"id": "long", "question": "q", "reasoning": "word " * 600, "answer": "1"}),
              json.dumps(STEP_CHAIN), json.dumps(chains[0])]
    p = tmp_path / "chains.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def read(p):
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_cli_prune_and_resume(chains_file, tmp_path, model_dir, capsys):
    out = tmp_path / "pruned.jsonl"
    argv = ["prune", "--in", str(chains_file), "--out", str(out), "--keep", "0.5", "--scorer", "surprisal",
            "--model", model_dir]
    assert main(argv) == 0
    recs = read(out)
    assert [r["id"] for r in recs] == ["c1", "c2", "s"]
    for r in recs:
        assert len(r["kept"]) == keep_count(r["n"], 0.5) and r["ratio"] == len(r["kept"]) / r["n"]
        assert set(r) >= {"id", "question", "reasoning", "answer", "kept", "ratio", "original_reasoning"}
    err = capsys.readouterr().err
    for reason in ("malformed JSONL line", "duplicate id", "empty reasoning", "too long for the LM"):
        assert reason in err
    assert "invalid JSON" in err and "missing field 'reasoning'" in err
    assert not (tmp_path / "pruned.jsonl.partial").exists()
    # a re-run resumes: nothing new is written and the file is unchanged
    before = out.read_text()
    assert main(argv) == 0
    assert out.read_text() == before and "3 already done" in capsys.readouterr().err
    # an interrupted run left a partial file with a cut last line: the re-run repairs and completes it
    out2 = tmp_path / "p2.jsonl"
    (tmp_path / "p2.jsonl.partial").write_text(before.splitlines(keepends=True)[0] + '{"id": "c2", "que')
    assert main(argv[:4] + [str(out2)] + argv[5:]) == 0
    assert [r["id"] for r in read(out2)] == ["c1", "c2", "s"] and read(out2)[0] == recs[0]
    # other settings on the same output are refused, not answered with the old records
    assert main(argv[:5] + ["--keep", "0.3"] + argv[7:]) == 2
    # the message names the one setting that differs, not two whole dicts to compare by eye
    assert f"{out}:1: field 'settings.keep' is 0.5 but this run uses 0.3" in capsys.readouterr().err
    assert main(argv + ["--gap-cost", "1"]) == 2
    err = capsys.readouterr().err  # the records store the values used (a scorer's default: 0)
    assert f"{out}:1: field 'settings.gap_cost' is 0.0 but this run uses 1.0" in err
    assert "written with --gap-cost 0 (given, or the predictor's prune default)" in err and "pass --gap-cost 0" in err
    assert out.read_text() == before


def test_cli_predict(chains_file, tmp_path, model_dir):
    out = tmp_path / "ranks.jsonl"
    assert main(["predict", "--in", str(chains_file), "--out", str(out), "--scorer", "position",
                 "--model", model_dir, "--refresh", "2"]) == 0
    for r in read(out):
        assert r["ranks"] == list(range(1, r["n"] + 1)) and r["order"] == list(range(r["n"]))
        assert len(r["tokens"]) == r["n"] and r["refresh"] == 2


def test_cli_bad_inputs(chains_file, tmp_path, model_dir, capsys):
    base = ["--scorer", "surprisal", "--model", model_dir]
    assert main(["prune", "--in", str(chains_file), "--out", str(chains_file), "--keep", "0.5"] + base) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    before = chains_file.read_text()
    assert main(["prune", "--in", str(chains_file), "--out", str(tmp_path / "o.jsonl"), "--keep", "1.5"] + base) == 2
    assert "--keep must be a number in (0, 1], got 1.5" in capsys.readouterr().err  # the option's CLI name
    assert main(["prune", "--in", str(chains_file), "--out", str(tmp_path / "o.jsonl"), "--keep-tokens", "3",
                 "--gap-cost", "-1"] + base) == 2
    assert "error: --gap-cost must be a finite number >= 0, got -1.0" in capsys.readouterr().err
    assert main(["prune", "--in", str(chains_file), "--out", str(tmp_path / "o.jsonl"), "--keep", "0.5",
                 "--position-weight", "0.5", "--step-aware"] + base) == 2
    assert "--position-weight > 0 applies to --keep / --keep-tokens budgets" in capsys.readouterr().err
    assert main(["show", "--in", str(chains_file), "--out", str(tmp_path / "o.html"), "--keep", "0"] + base) == 2
    assert "error: --keep must be a number in (0, 1], got 0.0" in capsys.readouterr().err
    assert main(["prune", "--in", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl"),
                 "--keep", "0.5"] + base) == 2
    assert "no such input file" in capsys.readouterr().err
    assert main(["prune", "--in", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--keep", "0.5"] + base) == 2
    assert f"{tmp_path}: is a directory, not a chains file" in capsys.readouterr().err
    assert main(["predict", "--in", str(chains_file), "--out", str(tmp_path / "o.jsonl"),
                 "--predictor", str(tmp_path / "missing"), "--model", model_dir]) == 2
    assert "neither a scorer nor a shipped predictor name" in capsys.readouterr().err
    assert chains_file.read_text() == before and not (tmp_path / "o.jsonl").exists()


def test_package_level_prune_is_callable(rp, chains):
    import predictor
    import predictor.pruning  # noqa: F401  (importing the implementation module must not shadow the export)

    assert len(predictor.prune(chains[0], keep_tokens=2, predictor=rp).kept) == 2


def test_cli_prune_keeps_protected_tokens_over_budget(chains_file, tmp_path, model_dir, capsys):
    """A chain with more protected digits than its budget keeps all of them and says so."""
    out = tmp_path / "p.jsonl"
    argv = ["prune", "--in", str(chains_file), "--out", str(out), "--keep-tokens", "1", "--protect", "digits",
            "--scorer", "surprisal", "--model", model_dir]
    assert main(argv) == 0
    err = capsys.readouterr().err
    recs = {r["id"]: r for r in read(out)}
    assert set(recs) == {"c1", "c2", "s"}
    c2 = recs["c2"]  # "... 5 * 2 = 10 ..." has 6 digit tokens
    digits = sum(ch.isdigit() for ch in c2["original_reasoning"])  # one token per digit
    assert c2["budget"] == 1 and len(c2["kept"]) == digits and c2["ratio"] == digits / c2["n"]
    assert "kept more tokens than the budget" in err


def test_cli_finished_or_mismatched_output_is_handled_before_the_lm_loads(tmp_path, chains, model_dir, capsys,
                                                                          monkeypatch):
    import predictor.engines.cli_args as cli_args

    inp, out = tmp_path / "c.jsonl", tmp_path / "ranks.jsonl"
    inp.write_text("".join(json.dumps(c) + "\n" for c in chains))
    argv = ["predict", "--in", str(inp), "--out", str(out), "--scorer", "surprisal", "--model", model_dir]
    assert main(argv) == 0
    before = out.read_text()
    capsys.readouterr()
    monkeypatch.setattr(cli_args, "load_predictor_from_args", lambda args: pytest.fail("the LM was loaded"))
    assert main(argv) == 0 and out.read_text() == before
    assert "2 already done (nothing left: the LM was not loaded)" in capsys.readouterr().err
    assert main(argv + ["--refresh", "2"]) == 2
    assert f"{out}:1: field 'refresh' is 1 but this run uses 2" in capsys.readouterr().err
    assert main(argv[:5] + ["--scorer", "position", "--model", model_dir]) == 2
    assert "field 'scorer' is 'surprisal' but this run uses 'position'" in capsys.readouterr().err
    assert out.read_text() == before


def test_gap_cost_prunes_in_fewer_runs_with_exact_budget(rp, chains):
    from predictor.contiguous_selection import removed_runs

    for chain in chains + [STEP_CHAIN]:
        n = len(ids_of(rp, chain))
        for ratio in (0.3, 0.5, 0.8):
            plain = prune(chain, ratio, predictor=rp, gap_cost=0.0)
            one_run = prune(chain, ratio, predictor=rp, gap_cost=1000.0)
            assert len(one_run.kept) == len(plain.kept) == keep_count(n, ratio)
            assert removed_runs(one_run.kept, n) == min(1, n - len(one_run.kept))
            assert removed_runs(one_run.kept, n) <= removed_runs(plain.kept, n)
            assert (one_run.gap_cost, one_run.position_weight) == (1000.0, 0.0)
        suffix = prune(chain, 0.5, predictor=rp, gap_cost=0.0, position_weight=1.0)
        assert suffix.kept == list(range(n - keep_count(n, 0.5), n))


def test_gap_cost_keeps_protected_and_whole_units(rp):
    chain = {"id": "p", "question": "q?", "reasoning": "We add 12 and 30 to get 42, then 7 more.", "answer": "49"}
    tok = rp.lm.tokenizer
    ids = ids_of(rp, chain)
    for ratio in (0.1, 0.4, 0.7):
        res = prune(chain, ratio, predictor=rp, gap_cost=2.0, protect="numbers")
        for number in ("12", "30", "42", "7"):
            assert number in res.text
        assert len(res.kept) >= keep_count(len(ids), ratio)
        assert "\ufffd" not in tok.decode([ids[i] for i in res.kept])


def test_predictor_defaults_for_contiguity(rp, chains, monkeypatch):
    from predictor.rank_predictor import RankPredictor

    monkeypatch.setattr(RankPredictor, "prune_defaults", property(lambda self: {"gap_cost": 1000.0}))
    chain = chains[0]
    assert prune(chain, 0.5, predictor=rp).gap_cost == 1000.0            # the predictor's default
    assert prune(chain, 0.5, predictor=rp, gap_cost=0).gap_cost == 0.0    # an explicit value wins
    assert prune(chain, 0.5, predictor=rp, step_aware=True).gap_cost == 0.0  # other selection rules
    assert prune(chain, predictor=rp, threshold=0.5).gap_cost == 0.0


@pytest.mark.parametrize("kw, match", [
    ({"gap_cost": -1.0}, "gap_cost must be"), ({"gap_cost": float("nan")}, "gap_cost must be"),
    ({"position_weight": 2.0}, "position_weight must be"), ({"gap_cost": True}, "gap_cost must be"),
    ({"gap_cost": 1.0, "step_aware": True}, "step-aware"),
])
def test_bad_contiguity_options(rp, chains, kw, match):
    with pytest.raises(ValueError, match=match):
        prune(chains[0], 0.5, predictor=rp, **kw)
    with pytest.raises(ValueError, match="threshold"):
        prune(chains[0], predictor=rp, threshold=0.5, gap_cost=1.0)


def test_cli_prune_gap_cost(chains_file, tmp_path, model_dir, capsys):
    from predictor.contiguous_selection import removed_runs

    out = tmp_path / "gap.jsonl"
    argv = ["prune", "--in", str(chains_file), "--out", str(out), "--keep", "0.5", "--scorer", "surprisal",
            "--model", model_dir, "--gap-cost", "1000"]
    assert main(argv) == 0
    for r in read(out):
        assert r["gap_cost"] == 1000.0 and r["settings"]["gap_cost"] == 1000.0
        assert removed_runs(r["kept"], r["n"]) <= 1
    assert main(argv[:-1] + ["5"]) == 2  # another gap cost on the same output is refused
    assert main(argv[:-2] + ["--step-aware", "--gap-cost", "1"]) == 2
    assert "step-aware" in capsys.readouterr().err


@pytest.mark.parametrize("entry, match", [
    ({"gap_cost": -1}, r"/p/predictor.json: prune.gap_cost must be a finite number >= 0, got -1"),
    ({"position_weight": "0.5"}, r"/p/predictor.json: prune.position_weight must be a number in \[0, 1\], got '0.5'"),
    ([1, 2], r"/p/predictor.json: 'prune' must be an object"),
])
def test_bad_prune_defaults_in_predictor_json_name_the_file(tiny_lm, entry, match):
    from types import SimpleNamespace

    rp = RankPredictor(tiny_lm, SimpleNamespace(metadata={"prune": entry}, path="/p", name="x"))
    with pytest.raises(ValueError, match=match):
        rp.prune_defaults


def test_resume_refuses_records_pruned_under_other_predictor_defaults(chains_file, tmp_path, model_dir, capsys,
                                                                      monkeypatch):
    """The same options (no --gap-cost) under a predictor whose `prune` defaults changed since (an
    edited predictor.json) select differently: resuming would mix two selections in one file."""
    from predictor.rank_predictor import RankPredictor

    out = tmp_path / "p.jsonl"
    argv = ["prune", "--in", str(chains_file), "--out", str(out), "--keep", "0.5", "--scorer", "surprisal",
            "--model", model_dir, "--limit", "1"]
    monkeypatch.setattr(RankPredictor, "prune_defaults", property(lambda self: {"gap_cost": 1000.0}))
    assert main(argv) == 0 and read(out)[0]["gap_cost"] == 1000.0
    monkeypatch.setattr(RankPredictor, "prune_defaults", property(lambda self: {}))
    before = out.read_text()
    assert main(argv[:-2]) == 2
    err = capsys.readouterr().err  # `settings` holds the values used, the predictor's defaults included
    assert f"{out}:1: field 'settings.gap_cost' is 1000.0 but this run uses 0.0" in err
    assert "(given, or the predictor's prune default)" in err and "pass --gap-cost 1000" in err
    assert out.read_text() == before


def test_cli_over_budget_report_names_whole_units_too(tmp_path, model_dir, capsys):
    """Nothing protected, but an emoji is several byte-level tokens that go together: keeping 1
    token keeps the whole emoji. The report must not blame protected tokens that do not exist."""
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps({"id": "e", "question": "q", "reasoning": "🍎🍎🍎", "answer": "3"}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["prune", "--in", str(f), "--out", str(out), "--keep-tokens", "1", "--scorer", "position",
                 "--model", model_dir]) == 0
    rec = read(out)[0]
    assert len(rec["kept"]) > rec["budget"] == 1
    err = capsys.readouterr().err
    assert "1 chain(s) kept more tokens than the budget" in err
    assert "protected tokens or whole units" in err


def test_prune_options_are_one_checked_value(rp, chains):
    """`PruneOptions` checks every option once; `options=` prunes as the same loose arguments do."""
    from predictor.pruning import PruneOptions

    with pytest.raises(ValueError, match="exactly one of keep_ratio, keep_tokens, threshold"):
        PruneOptions(keep_ratio=0.5, keep_tokens=3)
    with pytest.raises(ValueError, match="refresh must be an integer >= 1"):
        PruneOptions(keep_ratio=0.5, refresh=0)
    with pytest.raises(ValueError, match="gap_cost > 0 applies"):
        PruneOptions(threshold=0.5, gap_cost=1.0)
    opts = PruneOptions(keep_tokens=4, protect="digits", step_aware=True)
    a, b = rp.prune(chains[1], options=opts), rp.prune(chains[1], keep_tokens=4, protect="digits", step_aware=True)
    assert a.kept == b.kept and a.text == b.text and a.budget == b.budget
    assert prune(chains[1], predictor=rp, keep_tokens=4, protect="digits", step_aware=True).kept == a.kept
    with pytest.raises(ValueError, match="either as `options` or as arguments"):
        rp.prune(chains[1], 0.5, options=opts)
