"""Self-supervised pretraining's figures: reconstructions (from the pretrained model's examples), and from the run's
JSON the reconstruction loss while pretraining and accuracy against labels per class."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.i18n import N_, tr
from tl_core.plots.base import BAND, band_traces, color, image_grid, log_x, percent_axis, seeds_text, style

LABELS = {"scratch": N_("from scratch"), "ssl_frozen": N_("SSL encoder, frozen"),   # tr() where shown
          "ssl_finetuned": N_("SSL encoder, fine-tuned")}
HIDDEN_RGB = (0.95, 0.55, 0.1)  # hidden patches are drawn orange: nothing in a digit is orange


def expression_reconstructions(examples: dict, feature_order: list[int], genes: int = 300) -> go.Figure:
    """Heat-map rows, one per validation sample, of each gene's expression relative to its average (as the
    model sees it): the original, the masked input (blank = hidden), and the input with the hidden genes
    filled in by the model. Genes are grouped by programme: a cell type's co-expressed genes are a block."""
    order = list(feature_order)[:genes]
    z, mask = np.asarray(examples["z"])[:, order], np.asarray(examples["mask"])[:, order]
    filled = np.where(mask, np.asarray(examples["z_recon"])[:, order], z)
    panels = [(tr("original"), z), (tr("masked input: blank = hidden"), np.where(mask, np.nan, z)),
              (tr("masked input + the model's fill-in of the hidden genes"), filled)]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=[p[0] for p in panels])
    rows = [f"{label} " for label in examples["labels"]]
    for i, (_, values) in enumerate(panels):
        fig.add_trace(go.Heatmap(z=values, y=rows, zmin=-3, zmax=3, colorscale="RdBu_r", showscale=i == 0,
                                 colorbar=dict(title=tr("z-score"), len=0.9),
                                 hovertemplate=tr("gene %{x}<br>%{y}: %{z:.2f}") + "<extra></extra>"),
                      row=i + 1, col=1)
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title_text=tr("gene (the first {genes}, grouped by programme; 30 per cell type)", genes=genes),
                     row=3, col=1)
    fig.update_annotations(font_size=16)
    return style(fig, tr("Masked genes and their reconstruction (red = above the gene's average, one row per "
                         "validation sample)"), height=640)


def image_reconstructions(examples: dict, side: int) -> go.Figure:
    """Digits: original, masked input (hidden patches orange), and the input with the model's fill-in."""
    raw = np.asarray(examples["raw"]).reshape(-1, side, side).clip(0, 1)
    mask = np.asarray(examples["mask"]).reshape(-1, side, side)
    filled = np.where(mask, np.asarray(examples["recon"]).reshape(-1, side, side), raw).clip(0, 1)

    def gray(a):   # (N, S, S) -> (N, 3, S, S)
        return np.repeat(a[:, None], 3, axis=1)

    masked = gray(raw)
    for c, value in enumerate(HIDDEN_RGB):
        masked[:, c][mask] = value
    n = len(raw)
    images = np.concatenate([gray(raw), masked, gray(filled)])
    titles = ([tr("digit {label}", label=label) for label in examples["labels"]] + [tr("masked input")] * n
              + [tr("model's fill-in")] * n)
    return image_grid(images, titles, tr("Masked patches (orange) and the model's reconstruction"), columns=n)


def recon_curve(out: dict) -> go.Figure:
    """Masked reconstruction loss per pretraining epoch, train and validation, against the baseline of
    predicting every hidden feature's mean (1.0 on standardised features)."""
    h = out.get("recon_history", {})
    epochs = np.arange(1, len(h.get("train", [])) + 1)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs, y=h.get("train", []), mode="lines+markers", name=tr("unlabelled pool (train)"),
                             line=dict(color=color("task_a"), width=3)))
    if h.get("val"):
        fig.add_trace(go.Scatter(x=epochs, y=h["val"], mode="lines+markers", name=tr("validation samples"),
                                 line=dict(color=color("task_a"), width=3, dash="dash")))
    fig.add_hline(y=1.0, line=dict(color=color("truth"), dash="dot", width=2),
                  annotation_text=tr("predict each feature's mean"), annotation_position="top right")
    fig.update_xaxes(title_text=tr("pretraining epoch"))
    fig.update_yaxes(title_text=tr("MSE on the hidden features only"), rangemode="tozero")
    return style(fig, tr("Reconstruction loss while pretraining (no labels used)"), height=420)


def label_curve(out: dict) -> go.Figure:
    """Validation accuracy against labelled samples per class (log axis): scratch vs the SSL encoder frozen and
    fine-tuned, mean over seeds with a band; the dotted line marks the count the verdict speaks of."""
    counts = out.get("label_counts", [])
    fig = go.Figure()
    for mode, label in LABELS.items():
        per = [out.get("by_labels", {}).get(str(n), {}).get(mode, {}).get("val_acc_seeds") or [] for n in counts]
        if not counts or not all(per) or len({len(v) for v in per}) != 1:
            continue
        for trace in band_traces(counts, np.array(per), tr(label), color(mode), markers=True):
            fig.add_trace(trace)
    fig.add_vline(x=out["config"]["labels"], line=dict(color="#999999", dash="dot", width=2))
    log_x(fig, counts, tr("labelled samples per class"))
    percent_axis(fig)
    seeds = out.get("config", {}).get("seeds", 1)
    return style(fig, tr("Accuracy vs number of labels (line: mean of {seeds}; {band})", seeds=seeds_text(seeds),
                         band=tr(BAND)), height=460)
