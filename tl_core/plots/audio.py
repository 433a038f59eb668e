"""Machine listening's figures, each from a run's JSON (or, for the spectrogram and the map, from arrays the page
computes): accuracy per condition with its interval, the overfitting curves, the confusion matrix, a clip's
log-mel spectrogram, and the 2-D map of embeddings."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core import i18n
from tl_core.i18n import tr
from tl_core.plots.base import PALETTE, confusion, overfitting_curves, percent_axis, seeds_text, style

COLORS = {"frozen": "#1f78b4", "last_layer": "#7570b3", "full": "#e7298a", "scratch": "#d95f02",
          "frozen_en": "#1f78b4", "finetune_en": "#e7298a", "scratch_cnn": "#d95f02"}


def accuracy_bars(out: dict, title: str = "") -> go.Figure:
    """Validation accuracy per condition: the mean over seeds, its 95% interval, every seed as a dot, chance."""
    fig = go.Figure()
    for c, s in out["conditions"].items():
        lo, hi = (s.get("interval") or [s["val_acc"], s["val_acc"]])
        name = tr(s["label"])   # the run keeps it in English
        fig.add_trace(go.Bar(x=[name], y=[s["val_acc"]], marker_color=COLORS.get(c, "#999999"), name=name,
                             error_y=dict(type="data", symmetric=False, array=[hi - s["val_acc"]],
                                          arrayminus=[s["val_acc"] - lo], thickness=2, width=10),
                             text=[i18n.percent(s["val_acc"], 0)], textposition="inside", showlegend=False))
        fig.add_trace(go.Scatter(x=[name] * len(s["val_acc_seeds"]), y=s["val_acc_seeds"], mode="markers",
                                 marker=dict(color="#222222", size=9), showlegend=False, name=tr("a seed")))
    if out.get("chance"):
        fig.add_hline(y=out["chance"], line=dict(dash="dot", color="#666666"),
                      annotation_text=tr("chance {acc}", acc=i18n.percent(out["chance"], 0)),
                      annotation_position="top left")
    percent_axis(fig, tr("validation accuracy"))
    fig.update_yaxes(range=[0, 1.05])
    seeds = out.get("config", {}).get("seeds", 1)
    return style(fig, title or tr("Validation accuracy per condition (bar: mean of {seeds}, whisker: 95% interval, "
                                  "dots: seeds)", seeds=seeds_text(seeds)), height=440)


def curves(out: dict) -> go.Figure:
    return overfitting_curves(out, height=480)


def confusion_of(out: dict) -> go.Figure | None:
    conf = out.get("confusion") or {}
    if not conf:
        return None
    label = tr(out["conditions"][conf["condition"]]["label"])
    return confusion(np.asarray(conf["matrix"]), out["classes"],
                     tr("Confusion on the validation clips: {condition}, seed {seed} (rows true, columns predicted)",
                        condition=label, seed=conf["seed"]))


def spectrogram(db: np.ndarray, title: str) -> go.Figure:
    """A clip's log-mel spectrogram: (frames, 40) decibels, time along x at 10 ms a frame."""
    t = np.arange(db.shape[0]) * 0.01
    top = float(db.max()) if db.size else 0.0
    floor = top - 80.0   # 80 dB below the loudest (librosa's top_db): the silence padded before a word is black
    fig = go.Figure(go.Heatmap(z=np.maximum(db, floor).T, x=t, y=np.arange(db.shape[1]), colorscale="Magma",
                               zmin=floor - 2.0, zmax=top, colorbar=dict(title="dB")))   # the floor itself: near-black
    fig.update_xaxes(title_text=tr("time (s)"))
    fig.update_yaxes(title_text=tr("mel band (low → high pitch)"))
    return style(fig, title, height=320)


def embedding_map(points: dict[str, np.ndarray], labels: list[str], title: str) -> go.Figure:
    """Side by side 2-D maps (PCA) of clips' embeddings, e.g. pretrained vs random weights; a colour per label."""
    names = list(points)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    kinds = list(dict.fromkeys(labels))
    for col, name in enumerate(names, 1):
        xy = points[name]
        for i, k in enumerate(kinds):
            rows = [j for j, label in enumerate(labels) if label == k]
            fig.add_trace(go.Scatter(x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=k, legendgroup=k,
                                     showlegend=col == 1, marker=dict(size=8, color=PALETTE[i % len(PALETTE)],
                                                                      symbol=["circle", "square", "diamond",
                                                                              "triangle-up", "x"][i // 8 % 5]),
                                     hovertext=[k] * len(rows), hoverinfo="text"), row=1, col=col)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return style(fig, title, height=480)


def pca2(x: np.ndarray) -> np.ndarray:
    """The first two principal components of rows of x (the map's axes)."""
    x = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :2] * s[:2]


def shift_bars(out: dict) -> go.Figure:
    p = out.get("pretrain") or {}
    if not p:
        return accuracy_bars(out, tr("English → Spanish digits: validation accuracy (bar: mean, whisker: 95% "
                                     "interval, dots: seeds)"))
    return accuracy_bars(out, tr("English → Spanish digits: validation accuracy (bar: mean, whisker: 95% interval, "
                                 "dots: seeds); the CNN first learnt {n} English words to {acc} on English voices it "
                                 "never heard", n=p.get("classes", 20), acc=i18n.percent(p["val_acc"], 0)))
