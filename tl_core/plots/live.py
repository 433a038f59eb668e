"""The live curve: each run of a plan's validation accuracy and loss, drawn as its epochs finish (the pages'
run button redraws it from the run's progress reports, `tl_core.serve.Progress`)."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core.i18n import N_, tr
from tl_core.plots.base import color, style


def loss_of(v: dict) -> tuple[list, str]:
    """A run's loss curve: its validation loss, or its training loss when it has no validation per epoch
    (e.g. SSL's downstream heads), and which one it is."""
    return (v["val_loss"], N_("validation")) if v.get("val_loss") else (v.get("train_loss") or [], N_("training"))


def curves(live: dict) -> go.Figure:
    """live: {label: {"condition": ..., "val_acc": [...], "val_loss": [...], "train_loss": [...]}}, one entry
    per run (e.g. "pretrained, seed 0"). Accuracy on the left (when the task has one), loss on the right."""
    acc = any(v.get("val_acc") for v in live.values())
    kinds = {loss_of(v)[1] for v in live.values() if loss_of(v)[0]}
    loss_title = tr("validation loss") if kinds <= {"validation"} else tr("training loss") if kinds == {"training"} \
        else tr("loss (validation; training where a run has none)")
    fig = make_subplots(rows=1, cols=2 if acc else 1, horizontal_spacing=0.1,
                        subplot_titles=((tr("validation accuracy (%)"), loss_title) if acc else (loss_title,)))
    seen: dict[str, int] = {}
    for label, v in live.items():
        condition = v.get("condition", "")
        n = seen[condition] = seen.get(condition, -1) + 1
        line = dict(color=color(condition), width=3, dash=("solid", "dot", "dash", "dashdot")[n % 4])
        if acc and v.get("val_acc"):
            fig.add_trace(go.Scatter(x=list(range(1, len(v["val_acc"]) + 1)), y=[100 * a for a in v["val_acc"]],
                                     mode="lines+markers", name=label, legendgroup=label, line=line), 1, 1)
        loss, which = loss_of(v)
        if loss:
            fig.add_trace(go.Scatter(x=list(range(1, len(loss) + 1)), y=loss, mode="lines+markers",
                                     name=label if len(kinds) < 2 else tr("{run} ({which})", run=label,
                                                                          which=tr(which)), legendgroup=label,
                                     showlegend=not (acc and v.get("val_acc")), line=line), 1, 2 if acc else 1)
    fig.update_xaxes(title_text=tr("epoch"))
    if acc:
        fig.update_yaxes(title_text="%", range=[0, 102], row=1, col=1)
    for annotation in fig.layout.annotations:
        annotation.font.size = 17
    return style(fig, tr("Live: each run's validation curves as its epochs finish"), height=380)
