"""The Runs page's figure: one curve of several runs from the history on the same axes."""
from __future__ import annotations

import plotly.graph_objects as go

from tl_core.plots.base import PALETTE, style


def compare_runs(runs, curve: str, color_by: str) -> go.Figure:
    """One curve (e.g. a validation accuracy per epoch) of several runs on the same axes, coloured by a
    config field: runs that share its value share a colour, so the field's effect is visible at a glance."""
    from tl_core.store import flat_config

    values = [str(flat_config({"kind": r.kind, **r.config}).get(color_by, "—")) if color_by != "run" else r.name
              for r in runs]
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(dict.fromkeys(values))}
    fig = go.Figure()
    shown = set()
    for run, value in zip(runs, values):
        ys = run.curves.get(curve)
        if not ys:
            continue
        fig.add_trace(go.Scatter(
            x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers" if len(ys) < 30 else "lines",
            name=f"{value}" if color_by != "run" else value, legendgroup=value, showlegend=value not in shown,
            line=dict(color=colours[value], width=3), marker=dict(size=7),
            hovertemplate=f"{run.name}<br>epoch %{{x}}: %{{y:.4g}}<extra>{color_by} = {value}</extra>"))
        shown.add(value)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=curve.split(".")[-1].replace("_", " "))
    if "acc" in curve.split(".")[-1]:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_layout(legend_title_text=color_by)
    return style(fig, f"{curve} of {len(runs)} runs, coloured by {color_by}")
