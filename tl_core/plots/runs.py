"""The Runs page's figure (one curve of several runs from the history on the same axes), and how the page names
curves and metrics in words and writes numbers for people."""
from __future__ import annotations

import math
import time

import plotly.graph_objects as go

from tl_core.i18n import N_, tr
from tl_core.plots.base import PALETTE, style


def compare_runs(runs, curve: str, color_by: str) -> go.Figure:
    """One curve (e.g. a validation accuracy per epoch) of several runs on the same axes, coloured by a
    config field: runs that share its value share a colour, so the field's effect is visible at a glance."""
    from tl_core.run_views import flat_config

    values = [str(flat_config({"kind": r.kind, **r.config}).get(color_by, "—")) if color_by != "run" else r.name
              for r in runs]
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(dict.fromkeys(values))}
    fig = go.Figure()
    shown, drawn = set(), 0
    field = tr("run") if color_by == "run" else color_by   # a config field's name, as recorded
    epoch = tr("epoch")
    for run, value in zip(runs, values):
        ys = run.curves.get(curve)
        if not ys:
            continue
        fig.add_trace(go.Scatter(
            x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers" if len(ys) < 30 else "lines",
            name=f"{value}" if color_by != "run" else value, legendgroup=value, showlegend=value not in shown,
            line=dict(color=colours[value], width=3), marker=dict(size=7),
            hovertemplate=f"{run.name}<br>{epoch} %{{x}}: %{{y:.4g}}<extra>{field} = {value}</extra>"))
        shown.add(value)
        drawn += 1
    fig.update_xaxes(title_text=epoch)
    fig.update_yaxes(title_text=curve_name(curve).split(" · ")[-1])
    if "acc" in curve.split(".")[-1]:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_layout(legend_title_text=field)
    fill = dict(curve=curve_name(curve), n=drawn, missing=len(runs) - drawn, field=field)   # the count: what's drawn
    if drawn < len(runs):
        title = (tr("{curve} of {n} run ({missing} picked without it), coloured by {field}", **fill) if drawn == 1
                 else tr("{curve} of {n} runs ({missing} picked without it), coloured by {field}", **fill))
    else:
        title = (tr("{curve} of {n} run, coloured by {field}", **fill) if drawn == 1
                 else tr("{curve} of {n} runs, coloured by {field}", **fill))
    return style(fig, title)


# ---- in words ------------------------------------------------------------------------------------------------

WORDS = {"val_acc": N_("validation accuracy"), "val_loss": N_("validation loss"),
         "train_acc": N_("training accuracy"), "train_loss": N_("training loss"),
         "val_acc_std": N_("validation accuracy, spread over seeds (std)"), "test_mse": N_("test error (MSE)"),
         "train_mse": N_("training error (MSE)"), "recon_loss": N_("reconstruction loss"), "losses": N_("loss"),
         "lrs": N_("learning rate"), "lr": N_("learning rate")}
PIECES = {"val": N_("validation"), "train": N_("training"), "acc": N_("accuracy"), "std": N_("spread (std)"),
          "mse": N_("error (MSE)"), "mean": N_("mean"), "median": N_("median"), "p10": N_("10th percentile"),
          "p90": N_("90th percentile"), "recon": N_("reconstruction"), "lr": N_("learning rate"),
          "max": N_("largest"), "abs": N_("absolute"), "diff": N_("difference"), "ratio": N_("ratio")}
STRUCTURE = {"conditions", "history", "curves", "summary"}   # how a result nests its numbers: not a name
QUALIFIERS = {"train": N_("training"), "val": N_("validation"), "test": N_("test")}
STATUS = {"running": N_("running"), "finished": N_("finished"), "interrupted": N_("interrupted"),
          "failed": N_("failed"), "stopped": N_("stopped"), "diverged": N_("diverged")}


def _words(token: str) -> str:
    if token in WORDS:
        return tr(WORDS[token])
    for known in sorted(WORDS, key=len, reverse=True):   # test_mse_mean → test error (MSE), mean
        if token.startswith(known + "_"):
            return f"{tr(WORDS[known])}, {_words(token[len(known) + 1:])}"
    return " ".join(tr(PIECES[p]) if p in PIECES else p for p in token.split("_"))


def curve_name(key: str) -> str:
    """A curve's or metric's dotted name in words: "conditions.pretrained.history.val_acc" → "pretrained ·
    validation accuracy", "recon_loss.train" → "training reconstruction loss"."""
    parts = [p for p in key.split(".") if p not in STRUCTURE] or [key]
    *context, last = parts
    if last in QUALIFIERS and context:
        *context, metric = context
        name = tr("{which} {metric}", which=tr(QUALIFIERS[last]), metric=_words(metric))   # training loss
    else:
        name = _words(last)
    return " · ".join([*(c.replace("_", " ") for c in context), name])


def number(x, percent: bool = False) -> str:
    """A number for people: 3 significant digits, scientific where small or huge (7e-14 → 7.00e-14), thousands
    separated; `percent`: a fraction as a percentage (0.8333 → 83.3%)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "" if x is None else str(x)
    if isinstance(x, int) and not percent:
        return f"{x:,}"
    x = float(x) * (100 if percent else 1)
    end = "%" if percent else ""
    a = abs(x)
    if not math.isfinite(x) or a == 0:
        return f"{x:g}{end}"
    if a < 1e-3 or a >= 1e6:
        return f"{x:.2e}{end}"
    if a >= 1000:
        return f"{round(x, 2 - int(math.floor(math.log10(a)))):,.0f}{end}"
    return f"{x:.3g}{end}"


def metric(name: str, value) -> str:
    """A metric's value: accuracies as percentages, the rest as `number`."""
    return number(value, percent="acc" in name.split(".")[-1])


def headline(run) -> str:
    """The run's headline metric in words, e.g. "validation accuracy 64.0%"."""
    from tl_core.run_views import EARLIER_HEADLINES

    name = run.headline or EARLIER_HEADLINES.get(run.kind, "")
    return f"{curve_name(name)} {metric(name, run.metrics[name])}" if name in run.metrics else ""


def status(state: str) -> str:
    """A run's state in words (the history records the key)."""
    return tr(STATUS[state]) if state in STATUS else state


def source(run) -> str:
    """Where a run was asked for, when it is worth marking: "lecture" (a lecture step, on its page or prepared)."""
    return "lecture" if run.source == "lecture" or run.session == "lecture" else ""


def column(run) -> str:
    """A table column per run: the id keeps two runs with the same label apart."""
    return f"#{run.id} {run.label}" if run.label else f"#{run.id} {run.kind}"


def describe(run) -> str:
    """A run in the picker: name, backbone, dataset, headline, status, and the lecture's mark."""
    parts = [run.name, run.config.get("backbone"), run.config.get("dataset"), headline(run), status(run.status),
             source(run) and tr("from the lecture")]
    return " · ".join(str(p) for p in parts if p)


def rows(runs) -> list[dict]:
    """The Runs page's table."""
    return [{"id": r.id, "label": r.label, "experiment": r.kind, "from": source(r) and tr("lecture"),
             "status": status(r.status),
             "backbone": r.config.get("backbone", ""), "dataset": r.config.get("dataset", ""), "result": headline(r),
             "seconds": round(r.seconds, 1) if r.seconds is not None else None, "device": r.device,
             "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))} for r in runs]


def default_pick(runs, most: int = 2) -> list[int]:
    """What the page compares at first: the newest finished run with curves and the newest comparable to it (the
    same experiment measuring the same things: `run_views.comparable`)."""
    from tl_core.run_views import comparable

    return [r.id for r in comparable(runs, most)]
