"""The regularisation toy's figures, from its JSON: every learned function, the loss while fine-tuning on B,
and each network's final test error."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.i18n import N_, tr
from tl_core.plots.base import BAND, band, color, rgba, style

LABELS = {"scratch": N_("from scratch on B"), "pretrained": N_("pretrained on A, fine-tuned on B")}   # tr() shown


def _many_lines(x, ys) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate many curves into one trace, separated by gaps (fast to draw, one legend entry)."""
    xs = np.concatenate([np.append(x, np.nan) for _ in ys])
    yy = np.concatenate([np.append(y, np.nan) for y in ys])
    return xs, yy


def functions(out: dict) -> go.Figure:
    """Every seed's learned function for both conditions, over the true B line and B's training points."""
    cfg = out["config"]
    x, y = np.asarray(out["x_test"]), np.asarray(out["y_test"])
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[tr("From scratch on B ({n} seeds)", n=cfg["seeds"]),
                                        tr("Pretrained on A ({relation}), then B", relation=cfg["relation"])])
    lo, hi = float(y.min()), float(y.max())
    pad = max(1.0, 0.6 * (hi - lo))
    for col, name in ((1, "scratch"), (2, "pretrained")):
        xs, ys = _many_lines(x, np.asarray(out[name]["functions"]))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines",
                                 name=tr("learned functions, {condition}", condition=tr(LABELS[name])),
                                 line=dict(color=rgba(color(name), 0.35), width=1.5), hoverinfo="skip"),
                      row=1, col=col)
        if name == "pretrained":
            fig.add_trace(go.Scatter(x=x, y=out["a_test"], mode="lines", name=tr("true task A"),
                                     line=dict(color=color("task_a"), width=2, dash="dot")), row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=tr("true task B"), showlegend=col == 1,
                                 legendgroup="truth",
                                 line=dict(color=color("truth"), width=3, dash="dash")), row=1, col=col)
        fig.add_trace(go.Scatter(x=out["b_train"][0], y=out["b_train"][1], mode="markers",
                                 name=tr("B's {n} training points", n=cfg["b_points"]), showlegend=col == 1,
                                 legendgroup="points",
                                 marker=dict(color="#e7298a", size=14, line=dict(color="white", width=2))),
                      row=1, col=col)
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text="y", row=1, col=1)
    fig.update_xaxes(title_text="x")
    return style(fig, tr("What each network learned for task B"), height=480)


def losses(out: dict) -> go.Figure:
    """Train and test MSE per fine-tuning epoch: mean and 10th-90th percentile band over seeds, both conditions."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=[tr("Train MSE on B's points"), tr("Test MSE against the true B line")])
    for name in ("scratch", "pretrained"):
        curves = out.get(name, {}).get("curves", {})
        for col, key in ((1, "train_mse"), (2, "test_mse")):
            mean = curves.get(f"{key}_mean")
            if not mean:
                continue
            for trace in band(np.arange(1, len(mean) + 1), mean, curves[f"{key}_p10"], curves[f"{key}_p90"],
                              tr(LABELS[name]), color(name), showlegend=col == 2):
                fig.add_trace(trace, row=1, col=col)
    fig.update_yaxes(type="log", exponentformat="power", dtick=1, title_text=tr("MSE (log scale)"))
    fig.update_xaxes(title_text=tr("fine-tuning epoch"))
    return style(fig, tr("Loss while fine-tuning on B (line: mean; {band})", band=tr(BAND)))


def final_mse(out: dict) -> go.Figure:
    """Each seed's final test MSE as a dot: the spread behind the claim."""
    fig = go.Figure()
    for name in ("scratch", "pretrained"):
        mse = out.get(name, {}).get("test_mse", [])
        fig.add_trace(go.Box(x=mse, name=tr(LABELS[name]), boxpoints="all", jitter=0.4, pointpos=0,
                             marker=dict(color=color(name), size=8), line=dict(color=color(name)),
                             fillcolor=rgba(color(name), 0.15), orientation="h"))
    fig.update_xaxes(type="log", tickformat=".2g", title_text=tr("final test MSE on task B (log scale)"))
    fig.update_layout(showlegend=False)
    return style(fig, tr("Final test error of every seed (one dot per network)"), height=320)
