from dataclasses import asdict

import streamlit as st

from app_pages import ui
from tl_core import backbones, data, finetune, freeze, plots

SHOTS = {"1": 1, "2": 2, "5": 5, "10": 10, "20": 20, "all": None}


def remembered(key: str) -> dict:
    return st.session_state.setdefault(key, {})


st.title("Fine-tuning lab")
link = ui.LinkSettings("ft_")
st.markdown("Take a pretrained backbone (ImageNet, or Transfer Lab's own shapes CNN), freeze its first stages, train on a *few* images "
            "per class, and compare with the same network from scratch. Frozen stages run once: their "
            "features are cached, so only the trainable rest costs time per epoch.")

with st.sidebar:
    st.header("Lab settings")
    name = st.selectbox("Backbone", list(backbones.REGISTRY), key="ft_backbone", bind=ui.URL)
    available, note = backbones.weights_status(name)
    (st.caption if available else st.warning)(f"**{backbones.REGISTRY[name].title}**. " +
                                              ("Weights: " if available else "No pretrained weights: ") + note)
    weights = st.radio("Weights", ["both", "pretrained", "scratch"] if available else ["scratch"], key="ft_weights", bind=ui.URL,
                       horizontal=True)
    dataset = st.selectbox("Dataset", list(data.DATASETS), key="ft_dataset", bind=ui.URL, help="\n".join(
        f"- **{k}**: {v}" for k, v in data.DATASETS.items()))
    shots = SHOTS[st.select_slider("Training images per class", list(SHOTS), value="5", key="ft_shots", bind=ui.URL)]
    n = len(backbones.stage_names(name))
    k = st.slider("Frozen stages", 0, n - 1, n - 1, key="ft_freeze", bind=ui.URL,
                  help=f"{n - 1} = feature extraction (only the head trains); 0 = full fine-tuning")
    strategy = st.radio("Strategy", list(freeze.STRATEGIES), key="ft_strategy", bind=ui.URL,
                        captions=list(freeze.STRATEGIES.values()))
    epochs = st.slider("Epochs", 1, 100, 15, key="ft_epochs", bind=ui.URL)
    lr = st.select_slider("Learning rate (Adam)", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], value=3e-3, key="ft_lr", bind=ui.URL)
    size = st.select_slider("Image size (px)", [32, 48, 64, 96, 128, 224], value=64, key="ft_size", bind=ui.URL)
    seeds = st.slider("Seeds (for the band)", 1, 5, 3, key="ft_seeds", bind=ui.URL)
    st.caption("Scratch = the same network from random weights, every stage trained: the slow part on a CPU.")

link.report()
cfg = finetune.FinetuneConfig(backbone=name, weights=weights, dataset=dataset, shots=shots, freeze=str(k),
                              strategy=strategy, epochs=epochs, lr=lr, image_size=size, seeds=seeds)
results = remembered("ft_results")
if ui.stop_button("ft", "Train", "ft_train", disabled=cfg in results):
    result = ui.train("ft", "finetune", asdict(cfg), "Preparing data and backbone…",
                      lambda progress: finetune.run(cfg, progress=progress))
    if result is not None:
        results[cfg] = result

result = results.get(cfg)
if result is None:
    st.info("Set up a run in the sidebar and press **Train**. Runs already trained with the same settings are shown "
            "at once.")
    st.stop()
kind, sentence = finetune.verdict(result)
{"helped": st.success, "hurt": st.error}.get(kind, st.info)(sentence)
st.caption(f"{result.device} · {result.seconds:.1f} s · frozen: {', '.join(result.stage_names[:result.frozen]) or 'none'}"
           f" · trainable: {', '.join(result.stage_names[result.frozen:])} · {result.weights_note}")
ui.chart(plots.finetune_curves(result), "ft_curves")
left, right = st.columns(2)
first = result.runs[0]
ui.chart(plots.confusion(first.confusion, result.classes, f"Confusion matrix ({first.weights}, seed "
                          f"{first.seed}, validation set)"), "ft_confusion", left)
wrong = [i for i, (t, p) in enumerate(zip(result.val.labels.tolist(), first.val_pred)) if t != p][:8]
if wrong:
    ui.chart(plots.image_grid(result.val.images[wrong], [f"{result.classes[result.val.labels[i]]} → "
                                        f"{result.classes[first.val_pred[i]]}" for i in wrong],
                                        "Misclassified (true → predicted)", columns=4), "ft_wrong", right)

st.subheader("Shots sweep and freeze-depth × shots")
sweep_shots = st.multiselect("Shots per class", list(SHOTS), default=["1", "5", "20"], key="ft_sweep_shots", bind=ui.URL)
sweep_freezes = st.multiselect("Frozen stages", [str(i) for i in range(n - 1, -1, -1)],
                               default=[str(n - 1), str(max(0, n - 3))], key="ft_sweep_freezes", bind=ui.URL)
sweeps = remembered("ft_sweeps")
sweep_key = (cfg, tuple(sweep_shots), tuple(sweep_freezes))
if st.button("Run sweep", key="ft_sweep", disabled=sweep_key in sweeps or not sweep_shots or not sweep_freezes):
    bar = st.progress(0.0, text="Sweeping…")
    try:
        with ui.recording("sweep", {**asdict(cfg), "sweep_shots": sweep_shots, "sweep_freezes": sweep_freezes}) as rec:
            sweeps[sweep_key] = finetune.sweep(cfg, [SHOTS[s] for s in sweep_shots], sweep_freezes,
                                               progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
            rec["result"] = sweeps[sweep_key].to_json()
    except ValueError as err:
        st.error(str(err))
    bar.empty()
if sweep_key in sweeps:
    sw = sweeps[sweep_key]
    ui.chart(plots.shots_sweep(sw, sweep_freezes[0]), "ft_shots_plot")
    if "pretrained" in cfg.conditions():
        ui.chart(plots.freeze_shots_heatmap(sw, "pretrained", result.stage_names), "ft_heat")
    st.caption(f"{len(sw.records)} runs in {sw.seconds:.1f} s on {sw.device}.")
