import streamlit as st

from app_pages import ui
from tl_core import backbones, contract, data, engine, plots
from tl_core.experiments import finetune

SHOTS = {"1": 1, "2": 2, "5": 5, "10": 10, "20": 20, "all": None}
F = finetune.FinetuneConfig
D = F()  # the page starts from the config's defaults: a link names only what differs, as CLI flags do

link = ui.page("Fine-tuning lab", "ft_",
               "Take a pretrained backbone (ImageNet, or Transfer Lab's own shapes CNN), freeze its first stages, train on a *few* images "
               "per class, and compare with the same network from scratch. Frozen stages run once: their "
               "features are cached, so only the trainable rest costs time per epoch.", settings="Lab settings")

with st.sidebar:
    name = st.selectbox("Backbone", backbones.IMAGE, key="ft_backbone", bind=ui.URL)
    available, note = backbones.weights_status(name)
    (st.caption if available else st.warning)(f"**{backbones.REGISTRY[name].title}**. " +
                                              ("Weights: " if available else "No pretrained weights: ") + note)
    weights = st.radio("Weights", list(finetune.WEIGHT_CHOICES) if available else ["scratch"], key="ft_weights", bind=ui.URL,
                       horizontal=True, help=contract.spec(F, "weights").help)
    dataset = st.selectbox("Dataset", list(data.DATASETS), key="ft_dataset", bind=ui.URL, help="\n".join(
        f"- **{k}**: {v}" for k, v in data.DATASETS.items()))
    shots = SHOTS[st.select_slider("Training images per class", list(SHOTS), value=contract.ALL if D.shots is None else str(D.shots), key="ft_shots", bind=ui.URL)]
    n = len(backbones.stage_names(name))
    k = st.slider("Frozen stages", 0, n - 1, n - 1, key="ft_freeze", bind=ui.URL,
                  help=f"{n - 1} = feature extraction (only the head trains); 0 = full fine-tuning")
    strategy = st.radio("Strategy", list(finetune.STRATEGIES), key="ft_strategy", bind=ui.URL,
                        captions=list(finetune.STRATEGIES.values()))
    epochs = st.slider("Epochs", 1, 100, D.epochs, key="ft_epochs", bind=ui.URL, help=contract.spec(F, "epochs").help)
    lr = st.select_slider("Learning rate (Adam)", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], value=D.lr, key="ft_lr", bind=ui.URL)
    size = st.select_slider("Image size (px)", [32, 48, 64, 96, 128, 224], value=D.image_size, key="ft_size", bind=ui.URL,
                            help=contract.spec(F, "image_size").help)
    seeds = st.slider("Seeds (for the band)", 1, 5, D.seeds, key="ft_seeds", bind=ui.URL, help=contract.spec(F, "seeds").help)
    st.caption("Scratch = the same network from random weights, every stage trained: the slow part on a CPU.")

link.report()
cfg = F(backbone=name, weights=weights, dataset=dataset, shots=shots, freeze=str(k), strategy=strategy, epochs=epochs,
        lr=lr, image_size=size, seeds=seeds)
result = ui.run_button("ft", "Train", "finetune", cfg, lambda progress, stop: finetune.run(
    cfg, progress=progress, should_stop=stop), results=st.session_state.setdefault("ft_results", {}),
    button_key="ft_train", start="Preparing data and backbone…")
if result is None:
    st.info("Set up a run in the sidebar and press **Train**. Runs already trained with the same settings are shown "
            "at once.")
    st.stop()
ui.verdict(result.verdict())
st.caption(f"{result.device} · {result.seconds:.1f} s · frozen: {', '.join(result.stage_names[:result.frozen]) or 'none'}"
           f" · trainable: {', '.join(result.stage_names[result.frozen:])} · {result.weights_note}")
ui.chart(plots.finetune_curves(result), "ft_curves")
left, right = st.columns(2)
first = result.runs[0]
ui.chart(plots.confusion(first.confusion, result.classes, f"Confusion matrix ({first.weights}, seed "
                          f"{first.seed}, validation set)"), "ft_confusion", left)
if (fig := plots.misclassified(result)) is not None:
    ui.chart(fig, "ft_wrong", right)

st.subheader("Shots sweep and freeze-depth × shots")
sweep_shots = st.multiselect("Shots per class", list(SHOTS), default=["1", "5", "20"], key="ft_sweep_shots", bind=ui.URL)
sweep_freezes = st.multiselect("Frozen stages", [str(i) for i in range(n - 1, -1, -1)],
                               default=[str(n - 1), str(max(0, n - 3))], key="ft_sweep_freezes", bind=ui.URL)
link.report()  # again: the sweep's settings are drawn only once the lab has a result
sweep_engine, sweep_address = engine.app_engine()   # a Ray cluster when TL_RAY_ADDRESS is set
st.caption(f"The sweep runs on **{engine.describe(sweep_engine, sweep_address)}**.")
sweep_cfg = finetune.SweepConfig(**{**contract.record(cfg), "classes": (), "shots": tuple(SHOTS[s] for s in sweep_shots),
                                    "freezes": tuple(sweep_freezes), "engine": sweep_engine, "address": sweep_address})
sw = ui.run_button("ft_sweep", "Run sweep", "sweep", sweep_cfg, lambda progress, stop: finetune.sweep(
    sweep_cfg, progress=progress, should_stop=stop), results=st.session_state.setdefault("ft_sweeps", {}),
    button_key="ft_sweep", start="Sweeping…", disabled=not sweep_shots or not sweep_freezes)
if sw is not None:
    ui.verdict(sw.verdict())
    ui.chart(plots.shots_sweep(sw, sw.freezes[0]), "ft_shots_plot")
    if "pretrained" in cfg.conditions():
        ui.chart(plots.freeze_shots_heatmap(sw, "pretrained", result.stage_names), "ft_heat")
    st.caption(f"{len(sw.records)} runs in {sw.seconds:.1f} s on {sw.device}.")
