"""Guided Transfer Learning's figures: from the run's JSON the target accuracy per epoch and per seed, and the
sweep over shots × source; from the guide tensors the guide maps, histogram and per-layer means."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.i18n import N_, tr
from tl_core.names import condition, layer
from tl_core.plots.base import BAND, PALETTE, band_traces, color, curves_of, percent_axis, rgba, seeds_text, style

# guided against freezing the body first: the claim's comparison leads the legend
LABELS = {"guided": N_("GTL-guided fine-tune"), "freeze_head_only": N_("freeze all but head"),
          "plain": N_("plain fine-tune"), "scratch": N_("from scratch")}


def curves(out: dict) -> go.Figure:
    """Target validation accuracy per fine-tuning epoch, each condition a mean line with a seed band."""
    fig = go.Figure()
    for c, label in LABELS.items():
        values = curves_of([{"val_acc": v} for v in out.get(c, {}).get("val_acc_curves", [])], "val_acc")
        if values is None:
            continue
        for trace in band_traces(np.arange(1, len(values) + 1), values, tr(label), color(c)):
            fig.add_trace(trace)
    fig.update_xaxes(title_text=tr("fine-tuning epoch on the target classes"))
    percent_axis(fig)
    n = out.get("config", {}).get("seeds", 1)
    return style(fig, tr("Target accuracy while fine-tuning (line: mean of {seeds}; {band})", seeds=seeds_text(n),
                         band=tr(BAND)))


def final(out: dict) -> go.Figure:
    """Each seed's final target validation accuracy, one dot per run, per condition."""
    fig = go.Figure()
    for c, label in LABELS.items():
        accs = out.get(c, {}).get("val_acc_seeds", [])
        if accs:
            fig.add_trace(go.Box(x=accs, name=tr(label), boxpoints="all", jitter=0.4, pointpos=0,
                                 marker=dict(color=color(c), size=9), line=dict(color=color(c)),
                                 fillcolor=rgba(color(c), 0.15), orientation="h"))
    fig.update_xaxes(title_text=tr("final validation accuracy"), tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(showlegend=False)
    return style(fig, tr("Final target accuracy of every seed (one dot per run)"), height=360)


def sweep(out: dict) -> go.Figure:
    """When does guidance help: validation accuracy vs shots, one panel per source, a line per condition (mean over
    seeds, whisker ± std)."""
    sources = list(out["config"]["sources"])
    fig = make_subplots(rows=1, cols=len(sources), shared_yaxes=True,
                        subplot_titles=[_source(s) for s in sources], horizontal_spacing=0.06)
    for k, source in enumerate(sources):
        for c, label in LABELS.items():
            pts = [r for r in out["cells"] if r["source"] == source and r["condition"] == c and r["val_acc_seeds"]]
            fig.add_trace(go.Scatter(
                x=[r["shots"] for r in pts], y=[r["val_acc_mean"] for r in pts], name=tr(label),
                mode="lines+markers",
                line=dict(color=color(c), width=3), marker=dict(size=10),
                error_y=dict(type="data", array=[r["val_acc_std"] for r in pts], thickness=2),
                legendgroup=c, showlegend=k == 0), row=1, col=k + 1)
        fig.update_xaxes(type="log", tickvals=list(out["config"]["shots"]),
                         title_text=tr("shots per class (log scale)"), row=1, col=k + 1)
    fig.update_yaxes(title_text=tr("target validation accuracy"), tickformat=".0%", row=1, col=1)
    fig.update_annotations(font_size=18)
    n = out["config"]["seeds"]
    return style(fig, tr("When does guidance help? (mean of {seeds}; whisker: ± std)", seeds=seeds_text(n)),
                 height=500)


def _source(s: str) -> str:
    """A sweep panel's title: "related source", "unrelated source"."""
    return condition(s) if s in ("related", "unrelated") else f"{s} source"


def _guide_image(g) -> tuple[np.ndarray, dict, dict]:
    """A 2-D picture of one weight tensor's guide, and its x and y axis settings. Linear (out, in): the
    matrix. Conv (out, in, kh, kw): one kh×kw tile per (input channel, output filter), gaps between
    tiles, square pixels, ticks at the tile centres."""
    g = np.asarray(g, dtype=float)
    if g.ndim == 4:
        c_out, c_in, kh, kw = g.shape
        img = np.full((c_in * (kh + 1) - 1, c_out * (kw + 1) - 1), np.nan)
        for o in range(c_out):
            for i in range(c_in):
                img[i * (kh + 1):i * (kh + 1) + kh, o * (kw + 1):o * (kw + 1) + kw] = g[o, i]
        step = max(1, c_out // 8)
        x = dict(title_text=tr("output filter ({kh}×{kw} kernel tiles)", kh=kh, kw=kw),
                 tickvals=[o * (kw + 1) + (kw - 1) / 2 for o in range(0, c_out, step)],
                 ticktext=[str(o) for o in range(0, c_out, step)])
        step = max(1, c_in // 8)
        y = dict(title_text=tr("input channel"), tickvals=[i * (kh + 1) + (kh - 1) / 2 for i in range(0, c_in, step)],
                 ticktext=[str(i) for i in range(0, c_in, step)], scaleratio=1)
        return img, x, y
    if g.ndim != 2:
        g = g.reshape(len(g), -1)
    return g, dict(title_text=tr("input unit")), dict(title_text=tr("output unit"))


def heatmaps(guide: dict, title: str = N_("Guide values per layer (0 = frozen, 1 = free)")) -> go.Figure:
    """Every weight tensor's guide as a heat map on one colour scale; biases are in the per-layer bars."""
    names = [n for n, g in guide.items() if np.asarray(g).ndim >= 2]
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    shapes = {n: "×".join(str(d) for d in np.asarray(guide[n]).shape) for n in names}
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{layer(n)} ({shapes[n]})" for n in names],
                        horizontal_spacing=0.08, vertical_spacing=0.16)
    zmax = max(1.0, max(float(np.nanmax(np.asarray(guide[n], dtype=float))) for n in names))
    for k, n in enumerate(names):
        img, x, y = _guide_image(guide[n])
        r, c = k // cols + 1, k % cols + 1
        fig.add_trace(go.Heatmap(z=img, coloraxis="coloraxis",
                                 hovertemplate=tr("{layer}<br>guide {value}", layer=layer(n), value="%{z:.3f}")
                                 + f"<extra>{n}</extra>"), row=r, col=c)
        if "scaleratio" in y:  # conv tiles: square pixels, so a 3×3 kernel looks like one
            y["scaleanchor"] = f"x{k + 1 if k else ''}"
        fig.update_xaxes(row=r, col=c, showgrid=False, zeroline=False, **x)
        fig.update_yaxes(row=r, col=c, autorange="reversed", showgrid=False, zeroline=False, **y)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=zmax,
                                     colorbar=dict(title=tr("guide"), len=0.9)))
    fig.update_annotations(font_size=16)
    return style(fig, tr(title), height=440 * rows + 60)


def histogram(guide: dict) -> go.Figure:
    """How the guide values spread: all tensors, stacked by layer."""
    fig = go.Figure()
    for k, (n, g) in enumerate(guide.items()):
        fig.add_trace(go.Histogram(x=np.asarray(g, dtype=float).ravel(), name=layer(n), nbinsx=40,
                                   marker_color=PALETTE[k % len(PALETTE)]))
    fig.update_layout(barmode="stack", bargap=0.02)
    fig.update_xaxes(title_text=tr("guide value (0 = frozen, 1 = free)"))
    fig.update_yaxes(title_text=tr("parameters (log scale)"), type="log", dtick=1)
    return style(fig, tr("Histogram of all guide values (log count)"), height=440)


def layer_means(guide: dict, head: str | None = N_("head (new: free)")) -> go.Figure:
    """Mean guide per parameter tensor: which layers the scouts say should move."""
    names = [layer(n, "<br>") for n in guide]   # in words, the layer above what of it: labels never run together
    means = [float(np.mean(np.asarray(g, dtype=float))) for g in guide.values()]
    colors = [color("guided")] * len(names)
    if head:
        names, means, colors = names + [tr(head).replace(" (", "<br>(")], means + [1.0], colors + ["#bbbbbb"]
    fig = go.Figure(go.Bar(x=names, y=means, marker_color=colors, text=[f"{m:.2f}" for m in means],
                           textposition="outside", textfont=dict(size=16)))
    fig.update_yaxes(title_text=tr("mean guide"), range=[0, max(1.1, max(means) * 1.15)])
    fig.update_xaxes(title_text=tr("parameter tensor"), tickangle=0)
    return style(fig, tr("Mean guide per layer: where the scouts moved"), height=440)


def groups(matrix, groups: dict, title: str) -> go.Figure:
    """A first-layer guide (hidden unit × input) summarised by input group (e.g. gene programmes): the mean
    guide of each unit over each group's inputs, big cells a projector shows, values written in."""
    m = np.asarray(matrix, dtype=float)
    names = list(groups)
    z = np.stack([m[:, groups[n]].mean(1) for n in names], 1)     # (units, groups)
    order = np.argsort(-z.max(1))[:16]                             # the 16 units the scouts moved most
    z = z[order]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=[tr("unit {n}", n=u) for u in order], colorscale="Viridis", zmin=0,
                               zmax=max(1e-6, float(z.max())), text=np.round(z, 2), texttemplate="%{text}",
                               textfont=dict(size=13), colorbar=dict(title=tr("mean guide")),
                               hovertemplate=tr("{unit}, {group}<br>mean guide {value}", unit="%{y}", group="%{x}",
                                                value="%{z:.3f}") + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30)
    return style(fig, title, height=620)
