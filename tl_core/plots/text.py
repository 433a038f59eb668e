"""Transfer for text's figures, from the run's JSON: the overfitting curves of every condition and accuracy against
sentences per topic."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from tl_core.i18n import tr
from tl_core.plots.base import BAND, band_traces, color, log_x, overfitting_curves, percent_axis, seeds_text, style


def curves(out: dict) -> go.Figure:
    """The text page's overfitting picture: feature extraction, fine-tuning, scratch."""
    return overfitting_curves(out, height=520)


def shots_sweep(out: dict, labels: dict | None = None) -> go.Figure:
    """Validation accuracy against sentences per topic (log axis), one line per condition, band over seeds.
    labels: condition → its name (default: the condition)."""
    fig = go.Figure()
    shots = list(out["shots"])
    for condition in out["config"]["conditions"]:
        accs = [[r["val_acc"] for r in out["records"] if r["condition"] == condition and r["shots"] == s
                 and r.get("status", "finished") == "finished"] for s in shots]
        if not all(accs):
            continue
        n = min(len(a) for a in accs)
        for trace in band_traces(shots, np.array([a[:n] for a in accs]), (labels or {}).get(condition, condition),
                                 color(condition), markers=True):
            fig.add_trace(trace)
    log_x(fig, shots, tr("training sentences per topic"))
    percent_axis(fig)
    return style(fig, tr("Accuracy vs shots per topic (line: mean of {seeds}; {band})",
                         seeds=seeds_text(out["config"]["seeds"]), band=tr(BAND)), height=440)
