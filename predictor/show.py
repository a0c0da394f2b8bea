"""Token heatmaps: each reasoning token colored by its pruning rank, as a self-contained HTML page and a PNG.

    view = token_view(chain, keep_ratio=0.5)         # shipped predictor; greedy ranks if the chain has them
    write_html(view, "chain.html"); write_png(view, "chain.png")

Colors: rank 1 (pruned first) is red, rank n (kept longest) green, on the "RdYlGn" colormap at
(rank - 1) / (n - 1). The predicted panel marks what `prune` keeps at the budget (kept tokens boxed,
removed ones struck through); the greedy panel, when the chain is labeled, marks what greedy's own
order keeps at the same budget.
"""
from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .jsonl_io import atomic_write_bytes, atomic_write_text

COLORMAP = "RdYlGn"


@dataclass
class TokenView:
    """What a heatmap shows. tokens: the exact text of each reasoning token [n] (`token_text.token_pieces`:
    "" for a token holding only the first bytes of a character that a later token completes); predicted / greedy: int ranks [n]
    (1 = pruned first; greedy None when the chain is unlabeled); kept: sorted indices `prune` keeps;
    greedy_kept: what greedy's order keeps at the same budget (None when unlabeled)."""

    tokens: list[str]
    predicted: np.ndarray
    kept: list[int]
    greedy: np.ndarray | None = None
    greedy_kept: list[int] | None = None
    scorer: str = "predictor"
    title: str = ""
    question: str = ""
    answer: str = ""

    @property
    def n(self) -> int:
        return len(self.tokens)

    def spearman(self) -> float | None:
        """Spearman of predicted with greedy ranks (None when unlabeled)."""
        if self.greedy is None:
            return None
        from .metrics import spearman

        return spearman(self.predicted, self.greedy)


def rank_color(rank: int, n: int) -> str:
    """Hex color "#rrggbb" of a rank (1..n) on COLORMAP: red pruned first, green kept longest."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps[COLORMAP](0.5 if n <= 1 else (rank - 1) / (n - 1)))


def text_color(background: str) -> str:
    """Black or white, whichever reads better on `background` (relative luminance)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(background)
    return "#000000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#ffffff"


def kept_at_budget(ranks: np.ndarray, k: int) -> list[int]:
    """Sorted indices of the k tokens with the highest ranks (kept longest)."""
    return sorted(int(i) for i in np.argsort(-np.asarray(ranks), kind="stable")[:k])


def token_view(chain: Any, predictor: Any = None, lm: Any = None, keep_ratio: float = 0.5,
               greedy_ranks: Sequence[int] | None = None, options: Any = None, **prune_kwargs: Any) -> TokenView:
    """Predict ranks and prune one chain, and collect what the heatmap shows.

    chain: a chain mapping or Chain; a ranked record (with "ranks") also gives the greedy ranks.
    predictor: as for `prune` (RankPredictor, scorer name, predictor dir; None = the shipped one).
    greedy_ranks: exact ranks to compare with (default: chain["ranks"] when present).
    options: the `pruning.PruneOptions` to prune with (instead of keep_ratio and prune_kwargs).
    prune_kwargs: more `prune` options (protect, step_aware, refresh).
    Raises ValueError when the greedy ranks do not match the chain's token count."""
    from .chains import as_chain
    from .layout import encode_chain
    from .rank_predictor import resolve_predictor
    from .token_text import token_pieces

    if greedy_ranks is None and isinstance(chain, Mapping) and chain.get("ranks") is not None:
        greedy_ranks = chain["ranks"]
    c = as_chain(chain)
    rp = resolve_predictor(predictor, lm)
    if options is None:
        from .pruning import PruneOptions

        options = PruneOptions(keep_ratio=keep_ratio, **prune_kwargs)
    res = rp.prune(c, options=options)
    tok = rp.lm.tokenizer
    ids = encode_chain(tok, c, rp.lm.max_length).reasoning_ids
    tokens = token_pieces(tok, ids)
    greedy = None if greedy_ranks is None else np.asarray(greedy_ranks, dtype=np.int64)
    if greedy is not None and len(greedy) != len(tokens):
        raise ValueError(f"chain {c.id!r}: {len(greedy)} greedy ranks for {len(tokens)} reasoning tokens "
                         "(labeled with another LM or layout?)")
    return TokenView(tokens=tokens, predicted=np.asarray(res.ranks, dtype=np.int64), kept=list(res.kept),
                     greedy=greedy, greedy_kept=None if greedy is None else kept_at_budget(greedy, len(res.kept)),
                     scorer=rp.name, title=str(c.id or "chain"), question=c.question, answer=c.answer)


# --- HTML -------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:24px}
.chain{font-family:"DejaVu Sans Mono",monospace;font-size:15px;line-height:2.1;white-space:pre-wrap}
.tok{padding:2px 1px;border-radius:3px;border:2px solid transparent}
.tok.kept{border-color:#222}
.tok.removed{text-decoration:line-through 2px}
.legend{display:flex;align-items:center;gap:8px;margin:12px 0;font-size:13px}
.bar{width:260px;height:14px;border:1px solid #999;background:linear-gradient(to right,%s)}
.meta{color:#555;font-size:14px}
"""


_PART = " (the first bytes of a character that a later token completes)"  # a token whose text is ""


def _panel_html(title: str, tokens: list[str], ranks: np.ndarray, kept: list[int], panel: str) -> str:
    n, keep = len(tokens), set(kept)
    spans = []
    for i, (t, r) in enumerate(zip(tokens, ranks)):
        bg = rank_color(int(r), n)
        cls = "kept" if i in keep else "removed"
        shown = html.escape(t.replace("\n", "\u21b5\n"))
        spans.append(f'<span class="tok {cls}" data-i="{i}" data-rank="{int(r)}" style="background:{bg};'
                     f'color:{text_color(bg)}" title="token {i}: rank {int(r)} of {n}{_PART if not t else ""}">'
                     f'{shown}</span>')
    return (f'<section data-panel="{panel}"><h2>{html.escape(title)}</h2>'
            f'<div class="chain">{"".join(spans)}</div></section>')


def render_html(view: TokenView) -> str:
    """The heatmap as one self-contained HTML page (inline CSS, no scripts, no external files)."""
    stops = ",".join(rank_color(r, 11) for r in range(1, 12))
    k = len(view.kept)
    panels = [_panel_html(f"predicted ({view.scorer})", view.tokens, view.predicted, view.kept, "predicted")]
    if view.greedy is not None:
        panels.append(_panel_html("exact greedy", view.tokens, view.greedy, view.greedy_kept or [], "greedy"))
    rho = view.spearman()
    meta = f"{view.n} reasoning tokens; budget: keep {k} ({k / max(1, view.n):.0%}), kept tokens boxed, " \
           "removed ones struck through"
    if rho is not None:
        both = len(set(view.kept) & set(view.greedy_kept or []))
        meta += f"; Spearman(predicted, greedy) = {rho:+.3f}; {both} of {k} kept tokens shared"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(view.title)}: pruning ranks</title>
<style>{_CSS % stops}</style></head><body>
<h1>{html.escape(view.title)}: pruning ranks</h1>
<p><b>Question:</b> {html.escape(view.question)}</p>
<p class="meta">{html.escape(meta)}</p>
<div class="legend"><span>rank 1 (pruned first)</span><div class="bar"></div><span>rank {view.n} (kept longest)</span></div>
<div class="panels">{"".join(panels)}</div>
<p><b>Answer:</b> {html.escape(view.answer)}</p>
</body></html>
"""


def write_html(view: TokenView, path: str | Path) -> Path:
    """Write `render_html(view)` atomically; returns the path."""
    atomic_write_text(path, render_html(view))
    return Path(path)


# --- PNG --------------------------------------------------------------------------------------------
CHARS_PER_LINE = 56
_FONT_PT = 11.0
_CHAR_IN = 0.6021 * _FONT_PT / 72  # DejaVu Sans Mono advance width (0.602 em) in inches
_LINE_IN = 2.0 * _FONT_PT / 72


def _wrap(tokens: list[str], width: int) -> list[tuple[int, int, str]]:
    """(line, column, shown text) per token in a monospace grid `width` characters wide; a newline
    inside a token is shown as "↵" and starts a new line after the token; a token whose text is ""
    (the first bytes of a character a later token completes) gets an empty one-column box."""
    line = col = 0
    out = []
    for t in tokens:
        shown = t.replace("\n", "\u21b5")
        if col > 0 and col + len(shown) > width:
            line, col = line + 1, 0
        out.append((line, col, shown))
        col += max(1, len(shown))
        if "\n" in t:
            line, col = line + 1, 0
    return out


def render_png(view: TokenView, path: str | Path, dpi: int = 110) -> list[dict[str, Any]]:
    """Draw the heatmap with matplotlib (monospace grid, one panel per rank source) and save a PNG.

    Returns one dict per drawn token box: panel, i, rank, color and its pixel box (x0, y0, x1, y1,
    from the top left of the image), so callers and tests can check what was drawn where."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    panels = [("predicted", f"predicted ({view.scorer})", view.predicted, view.kept)]
    if view.greedy is not None:
        panels.append(("greedy", "exact greedy", view.greedy, view.greedy_kept or []))
    grids = [_wrap(view.tokens, CHARS_PER_LINE) for _ in panels]
    lines = max(g[-1][0] for g in grids) + 1 if view.tokens else 1
    panel_w, panel_h = CHARS_PER_LINE * _CHAR_IN, lines * _LINE_IN
    margin, head, foot = 0.3, 0.55, 0.8
    fig_w = len(panels) * panel_w + (len(panels) + 1) * margin
    fig_h = head + panel_h + foot
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    rho = view.spearman()
    k = len(view.kept)
    sub = f"{view.n} tokens, keep {k} (boxed; removed struck through)" + (
        f", Spearman {rho:+.3f}" if rho is not None else "")
    fig.text(margin / fig_w, 1 - 0.25 / fig_h, f"{view.title}: {sub}", fontsize=10, va="center")
    boxes: list[dict[str, Any]] = []
    fonts = _token_fonts()
    for p, ((key, title, ranks, kept), grid) in enumerate(zip(panels, grids)):
        left = (margin + p * (panel_w + margin)) / fig_w
        ax = fig.add_axes((left, foot / fig_h, panel_w / fig_w, panel_h / fig_h))
        ax.set_xlim(0, CHARS_PER_LINE)
        ax.set_ylim(lines, 0)
        ax.axis("off")
        ax.set_title(title, fontsize=10, loc="left", pad=4)
        keep = set(kept)
        for i, ((line, col, shown), r) in enumerate(zip(grid, ranks)):
            color = rank_color(int(r), view.n)
            w = max(1, len(shown))
            ax.add_patch(Rectangle((col, line + 0.1), w, 0.8, facecolor=color,
                                   edgecolor="#222222" if i in keep else "none", linewidth=1.2))
            ax.text(col, line + 0.5, shown, fontsize=_FONT_PT, family=fonts, va="center", ha="left",
                    color=text_color(color))
            if i not in keep:
                ax.plot([col, col + w], [line + 0.5, line + 0.5], color=text_color(color), linewidth=1)
            (x0, y0), (x1, y1) = ax.transData.transform([(col, line + 0.1), (col + w, line + 0.9)])
            H = fig_h * dpi
            boxes.append({"panel": key, "i": i, "rank": int(r), "color": color, "kept": i in keep,
                          "box": (float(x0), float(H - y0), float(x1), float(H - y1))})
    # legend: the colormap from rank 1 to rank n
    lax = fig.add_axes((margin / fig_w, 0.4 / fig_h, min(3.0, panel_w) / fig_w, 0.18 / fig_h))
    lax.imshow(np.linspace(0, 1, 256)[None], aspect="auto", cmap=COLORMAP)
    lax.set_xticks([])
    lax.set_yticks([])
    lax.text(0, -0.8, "rank 1: pruned first", fontsize=8, ha="left", va="top", transform=lax.transAxes)
    lax.text(1, -0.8, f"rank {view.n}: kept longest", fontsize=8, ha="right", va="top", transform=lax.transAxes)
    data = _png_bytes(fig, dpi)
    plt.close(fig)
    atomic_write_bytes(path, data)
    return boxes


# fonts tried, in order, for characters DejaVu Sans Mono lacks (CJK, emoji), where installed
FALLBACK_FONTS = ("Noto Sans Mono CJK JP", "Noto Sans CJK JP", "Noto Sans CJK SC", "WenQuanYi Zen Hei",
                  "Droid Sans Fallback", "Noto Color Emoji", "Noto Emoji", "Symbola")
_GLYPH_MISSING = re.compile(r"Glyph (\d+) .*missing from font")


def _token_fonts() -> list[str]:
    """The font family list of token text: DejaVu Sans Mono, then the installed FALLBACK_FONTS."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans Mono"] + [f for f in FALLBACK_FONTS if f in installed]


def _png_bytes(fig, dpi: int) -> bytes:
    """The figure as PNG bytes. matplotlib's one warning per character no installed font can draw
    (drawn as a box) becomes one UserWarning naming how many and which."""
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buf, format="png", dpi=dpi)
    missing: list[str] = []
    for w in caught:
        m = _GLYPH_MISSING.search(str(w.message))
        if m is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        elif chr(int(m.group(1))) not in missing:
            missing.append(chr(int(m.group(1))))
    if missing:
        warnings.warn(f"PNG: {len(missing)} character(s) have no glyph in the installed fonts and are drawn as "
                      f"boxes ({''.join(missing[:20])}{'...' if len(missing) > 20 else ''}); the HTML page shows "
                      f"them (or install a font such as Noto Sans CJK)", UserWarning, stacklevel=3)
    return buf.getvalue()


def write_png(view: TokenView, path: str | Path, dpi: int = 110) -> Path:
    """`render_png` without the box list; returns the path."""
    render_png(view, path, dpi)
    return Path(path)


def show(chain: Any, html_path: str | Path, png_path: str | Path | None = None, predictor: Any = None,
         lm: Any = None, keep_ratio: float = 0.5, **prune_kwargs: Any) -> TokenView:
    """Build the view of one chain and write the HTML page (and the PNG when png_path is given)."""
    view = token_view(chain, predictor, lm, keep_ratio, **prune_kwargs)
    write_html(view, html_path)
    if png_path is not None:
        write_png(view, png_path)
    return view
