import streamlit as st
from babel.numbers import get_decimal_symbol

from app_pages import ui
from tl_core import i18n
from tl_core.experiments import toy
from tl_core.i18n import tr
from tl_core.plots import toy as figures

D = toy.ToyConfig()


def mse(v: float, spec: str) -> str:
    """An MSE to a few significant digits, with the decimal sign of the page's language."""
    return f"{v:{spec}}".replace(".", get_decimal_symbol(i18n.language()))


link = ui.page(tr("Pretraining acts as a regulariser"), "toy_",
               tr("Task **B** has only a few training points. We train many small networks on it **from scratch**, "
                  "and the same networks **pretrained on a related task A** (many points) and then fine-tuned on B. "
                  "Both fit B's points; which ones also get the *rest* of B right?"), settings=tr("Toy settings"))

T = toy.ToyConfig
with st.sidebar:
    relation = ui.widget(T, "relation", "toy_", captions=[tr(c) for c in toy.RELATION_HELP.values()], horizontal=False)
    b_points, noise = ui.widget(T, "b_points", "toy_"), ui.widget(T, "noise", "toy_")
    # the presets' names are what the link carries (a selectbox bound to the URL writes the text it shows): as is
    preset = st.selectbox(tr("Network"), [*toy.PRESETS, "custom"], key="toy_preset", bind=ui.URL)
    width, depth = toy.PRESETS.get(preset, (D.width, D.depth))
    if preset == "custom":
        width, depth = ui.widget(T, "width", "toy_"), ui.widget(T, "depth", "toy_")
    picked = ui.widgets(T, ("seeds", "epochs", "lr"), "toy_")
picked.update(ui.more_settings(T, ("pretrain_epochs",), "toy_"))

link.report()
cfg = T(relation=relation, b_points=b_points, noise=noise, width=width, depth=depth, **picked)
# trained once per setting on this server, for every session that opens it (a reuse records no new run)
result = ui.auto_run("toy", "toy", cfg, start=tr("Training {n} networks…", n=2 * cfg.seeds))
if result is None:
    st.stop()

ui.verdict(result.verdict())

s, p = result.scratch, result.pretrained
cols = st.columns(4)
cols[0].metric(tr("Test MSE, from scratch"), mse(s.test_mse.mean(), ".3g"), help=tr("mean over seeds"))
cols[1].metric(tr("Test MSE, pretrained"), mse(p.test_mse.mean(), ".3g"), help=tr("mean over seeds"))
cols[2].metric(tr("Seeds where pretrained wins"), f"{int((p.test_mse < s.test_mse).sum())} / {cfg.seeds}")
cols[3].metric(tr("Worst train MSE"), mse(max(s.train_mse.max(), p.train_mse.max()), ".1g"),
               help=tr("the largest final MSE on B's training points over both conditions: "
                       "near 0 means every network fits B's points"))

out = result.to_json()
ui.chart(figures.functions(out), "toy_functions")
ui.chart(figures.losses(out), "toy_losses")
ui.chart(figures.final_mse(out), "toy_final_mse")
st.caption(tr("{n} networks ({width} units × {depth} hidden layers, tanh), all seeds of a condition trained at "
              "once, in {seconds} s on {device}. Test MSE is measured against the noise-free B line on {points} "
              "points over x ∈ [-2, 2].", n=2 * cfg.seeds, width=cfg.width, depth=cfg.depth,
              seconds=i18n.number(result.seconds, 2), device=result.device, points=cfg.test_points))
with st.expander(tr("Try this")):
    st.markdown(tr(
        "- **unrelated**: the pretrained networks keep a wave's shape away from B's points: negative transfer.\n"
        "- **20 B points**: with enough data, scratch catches up and pretraining stops mattering.\n"
        "- **slide's 2-2-1** network: tiny, yet the same story over seeds.\n"
        "- a **learning rate** of 1 or more: the networks no longer fit B's points (see *worst train MSE*)."
    ))
