import time

import streamlit as st

from app_pages import ui
from tl_core import contract, i18n
from tl_core.experiments import domains
from tl_core.i18n import tr
from tl_core.plots import domains as figures

link = ui.page(tr("Which strategy?"), "dom_",
               tr("The decks' decision chart: **how much data** (few or more images per class) × **how similar** the "
                  "new task is to the pretraining task (ImageNet photos). *Near*: natural photos (textures, faces). "
                  "*Far*: microscopy and tissue crops, 8×8 grayscale digits. Four strategies on EfficientNet-Lite0: "
                  "**feature extraction** (only a new head trains), **partial** (the last stages train), **full** "
                  "fine-tuning, and **scratch** (same network, random weights). Every cell over several seeds."),
               settings=tr("Grid settings"))

def far_source() -> None:
    st.session_state.update({f"dom_{k}": list(v) if isinstance(v, tuple) else v for k, v in domains.FAR_SOURCE.items()})


def gaps(row: dict, sep: str = ", ") -> str:
    """Best pretrained − scratch at each shots value: "+12 pts @ 5, -3 pts @ 15"."""
    return sep.join(tr("{gap} pts @ {shots}", gap=i18n.number(g * 100, 0, signed=True), shots=sh)
                     for sh, g in row.items())


with st.sidebar:
    st.button(tr("Preset: a far source task (negative transfer)"), key="dom_far_source", on_click=far_source,
              help=tr("Transfer Lab's shapes CNN (pretrained on synthetic shapes) with its features frozen, on "
                      "handwritten digits, against the same network from scratch: a source task too far from the "
                      "target"))
    picked = ui.widgets(domains.DomainsConfig, ("datasets", "shots", "strategies", "seeds", "epochs", "image_size"),
                        "dom_")
picked.update(ui.more_settings(domains.DomainsConfig, ("backbone", "val_per_class"), "dom_"))

link.report()
cfg = domains.DomainsConfig(**picked)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{err}. Adjust the settings in the sidebar.", err=err))
    st.stop()

results = st.session_state.setdefault("dom_results", {})
db = ui.history()
kept = domains.from_history(db, cfg) if db is not None and cfg not in results else None
result = ui.run_button("dom", tr("Re-run the grid") if kept else tr("Run the grid"), "domains", cfg, results=results)
if result is None and kept is not None:
    result, run_ = kept
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run_.created))
    st.caption(tr("Shown from the run history: run #{id}, {when}, {s} s on {device}. Press **Re-run the grid** to "
                  "train it again.", id=run_.id, when=when, s=f"{run_.seconds or 0:.0f}", device=run_.device))
if result is None:
    st.info(tr("Press **Run the grid** (a grid once run is shown from the run history at once; the estimate is "
               "beside the button)."))
    st.stop()

ui.verdict(result.verdict())
out = result.to_json()
if out["quadrants"]:
    ui.chart(figures.strategy_chart(out), "dom_chart")
    st.caption(tr("Bars: validation accuracy, mean over seeds and the quadrant's datasets; whiskers: ± std over "
                  "seeds."))
    # a table wraps its cells, so the "measured" sentence is read whole (a data frame cuts it at the column's width)
    agrees = {True: tr("yes"), False: tr("no")}
    st.table([{tr("quadrant"): figures.quadrant_name(q["size"], q["domain"]), tr("the decks' rule"): tr(q["rule"]),
               tr("measured"): domains.quadrant_words(q),
               tr("agrees?"): agrees.get(q["agrees"], tr("can't tell: a tie at this size"))}
              for q in out["quadrants"]], hide_index=True)

st.subheader(tr("Does pretraining help less far from ImageNet?"))
st.markdown(out["far_vs_near"])
for col, (domain, row) in zip(st.columns(max(len(out["gain"]), 1)), out["gain"].items()):
    col.metric(tr("{domain}: best pretrained − scratch", domain=figures.domain_name(domain)),
               gaps(row, " · "), border=True)
if out["negative_transfer"]:
    cases = "; ".join(tr("{dataset} at {shots} shots: scratch {scratch} vs {strategy} {acc}", dataset=x["dataset"],
                         shots=x["shots"], scratch=i18n.percent(x["scratch_acc"], 0),
                         strategy=figures.strategy_name(x["pretrained"]), acc=i18n.percent(x["pretrained_acc"], 0))
                      for x in out["negative_transfer"])
    st.error(tr("Negative transfer measured (scratch ahead of every pretrained strategy by the claims rule): "
                "{cases}.", cases=cases))
else:
    st.info(tr("No negative transfer here: on no dataset and data size does scratch beat the best pretrained "
               "strategy by the claims rule (best pretrained − scratch per dataset: {gaps}). The decks' warning that "
               "far-domain features can mislead is not reproduced with these settings.",
               gaps="; ".join(f"{ds} {gaps(row)}" for ds, row in out["gain_by_dataset"].items())))
ui.chart(figures.domain_bars(out), "dom_bars")
