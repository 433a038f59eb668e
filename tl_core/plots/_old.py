"""Every figure Transfer Lab draws, as plotly figures. Pages only place them.

Figures are made for a projector: large fonts, titled axes with units, colour-blind-safe colours,
and every claim over several seeds drawn as a mean line with a band.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {"scratch": "#d95f02", "pretrained": "#1b9e77", "truth": "#222222", "task_a": "#7570b3"}
LABELS = {"scratch": "from scratch on B", "pretrained": "pretrained on A, fine-tuned on B"}
BAND = "band: 10th-90th percentile over seeds"


def _style(fig: go.Figure, title: str, height: int = 460) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=20)), font=dict(size=15), height=height,
        template="plotly_white", margin=dict(l=60, r=20, t=80, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
    )
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band_traces(x, values, name: str, color: str, *, dash: str | None = None,
                showlegend: bool = True) -> list[go.Scatter]:
    """A mean line and a 10th-90th percentile band for values of shape (len(x), seeds)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    x = np.asarray(x)
    low, high = np.percentile(values, 10, axis=1), np.percentile(values, 90, axis=1)
    group = f"{name}-{dash}"
    return [
        go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]), fill="toself", mode="lines",
                   fillcolor=_rgba(color, 0.18), line=dict(width=0), hoverinfo="skip",
                   legendgroup=group, showlegend=False, name=f"{name} band"),
        go.Scatter(x=x, y=values.mean(1), mode="lines", name=name, legendgroup=group, showlegend=showlegend,
                   line=dict(color=color, width=3, dash=dash)),
    ]


def _many_lines(x: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate many curves into one trace, separated by gaps (fast to draw, one legend entry)."""
    xs = np.concatenate([np.append(x, np.nan) for _ in ys])
    yy = np.concatenate([np.append(y, np.nan) for y in ys])
    return xs, yy


def toy_functions(result) -> go.Figure:
    """Every seed's learned function for both conditions, over the true B line and B's points."""
    cfg = result.config
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"From scratch on B ({cfg.seeds} seeds)",
                                        f"Pretrained on A ({cfg.relation}), fine-tuned on B"])
    lo, hi = float(result.y_test.min()), float(result.y_test.max())
    pad = max(1.0, 0.6 * (hi - lo))
    for col, name in ((1, "scratch"), (2, "pretrained")):
        cond = getattr(result, name)
        xs, ys = _many_lines(result.x_test, cond.functions)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"learned functions, {LABELS[name]}",
                                 line=dict(color=_rgba(COLORS[name], 0.35), width=1.5), hoverinfo="skip"),
                      row=1, col=col)
        if name == "pretrained":
            fig.add_trace(go.Scatter(x=result.x_test, y=result.a_test, mode="lines", name="true task A",
                                     line=dict(color=COLORS["task_a"], width=2, dash="dot")), row=1, col=col)
        fig.add_trace(go.Scatter(x=result.x_test, y=result.y_test, mode="lines", name="true task B",
                                 showlegend=col == 1, legendgroup="truth",
                                 line=dict(color=COLORS["truth"], width=3, dash="dash")), row=1, col=col)
        fig.add_trace(go.Scatter(x=result.b_train[0], y=result.b_train[1], mode="markers",
                                 name=f"B's {cfg.b_points} training points", showlegend=col == 1,
                                 legendgroup="points",
                                 marker=dict(color="#e7298a", size=14, line=dict(color="white", width=2))),
                      row=1, col=col)
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text="y", row=1, col=1)
    fig.update_xaxes(title_text="x")
    return _style(fig, "What each network learned for task B", height=480)


def toy_losses(result) -> go.Figure:
    """Train and test MSE per fine-tuning epoch, mean and band over seeds, both conditions."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["Train MSE on B's points", "Test MSE against the true B line"])
    for name in ("scratch", "pretrained"):
        hist = getattr(result, name).history
        for col, values in ((1, hist.train_loss), (2, hist.val_loss)):
            if not values:
                continue
            epochs = np.arange(1, len(values) + 1)
            for trace in band_traces(epochs, values, LABELS[name], COLORS[name], showlegend=col == 2):
                fig.add_trace(trace, row=1, col=col)
    fig.update_yaxes(type="log", exponentformat="power", title_text="MSE (log scale)")
    fig.update_xaxes(title_text="fine-tuning epoch")
    return _style(fig, f"Loss while fine-tuning on B (line: mean; {BAND})")


def toy_final_mse(result) -> go.Figure:
    """Each seed's final test MSE as a dot: the spread behind the two means."""
    fig = go.Figure()
    for name in ("scratch", "pretrained"):
        mse = getattr(result, name).test_mse
        fig.add_trace(go.Box(x=mse, name=LABELS[name], boxpoints="all", jitter=0.4, pointpos=0,
                             marker=dict(color=COLORS[name], size=8), line=dict(color=COLORS[name]),
                             fillcolor=_rgba(COLORS[name], 0.15), orientation="h"))
    fig.update_xaxes(type="log", tickformat=".2g", title_text="final test MSE on task B (log scale)")
    fig.update_layout(showlegend=False)
    return _style(fig, "Final test error of every seed (one dot per network)", height=320)


# ---- fine-tuning lab ------------------------------------------------------------------------------

def overfitting_curves(result, name: Callable[[str], str], color: Callable[[str], str], height: int = 460) -> go.Figure:
    """Train (solid) and validation (dashed) loss and accuracy per epoch, one colour per condition, mean over
    seeds with a band: the overfitting picture, the conditions on the same axes. `result` is a
    `contract.ConditionsResult` (the lab's, the text page's)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=["Loss (cross-entropy)", "Accuracy"])
    for condition in result.ran():
        runs = result.runs_of(condition)
        length = min(r.history.epochs_run for r in runs)
        if length == 0:
            continue
        epochs = np.arange(1, length + 1)
        for col, key in ((1, "loss"), (2, "acc")):
            for split, dash in (("train", None), ("val", "dash")):
                values = np.array([getattr(r.history, f"{split}_{key}")[:length] for r in runs]).T
                label = f"{name(condition)}, {'train' if split == 'train' else 'validation'}"
                for trace in band_traces(epochs, values, label, color(condition), dash=dash, showlegend=col == 1):
                    fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], tickformat=".0%", row=1, col=2)
    seeds = result.config.seeds
    return _style(fig, f"Overfitting curves: train vs validation (line: mean of {seeds} seed{'s' * (seeds > 1)}; {BAND})",
                  height=height)


def finetune_curves(result) -> go.Figure:
    """The lab's overfitting picture: pretrained (or loaded weights) vs scratch."""
    return overfitting_curves(result, lambda w: "loaded weights" if w == "pretrained" and result.kind == "continue"
                              else w, COLORS.__getitem__)


def _shots_label(shots) -> str:
    return "all" if shots is None else str(shots)


def shots_sweep(sweep, freeze: str) -> go.Figure:
    """Validation accuracy against shots per class (log axis), pretrained vs scratch, band over seeds."""
    fig = go.Figure()
    numeric = [s for s in sweep.shots if s is not None]
    for weights in sweep.config.conditions():
        seeds = sorted({r["seed"] for r in sweep.records if r["weights"] == weights})
        fr = freeze if weights == "pretrained" else sweep.rows(weights)[0]
        rows = [[next((r["val_acc"] for r in sweep.records if r["weights"] == weights and r["seed"] == s
                       and r["freeze"] == fr and r["shots"] == sh), np.nan) for s in seeds] for sh in numeric]
        if seeds and rows:
            label = f"pretrained ({freeze} frozen)" if weights == "pretrained" else "scratch (all stages trained)"
            for trace in band_traces(numeric, np.array(rows), label, COLORS[weights]):
                fig.add_trace(trace)
    fig.update_xaxes(type="log", title_text="training images per class (log scale)", tickvals=numeric,
                     ticktext=[str(s) for s in numeric])
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1.02], tickformat=".0%")
    return _style(fig, f"Accuracy vs shots per class (line: mean over seeds; {BAND})", height=420)


def freeze_shots_heatmap(sweep, weights: str, stage_names: list[str]) -> go.Figure:
    grid = sweep.grid(weights)
    labels = [f"{fr} frozen" for fr in sweep.rows(weights)]
    fig = go.Figure(go.Heatmap(z=grid, x=[_shots_label(s) for s in sweep.shots], y=labels, zmin=0, zmax=1,
                               colorscale="Viridis", colorbar=dict(title="val acc", tickformat=".0%"),
                               text=[[f"{v:.0%}" if np.isfinite(v) else "" for v in row] for row in grid],
                               texttemplate="%{text}", textfont=dict(size=16)))
    fig.update_xaxes(title_text="training images per class", type="category")
    fig.update_yaxes(title_text=f"frozen stages (of {len(stage_names)})", type="category")
    return _style(fig, f"Validation accuracy: freeze depth × shots ({weights}, mean over seeds)", height=380)


def confusion(matrix: np.ndarray, classes: list[str], title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", showscale=False,
                               text=matrix, texttemplate="%{text}", textfont=dict(size=14)))
    fig.update_xaxes(title_text="predicted class", type="category")
    fig.update_yaxes(title_text="true class", type="category", autorange="reversed")
    return _style(fig, title, height=420)


def misclassified(result, most: int = 8) -> go.Figure | None:
    """The first run's misclassified validation images (true → predicted), or None when it got all right."""
    first, val = result.runs[0], result.val
    wrong = [i for i, (t, p) in enumerate(zip(val.labels.tolist(), first.val_pred)) if t != p][:most]
    if not wrong:
        return None
    return image_grid(val.images[wrong], [f"{result.classes[val.labels[i]]} → {result.classes[first.val_pred[i]]}"
                                          for i in wrong], "Misclassified (true → predicted)", columns=4)


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
    return _style(fig, title, height=170 * rows + 80)


# ---- runs: the history -------------------------------------------------------------------------------

PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def compare_runs(runs, curve: str, color_by: str) -> go.Figure:
    """One curve (e.g. a validation accuracy per epoch) of several runs on the same axes, coloured by a
    config field: runs that share its value share a colour, so the field's effect is visible at a glance."""
    from tl_core.store import flat_config

    values = [str(flat_config({"kind": r.kind, **r.config}).get(color_by, "—")) if color_by != "run" else r.name
              for r in runs]
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(dict.fromkeys(values))}
    fig = go.Figure()
    shown = set()
    for run, value in zip(runs, values):
        ys = run.curves.get(curve)
        if not ys:
            continue
        fig.add_trace(go.Scatter(
            x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers" if len(ys) < 30 else "lines",
            name=f"{value}" if color_by != "run" else value, legendgroup=value, showlegend=value not in shown,
            line=dict(color=colours[value], width=3), marker=dict(size=7),
            hovertemplate=f"{run.name}<br>epoch %{{x}}: %{{y:.4g}}<extra>{color_by} = {value}</extra>"))
        shown.add(value)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=curve.split(".")[-1].replace("_", " "))
    if "acc" in curve.split(".")[-1]:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_layout(legend_title_text=color_by)
    return _style(fig, f"{curve} of {len(runs)} runs, coloured by {color_by}")


def state_groups(inspection) -> go.Figure:
    """Values stored per module of a state_dict (parameters and BatchNorm statistics), one bar each, in
    the model's order: where the weights live (often the head, or the last blocks)."""
    groups = inspection.groups
    total = max(inspection.total_elements, 1)
    fig = go.Figure(go.Bar(
        x=[g["module"] for g in groups], y=[g["elements"] for g in groups], marker_color=COLORS["pretrained"],
        text=[f"{g['elements'] / total:.0%}" if g["elements"] >= total / 100 else "<1%" for g in groups],
        textposition="outside", cliponaxis=False, textfont=dict(size=16),
        hovertemplate="%{x}: %{y:,} values<extra></extra>"))
    fig.update_xaxes(title_text="module (in the order the model runs them)", type="category")
    fig.update_yaxes(title_text="values stored", rangemode="tozero")
    return _style(fig, f"Values per module: {inspection.total_elements:,} in all "
                       f"({inspection.total_bytes / 2**20:.2f} MB)", height=420)


# ---- your own images ---------------------------------------------------------------------------------

def per_class_accuracy(result) -> go.Figure:
    """Validation accuracy of each class, per weights condition: bar = mean over seeds, whiskers = the
    lowest and highest seed. A class with no validation image has no bar (its accuracy is unknown)."""
    fig = go.Figure()
    n_val = result.runs[0].confusion.sum(1) if result.runs else np.zeros(len(result.classes))
    labels = [f"{c} ({int(n)} val)" for c, n in zip(result.classes, n_val)]
    for weights in result.config.conditions():
        runs = result.by_weights(weights)
        if not runs:
            continue
        import warnings  # local: plots.py's imports stay as they are (others append here too)

        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: a class with no val image
            acc = np.array([r.per_class_recall for r in runs])  # (seeds, classes)
            mean, low, high = np.nanmean(acc, 0), np.nanmin(acc, 0), np.nanmax(acc, 0)
        fig.add_trace(go.Bar(x=labels, y=mean, name=f"{weights} ({len(runs)} seed{'s' * (len(runs) > 1)})",
                             marker_color=COLORS[weights], text=[f"{v:.0%}" if np.isfinite(v) else "no val image"
                                                                 for v in mean],
                             textposition="outside", textfont=dict(size=15),
                             error_y=dict(type="data", symmetric=False, array=high - mean, arrayminus=mean - low,
                                          thickness=2, width=8)))
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1.15], tickformat=".0%")
    fig.update_xaxes(title_text="class (val images in the first split) · whiskers: lowest to highest seed",
                     type="category")
    fig.update_layout(barmode="group")
    return _style(fig, "Accuracy per class (mean over seeds)", height=420)


def topk_bars(top: list[tuple[str, float]], title: str) -> go.Figure:
    """The k most likely classes of one image, most likely on top, as horizontal bars."""
    names, probs = [c for c, _ in top][::-1], [p for _, p in top][::-1]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", marker_color=COLORS["pretrained"],
                           text=[f"{p:.1%}" for p in probs], textposition="outside", textfont=dict(size=18)))
    fig.update_xaxes(title_text="probability", range=[0, 1.15], tickformat=".0%")
    fig.update_yaxes(type="category", tickfont=dict(size=18))
    fig.update_layout(showlegend=False)
    return _style(fig, title, height=120 + 60 * len(top))


# ---- self-supervised pretraining ----------------------------------------------------------------------

SSL_COLORS = {"scratch": COLORS["scratch"], "ssl_frozen": "#7570b3", "ssl_finetuned": COLORS["pretrained"]}
SSL_LABELS = {"scratch": "from scratch", "ssl_frozen": "SSL encoder, frozen", "ssl_finetuned": "SSL encoder, fine-tuned"}
HIDDEN_RGB = (0.95, 0.55, 0.1)  # hidden patches are drawn orange: nothing in a digit is orange


def ssl_expression_reconstructions(examples: dict, feature_order: list[int], genes: int = 300) -> go.Figure:
    """Heat-map rows, one per validation sample, of each gene's expression relative to its average (as the
    model sees it): the original, the masked input (blank = hidden), and the input with the hidden genes
    filled in by the model. Genes are grouped by programme: a cell type's co-expressed genes are a block."""
    order = list(feature_order)[:genes]
    z, mask = np.asarray(examples["z"])[:, order], np.asarray(examples["mask"])[:, order]
    filled = np.where(mask, np.asarray(examples["z_recon"])[:, order], z)
    panels = [("original", z), ("masked input: blank = hidden", np.where(mask, np.nan, z)),
              ("masked input + the model's fill-in of the hidden genes", filled)]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=[p[0] for p in panels])
    rows = [f"{label} " for label in examples["labels"]]
    for i, (_, values) in enumerate(panels):
        fig.add_trace(go.Heatmap(z=values, y=rows, zmin=-3, zmax=3, colorscale="RdBu_r", showscale=i == 0,
                                 colorbar=dict(title="z-score", len=0.9),
                                 hovertemplate="gene %{x}<br>%{y}: %{z:.2f}<extra></extra>"), row=i + 1, col=1)
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title_text=f"gene (the first {genes}, grouped by programme; 30 per cell type)", row=3, col=1)
    fig.update_annotations(font_size=16)
    return _style(fig, "Masked genes and their reconstruction (red = above the gene's average, one row per "
                       "validation sample)", height=640)


def ssl_image_reconstructions(examples: dict, side: int) -> go.Figure:
    """Digits: original, masked input (hidden patches orange), and the input with the model's fill-in."""
    raw = np.asarray(examples["raw"]).reshape(-1, side, side).clip(0, 1)
    mask = np.asarray(examples["mask"]).reshape(-1, side, side)
    filled = np.where(mask, np.asarray(examples["recon"]).reshape(-1, side, side), raw).clip(0, 1)
    gray = lambda a: np.repeat(a[:, None], 3, axis=1)  # noqa: E731 - (N, S, S) -> (N, 3, S, S)
    masked = gray(raw)
    for c, value in enumerate(HIDDEN_RGB):
        masked[:, c][mask] = value
    n = len(raw)
    images = np.concatenate([gray(raw), masked, gray(filled)])
    titles = ([f"digit {label}" for label in examples["labels"]] + ["masked input"] * n + ["model's fill-in"] * n)
    return image_grid(images, titles, "Masked patches (orange) and the model's reconstruction", columns=n)


def ssl_recon_curve(pretrained) -> go.Figure:
    """Masked reconstruction loss per pretraining epoch, train and validation, against the baseline of
    predicting every hidden feature's mean (1.0 on standardised features)."""
    h = pretrained.history
    epochs = np.arange(1, len(h.train_loss) + 1)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs, y=h.train_loss, mode="lines+markers", name="unlabelled pool (train)",
                             line=dict(color=COLORS["task_a"], width=3)))
    if h.val_loss:
        fig.add_trace(go.Scatter(x=epochs, y=h.val_loss, mode="lines+markers", name="validation samples",
                                 line=dict(color=COLORS["task_a"], width=3, dash="dash")))
    fig.add_hline(y=1.0, line=dict(color=COLORS["truth"], dash="dot", width=2),
                  annotation_text="predict each feature's mean", annotation_position="top right")
    fig.update_xaxes(title_text="pretraining epoch")
    fig.update_yaxes(title_text="MSE on the hidden features only", rangemode="tozero")
    return _style(fig, "Reconstruction loss while pretraining (no labels used)", height=420)


def ssl_label_curve(result) -> go.Figure:
    """Validation accuracy against labelled samples per class (log axis): scratch vs the SSL encoder
    frozen and fine-tuned, mean over seeds with a band."""
    counts = result.label_counts
    fig = go.Figure()
    for mode in SSL_COLORS:
        values = [result.accs(mode, n) for n in counts]
        if not all(values) or len({len(v) for v in values}) != 1:
            continue
        for trace in band_traces(counts, np.array(values), SSL_LABELS[mode], SSL_COLORS[mode]):
            fig.add_trace(trace)
    fig.add_vline(x=result.config.labels, line=dict(color="#999999", dash="dot", width=2))
    fig.update_xaxes(type="log", title_text="labelled samples per class (log scale)", tickvals=counts,
                     ticktext=[str(n) for n in counts])
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1.02], tickformat=".0%")
    seeds = result.config.seeds
    return _style(fig, f"Accuracy vs number of labels (line: mean of {seeds} seed{'s' * (seeds > 1)}; {BAND})",
                  height=460)


# ---- Guided Transfer Learning ---------------------------------------------------------------------

GTL_COLORS = {"scratch": COLORS["scratch"], "plain": COLORS["pretrained"], "guided": "#7570b3",
              "freeze_head_only": "#e7298a"}
GTL_LABELS = {"scratch": "from scratch", "plain": "plain fine-tune", "guided": "GTL-guided fine-tune",
              "freeze_head_only": "freeze all but head"}


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
        x = dict(title_text=f"output filter ({kh}×{kw} kernel tiles)", tickvals=[o * (kw + 1) + (kw - 1) / 2
                 for o in range(0, c_out, step)], ticktext=[str(o) for o in range(0, c_out, step)])
        step = max(1, c_in // 8)
        y = dict(title_text="input channel", tickvals=[i * (kh + 1) + (kh - 1) / 2 for i in range(0, c_in, step)],
                 ticktext=[str(i) for i in range(0, c_in, step)], scaleratio=1)
        return img, x, y
    if g.ndim != 2:
        g = g.reshape(len(g), -1)
    return g, dict(title_text="input unit"), dict(title_text="output unit")


def gtl_heatmaps(guide: dict, title: str = "Guide values per layer (0 = frozen, 1 = free)") -> go.Figure:
    """Every weight tensor's guide as a heat map on one colour scale; biases are in the per-layer bars."""
    names = [n for n, g in guide.items() if np.asarray(g).ndim >= 2]
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    shapes = {n: "×".join(str(d) for d in np.asarray(guide[n]).shape) for n in names}
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{n} ({shapes[n]})" for n in names],
                        horizontal_spacing=0.08, vertical_spacing=0.16)
    zmax = max(1.0, max(float(np.nanmax(np.asarray(guide[n], dtype=float))) for n in names))
    for k, n in enumerate(names):
        img, x, y = _guide_image(guide[n])
        r, c = k // cols + 1, k % cols + 1
        fig.add_trace(go.Heatmap(z=img, coloraxis="coloraxis", hovertemplate=f"{n}<br>guide %{{z:.3f}}<extra></extra>"),
                      row=r, col=c)
        if "scaleratio" in y:  # conv tiles: square pixels, so a 3×3 kernel looks like one
            y["scaleanchor"] = f"x{k + 1 if k else ''}"
        fig.update_xaxes(row=r, col=c, showgrid=False, zeroline=False, **x)
        fig.update_yaxes(row=r, col=c, autorange="reversed", showgrid=False, zeroline=False, **y)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=zmax,
                                     colorbar=dict(title="guide", len=0.9)))
    fig.update_annotations(font_size=16)
    return _style(fig, title, height=440 * rows + 60)


def gtl_histogram(guide: dict) -> go.Figure:
    """How the guide values spread: all tensors, stacked by layer."""
    fig = go.Figure()
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    for k, (n, g) in enumerate(guide.items()):
        fig.add_trace(go.Histogram(x=np.asarray(g, dtype=float).ravel(), name=n, nbinsx=40,
                                   marker_color=palette[k % len(palette)]))
    fig.update_layout(barmode="stack", bargap=0.02)
    fig.update_xaxes(title_text="guide value (0 = frozen, 1 = free)")
    fig.update_yaxes(title_text="parameters (log scale)", type="log", dtick=1)
    return _style(fig, "Histogram of all guide values (log count)", height=440)


def gtl_layer_means(guide: dict, head: str | None = "head (new: free)") -> go.Figure:
    """Mean guide per parameter tensor: which layers the scouts say should move."""
    names = list(guide)
    means = [float(np.mean(np.asarray(g, dtype=float))) for g in guide.values()]
    colors = [GTL_COLORS["guided"]] * len(names)
    if head:
        names, means, colors = names + [head], means + [1.0], colors + ["#bbbbbb"]
    fig = go.Figure(go.Bar(x=names, y=means, marker_color=colors, text=[f"{m:.2f}" for m in means],
                           textposition="outside", textfont=dict(size=16)))
    fig.update_yaxes(title_text="mean guide", range=[0, max(1.1, max(means) * 1.15)])
    fig.update_xaxes(title_text="parameter tensor", tickangle=0)
    return _style(fig, "Mean guide per layer: where the scouts moved", height=440)


def gtl_curves(result) -> go.Figure:
    """Target validation accuracy per fine-tuning epoch, each condition a mean line with a seed band."""
    fig = go.Figure()
    for c in GTL_LABELS:
        runs = result.by_condition(c)
        length = min((r.history.epochs_run for r in runs), default=0)
        if length == 0:
            continue
        values = np.array([r.history.val_acc[:length] for r in runs]).T
        for trace in band_traces(np.arange(1, length + 1), values, GTL_LABELS[c], GTL_COLORS[c]):
            fig.add_trace(trace)
    fig.update_xaxes(title_text="fine-tuning epoch on the target classes")
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1.02], tickformat=".0%")
    n = result.config.seeds
    return _style(fig, f"Target accuracy while fine-tuning (line: mean of {n} seed{'s' * (n > 1)}; {BAND})")


def gtl_final(result) -> go.Figure:
    """Each seed's final target validation accuracy, one dot per run, per condition."""
    fig = go.Figure()
    for c in GTL_LABELS:
        accs = [r.val_acc for r in result.by_condition(c)]
        if accs:
            fig.add_trace(go.Box(x=accs, name=GTL_LABELS[c], boxpoints="all", jitter=0.4, pointpos=0,
                                 marker=dict(color=GTL_COLORS[c], size=9), line=dict(color=GTL_COLORS[c]),
                                 fillcolor=_rgba(GTL_COLORS[c], 0.15), orientation="h"))
    fig.update_xaxes(title_text="final validation accuracy", tickformat=".0%")
    fig.update_layout(showlegend=False)
    return _style(fig, "Final target accuracy of every seed (one dot per run)", height=360)


# ---- lecture ------------------------------------------------------------------------------------------

LECTURE_COLORS = {**COLORS, **GTL_COLORS, **SSL_COLORS, "partial": "#e6ab02"}
LECTURE_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")   # for names without a colour


def lecture_chart(chart) -> go.Figure:
    """A lecture step's chart (`tl_core.lecture.Chart`): each series a mean line with its band over seeds, or
    stacked bars over categories."""
    fig = go.Figure()
    for i, s in enumerate(chart.series):
        color = LECTURE_COLORS.get(s.color) or (s.color if s.color.startswith("#") else
                                                LECTURE_PALETTE[i % len(LECTURE_PALETTE)])
        if chart.bars:
            fig.add_trace(go.Bar(x=s.x, y=s.mean, name=s.name, marker_color=color))
            continue
        x = np.asarray(s.x, dtype=float if not chart.x_labels else int)
        if len(s.low):
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([s.high, s.low[::-1]]),
                                     fill="toself", mode="lines", fillcolor=_rgba(color, 0.18), line=dict(width=0),
                                     hoverinfo="skip", legendgroup=s.name, showlegend=False, name=f"{s.name} band"))
        fig.add_trace(go.Scatter(x=x, y=s.mean, mode="lines+markers" if len(x) < 8 else "lines", name=s.name,
                                 legendgroup=s.name, line=dict(color=color, width=3, dash=s.dash)))
    if chart.bars:
        fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text=chart.x_title, type="log" if chart.log_x else None)
    if chart.log_x and chart.series:
        ticks = sorted({v for s in chart.series for v in s.x})
        fig.update_xaxes(tickvals=ticks, ticktext=[str(t) for t in ticks])
    if chart.x_labels:
        fig.update_xaxes(tickvals=list(range(1, len(chart.x_labels) + 1)), ticktext=chart.x_labels,
                         range=[0.6, len(chart.x_labels) + 0.4])
    if chart.log_y:   # a label at every power of ten only: the minor ones crowd on a projector
        fig.update_yaxes(dtick=1, exponentformat="power")
    fig.update_yaxes(title_text=chart.y_title, type="log" if chart.log_y else None,
                     **({"range": [0, 1.02], "tickformat": ".0%"} if chart.percent else {}),
                     **({"tickformat": chart.y_format} if chart.y_format else {}))
    return _style(fig, chart.title, height=480)


def projector(fig: go.Figure, scale: float = 1.5) -> go.Figure:
    """The same figure for the back of a room: every font (ticks and axis titles too) `scale` times larger,
    thicker lines, taller, and a long title broken after its first part."""
    fig = go.Figure(fig)
    base = round((fig.layout.font.size or 15) * scale)
    title = fig.layout.title.text or ""
    if len(title) > 50 and " (" in title:   # "What it shows (how it is measured)": the second part on its own line
        head, rest = title.split(" (", 1)
        title = f"{head}<br><span style='font-size:{round(base * 0.8)}px'>({rest}</span>"
    fig.update_layout(font=dict(size=base), height=round((fig.layout.height or 460) * 1.25),
                      title=dict(text=title, font_size=round((fig.layout.title.font.size or 20) * scale)),
                      legend_font_size=base, margin=dict(t=130, b=70, l=90))
    fig.update_xaxes(tickfont_size=base, title_font_size=base)
    fig.update_yaxes(tickfont_size=base, title_font_size=base)
    fig.update_annotations(font_size=base)
    fig.update_traces(line_width=5, selector=lambda t: getattr(t, "line", None) is not None and (t.line.width or 0) >= 2)
    fig.update_traces(marker_size=12, selector=dict(mode="lines+markers"))
    return fig


# ---- what layers learn, and which strategy for which data ----------------------------------------------

def _unit(a: np.ndarray) -> np.ndarray:
    """Scale an array to [0, 1] (a constant one to 0.5)."""
    lo, hi = float(np.min(a)), float(np.max(a))
    return np.full_like(a, 0.5, dtype=float) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def layer_filters(filters: dict, most: int = 32, columns: int = 8) -> go.Figure:
    """First-layer kernels (out, 3, k, k) as RGB tiles, one panel per model; each tile scaled to its own range."""
    names = list(filters)
    n = min(most, min(len(f) for f in filters.values()))
    k = filters[names[0]].shape[-1]
    rows, cell = -(-n // columns), k + 1
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.03)
    for c, name in enumerate(names):
        grid = np.ones((rows * cell - 1, columns * cell - 1, 3))
        for i, w in enumerate(filters[name][:n]):
            r, q = divmod(i, columns)
            grid[r * cell:r * cell + k, q * cell:q * cell + k] = _unit(w.transpose(1, 2, 0))
        fig.add_trace(go.Image(z=(grid * 255).astype(np.uint8), hoverinfo="skip"), row=1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=17)
    return _style(fig, f"First-layer filters ({k}×{k} RGB, first {n}; each tile scaled to its own range)", height=380)


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
        out[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = _unit(m)
    return out


def activation_grid(image: np.ndarray, maps: dict) -> go.Figure:
    """One image, then for each model (rows) every stage's strongest channels (columns, early → late)."""
    names = list(maps)
    stages = [m["stage"] for m in maps[names[0]]]
    cols = len(stages) + 1
    titles = []
    for r, name in enumerate(names):
        titles += ["input" if r == 0 else ""] + [f"{s}<br>{m['size'][0]}×{m['size'][1]}" for s, m in zip(stages, maps[name])]
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
    return _style(fig, "Activation maps per stage, early → late (4 most active channels each; yellow = strong)",
                  height=180 * len(names) + 110)


def strongest_patches(patches: list) -> go.Figure:
    """For each stage (rows), the dataset's patches that fire its most active channel hardest."""
    most = max(len(p["patches"]) for p in patches)
    titles = [f"{p['stage']} · ch {p['channel']} · {p['field']} px" if i == 0 else ""
              for p in patches for i in range(most)]
    fig = make_subplots(rows=len(patches), cols=most, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.3 / len(patches))
    for r, p in enumerate(patches):
        for c, crop in enumerate(p["patches"]):
            fig.add_trace(go.Image(z=(np.asarray(crop) * 255).clip(0, 255).astype(np.uint8)), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=14, xanchor="left", x=0)
    return _style(fig, "Strongest patches per stage (pretrained): each cut to the unit's receptive field",
                  height=120 * len(patches) + 100)


def relative_change(result) -> go.Figure:
    """‖w − w₀‖/‖w₀‖ per stage under full fine-tuning: mean over seeds with a band (log axis)."""
    ch = result.change()
    x = list(range(len(result.stages)))
    fig = go.Figure()
    for trace in band_traces(x, ch.T, "relative change of the stage's weights", COLORS["pretrained"]):
        fig.add_trace(trace)
    fig.data[-1].update(mode="lines+markers", marker=dict(size=10))
    fig.update_xaxes(title_text="stage (input → output; the last one is the new head)", tickvals=x,
                     ticktext=result.stages)
    fig.update_yaxes(title_text="‖w − w₀‖ / ‖w₀‖ (log scale)", type="log", tickformat=".1%")
    n = len(ch)
    return _style(fig, f"How far each stage moved under full fine-tuning (mean of {n} seed{'s' * (n > 1)}; {BAND})",
                  height=440)


STRATEGY_COLORS = {"feature_extraction": "#1b9e77", "partial": "#7570b3", "full": "#e7298a", "scratch": COLORS["scratch"]}


def _strategy(name: str) -> str:
    return name.replace("_", " ")


def domain_bars(result) -> go.Figure:
    """Validation accuracy of every strategy (bars: mean, whiskers: std over seeds) per dataset and shots."""
    cells = result.cells()
    groups = list(dict.fromkeys((c["dataset"], c["domain"], c["shots"]) for c in cells))
    labels = [f"{ds} ({dom})<br>{sh} shots" for ds, dom, sh in groups]
    fig = go.Figure()
    for st in result.config.strategies:
        mine = {(c["dataset"], c["domain"], c["shots"]): c for c in cells if c["strategy"] == st}
        fig.add_trace(go.Bar(x=labels, y=[mine[g]["val_acc_mean"] if g in mine else None for g in groups],
                             error_y=dict(type="data", array=[mine[g]["val_acc_std"] if g in mine else 0 for g in groups]),
                             name=_strategy(st), marker_color=STRATEGY_COLORS.get(st)))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1.05], tickformat=".0%")
    n = result.config.seeds
    return _style(fig, f"Every cell of the grid (bar: mean of {n} seed{'s' * (n > 1)}; whisker: ± std over seeds)",
                  height=460)


def strategy_chart(quadrants: list[dict]) -> go.Figure:
    """The decks' 2×2 chart, measured: rows data size (few, more), columns similarity (near, far); in each
    quadrant every strategy's accuracy (mean ± std over seeds), the winner outlined, the rule's strategies named."""
    at = {(q["size"], q["domain"]): q for q in quadrants}
    titles = []
    for size in ("few", "more"):
        for domain in ("near", "far"):
            q = at.get((size, domain))
            titles.append("" if q is None else
                          f"<b>{size} data · {domain}</b>: {_strategy(q['winner'])} wins"
                          + (f" by {q['margin'] * 100:.1f} pts" if q["runner_up"] else ""))
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, vertical_spacing=0.2, horizontal_spacing=0.08,
                        shared_yaxes=True)
    for r, size in enumerate(("few", "more")):
        for c, domain in enumerate(("near", "far")):
            q = at.get((size, domain))
            if q is None:
                continue
            names = [st for st in STRATEGY_COLORS if st in q["means"]]   # the same order in every quadrant
            rule = set(q["rule_strategies"])
            fig.add_trace(go.Bar(
                x=[_strategy(s) + (" ★" if s in rule else "") for s in names], y=[q["means"][s] for s in names],
                error_y=dict(type="data", array=[q["stds"][s] for s in names]),
                marker=dict(color=[STRATEGY_COLORS.get(s) for s in names],
                            line=dict(color=["#000000" if s == q["winner"] else "rgba(0,0,0,0)" for s in names], width=4)),
                text=[f"{q['means'][s]:.0%}" for s in names], textposition="inside", insidetextanchor="start",
                textfont=dict(size=15, color="white"), showlegend=False, hovertemplate="%{x}: %{y:.1%}<extra></extra>"),
                row=r + 1, col=c + 1)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_yaxes(title_text="few data: val acc", row=1, col=1)
    fig.update_yaxes(title_text="more data: val acc", row=2, col=1)
    fig.update_annotations(font_size=18)
    return _style(fig, "Which strategy for which data, measured (★ the decks' rule; outlined: the winner)", height=720)


# ---- transfer for text ---------------------------------------------------------------------------

TEXT_COLORS = {"feature": "#1b9e77", "last_k": "#7570b3", "full": "#e7298a", "scratch": "#d95f02"}


def text_curves(result) -> go.Figure:
    """The text page's overfitting picture: feature extraction, fine-tuning, scratch."""
    return overfitting_curves(result, result.config.label, TEXT_COLORS.__getitem__, height=520)


def text_shots_sweep(result) -> go.Figure:
    """Validation accuracy against sentences per topic (log axis), one line per condition, band over seeds."""
    fig = go.Figure()
    shots = list(result.config.shots)
    for condition in result.config.conditions:
        accs = [result.accs(condition, s) for s in shots]
        if not all(accs):
            continue
        n = min(len(a) for a in accs)
        for trace in band_traces(shots, np.array([a[:n] for a in accs]), result.config.label(condition),
                                 TEXT_COLORS[condition]):
            fig.add_trace(trace)
    fig.update_xaxes(type="log", title_text="training sentences per topic (log scale)", tickvals=shots,
                     ticktext=[str(s) for s in shots])
    fig.update_yaxes(title_text="validation accuracy", range=[0, 1.02], tickformat=".0%")
    return _style(fig, f"Accuracy vs shots per topic (line: mean over seeds; {BAND})", height=440)


# ---- Guided Transfer Learning: by gene programme, and when guidance helps -------------------------------

def gtl_groups(matrix, groups: dict, title: str) -> go.Figure:
    """A first-layer guide (hidden unit × input) summarised by input group (e.g. gene programmes): the mean
    guide of each unit over each group's inputs, big cells a projector shows, values written in."""
    m = np.asarray(matrix, dtype=float)
    names = list(groups)
    z = np.stack([m[:, groups[n]].mean(1) for n in names], 1)     # (units, groups)
    order = np.argsort(-z.max(1))[:16]                             # the 16 units the scouts moved most
    z = z[order]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=[f"unit {u}" for u in order], colorscale="Viridis", zmin=0,
                               zmax=max(1e-6, float(z.max())), text=np.round(z, 2), texttemplate="%{text}",
                               textfont=dict(size=13), colorbar=dict(title="mean guide"),
                               hovertemplate="%{y}, %{x}<br>mean guide %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30)
    return _style(fig, title, height=620)


def gtl_sweep(result) -> go.Figure:
    """When does guidance help: validation accuracy vs shots, one panel per source, a line per condition
    (mean over seeds, whisker ± std)."""
    sources = list(result.config.sources)
    fig = make_subplots(rows=1, cols=len(sources), shared_yaxes=True,
                        subplot_titles=[f"{s} source" for s in sources], horizontal_spacing=0.06)
    rows = result.table()
    for k, source in enumerate(sources):
        for c in ("scratch", "plain", "guided"):
            pts = [r for r in rows if r["source"] == source and r["condition"] == c]
            fig.add_trace(go.Scatter(
                x=[r["shots"] for r in pts], y=[r["val_acc_mean"] for r in pts], name=GTL_LABELS[c],
                mode="lines+markers", line=dict(color=GTL_COLORS[c], width=3), marker=dict(size=10),
                error_y=dict(type="data", array=[r["val_acc_std"] for r in pts], thickness=2),
                legendgroup=c, showlegend=k == 0), row=1, col=k + 1)
        fig.update_xaxes(type="log", tickvals=list(result.config.shots), title_text="shots per class", row=1,
                         col=k + 1)
    fig.update_yaxes(title_text="target validation accuracy", tickformat=".0%", row=1, col=1)
    fig.update_annotations(font_size=18)
    n = result.config.seeds
    return _style(fig, f"When does guidance help? (mean of {n} seeds; whisker: ± std)", height=500)
