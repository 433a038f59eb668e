"""Language models' figures, from the runs' JSON: the next-token distribution of the pretrained model beside random
weights (lm-next), the methods' accuracy and what each forgets (lm), and the little GPT's pretraining curve and its
transfer (lm-pretrain)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core import i18n, names
from tl_core.i18n import tr
from tl_core.plots.base import color, overfitting_curves, percent_axis, seeds_text, style

PROMPT_COLOUR = "#7f3c8d"   # prompting has no colour elsewhere in the app: it trains nothing


def label(m: dict, out: dict) -> str:
    """A method's label in the reader's words (the run keeps it in English)."""
    from tl_core.lm_tuning import LABELS

    cfg = out.get("config", {})
    return names.shown(m["label"], LABELS, m.get("method", ""), k=cfg.get("layers"), shots=cfg.get("shots"))


def colour(method: str) -> str:
    return PROMPT_COLOUR if method == "prompt" else color(method)


def _shown(token: str) -> str:
    """A token as a bar's label: its spaces and line breaks made visible ("␣Paris", "↵")."""
    return token.replace("\n", "↵").replace(" ", "␣") or "∅"


def _percent(p: float) -> str:
    """A probability as a bar's label, to two significant digits ("12%", "0.034%"), as the language writes it."""
    g = f"{100 * p:.2g}"
    return f"{g}%" if "e" in g else i18n.percent(float(g) / 100, len(g.partition(".")[2]))


def next_word(out: dict) -> go.Figure:
    """The ten most likely next tokens after the prompt: the pretrained model (left) and random weights (right)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.16,
                        subplot_titles=(tr("pretrained (SmolLM2-135M)"), tr("same architecture, random weights")))
    for col, kind in ((1, "pretrained"), (2, "random")):
        tops = out["next_word"][kind][::-1]   # most likely on top
        fig.add_trace(go.Bar(x=[100 * t["p"] for t in tops], y=[f"{_shown(t['token'])} " for t in tops],
                             orientation="h", marker_color=color(kind if kind == "pretrained" else "scratch"),
                             text=[_percent(t["p"]) for t in tops], textposition="outside", cliponaxis=False,
                             showlegend=False, hovertemplate="%{y}: %{x:.3g}%<extra></extra>"), 1, col)
        biggest = max((100 * t["p"] for t in tops), default=1.0)
        fig.update_xaxes(title_text=tr("probability of the next token (%)"), range=[0, biggest * 1.3], row=1, col=col)
    fig.update_yaxes(type="category", tickfont=dict(size=16))
    prompt = out["next_word"].get("prompt", "")
    short = prompt if len(prompt) <= 60 else prompt[:57] + "…"
    return style(fig, tr("What comes after “{prompt}”? (␣ marks a space: tokens are pieces of words)", prompt=short),
                 height=460)


def methods(out: dict) -> go.Figure:
    """Validation accuracy per method (bar: mean over seeds, dots: each seed), and the perplexity of the whole model
    on held-out text after it (log axis): what the adjustment cost the model's English."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14, column_widths=[0.58, 0.42],
                        subplot_titles=(tr("accuracy on the task"),
                                        tr("perplexity on held-out text after (lower: better)")))
    rows = out["methods"]
    shown = [label(m, out) for m in rows]
    for m in rows:
        fig.add_trace(go.Bar(x=[label(m, out)], y=[m["val_acc_mean"]], marker_color=colour(m["method"]),
                             showlegend=False, text=[i18n.percent(m["val_acc_mean"], 0)], textposition="outside",
                             hovertemplate="%{x}: %{y:.1%}<extra></extra>"), 1, 1)
        fig.add_trace(go.Scatter(x=[label(m, out)] * len(m["val_acc_seeds"]), y=list(m["val_acc_seeds"]),
                                 mode="markers", marker=dict(color="#222222", size=9, symbol="circle-open"),
                                 showlegend=False,
                                 hovertemplate=tr("one seed: {acc}", acc="%{y:.1%}") + "<extra></extra>"), 1, 1)
        if m.get("perplexity_after") is not None:
            fig.add_trace(go.Bar(x=[label(m, out)], y=[m["perplexity_after"]], marker_color=colour(m["method"]),
                                 showlegend=False, text=[i18n.number(m["perplexity_after"], 0)], textposition="outside",
                                 hovertemplate="%{x}: %{y:,.1f}<extra></extra>"), 1, 2)
    n = len(out.get("classes", [])) or 1
    fig.add_hline(y=1 / n, line_dash="dot", line_color="#666666", annotation_text=tr("chance"),
                  annotation_position="bottom left", row=1, col=1)
    percent_axis(fig, tr("validation accuracy"), row=1, col=1)
    fig.update_yaxes(range=[0, 1.1], row=1, col=1)
    fig.update_yaxes(type="log", title_text=tr("perplexity (log scale)"), row=1, col=2)
    fig.update_xaxes(tickangle=-20, categoryorder="array", categoryarray=shown)
    seeds = out.get("config", {}).get("seeds", 1)
    return style(fig, tr("Adjusting the pretrained model for the task (bar: mean of {seeds}; circles: each seed)",
                         seeds=seeds_text(seeds)), height=520)


def pretrain_loss(out: dict) -> go.Figure:
    """The GPT's next-character loss on training windows and held-out text, step by step."""
    loss = out["loss"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=loss["step"], y=loss["train"], mode="lines+markers", name=tr("training windows"),
                             line=dict(color=color("pretrained"), width=3)))
    fig.add_trace(go.Scatter(x=loss["step"], y=loss["val"], mode="lines+markers", name=tr("held-out text"),
                             line=dict(color=color("pretrained"), width=3, dash="dash")))
    uniform = float(np.log(96))
    fig.add_hline(y=uniform, line_dash="dot", line_color="#666666", annotation_text=tr("guessing uniformly"))
    fig.update_xaxes(title_text=tr("pretraining step"))
    fig.update_yaxes(title_text=tr("loss (nats per character)"), rangemode="tozero")
    return style(fig, tr("Pretraining: predicting the next character (cross-entropy; lower: better)"), height=420)


def transfer(out: dict) -> go.Figure:
    """The fine-tuning curves of the pretrained GPT and the same GPT from scratch (mean over seeds, band)."""
    return overfitting_curves(out, height=460)


def lecture(out: dict) -> go.Figure:
    """The lecture's step: what pretraining taught the model (its next tokens after a factual prompt, left) and how
    the methods of adjusting it for the task compare (accuracy per method, right)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.2, column_widths=[0.45, 0.55],
                        subplot_titles=(tr("after “{prompt}”", prompt=out["next_word"]["prompt"]),
                                        tr("adjusted for the topics")))
    tops = out["next_word"]["pretrained"][::-1]
    fig.add_trace(go.Bar(x=[100 * t["p"] for t in tops], y=[f"{_shown(t['token'])} " for t in tops],
                         orientation="h", marker_color=color("pretrained"), text=[_percent(t["p"]) for t in tops],
                         textposition="outside", cliponaxis=False, showlegend=False,
                         hovertemplate="%{y}: %{x:.3g}%<extra></extra>"), 1, 1)
    fig.update_xaxes(title_text=tr("next token (%)"), range=[0, 130], row=1, col=1)
    fig.update_yaxes(type="category", row=1, col=1)
    for m in out["methods"]:
        fig.add_trace(go.Bar(x=[label(m, out)], y=[m["val_acc_mean"]], marker_color=colour(m["method"]),
                             showlegend=False, text=[i18n.percent(m["val_acc_mean"], 0)], textposition="outside",
                             hovertemplate="%{x}: %{y:.1%}<extra></extra>"), 1, 2)
        fig.add_trace(go.Scatter(x=[label(m, out)] * len(m["val_acc_seeds"]), y=list(m["val_acc_seeds"]),
                                 mode="markers", marker=dict(color="#222222", size=9, symbol="circle-open"),
                                 showlegend=False,
                                 hovertemplate=tr("one seed: {acc}", acc="%{y:.1%}") + "<extra></extra>"), 1, 2)
    percent_axis(fig, tr("validation accuracy"), row=1, col=2)
    fig.update_yaxes(range=[0, 1.1], row=1, col=2)
    seeds = out.get("config", {}).get("seeds", 1)
    return style(fig, tr("Pretrained to predict the next word, then adjusted for a task (bar: mean of {seeds}; "
                         "circles: each seed)", seeds=seeds_text(seeds)), height=480)
