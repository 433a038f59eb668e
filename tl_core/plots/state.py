"""The state-dict workshop's figures: where a state_dict's values live, and what a loose load filled in."""
from __future__ import annotations

import plotly.graph_objects as go

from tl_core import i18n
from tl_core.i18n import tr
from tl_core.plots.base import color, style


def state_groups(inspection) -> go.Figure:
    """Values stored per module of a state_dict (parameters and BatchNorm statistics), one bar each, in
    the model's order: where the weights live (often the head, or the last blocks)."""
    groups = inspection.groups
    total = max(inspection.total_elements, 1)
    fig = go.Figure(go.Bar(
        x=[g["module"] for g in groups], y=[g["elements"] for g in groups], marker_color=color("pretrained"),
        text=[i18n.percent(g["elements"] / total, 0) if g["elements"] >= total / 100 else "<" + i18n.percent(0.01, 0)
              for g in groups],
        textposition="outside", cliponaxis=False, textfont=dict(size=16),
        hovertemplate=tr("%{x}: %{y:,} values") + "<extra></extra>"))
    fig.update_xaxes(title_text=tr("module (in the order the model runs them)"), type="category")
    fig.update_yaxes(title_text=tr("values stored"), rangemode="tozero")
    return style(fig, tr("Values per module: {n} in all ({mb} MB)", n=i18n.number(inspection.total_elements, 0),
                         mb=i18n.number(inspection.total_bytes / 2**20, 2)), height=420)


def loaded_stages(out: dict) -> go.Figure:
    """An encoder-only file loaded with strict off: per stage, the tensors loaded from the file and those kept at
    their initial values (the new head), from the load's JSON."""
    stages = [g["stage"] for g in out.get("stages", [])]
    fig = go.Figure([go.Bar(x=stages, y=[g["loaded"] for g in out["stages"]], name=tr("loaded from the file"),
                            marker_color=color("pretrained")),
                     go.Bar(x=stages, y=[g["initial"] for g in out["stages"]],
                            name=tr("kept at their initial values (the new head)"), marker_color=color("scratch"))])
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text=tr("stage"), type="category")
    fig.update_yaxes(title_text=tr("tensors (state_dict keys)"))
    return style(fig, tr("An encoder-only file loaded with strict off: what each stage got"), height=480)
