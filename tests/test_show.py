"""Token heatmaps (predictor.show): right tokens, ranks, colors and kept marks in the HTML, the PNG and a
real headless Chromium rendering of the page (skipped where no chromium binary is installed)."""
from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from predictor.greedy import greedy_prune
from predictor.rank_predictor import prune
from predictor.rank_predictor import RankPredictor
from predictor.show import kept_at_budget, rank_color, render_html, render_png, token_view
from test_scorers import STEP_CHAIN


class Spans(HTMLParser):
    """Collect the token spans of each panel: (i, rank, background, classes, text)."""

    def __init__(self):
        super().__init__()
        self.panels: dict[str, list[dict]] = {}
        self.panel = None
        self.cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.panel = a["data-panel"]
            self.panels[self.panel] = []
        elif tag == "span" and "tok" in a.get("class", "").split():
            style = dict(kv.split(":", 1) for kv in a["style"].split(";") if kv)
            self.cur = {"i": int(a["data-i"]), "rank": int(a["data-rank"]), "bg": style["background"],
                        "classes": set(a["class"].split()), "text": ""}
            self.panels[self.panel].append(self.cur)

    def handle_data(self, data):
        if self.cur is not None:
            self.cur["text"] += data

    def handle_endtag(self, tag):
        if tag == "span":
            self.cur = None


@pytest.fixture(scope="module")
def labeled(tiny_lm):
    """A chain with its exact greedy ranks (as a ranked record carries them) and the surprisal predictor."""
    chain = dict(STEP_CHAIN)
    chain["ranks"] = greedy_prune(tiny_lm, chain).ranks
    return chain, RankPredictor.load("surprisal", lm=tiny_lm)


def test_rank_colors_run_from_red_to_green():
    from matplotlib.colors import to_rgb

    r1, g1, _ = to_rgb(rank_color(1, 30))
    rn, gn, _ = to_rgb(rank_color(30, 30))
    assert r1 > 0.6 > g1 and gn > 0.4 > rn
    assert len({rank_color(r, 30) for r in range(1, 31)}) > 20  # distinct colors along the scale


def test_html_shows_each_token_with_its_rank_color_and_kept_mark(labeled):
    chain, rp = labeled
    view = token_view(chain, predictor=rp, keep_ratio=0.4)
    want_pred = rp.predict_ranks(chain)
    want_kept = prune(chain, 0.4, predictor=rp).kept
    page = render_html(view)
    assert "<script" not in page and "http" not in page  # self-contained
    parsed = Spans()
    parsed.feed(page)
    assert set(parsed.panels) == {"predicted", "greedy"}
    tokens = [rp.lm.tokenizer.decode([t]) for t in
              rp.lm.tokenizer(chain["reasoning"], add_special_tokens=False)["input_ids"]]
    for panel, ranks, kept in (("predicted", want_pred, want_kept),
                               ("greedy", np.asarray(chain["ranks"]), kept_at_budget(chain["ranks"], len(want_kept)))):
        spans = parsed.panels[panel]
        n = len(spans)
        assert [s["i"] for s in spans] == list(range(n)) and n == view.n
        assert [s["rank"] for s in spans] == [int(r) for r in ranks]
        assert [s["bg"] for s in spans] == [rank_color(int(r), n) for r in ranks]
        assert [i for i, s in enumerate(spans) if "kept" in s["classes"]] == list(kept)
        assert all(("removed" in s["classes"]) != ("kept" in s["classes"]) for s in spans)
        assert "".join(s["text"] for s in spans).replace("\u21b5", "") == "".join(view.tokens)
    assert len(tokens) == view.n


def test_png_draws_each_token_box_in_its_rank_color(labeled, tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    chain, rp = labeled
    view = token_view(chain, predictor=rp, keep_ratio=0.5)
    boxes = render_png(view, tmp_path / "h.png")
    img = imread(tmp_path / "h.png")[..., :3]
    assert len(boxes) == 2 * view.n
    for b in boxes:
        ranks = view.predicted if b["panel"] == "predicted" else view.greedy
        assert b["rank"] == int(ranks[b["i"]]) and b["color"] == rank_color(b["rank"], view.n)
        x0, top, x1, bottom = b["box"]
        px = img[int(top + 4), int(x0 + 4)]  # inside the box, above the text and clear of the frame
        assert np.abs(px - np.array(to_rgb(b["color"]))).max() < 0.03, b


def test_unlabeled_chain_has_one_panel_and_mismatched_ranks_are_refused(labeled):
    chain, rp = labeled
    plain = {k: v for k, v in chain.items() if k != "ranks"}
    view = token_view(plain, predictor=rp)
    assert view.greedy is None and view.spearman() is None
    parsed = Spans()
    parsed.feed(render_html(view))
    assert set(parsed.panels) == {"predicted"}
    with pytest.raises(ValueError, match="greedy ranks"):
        token_view(plain, predictor=rp, greedy_ranks=[1, 2, 3])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless chromium (apt-get install chromium)")
def test_headless_chromium_renders_the_page_in_rank_colors(labeled, tmp_path):
    """The page as a browser draws it: every token span in the DOM, and the colors of the first- and
    last-pruned tokens on screen."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    chain, rp = labeled
    view = token_view(chain, predictor=rp, keep_ratio=0.5)
    page = tmp_path / "h.html"
    page.write_text(render_html(view), encoding="utf-8")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--force-color-profile=srgb"]
    dom = subprocess.run(cmd + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    parsed = Spans()
    parsed.feed(dom)
    assert [len(parsed.panels[p]) for p in ("predicted", "greedy")] == [view.n, view.n]
    shot = tmp_path / "shot.png"
    subprocess.run(cmd + ["--window-size=1300,700", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    img = imread(shot)[..., :3].reshape(-1, 3)
    for rank in (1, view.n):
        dist = np.abs(img - np.array(to_rgb(rank_color(rank, view.n)))).max(axis=1)
        assert (dist < 0.02).sum() > 50, f"rank {rank}'s color is not on screen"


def test_png_of_characters_the_font_lacks_warns_once_naming_them(tmp_path):
    """CJK / emoji tokens the installed fonts cannot draw: one warning naming how many characters and
    some of them (not one matplotlib warning per glyph), and the PNG is still written."""
    import warnings

    from matplotlib import font_manager

    from predictor.show import TokenView

    tokens = ["汤姆", "有", "3", "个", "😀", "👍🏽", " ok", "。"]
    view = TokenView(tokens=tokens, predicted=np.arange(1, 9), kept=[2, 6], title="cjk")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render_png(view, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    glyph = [w for w in caught if "Glyph" in str(w.message)]
    assert glyph == []  # matplotlib's per-glyph warnings are folded into one
    missing = [w for w in caught if "no glyph" in str(w.message)]
    drawable = {f.name for f in font_manager.fontManager.ttflist}
    if not drawable & {"Noto Sans CJK JP", "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Droid Sans Fallback"}:
        assert len(missing) == 1
        msg = str(missing[0].message)
        assert "汤" in msg and "the HTML page shows them" in msg


def test_show_cli_finds_the_chain_past_bad_lines_and_names_file_and_line(tmp_path, model_dir, capsys):
    import json

    from predictor.cli import main

    good = {"question": "q", "reasoning": "3 + 4 = 7 so seven.", "answer": "7"}
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join([json.dumps({"id": "a", **good}), '{"id": "broken", "reasoning": ',
                            json.dumps({"id": "b", **{**good, "reasoning": 5}}), json.dumps(good)]) + "\n")
    base = ["show", "--in", str(f), "--scorer", "position", "--model", model_dir]
    # a malformed line before the wanted chain does not hide it; a chain without id has predict's default id
    assert main(base + ["--id", "c-4", "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").exists()
    assert main(base + ["--id", "b", "--out", str(tmp_path / "y.html")]) == 2
    assert f"{f}:3: field 'reasoning' must be a string, got int" in capsys.readouterr().err
    assert main(base + ["--id", "zz", "--out", str(tmp_path / "y.html")]) == 2
    err = capsys.readouterr().err
    assert f"{f}: no chain with id 'zz' (1 malformed line skipped, e.g. {f}:2: invalid JSON" in err
