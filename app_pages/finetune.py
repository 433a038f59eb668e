import streamlit as st

from app_pages import kit, lr_view, ui
from tl_core import augment, backbones, contract, data, engine, finetuning, i18n
from tl_core.experiments import finetune
from tl_core.i18n import N_, tr
from tl_core.plots import finetune as figures

F = finetune.FinetuneConfig
D = F()  # the page starts from the config's defaults: a link names only what differs, as CLI flags do

link = ui.page(tr("Fine-tuning lab"), "ft_",
               tr("Take a pretrained backbone (ImageNet, or Transfer Lab's own shapes CNN), freeze its first stages, "
                  "train on a *few* images per class, and compare with the same network from scratch. Frozen stages "
                  "run once: their features are cached, so only the trainable rest costs time per epoch."),
               settings=tr("Lab settings"))

with st.sidebar:
    name = ui.widget(F, "backbone", "ft_")
    available, note = backbones.weights_status(name)
    title = backbones.REGISTRY[name].title
    if available:
        st.caption(tr("**{backbone}**. Weights: {note}", backbone=title, note=note))
    else:
        st.warning(tr("**{backbone}**. No pretrained weights: {note}", backbone=title, note=note))
    weights = ui.widget(F, "weights", "ft_", options=None if available else ["scratch"],
                        value=D.weights if available else "scratch")
    dataset = ui.widget(F, "dataset", "ft_", label=N_("Dataset"), options=list(data.DATASETS),
                        help="\n".join(f"- **{k}**: {tr(v)}" for k, v in data.DATASETS.items()))
    shots = ui.widget(F, "shots", "ft_")
    n = len(backbones.stage_names(name))
    k = st.slider(tr("Frozen stages"), 0, n - 1, n - 1, key="ft_freeze", bind=ui.URL,
                  help=tr("{all} = feature extraction (only the head trains); 0 = full fine-tuning", all=n - 1))
    picked = ui.widgets(F, ("strategy", "epochs", "lr", "image_size", "seeds", "augment"), "ft_",
                        strategy={"captions": [tr(c) for c in finetuning.STRATEGIES.values()]})
    st.caption(tr("Scratch = the same network from random weights, every stage trained: the slow part on a CPU."))
    kit.model_card(name, picked["image_size"])
more = ui.more_settings(F, ("classes", "val_per_class"), "ft_", classes={"options": data.class_names(dataset)})

link.report()
cfg = F(backbone=name, weights=weights, dataset=dataset, shots=shots, freeze=str(k), **picked, **more)
lr_view.finder(cfg)   # the learning-rate range test; "Use this rate" sets ft_lr
kit.augmentation(cfg, "ft_aug")   # with augmentation on: how much slower (measured here), a preview grid
result = ui.run_button("ft", tr("Train"), "finetune", cfg, results=st.session_state.setdefault("ft_results", {}),
                       button_key="ft_train", start=N_("Preparing data and backbone…"))
if result is None:
    st.info(tr("Set up a run in the sidebar and press **Train**. Runs already trained with the same settings are "
               "shown at once."))
    st.stop()
lang = i18n.language()   # what ui.once keeps of a shared result holds words: once per language
ui.verdict(ui.once(result, f"verdict {lang}", result.verdict))   # a result shared by a class: worked out once
frozen = ", ".join(result.stage_names[:result.frozen]) or tr("none")
st.caption(tr("{device} · {seconds} s · frozen: {frozen} · trainable: {trainable} · {weights} · augmentation: "
              "{augmentation}", device=result.device, seconds=i18n.number(result.seconds, 1), frozen=frozen,
              trainable=", ".join(result.stage_names[result.frozen:]), weights=result.weights_note,
              augmentation=augment.words(result.config.augment)))
kit.download_model(result, "ft_model")   # model.pt + model.onnx (parity-checked) + model.json + predict.py
out = ui.once(result, "json", result.to_json)
ui.chart(ui.once(result, f"curves {lang}", lambda: figures.curves(out)), "ft_curves")   # shared: drawn once
kit.augment_compare(result, st.session_state["ft_results"], cfg, "ft_aug_compare")   # with vs without augmentation
left, right = st.columns(2)
ui.chart(ui.once(result, f"confusion {lang}", lambda: figures.first_confusion(out)), "ft_confusion", left)
if (fig := ui.once(result, f"wrong {lang}", lambda: figures.misclassified(result))) is not None:
    ui.chart(fig, "ft_wrong", right)

st.subheader(tr("Shots sweep and freeze-depth × shots"))
S = finetune.SweepConfig
sweep_shots = ui.widget(S, "shots", "ft_sweep_", st, label=N_("Shots per class"),
                        options=contract.spec(F, "shots").steps, value=(1, 5, 20))
sweep_freezes = ui.widget(S, "freezes", "ft_sweep_", st, label=N_("Frozen stages"),
                          options=[str(i) for i in range(n - 1, -1, -1)], value=(str(n - 1), str(max(0, n - 3))))
link.report()  # again: the sweep's settings are drawn only once the lab has a result
sweep_engine, sweep_address = engine.app_engine()   # a Ray cluster when TL_RAY_ADDRESS is set
st.caption(tr("The sweep runs on **{engine}**.", engine=engine.describe(sweep_engine, sweep_address)))
sweep_cfg = S(**{**contract.record(cfg), "classes": cfg.classes, "augment": cfg.augment, "shots": sweep_shots,
                 "freezes": sweep_freezes, "engine": sweep_engine, "address": sweep_address})
sw = ui.run_button("ft_sweep", tr("Run sweep"), "sweep", sweep_cfg,
                   results=st.session_state.setdefault("ft_sweeps", {}),
                   button_key="ft_sweep", start=N_("Sweeping…"), disabled=not sweep_shots or not sweep_freezes)
if sw is not None:
    ui.verdict(sw.verdict())
    sw_out = sw.to_json()
    ui.chart(figures.shots_sweep(sw_out), "ft_shots_plot")
    if "pretrained" in cfg.conditions():
        ui.chart(figures.freeze_heatmap(sw_out), "ft_heat")
    st.caption(tr("{n} runs in {seconds} s on {device}.", n=len(sw.records), seconds=i18n.number(sw.seconds, 1),
                  device=sw.device))

from app_pages import cam_view  # noqa: E402, I001  (a confusion-matrix cell's images with Grad-CAM)
cam_view.show(result, "ft_cam")
