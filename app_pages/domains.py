import time

import streamlit as st

from app_pages import ui
from tl_core import contract
from tl_core.experiments import domains
from tl_core.plots import domains as figures

link = ui.page("Which strategy?", "dom_",
               "The decks' decision chart: **how much data** (few or more images per class) × **how similar** the new "
               "task is to the pretraining task (ImageNet photos). *Near*: natural photos (textures, faces). *Far*: "
               "microscopy and tissue crops, 8×8 grayscale digits. Four strategies on EfficientNet-Lite0: **feature "
               "extraction** (only a new head trains), **partial** (the last stages train), **full** fine-tuning, and "
               "**scratch** (same network, random weights). Every cell over several seeds.", settings="Grid settings")

def far_source() -> None:
    st.session_state.update({f"dom_{k}": list(v) if isinstance(v, tuple) else v for k, v in domains.FAR_SOURCE.items()})


with st.sidebar:
    st.button("Preset: a far source task (negative transfer)", key="dom_far_source", on_click=far_source,
              help="Transfer Lab's shapes CNN (pretrained on synthetic shapes) with its features frozen, on "
                   "handwritten digits, against the same network from scratch: a source task too far from the target")
    picked = ui.widgets(domains.DomainsConfig, ("datasets", "shots", "strategies", "seeds", "epochs", "image_size"),
                        "dom_")
picked.update(ui.more_settings(domains.DomainsConfig, ("backbone", "val_per_class"), "dom_"))

link.report()
cfg = domains.DomainsConfig(**picked)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    st.stop()

results = st.session_state.setdefault("dom_results", {})
db = ui.history()
kept = domains.from_history(db, cfg) if db is not None and cfg not in results else None
result = ui.run_button("dom", "Re-run the grid" if kept else "Run the grid", "domains", cfg, results=results)
if result is None and kept is not None:
    result, run_ = kept
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run_.created))
    st.caption(f"Shown from the run history: run #{run_.id}, {when}, {run_.seconds or 0:.0f} s on {run_.device}. "
               "Press **Re-run the grid** to train it again.")
if result is None:
    st.info("Press **Run the grid** (a grid once run is shown from the run history at once; the estimate is "
            "beside the button).")
    st.stop()

ui.verdict(result.verdict())
out = result.to_json()
if out["quadrants"]:
    ui.chart(figures.strategy_chart(out), "dom_chart")
    st.caption("Bars: validation accuracy, mean over seeds and the quadrant's datasets; whiskers: ± std over seeds.")
    # a table wraps its cells, so the "measured" sentence is read whole (a data frame cuts it at the column's width)
    st.table([{"quadrant": f"{q['size']} data · {q['domain']}", "the decks' rule": q["rule"],
               "measured": domains.quadrant_words(q),
               "agrees?": {True: "yes", False: "no"}.get(q["agrees"], "can't tell: a tie at this size")}
              for q in out["quadrants"]], hide_index=True)

st.subheader("Does pretraining help less far from ImageNet?")
st.markdown(out["far_vs_near"])
for col, (domain, row) in zip(st.columns(max(len(out["gain"]), 1)), out["gain"].items()):
    col.metric(f"{domain}: best pretrained − scratch",
               " · ".join(f"{g * 100:+.0f} pts @ {sh}" for sh, g in row.items()), border=True)
if out["negative_transfer"]:
    st.error("Negative transfer measured (scratch ahead of every pretrained strategy by the claims rule): " + "; ".join(
        f"{x['dataset']} at {x['shots']} shots: scratch {x['scratch_acc']:.0%} vs {x['pretrained'].replace('_', ' ')} "
        f"{x['pretrained_acc']:.0%}" for x in out["negative_transfer"]) + ".")
else:
    st.info("No negative transfer here: on no dataset and data size does scratch beat the best pretrained strategy by "
            "the claims rule (best pretrained − scratch per dataset: " + "; ".join(
                f"{ds} " + ", ".join(f"{g * 100:+.0f} pts @ {sh}" for sh, g in row.items())
                for ds, row in out["gain_by_dataset"].items()) + "). The decks' warning that far-domain features "
            "can mislead is not reproduced with these settings.")
ui.chart(figures.domain_bars(out), "dom_bars")
