import streamlit as st

from app_pages import collect, kit, ui
from tl_core import backbones, export, finetuning, i18n
from tl_core.experiments import finetune
from tl_core.i18n import N_, tr
from tl_core.plots import finetune as figures

S = st.session_state
# The training settings are bound to the URL (a link reproduces them) and kept for the session by
# Streamlit itself (persist_state), each widget with its real default so that a link leaves out only
# what equals the default.
SETTING = {"bind": ui.URL, "persist_state": "session"}
collect.restore()


def new_backbone():  # a new backbone starts at feature extraction: all of its own stages but the head frozen
    S["own_freeze"] = len(backbones.stage_names(S["own_backbone"])) - 1


link = ui.page(tr("Your own images"), "own_",
               tr("Collect a few images per class (a zip of class folders, your webcam, or single uploads), fine-tune "
                  "a pretrained backbone on them, try it on new images, and export it. Your images and the model "
                  "trained on them stay in this server's memory for your browser session only: they are never "
                  "written to disk. The run history keeps each run's settings, class names and scores (no images, "
                  "no weights); on a shared server only you see those runs."))
imgs, ready = collect.images()

with st.sidebar:
    st.header(tr("Training settings"))
    name = st.selectbox(tr("Backbone"), backbones.IMAGE, key="own_backbone", on_change=new_backbone, **SETTING)
    available, note = backbones.weights_status(name)
    title = backbones.REGISTRY[name].title
    if available:
        st.caption(tr("**{title}**. Weights: {note}", title=title, note=note))
    else:
        st.warning(tr("**{title}**. No pretrained weights: {note}", title=title, note=note))
    weights = st.radio(tr("Weights"), list(finetuning.WEIGHT_CHOICES) if available else ["scratch"], key="own_weights",
                       horizontal=True, **SETTING)
    n_stages = len(backbones.stage_names(name))
    if S.get("own_freeze", 0) > n_stages - 1:  # kept from a deeper backbone (a link, the back button)
        S["own_freeze"] = n_stages - 1
    k = st.slider(tr("Frozen stages"), 0, n_stages - 1, n_stages - 1, key="own_freeze", **SETTING,
                  help=tr("{n} = feature extraction (only the head trains); 0 = full fine-tuning", n=n_stages - 1))
    strategy = st.radio(tr("Strategy"), list(finetuning.STRATEGIES), key="own_strategy", **SETTING)
    epochs = st.slider(tr("Epochs"), 1, 100, 15, key="own_epochs", **SETTING)
    lr = st.select_slider(tr("Learning rate (Adam)"), [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], 3e-3, key="own_lr", **SETTING)
    size = st.select_slider(tr("Image size (px)"), [32, 48, 64, 96, 128], 64, key="own_size", **SETTING)
    seeds = st.slider(tr("Seeds (each a different validation split)"), 1, 5, 3, key="own_seeds", **SETTING)
    val_fraction = st.slider(tr("Validation share per class"), 0.05, 0.5, 0.15, step=0.05, key="own_val",
                             format="%.2f", **SETTING)
    augment = ui.widget(finetune.FinetuneConfig, "augment", "own_", st, persist_state="session")
    kit.model_card(name, size)
link.report()

problems, warnings = ready.problems(), ready.warnings(val_fraction)
for p in problems:
    st.error(p)
if warnings:
    st.warning("\n".join(f"- {w}" for w in warnings))
st.download_button(tr("Download these images as a zip (re-upload it later)"), ready.to_zip,
                   file_name="my_classes.zip", mime="application/zip", key="own_download_data", on_click="ignore")

cfg = finetune.FinetuneConfig(backbone=name, weights=weights, dataset=f"own: {ready.source}", shots=None,
                              freeze=str(k), strategy=strategy, epochs=epochs, lr=lr, image_size=size, seeds=seeds,
                              val_fraction=val_fraction, augment=augment)
results, key = S.setdefault("own_results", {}), (ready.fingerprint, tuple(ready.classes), cfg)
if not problems:   # with augmentation on: how much slower (measured here), a preview grid
    kit.augmentation(cfg, "own_aug", lambda: ready.to_imageset(size), ready.fingerprint)
if ui.run_button("own", tr("Train"), "own", cfg, results=results, key=key,
                 inputs={"dataset": (ready.fingerprint, ready.to_bytes)}, button_key="own_train",
                 start=N_("Preparing images and backbone…"), disabled=bool(problems)) is not None:
    S["own_last"] = key
result = results.get(key) or results.get(S.get("own_last"))
if result is not None:
    if key not in results:
        st.info(tr("Showing your last trained model: the images or settings changed since. Press **Train** to "
                   "update."))
    ui.verdict(result.verdict())
    kit.own_run_note(result)   # where and how it trained; a warning when the validation images are few
    out = result.to_json()
    ui.chart(figures.curves(out), "own_curves")
    kit.augment_compare(result, results, key if key in results else S.get("own_last"), "own_aug_compare")
    left, right = st.columns(2)
    ui.chart(figures.per_class_accuracy(out), "own_per_class", left)
    ui.chart(figures.first_confusion(out), "own_confusion", right)

st.subheader(tr("Predict and export"))
models = {k: tr(k) for k in (N_("trained here"), N_("imported"))}   # keys (kept across pages), shown in words
source = st.radio(tr("Model"), list(models), **collect.kept("own_model_source"), horizontal=True,
                  format_func=models.get)
clf = None
if source == "imported":
    up = st.file_uploader(tr("Exported model (.zip with model.pt and model.json)"), type=["zip"], key="own_import")
    if up is not None:
        try:
            clf = S["own_imported"] = (S["own_imported"] if S.get("own_imported_id") == up.file_id
                                       else export.from_zip(up.getvalue(), up.name))
            S["own_imported_id"] = up.file_id
            st.caption(tr("Imported {backbone} for {classes} at {size} px.", backbone=clf.meta["backbone"],
                          classes=", ".join(clf.classes), size=clf.image_size))
        except ValueError as err:
            st.error(str(err))
elif result is not None:
    clf = S.setdefault("own_classifiers", {}).get(id(result)) or export.from_result(result)
    S["own_classifiers"] = {id(result): clf}
    kit.download_model(result, "own_export", tr("Download the model"), clf)   # with model.onnx, parity-checked
    with st.expander(tr("How to use the exported model in Python")):
        st.code(export.SNIPPET, language="python")
if clf is None:
    st.info(tr("Train a model above, or import one, to classify new images."))
    st.stop()
file_tab, shot_tab = st.tabs([tr("Upload an image"), tr("Webcam")])
image = file_tab.file_uploader(tr("An image to classify"), type=collect.IMAGE_TYPES, key="own_predict_file")
shot = shot_tab.camera_input(tr("Take a photo to classify"), key="own_predict_cam")
for f in (x for x in (image, shot) if x is not None):
    try:
        top = clf.topk(f.getvalue(), k=min(5, len(clf.classes)))
    except ValueError as err:
        st.error(f"{f.name}: {err}")
        continue
    pic, chart = st.columns([1, 3])
    pic.image(f.getvalue(), caption=f.name, width=220)
    ui.chart(figures.topk_bars(top, tr("Prediction: {name} ({p})", name=top[0][0], p=i18n.percent(top[0][1], 0))),
             f"own_top_{f.file_id}", chart)
