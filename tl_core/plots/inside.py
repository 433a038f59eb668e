"""Inside the model's figures. From the run's JSON: linear-probe accuracy by depth, CKA per stage beside the weight
change, the 2-D map of features (the text page's too). From arrays (pictures): Grad-CAM overlays of three models,
and of one confusion-matrix cell of the lab. Every picture is drawn at a projector's size: maps upsampled to the
image's size and the image drawn at about 170 px a side, never as a 2×2 or 3×3 tile."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from tl_core import i18n
from tl_core.i18n import N_, tr
from tl_core.plots.base import BAND, PALETTE, band_traces, color, percent_axis, seeds_text, style

# one colour per representation: pretrained as everywhere, random init = scratch's start, fine-tuned = full FT
COLOURS = {"pretrained": color("pretrained"), "random": color("scratch"), "finetuned": color("full"),
           "feature_extraction": color("feature_extraction"), "scratch": color("scratch")}
NAMES = {"pretrained": N_("pretrained"), "random": N_("random init"), "finetuned": N_("fine-tuned")}
ONE = {"images": N_("image")}   # what embedding_map draws (plural) → one of it
SIDE = 160    # pixels a side of every drawn picture (the browser scales the panel; this keeps it smooth)


def _title(head: str, detail: str) -> str:
    """A chart title: what it measures, then how (`style` draws it as a smaller note and wraps both to fit)."""
    return f"{head}<br>{detail}"


def _x(fig: go.Figure, stages: list[str], **where) -> None:
    fig.update_xaxes(tickvals=list(range(len(stages))), ticktext=stages, range=[-0.4, len(stages) - 0.6],
                     title_text=tr("stage (input → output)"), **where)


def probe_by_depth(out: dict) -> go.Figure:
    """Linear-probe validation accuracy of every probed stage's pooled features, pretrained / random / fine-tuned,
    mean over seeds with a band, chance dashed, and where pretrained features start beating random ones."""
    stages, per_seed = out.get("stages", []), out.get("probe_seeds", {})
    fig = go.Figure()
    x = list(range(len(stages)))
    for w in ("random", "pretrained", "finetuned"):
        values = np.array(per_seed.get(w) or [], dtype=float)
        if values.size:
            for trace in band_traces(x, values.T, tr(NAMES[w]), COLOURS[w], markers=True):
                fig.add_trace(trace)
    if stages:
        fig.add_hline(y=out.get("chance", 0), line_dash="dot", line_color="#666666", annotation_text=tr("chance"),
                      annotation_position="bottom right", annotation_font_size=15)
        for j, name in enumerate(s for s in out.get("better_at", []) if s in stages):
            i = stages.index(name)
            fig.add_vrect(x0=i - 0.45, x1=i + 0.45, fillcolor=COLOURS["pretrained"], opacity=0.09, line_width=0,
                          annotation_text=tr("pretrained > random (claims rule)") if j == 0 else "",
                          annotation_position="bottom left", annotation_font_size=15)
        _x(fig, stages)
    percent_axis(fig, tr("probe accuracy on held-out images"))
    n = len(per_seed.get("pretrained") or [])
    return style(fig, _title(tr("Linear probe by depth: how well each stage's pooled features separate the classes"),
                             tr("accuracy of a logistic regression on held-out validation images, in %; line: mean of "
                                "{seeds}; {band}", seeds=seeds_text(n), band=tr(BAND))), height=500)


def cka_by_stage(out: dict) -> go.Figure:
    """Left: linear CKA between the pretrained and the fine-tuned model's features per stage (1 = unchanged);
    right: ‖w − w₀‖/‖w₀‖ of the same stages. Both mean over seeds with a band."""
    stages = out.get("stages", [])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        tr("Representation: linear CKA, pretrained vs fine-tuned"), tr("Weights: ‖w − w₀‖ / ‖w₀‖")])
    x = list(range(len(stages)))
    for col, key, name in ((1, "cka_seeds", tr("CKA (1 = the same representation)")),
                           (2, "relative_change_seeds", tr("relative weight change"))):
        values = np.array(out.get(key) or [], dtype=float)
        if values.size:
            for trace in band_traces(x, values.T, name, COLOURS["finetuned"] if col == 1 else color("pretrained"),
                                     markers=True):
                fig.add_trace(trace, row=1, col=col)
        if stages:
            _x(fig, stages, row=1, col=col)
    cka = np.array(out.get("cka_seeds") or [[1.0]], dtype=float)
    low = float(np.nanmin(cka)) if cka.size else 0.9
    fig.update_yaxes(title_text=tr("linear CKA (unitless, 0 to 1)"),
                     range=[max(0.0, low - 0.1 * (1 - low) - 0.01), 1.005], row=1, col=1)
    fig.update_yaxes(title_text=tr("relative change"), tickformat=".1%", rangemode="tozero", row=1, col=2)
    fig.update_annotations(font_size=17)
    n = len(out.get("cka_seeds") or [])
    return style(fig, _title(tr("Which representations changed under full fine-tuning, stage by stage"),
                             tr("left: linear CKA of the same held-out images' features (unitless, 1 = unchanged); "
                                "right: relative weight change in %; line: mean of {seeds}; {band}",
                                seeds=seeds_text(n), band=tr(BAND))),
                 height=500)


def embedding_map(embedding: dict, classes: list[str], what: str = N_("images")) -> go.Figure:
    """The 2-D map of each weights' features (a dict keyed by weights, each {method, stage, probe_acc, label, x, y,
    labels}), one panel each, points coloured by class; each panel titled with its linear probe's accuracy."""
    names = list(embedding)
    first = embedding[names[0]] if names else {}
    method = first.get("method", "pca")
    axis = "PC" if method == "pca" else "UMAP"
    titles = [tr("{label} · linear probe {acc}", label=e.get("label", w), acc=_pct(e["probe_acc"]))
              for w, e in embedding.items()]
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=titles or [""], horizontal_spacing=0.06)
    for c, w in enumerate(names):
        e = embedding[w]
        x, y, lab = (np.asarray(e[k]) for k in ("x", "y", "labels"))
        for k, cls in enumerate(classes):
            keep = lab == k
            fig.add_trace(go.Scatter(x=x[keep], y=y[keep], mode="markers", name=cls, legendgroup=cls,
                                     showlegend=c == 0, marker=dict(size=11, color=PALETTE[k % len(PALETTE)],
                                                                    line=dict(width=0.5, color="white"))),
                          row=1, col=c + 1)
        fig.update_xaxes(title_text=f"{axis} 1", showticklabels=False, row=1, col=c + 1)
        fig.update_yaxes(title_text=f"{axis} 2" if c == 0 else "", showticklabels=False, row=1, col=c + 1)
    fig.update_annotations(font_size=17)
    stage = first.get("stage", "")
    how = "PCA" if method == "pca" else "UMAP"
    one = tr(ONE[what]) if what in ONE else what[:-1] if what.endswith("s") else what
    return style(fig, _title(tr("How the classes separate: {what}' features at {stage}, projected to 2-D by {how}",
                                what=tr(what), stage=stage, how=how),
                             tr("one point per validation {one}, coloured by class (axes unitless); probe = "
                                "linear-probe accuracy on all the features, in %", one=one)), height=520)


def _pct(v: float) -> str:
    """A whole percentage as this language writes it (nan as before)."""
    return i18n.percent(v, 0) if v == v else f"{v:.0%}"


# ---- pictures --------------------------------------------------------------------------------------------

_JET = np.array([[0, 0, 140], [0, 120, 255], [0, 230, 200], [250, 240, 0], [240, 40, 0]], dtype=float)


def heat(m: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB (blue → cyan → yellow → red: little → most evidence)."""
    t = np.clip(m, 0, 1) * (len(_JET) - 1)
    i = np.minimum(t.astype(int), len(_JET) - 2)
    f = (t - i)[..., None]
    return _JET[i] * (1 - f) + _JET[i + 1] * f


def _resize(a: np.ndarray, side: int) -> np.ndarray:
    t = torch.as_tensor(np.asarray(a, dtype=np.float32))
    t = t[None, None] if t.dim() == 2 else t[None]
    return F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)[0].numpy()


def overlay(image: np.ndarray, cam: np.ndarray, side: int = SIDE) -> np.ndarray:
    """An image (3, S, S) in [0, 1] with its map (S, S) in [0, 1] on top, both drawn at side×side px: uint8 RGB.
    Where the map is high its colour covers more of the image."""
    img = _resize(image, side).transpose(1, 2, 0) * 255
    m = _resize(cam, side)[0]
    alpha = (0.25 + 0.45 * m)[..., None]
    return (img * (1 - alpha) + heat(m) * alpha).clip(0, 255).astype(np.uint8)


def cam_grid(images: np.ndarray, maps: dict, preds: dict, truth: list, classes: list[str], info: dict) -> go.Figure:
    """Rows: models (feature extraction, full fine-tuning, scratch); columns: the same validation images, those
    right for every model first, then those misclassified by at least one. Each tile: the model's Grad-CAM for its
    own prediction over the image, titled ✓ or ✗ with the predicted class."""
    models = list(maps)
    n = len(images)
    titles = []
    for r, m in enumerate(models):
        for i in range(n):
            p = int(preds[m][i])
            said = f"{'✓' if p == truth[i] else '✗'} {classes[p]}"
            # the top row's titles carry each column's true class (`style` wraps them to the column's width)
            titles.append(tr("<b>true: {label}</b><br>{said}", label=classes[int(truth[i])], said=said) if r == 0
                          else said)
    fig = make_subplots(rows=len(models), cols=n, subplot_titles=titles, horizontal_spacing=0.008,
                        vertical_spacing=0.09)
    for r, m in enumerate(models):
        for i in range(n):
            fig.add_trace(go.Image(z=overlay(images[i], maps[m][i]), hoverinfo="skip"), row=r + 1, col=i + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=15)
    about = info.get("models", {})
    for r, m in enumerate(models):
        dom = fig.layout[f"yaxis{'' if r == 0 else r * n + 1}"].domain
        a = about.get(m, {})
        fig.add_annotation(x=-0.005, y=(dom[0] + dom[1]) / 2, xref="paper", yref="paper", xanchor="right",
                           showarrow=False, font=dict(size=16, color=COLOURS.get(m, "#333")),
                           text=tr("<b>{model}</b><br>val acc {acc}", model=a.get("label", m).replace(" (", "<br>("),
                                   acc=_pct(a.get("val_acc", float("nan")))))
    right = info.get("correct_shown", n)
    if 0 < right < n:
        x = (fig.layout[f"xaxis{right}"].domain[1] + fig.layout[f"xaxis{right + 1}"].domain[0]) / 2
        fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1.04, xref="paper", yref="paper",
                      line=dict(color="#222", width=3, dash="dot"))
    side = "×".join(map(str, info.get("map_size", [])))
    fig.update_layout(margin=dict(l=210))   # the rows' labels
    return style(fig, _title(tr("Where each model looks: Grad-CAM at {stage} for its own prediction",
                                stage=info.get("stage", "")),
                             tr("{side} map upsampled to {px} px (red = most evidence, blue = least); left of the "
                                "dotted line: right for all three models, right of it: misclassified by at least one",
                                side=side, px=info.get("image_size", ""))),
                 height=215 * len(models) + 120)


def cam_cell(images: np.ndarray, maps: np.ndarray, true: str, pred: str, stage: str, map_size) -> go.Figure:
    """One confusion-matrix cell of the lab: its images with the model's Grad-CAM for the predicted class."""
    n = len(images)
    cols = max(min(n, 6), 1)
    rows = max(1, -(-n // cols))
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.04)
    for i in range(n):
        fig.add_trace(go.Image(z=overlay(images[i], maps[i], 200), hoverinfo="skip"), row=i // cols + 1,
                      col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    side = "×".join(map(str, map_size))
    fill = dict(true=true, pred=pred, n=n)
    if true == pred:
        head = (tr("True {true} → predicted {pred} ({n} image, right): where the model looked", **fill) if n == 1 else
                tr("True {true} → predicted {pred} ({n} images, right): where the model looked", **fill))
    else:
        head = (tr("True {true} → predicted {pred} ({n} image, wrong): where the model looked", **fill) if n == 1 else
                tr("True {true} → predicted {pred} ({n} images, wrong): where the model looked", **fill))
    return style(fig, _title(head, tr("Grad-CAM at {stage} for '{pred}', {side} map upsampled to the image's size "
                                      "(red = most evidence, blue = least)", stage=stage, pred=pred, side=side)),
                 height=250 * rows + 110)
