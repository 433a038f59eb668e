import streamlit as st

from app_pages import ui
from tl_core import contract, device as devices
from tl_core.plots import toy as figures
from tl_core.experiments import toy

D = toy.ToyConfig()
LEARNING_RATES = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


@st.cache_data(max_entries=32, show_spinner=False)
def run_toy(cfg: toy.ToyConfig) -> toy.ToyResult:
    """Cached by config, across sessions: a rerun with the same settings retrains nothing."""
    with devices.one_run_at_a_time():
        return toy.run(cfg)


link = ui.page("Pretraining acts as a regulariser", "toy_",
               "Task **B** has only a few training points. We train many small networks on it **from scratch**, "
               "and the same networks **pretrained on a related task A** (many points) and then fine-tuned on B. "
               "Both fit B's points; which ones also get the *rest* of B right?", settings="Toy settings")

with st.sidebar:
    relation = st.radio("How task A relates to B", toy.RELATIONS, index=toy.RELATIONS.index(D.relation),
                        key="toy_relation", bind=ui.URL, captions=list(toy.RELATION_HELP.values()))
    b_points = st.slider("Task B training points", 1, 20, D.b_points, key="toy_b_points", bind=ui.URL,
                         help=contract.spec(D, "b_points").help)
    noise = st.slider("Noise on training targets (std)", 0.0, 0.5, D.noise, step=0.01, key="toy_noise", bind=ui.URL)
    preset = st.selectbox("Network", [*toy.PRESETS, "custom"], key="toy_preset", bind=ui.URL)
    width, depth = toy.PRESETS.get(preset, (16, 2))
    if preset == "custom":
        width = st.slider("Hidden units per layer", 1, 128, D.width, key="toy_width", bind=ui.URL)
        depth = st.slider("Hidden layers", 1, 4, D.depth, key="toy_depth", bind=ui.URL)
    seeds = st.slider("Seeds per condition", 5, 100, D.seeds, step=5, key="toy_seeds", bind=ui.URL)
    epochs = st.slider("Fine-tuning epochs", 50, 2000, D.epochs, step=50, key="toy_epochs", bind=ui.URL)
    lr = st.select_slider("Learning rate (Adam)", LEARNING_RATES, value=D.lr, key="toy_lr", bind=ui.URL)

link.report()
cfg = toy.ToyConfig(relation=relation, b_points=b_points, noise=noise, width=width, depth=depth,
                    seeds=seeds, epochs=epochs, lr=lr)
recorded = st.session_state.setdefault("toy_recorded", set())
with st.spinner(f"Training {2 * seeds} networks…"):
    if cfg in recorded:
        result = run_toy(cfg)
    else:  # once per session and setting (also when another session's run is reused), as running before it trains
        with ui.recording("toy", contract.record(cfg)) as rec:
            result = rec["result"] = run_toy(cfg)
        recorded.add(cfg)

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
