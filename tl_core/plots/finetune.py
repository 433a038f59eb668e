"""The fine-tuning lab's figures (also your own images' and continue fine-tuning's), each from the run's JSON:
the overfitting curves, the shots sweep (every freeze depth asked for, and scratch), the freeze-depth × shots
heat map, the confusion matrix and per-class accuracy. Pictures of images take the images."""
from __future__ import annotations

import warnings

import numpy as np
import plotly.graph_objects as go

from tl_core.i18n import N_, percent, tr
from tl_core.plots.base import (
    BAND,
    band_traces,
    color,
    confusion,
    image_grid,
    log_x,
    overfitting_curves,
    percent_axis,
    seeds_text,
    style,
)

WEIGHTS = {"pretrained": N_("pretrained"), "scratch": N_("scratch")}   # the weights a lab run started from


def weights_name(weights: str) -> str:
    """A weights condition as the lab's charts name it ("pretrained", "scratch"), in the page's language."""
    return tr(WEIGHTS[weights]) if weights in WEIGHTS else weights


def condition_name(out: dict):
    """How the lab's curves name a condition: the weights it started from."""
    loaded = out.get("experiment") == "continue"
    return lambda c, s: tr("loaded weights") if loaded and c == "pretrained" else weights_name(c)


def curves(out: dict) -> go.Figure:
    """The lab's overfitting picture: pretrained (or loaded weights) vs scratch, train and validation."""
    return overfitting_curves(out, condition_name(out))


def first_confusion(out: dict) -> go.Figure:
    c = out["confusion"]
    return confusion(c["matrix"], out["classes"],
                     tr("Confusion matrix ({weights}, seed {seed}, validation set)", weights=weights_name(c["weights"]),
                        seed=c["seed"]))


def depth_name(depth: int, stages: int) -> str:
    """A freeze depth as the decks name it."""
    if stages and depth == stages - 1:
        return tr("feature extraction (all but the head frozen)")
    if depth == 0:
        return tr("full fine-tuning (nothing frozen)")
    return (tr("{depth} of {stages} stages frozen (the last {train} train)", depth=depth, stages=stages,
               train=stages - depth) if stages else tr("{depth} stages frozen", depth=depth))


def shots_sweep(out: dict) -> go.Figure:
    """Validation accuracy against shots per class (log axis): one line per freeze depth asked for and scratch,
    mean over seeds with a band: every condition the sweep's claims speak of."""
    fig = go.Figure()
    shots = [s for s in out["shots"] if s is not None]
    stages = len(out.get("stages", []))
    lines = [("pretrained", fr) for fr in out["freezes"]] + [("scratch", "0")]
    for k, (weights, fr) in enumerate(lines):
        recs = [r for r in out["records"] if r["weights"] == weights and r["freeze"] == fr and r["shots"] in shots
                and r.get("status", "finished") == "finished"]
        seeds = sorted({r["seed"] for r in recs})
        if not seeds:
            continue
        rows = [[next((r["val_acc"] for r in recs if r["seed"] == s and r["shots"] == sh), np.nan) for s in seeds]
                for sh in shots]
        name = tr("scratch (every stage trained)") if weights == "scratch" else depth_name(int(fr), stages)
        colour = color("scratch") if weights == "scratch" else _depth_color(int(fr), stages)
        for trace in band_traces(shots, np.array(rows), name, colour, markers=True):
            fig.add_trace(trace)
    log_x(fig, shots, tr("training images per class"))
    percent_axis(fig)
    n = out.get("config", {}).get("seeds", 1)
    return style(fig, tr("Accuracy vs shots per class (line: mean of {seeds}; {band})", seeds=seeds_text(n),
                         band=tr(BAND)), height=440)


def _depth_color(depth: int, stages: int) -> str:
    if stages and depth == stages - 1:
        return color("feature_extraction")
    return color("full") if depth == 0 else color("partial")


def freeze_heatmap(out: dict) -> go.Figure:
    """Mean validation accuracy of every (freeze depth, shots) of the pretrained weights."""
    grid = np.array(out["grid"]["pretrained"], dtype=float)
    labels = [tr("{depth} frozen", depth=fr) for fr in out["freezes"]]
    fig = go.Figure(go.Heatmap(z=grid, x=[tr("all") if s is None else str(s) for s in out["shots"]], y=labels,
                               zmin=0, zmax=1, colorscale="Viridis",
                               colorbar=dict(title=tr("val acc"), tickformat=".0%"),
                               text=[[percent(v, 0) if np.isfinite(v) else "" for v in row] for row in grid],
                               texttemplate="%{text}", textfont=dict(size=16)))
    fig.update_xaxes(title_text=tr("training images per class"), type="category")
    fig.update_yaxes(title_text=tr("frozen stages (of {n})", n=len(out.get("stages", []))), type="category")
    return style(fig, tr("Validation accuracy: freeze depth × shots (pretrained, mean over seeds)"), height=380)


def per_class_accuracy(out: dict) -> go.Figure:
    """Validation accuracy of each class, per weights condition: bar = mean over seeds, whiskers = the lowest and
    highest seed. A class with no validation image has no bar (its accuracy is unknown)."""
    fig = go.Figure()
    n_val = np.asarray(out["confusion"]["matrix"]).sum(1)
    labels = [tr("{label} ({n} val)", label=c, n=int(n)) for c, n in zip(out["classes"], n_val)]
    for weights, s in out.get("conditions", {}).items():
        acc = np.array([[np.nan if v is None else v for v in seed] for seed in s.get("per_class", [])], dtype=float)
        if not len(acc):
            continue
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: a class with no val image
            mean, low, high = np.nanmean(acc, 0), np.nanmin(acc, 0), np.nanmax(acc, 0)
        fig.add_trace(go.Bar(x=labels, y=mean, name=f"{weights_name(weights)} ({seeds_text(len(acc))})",
                             marker_color=color(weights),
                             text=[percent(v, 0) if np.isfinite(v) else tr("no val image") for v in mean],
                             textposition="outside", textfont=dict(size=15),
                             error_y=dict(type="data", symmetric=False, array=high - mean, arrayminus=mean - low,
                                          thickness=2, width=8)))
    fig.update_yaxes(title_text=tr("validation accuracy"), range=[0, 1.15], tickformat=".0%")
    fig.update_xaxes(title_text=tr("class (val images in the first split) · whiskers: lowest to highest seed"),
                     type="category")
    fig.update_layout(barmode="group")
    return style(fig, tr("Accuracy per class (mean over seeds)"), height=420)


def misclassified(result, most: int = 8) -> go.Figure | None:
    """The first run's misclassified validation images (true → predicted), or None when it got all right."""
    first, val = result.runs[0], result.val
    wrong = [i for i, (t, p) in enumerate(zip(val.labels.tolist(), first.val_pred)) if t != p][:most]
    if not wrong:
        return None
    return image_grid(val.images[wrong], [f"{result.classes[val.labels[i]]} → {result.classes[first.val_pred[i]]}"
                                          for i in wrong], tr("Misclassified (true → predicted)"), columns=4)


def topk_bars(top: list[tuple[str, float]], title: str) -> go.Figure:
    """The k most likely classes of one image, most likely on top, as horizontal bars."""
    names, probs = [c for c, _ in top][::-1], [p for _, p in top][::-1]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", marker_color=color("pretrained"),
                           text=[percent(p) for p in probs], textposition="outside", textfont=dict(size=18)))
    fig.update_xaxes(title_text=tr("probability"), range=[0, 1.15], tickformat=".0%")
    fig.update_yaxes(type="category", tickfont=dict(size=18))
    fig.update_layout(showlegend=False)
    return style(fig, title, height=120 + 60 * len(top))
