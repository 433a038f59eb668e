"""Parameter-efficient fine-tuning: accuracy against forgetting and against the fraction of weights trained, one
point per method with error bars over seeds, from the run's JSON (`PeftResult.to_json()`)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from tl_core import i18n
from tl_core.i18n import N_, tr
from tl_core.plots.base import color, percent_axis, seeds_text, style

SUB = "<span style='font-size:16px'>"    # a title's second line: how it is measured
SYMBOLS = {1: "circle", 2: "circle", 4: "diamond", 8: "diamond", 16: "square", 32: "square", 64: "star"}
FORGETTING = {
    "agreement": (N_("top-1 agreement with the original model (1 = forgot nothing)"),
                  N_("on images no method trained on, under the original ImageNet head")),
    "cka": (N_("linear CKA with the original pooled features (1 = unchanged)"),
            N_("on images no method trained on")),
    "cosine": (N_("cosine similarity of sentence embeddings, before vs after (1 = unchanged)"),
               N_("on sentences of topics no method trained on")),
}


def _seeds(out: dict) -> int:
    return out.get("config", {}).get("seeds", 1)


def _point(fig: go.Figure, m: dict, x: float, x_err: float | None) -> None:
    rank = m.get("rank")
    fig.add_trace(go.Scatter(
        x=[x], y=[m["val_acc_mean"]], mode="markers", name=tr(m["label"]),
        marker=dict(size=16, color=color(m["method"]), symbol=SYMBOLS.get(rank, "circle") if rank else "circle",
                    line=dict(color="#222222", width=1)),
        error_y=dict(type="data", array=[m["val_acc_std"]], thickness=2, width=6),
        error_x=dict(type="data", array=[x_err], thickness=2, width=6) if x_err is not None else None,
        hovertemplate=tr("{method}<br>x {x}<br>val acc {acc}", method=tr(m["label"]), x="%{x:.3g}", acc="%{y:.1%}")
        + "<extra></extra>"))


def accuracy_vs_forgetting(out: dict, measure: str | None = None) -> go.Figure:
    """Validation accuracy (y) against forgetting (x: agreement, CKA or cosine; right = forgot less), one point per
    method, whiskers ± std over seeds on both axes."""
    measure = measure or out.get("forgetting_measure", "agreement")
    fig = go.Figure()
    for m in out.get("methods", []):
        x = m["forgetting"].get(measure)
        if x is None or not np.isfinite(x):
            continue
        _point(fig, m, x, m.get("forgetting_std", {}).get(measure))
    axis, where = FORGETTING[measure]
    fig.update_xaxes(title_text=tr(axis), range=[-0.05, 1.08])
    percent_axis(fig)
    return style(fig, tr("Accuracy against forgetting") + "<br>" + SUB
                 + tr("{where}; point: mean of {seeds}, whiskers ± std over seeds", where=tr(where),
                      seeds=seeds_text(_seeds(out))) + "</span>", height=560)


def accuracy_vs_fraction(out: dict) -> go.Figure:
    """Validation accuracy (y) against the fraction of the model's weights that trained (x, log scale)."""
    fig = go.Figure()
    fractions = []
    for m in out.get("methods", []):
        fractions.append(m["trainable_fraction"])
        _point(fig, m, m["trainable_fraction"], None)
    ticks = [t for t in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
             if fractions and min(fractions) / 3 <= t <= max(fractions) * 3]
    fig.update_xaxes(type="log", title_text=tr("fraction of the model's weights trained (log scale)"), tickvals=ticks,
                     ticktext=[_percent(t) for t in ticks])
    percent_axis(fig)
    return style(fig, tr("Accuracy against the fraction of weights trained") + "<br>" + SUB
                 + tr("point: mean of {seeds}, whiskers ± std over seeds", seeds=seeds_text(_seeds(out))) + "</span>",
                 height=560)


def _percent(t: float) -> str:
    """0.001 → 0.1%, 0.01 → 1%, 1 → 100%."""
    return i18n.percent(t, max(0, -int(np.floor(np.log10(t * 100)))))
