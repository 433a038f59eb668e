"""What every Transfer Lab figure shares: the style (made for a projector: large fonts, titled axes with units),
one colour and one name per condition across the whole app, mean lines with bands over seeds, image grids,
and the projector view. The experiments' figures live in one module each beside this one
(`tl_core.plots.finetune`, `.toy`, ...), and each draws a run from its JSON: the dict `Result.to_json()` returns
and the run history keeps, so a page, the lecture, the handout and the Runs page draw the same figure from a live
result or a stored run.
"""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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
BAND = "band: 10th-90th percentile over seeds"


def color(condition: str) -> str:
    """The app's colour of a condition (a name it does not know gets grey)."""
    return _BASE.get(ALIASES.get(condition, condition), _BASE["other"])


def seeds_text(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def style(fig: go.Figure, title: str, height: int = 460) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=20)), font=dict(size=15), height=height,
        template="plotly_white", margin=dict(l=60, r=20, t=80, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
    )
    return fig


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


def percent_axis(fig: go.Figure, title: str = "validation accuracy", **where) -> None:
    fig.update_yaxes(title_text=title, range=[0, 1.02], tickformat=".0%", **where)


def log_x(fig: go.Figure, ticks, title: str, **where) -> None:
    """A log x axis labelled at exactly the values measured (shots, label counts)."""
    ticks = [t for t in ticks if t is not None]
    fig.update_xaxes(type="log", title_text=f"{title} (log scale)", tickvals=ticks, ticktext=[str(t) for t in ticks],
                     **where)


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
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=["Loss (cross-entropy)", "Accuracy"])
    for condition, s in out.get("conditions", {}).items():
        for col, key in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", None), ("val", "dash")):
                values = curves_of(s.get("histories", []), f"{split}_{key}")
                if values is None:
                    continue
                label = f"{name(condition, s)}, {'train' if split == 'train' else 'validation'}"
                for trace in band_traces(np.arange(1, len(values) + 1), values, label, color(condition), dash=dash,
                                         showlegend=col == 1):
                    fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", row=1, col=1)
    percent_axis(fig, "accuracy", row=1, col=2)
    seeds = out.get("config", {}).get("seeds", 1)
    return style(fig, f"Overfitting curves: train vs validation (line: mean of {seeds_text(seeds)}; {BAND})",
                 height=height)


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
    fig.update_xaxes(title_text="predicted class", type="category")
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed")
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


def projector(fig: go.Figure, scale: float = 1.5, fit: bool = False) -> go.Figure:
    """The same figure for the back of a room: every font (ticks and axis titles too) `scale` times larger,
    thicker lines, taller (fit: exactly PROJECTOR_HEIGHT, to sit inside the window), and a long title broken after
    its first part."""
    fig = go.Figure(fig)
    base = round((fig.layout.font.size or 15) * scale)
    title = fig.layout.title.text or ""
    if len(title) > 50 and " (" in title and "<br>" not in title:   # "What it shows (how it is measured)"
        head, rest = title.split(" (", 1)
        title = f"{head}<br><span style='font-size:{round(base * 0.8)}px'>({rest}</span>"
    title = "<br>".join([title.split("<br>")[0], *(_wrap(line) for line in title.split("<br>")[1:])])
    fig.update_layout(font=dict(size=base),
                      height=PROJECTOR_HEIGHT if fit else round((fig.layout.height or 460) * 1.25),
                      title=dict(text=title, font_size=round((fig.layout.title.font.size or 20) * scale)),
                      legend=dict(font_size=base, y=-0.3 if fit else -0.2),
                      margin=dict(t=130, b=110 if fit else 70, l=90))
    fig.update_xaxes(tickfont_size=base, title_font_size=base)
    fig.update_yaxes(tickfont_size=base, title_font_size=base)
    fig.update_annotations(font_size=base)
    fig.update_traces(line_width=5,
                      selector=lambda t: getattr(t, "line", None) is not None and (t.line.width or 0) >= 2)
    fig.update_traces(marker_size=12, selector=dict(mode="lines+markers"))
    return fig
