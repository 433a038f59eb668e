"""What every Transfer Lab figure shares: the style (made for a projector: large fonts, titled axes with units),
one colour and one name per condition across the whole app, mean lines with bands over seeds, image grids,
the layout (`style` / `arrange`: title, note, legend and subplot titles stacked above the plots, each wrapped to the
width it has, so nothing is cut or overlaps at 1400 px) and the projector view (the same layout in large type).
The experiments' figures live in one module each beside this one (`tl_core.plots.finetune`, `.toy`, ...), and each
draws a run from its JSON: the dict `Result.to_json()` returns and the run history keeps, so a page, the lecture,
the handout and the Runs page draw the same figure from a live result or a stored run.
"""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.i18n import N_, tr

# One colour per condition, everywhere (colour-blind-safe Dark2 and Paired hues). Conditions that are the same
# idea share one: feature extraction = freezing all but the head (lab depth, GTL's head only, text's frozen
# encoder, the SSL encoder frozen); full fine-tuning = plain fine-tuning.
_BASE = {
    "scratch": "#d95f02", "pretrained": "#1b9e77", "feature_extraction": "#1f78b4", "partial": "#7570b3",
    "full": "#e7298a", "guided": "#66a61e", "lora": "#e6ab02", "bitfit": "#a6761d", "head": "#1f78b4",
    "truth": "#222222", "task_a": "#666666", "other": "#999999",
}
ALIASES = {"feature": "feature_extraction", "freeze_head_only": "feature_extraction",
           "ssl_frozen": "feature_extraction", "last_k": "partial", "plain": "full", "ssl_finetuned": "full",
           "train": "pretrained"}
PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
BAND = N_("band: 10th-90th percentile over seeds")   # in a title: tr(BAND)


def color(condition: str) -> str:
    """The app's colour of a condition (a name it does not know gets grey)."""
    return _BASE.get(ALIASES.get(condition, condition), _BASE["other"])


def seeds_text(n: int) -> str:
    return tr("{n} seed", n=n) if n == 1 else tr("{n} seeds", n=n)


def rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band(x, mean, low, high, name: str, colour: str, *, dash: str | None = None, showlegend: bool = True,
         markers: bool = False) -> list[go.Scatter]:
    """A mean line over a shaded band from `low` to `high` (one value per x each)."""
    x = np.asarray(x)
    group = f"{name}-{dash}"
    traces = []
    if len(low):
        traces.append(go.Scatter(x=np.concatenate([x, x[::-1]]),
                                 y=np.concatenate([np.asarray(high), np.asarray(low)[::-1]]),
                                 fill="toself", mode="lines", fillcolor=rgba(colour, 0.18), line=dict(width=0),
                                 hoverinfo="skip", legendgroup=group, showlegend=False, name=f"{name} band"))
    traces.append(go.Scatter(x=x, y=np.asarray(mean), mode="lines+markers" if markers else "lines", name=name,
                             legendgroup=group, showlegend=showlegend, line=dict(color=colour, width=3, dash=dash),
                             marker=dict(size=10)))
    return traces


def band_traces(x, values, name: str, colour: str, *, dash: str | None = None, showlegend: bool = True,
                markers: bool = False) -> list[go.Scatter]:
    """A mean line and a 10th-90th percentile band for values of shape (len(x), seeds)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    return band(x, values.mean(1), np.percentile(values, 10, axis=1), np.percentile(values, 90, axis=1), name,
                colour, dash=dash, showlegend=showlegend, markers=markers)


def percent_axis(fig: go.Figure, title: str = N_("validation accuracy"), **where) -> None:
    """An accuracy axis in percent; `title` in English (translated here) or already in words."""
    fig.update_yaxes(title_text=tr(title), range=[0, 1.02], tickformat=".0%", **where)


def log_x(fig: go.Figure, ticks, title: str, **where) -> None:
    """A log x axis labelled at exactly the values measured (shots, label counts)."""
    ticks = [t for t in ticks if t is not None]
    fig.update_xaxes(type="log", title_text=tr("{axis} (log scale)", axis=tr(title)), tickvals=ticks,
                     ticktext=[str(t) for t in ticks], **where)


def curves_of(histories: list[dict], key: str) -> np.ndarray | None:
    """Per-seed per-epoch values of `key` as (epochs, seeds), cut to the shortest run (e.g. after a Stop)."""
    runs = [h[key] for h in histories if h.get(key)]
    if not runs:
        return None
    n = min(len(r) for r in runs)
    return np.array([r[:n] for r in runs], dtype=float).T


def overfitting_curves(out: dict, name=None, height: int = 460) -> go.Figure:
    """Train (solid) and validation (dashed) loss and accuracy per epoch, one colour per condition, mean over seeds
    with a band: the overfitting picture, from a run's JSON `conditions` (the lab's, own images', the text page's).
    name(condition, summary) -> its legend name (default: the summary's `label`, else the condition)."""
    name = name or (lambda c, s: s.get("label", c))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=[tr("Loss (cross-entropy)"), tr("Accuracy")])
    for condition, s in out.get("conditions", {}).items():
        for col, key in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", None), ("val", "dash")):
                values = curves_of(s.get("histories", []), f"{split}_{key}")
                if values is None:
                    continue
                label = (tr("{name}, train", name=name(condition, s)) if split == "train" else
                         tr("{name}, validation", name=name(condition, s)))
                for trace in band_traces(np.arange(1, len(values) + 1), values, label, color(condition), dash=dash,
                                         showlegend=col == 1):
                    fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(title_text=tr("epoch"))
    fig.update_yaxes(title_text=tr("loss"), row=1, col=1)
    percent_axis(fig, N_("accuracy"), row=1, col=2)
    seeds = out.get("config", {}).get("seeds", 1)
    return style(fig, tr("Overfitting curves: train vs validation (line: mean of {seeds}; {band})",
                         seeds=seeds_text(seeds), band=tr(BAND)), height=height)


def image_grid(images, titles: list[str], title: str, columns: int = 8) -> go.Figure:
    """A grid of (N, 3, H, W) images in [0, 1] with a caption each (e.g. 'true 3 → predicted 8')."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
    for i in range(n):
        img = (np.asarray(images[i]).transpose(1, 2, 0) * 255).clip(0, 255).astype(np.uint8)
        fig.add_trace(go.Image(z=img), row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=13)
    return style(fig, title, height=170 * rows + 80)


def confusion(matrix, classes: list[str], title: str) -> go.Figure:
    matrix = np.asarray(matrix)
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", showscale=False,
                               text=matrix, texttemplate="%{text}", textfont=dict(size=14)))
    fig.update_xaxes(title_text=tr("predicted class"), type="category")
    fig.update_yaxes(title_text=tr("true class"), type="category", autorange="reversed")
    return style(fig, title, height=420)


def unit(a: np.ndarray) -> np.ndarray:
    """Scale an array to [0, 1] (a constant one to 0.5)."""
    lo, hi = float(np.min(a)), float(np.max(a))
    return np.full_like(a, 0.5, dtype=float) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


PROJECTOR_HEIGHT = 600   # px: a chart beside the step's words inside a 1400×900 window, with the header above it


def _wrap(line: str, width: int = 55) -> str:
    """A title's second line broken at spaces into lines of about `width` visible characters (tags kept)."""
    words, out, n = line.split(" "), [], 0
    for w in words:
        visible = len(re.sub(r"<[^>]*>", "", w))
        if out and n + visible > width:
            out.append("<br>")
            n = 0
        elif out:
            out.append(" ")
        out.append(w)
        n += visible + 1
    return "".join(out)


# ---- the layout: titles, notes, legends, subplot titles and axes kept apart -------------------------------------

WIDTH = 900        # px: the narrowest a page draws a chart at 1400 px (its main column beside the sidebar)
GLYPH = 0.48       # a character's width in font sizes (the app's Source Sans averages 0.4, bold 0.45): a line
BOLD = 0.54        # wrapped at this width never overruns
LINE = 1.3         # a text line's height in font sizes


def text_lines(text: str, width_px: float, size: float, bold: bool = False) -> list[str]:
    """`text` broken at spaces (and at its own <br>) into lines each at most `width_px` wide at font `size`
    (tags kept: they take no width)."""
    per = max(6, int(width_px / (size * (BOLD if bold else GLYPH))))
    lines = []
    for part in re.split(r"<br\s*/?>", text):
        lines += _wrap(" ".join(part.split()), per).split("<br>")
    return lines


def _visible(text: str) -> str:
    return re.sub(r"<[^>]*>", "", text)


def _split_title(title: str, width_px: float, size: float) -> tuple[str, str]:
    """A title's head (what it shows) and note (how it is measured): after its first <br>, else from its last
    " (" when the whole does not fit one line."""
    if "<br>" in title:
        head, note = title.split("<br>", 1)
        return head, " ".join(_visible(note.replace("<br>", " ")).split())
    if " (" in title and title.endswith(")") and len(text_lines(title, width_px, size, bold=True)) > 1:
        head, note = title.rsplit(" (", 1)
        return head, "(" + note
    return title, ""


def _legend_rows(fig: go.Figure, width_px: float) -> int:
    """How many rows a horizontal legend of `fig` takes in `width_px` (0: no legend drawn)."""
    if fig.layout.showlegend is False:
        return 0
    shown = [t for t in fig.data if "showlegend" in t and t.type not in ("heatmap", "histogram2d", "contour")
             and t.showlegend is not False and t.name]
    names = [t.name for t in shown]
    explicit = any(t.showlegend is True for t in shown)
    if not names or (len(names) < 2 and not explicit and fig.layout.showlegend is not True):
        return 0
    size = fig.layout.legend.font.size or fig.layout.font.size or 15
    rows, used = 1, 0.0
    for name in names:
        w = len(_visible(name)) * size * GLYPH + 50    # the symbol and the gap to the next entry
        if used and used + w > width_px:
            rows, used = rows + 1, 0.0
        used += w
    return rows


def _subplot_titles(fig: go.Figure) -> list[int]:
    """Where make_subplots' titles are among the annotations: each just above a subplot's top edge."""
    tops = {round((ax.domain or (0, 1))[1], 6) for ax in fig.select_yaxes()}
    return [i for i, a in enumerate(fig.layout.annotations)
            if a.xref == "paper" and a.yref == "paper" and a.yanchor == "bottom" and not a.showarrow
            and a.y is not None and round(a.y, 6) in tops and a.name != "note" and a.text]


def arrange(fig: go.Figure, width: int = WIDTH, height: int | None = None) -> go.Figure:
    """Stack what sits above the plots so that nothing overlaps or is cut at `width` px: the title (its head
    wrapped, left-aligned over the plots), its note (how it is measured, smaller, wrapped), the legend (horizontal)
    and the subplot titles (each wrapped to its column, shrunk when a single word is wider). The top margin holds
    them all; the figure grows by what it added unless `height` fixes it. Run again after fonts change (the
    projector): it starts from the texts `style` kept in the figure's meta."""
    kept = dict((fig.layout.meta or {}).get("tl", {}))
    if not kept:
        return fig
    m = fig.layout.margin
    plot_w = width - (m.l or 60) - (m.r or 20)
    size = fig.layout.title.font.size or 20
    base = fig.layout.font.size or 15
    note_size = max(base, round(size * 0.6))
    heads = text_lines(kept["title"], plot_w, size, bold=True)
    notes = text_lines(kept["note"], plot_w, note_size) if kept["note"] else []
    # subplot titles, from the texts make_subplots was given, each wrapped to its column
    lift = 0.0
    top = max(((ax.domain or (0, 1))[1] for ax in fig.select_yaxes()), default=1)
    originals = kept.get("subplots", {})
    xs = [ax.domain or (0, 1) for ax in fig.select_xaxes()]
    for i, a in enumerate(fig.layout.annotations):
        if str(i) not in originals:
            continue
        col = next((d for d in xs if d[0] - 1e-6 <= a.x <= d[1] + 1e-6), (0, 1))
        col_w = max(((1 - a.x) if a.xanchor == "left" else (col[1] - col[0])) * plot_w - 4, 30)
        a_size = a.font.size or base
        text = originals[str(i)]
        longest = max((len(_visible(w)) for w in text.replace("<br>", " ").split()), default=1)
        a_size = max(9, min(a_size, col_w / (longest * BOLD)))
        lines = text_lines(text, col_w, a_size)
        a.update(text="<br>".join(lines), font_size=round(a_size, 1))
        if round(a.y, 6) >= round(top, 6) - 1e-6 and a.text.strip():
            lift = max(lift, len(lines) * a_size * LINE + 4)
    rows = _legend_rows(fig, plot_w)
    legend_size = fig.layout.legend.font.size or base
    legend_h = rows * (legend_size * 1.6 + 6) + (6 if rows else 0)
    # from the top: the title, its note, the legend, then the subplot titles just above the plots
    pad = 10
    note_top = pad + len(heads) * size * LINE + 8
    legend_top = note_top + (len(notes) * note_size * 1.35 + 8 if notes else 0)
    t = round(legend_top + legend_h + lift + 6)
    total = height or round(kept["height"] + max(0, t - 80))
    # plotly lifts a top-anchored title of several lines by about one line (measured): its pad puts it back
    fig.update_layout(
        height=total, margin=dict(t=t),
        title=dict(text="<br>".join(heads), x=0, xref="paper", xanchor="left", y=1, yref="container",
                   yanchor="top", pad=dict(t=round(pad if len(heads) == 1 else size + pad - 6))),
        legend=dict(orientation="h", xref="paper", x=0, xanchor="left", yref="container", yanchor="top",
                    y=max(0.0, 1 - legend_top / total), font_size=legend_size))
    fig.layout.annotations = [a for a in fig.layout.annotations if a.name != "note"]
    if notes:   # paper y=1 is the plots' top edge, t px below the figure's
        fig.add_annotation(text="<br>".join(notes), name="note", xref="paper", yref="paper", x=0, y=1,
                           xanchor="left", yanchor="top", yshift=round(t - note_top), showarrow=False,
                           align="left", font=dict(size=note_size, color="#444"))
    return fig


def style(fig: go.Figure, title: str, height: int = 460, note: str | None = None) -> go.Figure:
    """Every figure's look (large fonts, white) and its layout: a title (what it shows), a note under it
    (how it is measured: `note`, or the title's text after its first <br>, or its closing parenthesis when the
    title does not fit one line), the legend above the plots, so that it never meets an axis's title (`arrange`)."""
    m = fig.layout.margin   # a margin a figure set itself (room for row labels) is kept
    fig.update_layout(title=dict(font=dict(size=20)), font=dict(size=15), height=height, template="plotly_white",
                      margin=dict(l=60 if m.l is None else m.l, r=20 if m.r is None else m.r, t=80,
                                  b=40 if m.b is None else m.b))
    head, rest = (title, note) if note is not None else _split_title(title, WIDTH - fig.layout.margin.l - 20, 20)
    subplots = {str(i): fig.layout.annotations[i].text for i in _subplot_titles(fig)}
    fig.update_layout(meta={"tl": {"title": head, "note": " ".join(_visible(rest).split()), "height": height,
                                   "subplots": subplots}})
    return arrange(fig)


PROJECTOR_WIDTH = 780    # px: the chart's column beside the step's words in the projector view of a 1400 px window


def projector(fig: go.Figure, scale: float = 1.5, fit: bool = False, width: int = PROJECTOR_WIDTH) -> go.Figure:
    """The same figure for the back of a room: every font (ticks and axis titles too) `scale` times larger,
    thicker lines, taller (fit: exactly PROJECTOR_HEIGHT, to sit inside the window), and laid out again by
    `arrange` for a chart `width` px wide, so the larger title, note, legend and subplot titles stay apart."""
    fig = go.Figure(fig)
    base = round((fig.layout.font.size or 15) * scale)
    fig.update_layout(font=dict(size=base), title_font_size=round((fig.layout.title.font.size or 20) * scale),
                      legend_font_size=base, margin=dict(b=60, l=max(fig.layout.margin.l or 60, 90)))
    fig.update_xaxes(tickfont_size=base, title_font_size=base)
    fig.update_yaxes(tickfont_size=base, title_font_size=base)
    fig.update_annotations(font_size=base)
    fig.update_traces(line_width=5,
                      selector=lambda t: getattr(t, "line", None) is not None and (t.line.width or 0) >= 2)
    fig.update_traces(marker_size=12, selector=dict(mode="lines+markers"))
    kept = (fig.layout.meta or {}).get("tl")
    height = round((kept["height"] if kept else fig.layout.height or 460) * 1.25)
    if kept is None:   # not drawn through `style`: only larger
        return fig.update_layout(height=PROJECTOR_HEIGHT if fit else height)
    fig.update_layout(meta={"tl": {**kept, "height": height}})
    return arrange(fig, width, PROJECTOR_HEIGHT if fit else None)
