"""Which strategy for which data: the decks' 2×2 chart measured, and every cell of the grid, from the run's JSON."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core import i18n
from tl_core.i18n import N_, tr
from tl_core.plots.base import color, seeds_text, style

ORDER = ("feature_extraction", "partial", "full", "scratch")   # the same order in every quadrant
STRATEGIES = {"feature_extraction": N_("feature extraction"), "partial": N_("partial"), "full": N_("full"),
              "scratch": N_("scratch")}
DOMAINS = {"near": N_("near"), "far": N_("far")}
QUADRANTS = {("few", "near"): N_("few data · near"), ("few", "far"): N_("few data · far"),
             ("more", "near"): N_("more data · near"), ("more", "far"): N_("more data · far")}


def strategy_name(name: str) -> str:
    """A strategy as the grid names it: "feature extraction", "partial", "full", "scratch"."""
    return tr(STRATEGIES[name]) if name in STRATEGIES else name.replace("_", " ")


def domain_name(name: str) -> str:
    """"near" or "far" (from ImageNet) in words."""
    return tr(DOMAINS[name]) if name in DOMAINS else name


def quadrant_name(size: str, where: str) -> str:
    """A quadrant of the decks' chart: "few data · near"."""
    return tr(QUADRANTS[size, where]) if (size, where) in QUADRANTS else f"{size} data · {where}"


def _title(q: dict) -> str:
    head = quadrant_name(q["size"], q["domain"])
    if q["kind"] == "helped":
        return tr("<b>{quadrant}</b>: {strategy} wins by {margin} pts", quadrant=head,
                  strategy=strategy_name(q["winner"]), margin=i18n.number(q["margin"] * 100, 1))
    if q["kind"] == "single":
        return tr("<b>{quadrant}</b>: {strategy} leads (one seed)", quadrant=head,
                  strategy=strategy_name(q["winner"]))
    return tr("<b>{quadrant}</b>: tie: {strategies}", quadrant=head,
              strategies=", ".join(strategy_name(s) for s in q["tied"]))


def strategy_chart(out: dict) -> go.Figure:
    """The decks' 2×2 chart, measured: rows data size (few, more), columns similarity (near, far); in each quadrant
    every strategy's accuracy (mean ± std over seeds), the winner outlined (every strategy the claims rule cannot
    tell from it, in a tie), the rule's strategies starred."""
    at = {(q["size"], q["domain"]): q for q in out.get("quadrants", [])}
    titles = ["" if (q := at.get((size, domain))) is None else _title(q)
              for size in ("few", "more") for domain in ("near", "far")]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, vertical_spacing=0.2, horizontal_spacing=0.08,
                        shared_yaxes=True)
    for r, size in enumerate(("few", "more")):
        for c, domain in enumerate(("near", "far")):
            q = at.get((size, domain))
            if q is None:
                continue
            names = [st for st in ORDER if st in q["means"]]
            rule, best = set(q["rule_strategies"]), set(q["tied"]) if q["kind"] != "helped" else {q["winner"]}
            fig.add_trace(go.Bar(
                x=[strategy_name(s) + (" ★" if s in rule else "") for s in names],
                y=[q["means"][s] for s in names],
                error_y=dict(type="data", array=[q["stds"][s] for s in names]),
                marker=dict(color=[color(s) for s in names],
                            line=dict(color=["#000000" if s in best else "rgba(0,0,0,0)" for s in names], width=4)),
                text=[i18n.percent(q["means"][s], 0) for s in names], textposition="inside", insidetextanchor="start",
                textfont=dict(size=15, color="white"), showlegend=False, hovertemplate="%{x}: %{y:.1%}<extra></extra>"),
                row=r + 1, col=c + 1)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_yaxes(title_text=tr("few data: val acc"), row=1, col=1)
    fig.update_yaxes(title_text=tr("more data: val acc"), row=2, col=1)
    fig.update_annotations(font_size=18)
    return style(fig, tr("Which strategy for which data, measured (★ the decks' rule; outlined: the winner, or every "
                         "strategy in a tie)"), height=720)


def domain_bars(out: dict) -> go.Figure:
    """Validation accuracy of every strategy (bars: mean, whiskers: std over seeds) per dataset and shots."""
    cells = out.get("cells", [])
    groups = list(dict.fromkeys((c["dataset"], c["domain"], c["shots"]) for c in cells))
    labels = [tr("{dataset} ({domain})<br>{shots} shots", dataset=ds, domain=domain_name(dom), shots=sh)
              for ds, dom, sh in groups]
    fig = go.Figure()
    for st in out["config"]["strategies"]:
        mine = {(c["dataset"], c["domain"], c["shots"]): c for c in cells if c["strategy"] == st}
        fig.add_trace(go.Bar(x=labels, y=[mine[g]["val_acc_mean"] if g in mine else None for g in groups],
                             error_y=dict(type="data",
                                          array=[mine[g]["val_acc_std"] if g in mine else 0 for g in groups]),
                             name=strategy_name(st), marker_color=color(st)))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=tr("validation accuracy"), range=[0, 1.05], tickformat=".0%")
    n = out["config"]["seeds"]
    return style(fig, tr("Every cell of the grid (bar: mean of {seeds}; whisker: ± std over seeds)",
                         seeds=seeds_text(n)), height=460)
