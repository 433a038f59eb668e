"""What layers learn: first-layer kernels, activation maps and strongest patches (pictures: they take arrays), and,
from the run's JSON, how far each pretrained stage moved under full fine-tuning."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.i18n import tr
from tl_core.plots.base import BAND, WIDTH, band_traces, color, seeds_text, style, unit


def relative_change(out: dict) -> go.Figure:
    """‖w − w₀‖/‖w₀‖ of every pretrained stage under full fine-tuning (mean over seeds with a band, linear axis),
    the early and late halves the claim compares shaded. The new head is left out: it starts from random weights,
    so its change says nothing about transfer."""
    stages, per_seed = out.get("stages", [])[:-1], out.get("relative_change_seeds", [])
    fig = go.Figure()
    if stages and per_seed:
        x = list(range(len(stages)))
        values = np.array([seed[:len(stages)] for seed in per_seed]).T
        for trace in band_traces(x, values, tr("relative change of the stage's weights"), color("pretrained"),
                                 markers=True):
            fig.add_trace(trace)
        early = len(out.get("early_stages", stages[:len(stages) // 2]))
        for lo, hi, name, shade in ((-0.5, early - 0.5, tr("early stages"), "#4d4d4d"),
                                    (early - 0.5, len(stages) - 0.5, tr("late stages"), "#1b9e77")):
            fig.add_vrect(x0=lo, x1=hi, fillcolor=shade, opacity=0.07, line_width=0, annotation_text=name,
                          annotation_position="top left", annotation_font_size=15)
        fig.update_xaxes(tickvals=x, ticktext=stages, range=[-0.5, len(stages) - 0.5])
    fig.update_xaxes(title_text=tr("stage (input → output; the new head left out)"))
    fig.update_yaxes(title_text="‖w − w₀‖ / ‖w₀‖", tickformat=".1%", rangemode="tozero")
    return style(fig, tr("How far each pretrained stage moved under full fine-tuning (line: mean of {seeds}; "
                         "{band})", seeds=seeds_text(len(per_seed)), band=tr(BAND)), height=460)


TILE = 56       # px: the least a kernel is drawn a side at the page's width (3×3 weights: an edge's direction shows)
_BLOCK, _GAP = 8, 2   # image pixels per weight, and white pixels between kernels


def filters(filters: dict, most: int = 16, columns: int = 4) -> go.Figure:
    """First-layer kernels (out, 3, k, k) as RGB tiles, one panel per model side by side, each kernel drawn at least
    TILE px a side at the page's width (each weight a block, white gaps between kernels); each tile scaled to its
    own range."""
    names = list(filters)
    n = min(most, min(len(f) for f in filters.values()))
    k = filters[names[0]].shape[-1]
    columns = min(columns, n)
    rows, cell = -(-n // columns), k * _BLOCK + _GAP
    spacing = 0.04
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=spacing)
    for c, name in enumerate(names):
        grid = np.ones((rows * cell - _GAP, columns * cell - _GAP, 3))
        for i, w in enumerate(filters[name][:n]):
            r, q = divmod(i, columns)
            grid[r * cell:r * cell + k * _BLOCK, q * cell:q * cell + k * _BLOCK] = np.kron(
                unit(w.transpose(1, 2, 0)), np.ones((_BLOCK, _BLOCK, 1)))
        fig.add_trace(go.Image(z=(grid * 255).astype(np.uint8), hoverinfo="skip"), row=1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=17)
    # as tall as the panels are wide (an image keeps its aspect): each panel fills its column at the page's width
    panel = (WIDTH - 80) * (1 - spacing * (len(names) - 1)) / len(names)
    return style(fig, tr("First-layer filters ({k}×{k} RGB, first {n}; each tile scaled to its own range)", k=k, n=n),
                 height=round(panel * rows / columns + 110))


def tile_px(fig: go.Figure, k: int, width: int = WIDTH) -> float:
    """How many px a side each k×k kernel of a `filters` figure is drawn in a chart `width` px wide (an image keeps
    its aspect: the smaller of its column's width and its height per image pixel counts)."""
    m, z = fig.layout.margin, np.asarray(fig.data[0].z)
    plot_w, plot_h = width - m.l - m.r, fig.layout.height - m.t - m.b
    x, y = fig.layout.xaxis.domain, fig.layout.yaxis.domain
    return min((x[1] - x[0]) * plot_w / z.shape[1], (y[1] - y[0]) * plot_h / z.shape[0]) * k * _BLOCK


_RAMP = np.array([[20, 12, 60], [190, 55, 82], [252, 230, 80]], dtype=float)   # dark → red → yellow: weak → strong


def _heat(a: np.ndarray, scale: int) -> np.ndarray:
    """Values in [0, 1] (NaN = a gap, drawn white) → an RGB image, each value a scale×scale block."""
    t = np.nan_to_num(a, nan=0.0)[..., None] * 2
    rgb = np.where(t < 1, _RAMP[0] + (_RAMP[1] - _RAMP[0]) * t, _RAMP[1] + (_RAMP[2] - _RAMP[1]) * (t - 1))
    rgb[np.isnan(a)] = 255
    return np.kron(rgb, np.ones((scale, scale, 1))).astype(np.uint8)


def _mosaic(maps: np.ndarray) -> np.ndarray:
    """(channels, h, w) → one 2-column mosaic, each channel scaled to [0, 1], gaps as NaN."""
    c, h, w = maps.shape
    cols = 2 if c > 1 else 1
    rows, gap = -(-c // cols), max(1, h // 8)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i, m in enumerate(maps):
        r, q = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = unit(m)
    return out


def activation_grid(image: np.ndarray, maps: dict) -> go.Figure:
    """One image, then for each model (rows) every stage's strongest channels (columns, early → late)."""
    names = list(maps)
    stages = [m["stage"] for m in maps[names[0]]]
    cols = len(stages) + 1
    titles = []
    for r, name in enumerate(names):
        titles += [tr("input") if r == 0 else ""] + [f"{s}<br>{m['size'][0]}×{m['size'][1]}"
                                                 for s, m in zip(stages, maps[name])]
    fig = make_subplots(rows=len(names), cols=cols, subplot_titles=titles, horizontal_spacing=0.012,
                        vertical_spacing=0.1, row_titles=names)
    side = 96   # every panel drawn at about this many pixels a side, whatever its map's size
    for r, name in enumerate(names):
        if r == 0:
            fig.add_trace(go.Image(z=(np.asarray(image).transpose(1, 2, 0) * 255).clip(0, 255).astype(np.uint8),
                                   hoverinfo="skip"), row=1, col=1)
        for c, m in enumerate(maps[name]):
            mosaic = _mosaic(m["maps"])
            fig.add_trace(go.Image(z=_heat(mosaic, max(1, side // mosaic.shape[0])), hoverinfo="skip"),
                          row=r + 1, col=c + 2)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=14)
    return style(fig, tr("Activation maps per stage, early → late (4 most active channels each; yellow = strong)"),
                  height=180 * len(names) + 110)


def strongest_patches(patches: list) -> go.Figure:
    """For each stage (rows), the dataset's patches that fire its most active channel hardest."""
    most = max(len(p["patches"]) for p in patches)
    titles = [tr("{stage} · ch {channel} · {field} px", stage=p["stage"], channel=p["channel"], field=p["field"])
              if i == 0 else ""
              for p in patches for i in range(most)]
    fig = make_subplots(rows=len(patches), cols=most, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.3 / len(patches))
    for r, p in enumerate(patches):
        for c, crop in enumerate(p["patches"]):
            fig.add_trace(go.Image(z=(np.asarray(crop) * 255).clip(0, 255).astype(np.uint8)), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=14, xanchor="left", x=0)
    return style(fig, tr("Strongest patches per stage (pretrained): each cut to the unit's receptive field"),
                  height=120 * len(patches) + 100)
