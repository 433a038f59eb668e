import streamlit as st

from app_pages import ui
from tl_core.experiments import toy
from tl_core.plots import toy as figures

D = toy.ToyConfig()

link = ui.page("Pretraining acts as a regulariser", "toy_",
               "Task **B** has only a few training points. We train many small networks on it **from scratch**, "
               "and the same networks **pretrained on a related task A** (many points) and then fine-tuned on B. "
               "Both fit B's points; which ones also get the *rest* of B right?", settings="Toy settings")

T = toy.ToyConfig
with st.sidebar:
    relation = ui.widget(T, "relation", "toy_", captions=list(toy.RELATION_HELP.values()), horizontal=False)
    b_points, noise = ui.widget(T, "b_points", "toy_"), ui.widget(T, "noise", "toy_")
    preset = st.selectbox("Network", [*toy.PRESETS, "custom"], key="toy_preset", bind=ui.URL)
    width, depth = toy.PRESETS.get(preset, (D.width, D.depth))
    if preset == "custom":
        width, depth = ui.widget(T, "width", "toy_"), ui.widget(T, "depth", "toy_")
    picked = ui.widgets(T, ("seeds", "epochs", "lr"), "toy_")
picked.update(ui.more_settings(T, ("pretrain_epochs",), "toy_"))

link.report()
cfg = T(relation=relation, b_points=b_points, noise=noise, width=width, depth=depth, **picked)
# trained once per setting on this server, for every session that opens it (a reuse records no new run)
result = ui.auto_run("toy", "toy", cfg, start=f"Training {2 * cfg.seeds} networks…")
if result is None:
    st.stop()

ui.verdict(result.verdict())

s, p = result.scratch, result.pretrained
cols = st.columns(4)
cols[0].metric("Test MSE, from scratch", f"{s.test_mse.mean():.3g}", help="mean over seeds")
cols[1].metric("Test MSE, pretrained", f"{p.test_mse.mean():.3g}", help="mean over seeds")
cols[2].metric("Seeds where pretrained wins", f"{int((p.test_mse < s.test_mse).sum())} / {cfg.seeds}")
cols[3].metric("Worst train MSE", f"{max(s.train_mse.max(), p.train_mse.max()):.1g}",
               help="the largest final MSE on B's training points over both conditions: "
                    "near 0 means every network fits B's points")

out = result.to_json()
ui.chart(figures.functions(out), "toy_functions")
ui.chart(figures.losses(out), "toy_losses")
ui.chart(figures.final_mse(out), "toy_final_mse")
st.caption(f"{2 * cfg.seeds} networks ({cfg.width} units × {cfg.depth} hidden layers, tanh), "
           f"all seeds of a condition trained at once, in {result.seconds:.2f} s on {result.device}. "
           f"Test MSE is measured against the noise-free B line on {cfg.test_points} points over x ∈ [-2, 2].")
with st.expander("Try this"):
    st.markdown(
        "- **unrelated**: the pretrained networks keep a wave's shape away from B's points: negative transfer.\n"
        "- **20 B points**: with enough data, scratch catches up and pretraining stops mattering.\n"
        "- **slide's 2-2-1** network: tiny, yet the same story over seeds.\n"
        "- a **learning rate** of 1 or more: the networks no longer fit B's points (see *worst train MSE*)."
    )
