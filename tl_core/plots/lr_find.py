"""The learning-rate range test's figure, from the run's JSON (`LrFindResult.to_json()`): the training loss of
every mini-batch against its learning rate on a log axis, the smoothed loss over it, and the suggested rate."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from tl_core.i18n import tr
from tl_core.plots.base import PALETTE, rgba, style


def curve(out: dict, lab_rate: float | None = None) -> go.Figure:
    """Loss against learning rate (log axis); the suggestion marked (and the lab's slider step nearest to it,
    `lab_rate`, when given)."""
    lrs, losses = out["lrs"], out["losses"]
    smoothed = [np.nan if v is None else v for v in out.get("smoothed") or []]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=lrs, y=losses, mode="lines", name=tr("loss of each mini-batch"),
                             line=dict(color=rgba(PALETTE[7], 0.45), width=1.5)))
    if smoothed:
        fig.add_trace(go.Scatter(x=lrs, y=smoothed, mode="lines", name=tr("smoothed loss"),
                                 line=dict(color=PALETTE[0], width=4)))
    s = out.get("suggested_lr")
    if s is not None and math.isfinite(s) and smoothed:
        at = float(np.interp(math.log10(s), np.log10(lrs), np.nan_to_num(smoothed, nan=np.nanmax(smoothed))))
        fig.add_vline(x=s, line=dict(color=PALETTE[1], width=2, dash="dash"))
        fig.add_trace(go.Scatter(x=[s], y=[at], mode="markers",
                                 name=tr("suggested: {rate} ({rule})", rate=f"{s:.1e}", rule=out.get("rule", "")),
                                 marker=dict(color=PALETTE[1], size=16, symbol="diamond")))
    if lab_rate is not None:
        fig.add_vline(x=lab_rate, line=dict(color=PALETTE[2], width=2, dash="dot"),
                      annotation_text=tr("lab step {rate}", rate=f"{lab_rate:g}"), annotation_font_size=15)
    if smoothed and np.isfinite(smoothed).any():   # a diverging tail would squash the curve: cut it above the start
        finite = np.array(smoothed)[np.isfinite(smoothed)]
        lowest = int(np.argmin(finite))
        top = 1.25 * max(float(np.max(finite[:lowest + 1])), float(np.median(losses[:max(3, len(losses) // 10)])))
        fig.update_yaxes(range=[0, top])
    decades = range(math.floor(math.log10(min(lrs))), math.ceil(math.log10(max(lrs))) + 1) if lrs else []
    fig.update_xaxes(type="log", title_text=tr("learning rate (log scale)"), tickvals=[10.0 ** d for d in decades],
                     ticktext=[f"1e{d}" for d in decades])
    fig.update_yaxes(title_text=tr("training loss (cross-entropy)"))
    return style(fig, tr("Learning-rate range test: training loss per mini-batch"))
