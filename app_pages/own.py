from dataclasses import asdict

import streamlit as st

from app_pages import ui
from tl_core import backbones, export, finetune, freeze, plots, userdata

S = st.session_state
IMAGE_TYPES = sorted(s.lstrip(".") for s in userdata.IMAGE_SUFFIXES)
# The training settings are bound to the URL (a link reproduces them) and kept for the session by
# Streamlit itself (persist_state), each widget with its real default so that a link leaves out only
# what equals the default.
SETTING = {"bind": ui.URL, "persist_state": "session"}
# Streamlit drops a widget's value once its page is left. `keep` holds the class renames and drops,
# updated by each widget's on_change, and hands them back to the widgets at every run.
keep = S.setdefault("own_keep", {"own_model_source": "trained here"})
for k, v in keep.items():
    S[k] = v


def kept(key: str, default=None) -> dict:
    """Widget arguments that keep `key`'s value across page switches."""
    if key not in keep:
        keep[key] = S[key] = default

    def changed():
        keep[key] = S[key]
    return {"key": key, "on_change": changed}


def new_backbone():  # a new backbone starts at feature extraction: all of its own stages but the head frozen
    S["own_freeze"] = len(backbones.stage_names(S["own_backbone"])) - 1


def add_files(imgs, class_name, files):
    """Add uploaded/webcam files to a class once each (a widget keeps returning its last file)."""
    seen = S.setdefault("own_seen", set())
    for f in files:
        if f is None or f.file_id in seen:
            continue
        seen.add(f.file_id)
        try:
            imgs = imgs.add_image(class_name, f.getvalue(), f.name)
        except ValueError as err:
            st.warning(f"{f.name} was not added: {err}")
    S["own_data"] = imgs
    return imgs


st.title("Your own images")
link = ui.LinkSettings("own_")
st.markdown("Collect a few images per class (a zip of class folders, your webcam, or single uploads), fine-tune a "
            "pretrained backbone on them, try it on new images, and export it. Images stay in this browser "
            "session only; nothing is written to disk.")
imgs = S["own_data"] if "own_data" in S else userdata.UserImages.empty()
gen = S.setdefault("own_gen", 0)  # bumped when a new zip replaces the set, so per-class widgets start fresh

zip_tab, cam_tab = st.tabs(["Upload a zip of class folders", "Webcam or single images"])
with zip_tab:
    st.caption(f"{userdata.LAYOUT} Limits: {userdata.limits_text()}. A new zip replaces the images collected so far.")
    up = st.file_uploader("Zip of class folders", type=["zip"], key="own_zip")
    if up is not None and S.get("own_zip_id") != up.file_id:
        S["own_zip_id"], S["own_zip_error"] = up.file_id, None
        try:
            imgs = S["own_data"] = userdata.read_zip(up.getvalue(), up.name)
            S["own_gen"] = gen = gen + 1
        except ValueError as err:
            S["own_zip_error"] = str(err)
    if S.get("own_zip_error"):
        st.error(S["own_zip_error"])
with cam_tab:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    new_class = left.text_input("New class name", key="own_new_class", placeholder="e.g. thumbs up")
    if right.button("Add class", key="own_add_class"):
        try:
            imgs = S["own_data"] = imgs.add_class(new_class)
        except ValueError as err:
            st.error(str(err))
    for i, c in enumerate(imgs.classes):
        with st.expander(f"Add to **{c}** ({imgs.counts()[c]} images)", expanded=i == len(imgs.classes) - 1):
            shot = st.camera_input(f"Take a shot of {c}", key=f"own_cam_{gen}_{i}")
            files = st.file_uploader(f"Or upload images of {c}", type=IMAGE_TYPES, accept_multiple_files=True,
                                     key=f"own_add_{gen}_{i}")
            imgs = add_files(imgs, c, [shot, *(files or [])])

if not imgs.classes:
    st.info("Upload a zip, or add classes and shots in the webcam tab, to begin.")
    st.stop()

st.subheader(f"Your classes: {len(imgs)} images from {imgs.source}")
renames, drops = {}, []
for i, (c, n) in enumerate(imgs.counts().items()):
    thumbs, name_col, drop_col = st.columns([6, 2, 1], vertical_alignment="center")
    shown = imgs.of_class(c)[:10]
    if n:
        thumbs.image([t.permute(1, 2, 0).numpy() for t in shown], width=72,
                     caption=[""] * len(shown) if n <= 10 else [""] * 9 + [f"+{n - 10} more"])
    else:
        thumbs.caption("no images yet")
    renames[c] = name_col.text_input(f"{n} images · class name", **kept(f"own_rename_{gen}_{i}", c))
    if drop_col.checkbox("drop", **kept(f"own_drop_{gen}_{i}", False)):
        drops.append(c)
try:
    ready = imgs.edited(renames, drops)
except ValueError as err:
    st.error(str(err))
    st.stop()
if imgs.skipped:
    with st.expander(f"{len(imgs.skipped)} file(s) skipped: see why"):
        st.table([{"file": s.name, "reason": s.reason} for s in imgs.skipped])

with st.sidebar:
    st.header("Training settings")
    name = st.selectbox("Backbone", list(backbones.REGISTRY), key="own_backbone", on_change=new_backbone, **SETTING)
    available, note = backbones.weights_status(name)
    (st.caption if available else st.warning)(f"**{backbones.REGISTRY[name].title}**. " +
                                              ("Weights: " if available else "No pretrained weights: ") + note)
    weights = st.radio("Weights", ["pretrained", "both", "scratch"] if available else ["scratch"], key="own_weights",
                       horizontal=True, **SETTING)
    n_stages = len(backbones.stage_names(name))
    if S.get("own_freeze", 0) > n_stages - 1:  # kept from a deeper backbone (a link, the back button)
        S["own_freeze"] = n_stages - 1
    k = st.slider("Frozen stages", 0, n_stages - 1, n_stages - 1, key="own_freeze", **SETTING,
                  help=f"{n_stages - 1} = feature extraction (only the head trains); 0 = full fine-tuning")
    strategy = st.radio("Strategy", list(freeze.STRATEGIES), key="own_strategy", **SETTING)
    epochs = st.slider("Epochs", 1, 100, 15, key="own_epochs", **SETTING)
    lr = st.select_slider("Learning rate (Adam)", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], 3e-3, key="own_lr", **SETTING)
    size = st.select_slider("Image size (px)", [32, 48, 64, 96, 128], 64, key="own_size", **SETTING)
    seeds = st.slider("Seeds (each a different validation split)", 1, 5, 3, key="own_seeds", **SETTING)
    val_fraction = st.slider("Validation share per class", 0.05, 0.5, 0.15, step=0.05, key="own_val", format="%.2f",
                             **SETTING)
link.report()

problems, warnings = ready.problems(), ready.warnings(val_fraction)
for p in problems:
    st.error(p)
if warnings:
    st.warning("\n".join(f"- {w}" for w in warnings))
st.download_button("Download these images as a zip (re-upload it later)", ready.to_zip, file_name="my_classes.zip",
                   mime="application/zip", key="own_download_data", on_click="ignore")

cfg = finetune.FinetuneConfig(backbone=name, weights=weights, dataset=f"own: {ready.source}", shots=None,
                              freeze=str(k), strategy=strategy, epochs=epochs, lr=lr, image_size=size, seeds=seeds,
                              val_fraction=val_fraction)
results = S.setdefault("own_results", {})
key = (ready.fingerprint, tuple(ready.classes), cfg)
if st.button("Train", type="primary", key="own_train", disabled=bool(problems) or key in results):
    bar = st.progress(0.0, text="Preparing images and backbone…")
    try:
        with ui.recording("own", {**asdict(cfg), "classes": list(ready.classes), "images": len(ready)}) as rec:
            results[key] = finetune.run(cfg, progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
                                        dataset=ready.to_imageset(size))
            rec["result"] = results[key].to_json()
        S["own_last"] = key
    except ValueError as err:
        st.error(str(err))
    bar.empty()

result = results.get(key) or results.get(S.get("own_last"))
if result is not None:
    if key not in results:
        st.info("Showing your last trained model: the images or settings changed since. Press **Train** to update.")
    st.info(finetune.verdict(result)[1])
    st.caption(f"{result.device} · {result.seconds:.1f} s · frozen: {', '.join(result.stage_names[:result.frozen]) or 'none'}"
               f" · {result.weights_note} · validation: {result.config.val_fraction:.0%} of each class, a new split per seed")
    n_val = result.runs[0].confusion.sum(1)
    if n_val.min() < 5:
        st.warning(f"Only {int(n_val.sum())} validation images ({', '.join(f'{c}: {int(n)}' for c, n in zip(result.classes, n_val))}"
                   f"): one image is {1 / max(int(n_val[n_val > 0].min()), 1):.0%} of a class's accuracy, so read the "
                   f"seeds' band, not one number. More images per class give a steadier measure.")
    ui.chart(plots.finetune_curves(result), "own_curves")
    left, right = st.columns(2)
    ui.chart(plots.per_class_accuracy(result), "own_per_class", left)
    first = result.runs[0]
    ui.chart(plots.confusion(first.confusion, result.classes, f"Confusion matrix ({first.weights}, seed "
                             f"{first.seed}, validation set)"), "own_confusion", right)

st.subheader("Predict and export")
source = st.radio("Model", ["trained here", "imported"], **kept("own_model_source"), horizontal=True)
clf = None
if source == "imported":
    up = st.file_uploader("Exported model (.zip with model.pt and model.json)", type=["zip"], key="own_import")
    if up is not None:
        try:
            clf = S["own_imported"] = (S["own_imported"] if S.get("own_imported_id") == up.file_id
                                       else export.from_zip(up.getvalue(), up.name))
            S["own_imported_id"] = up.file_id
            st.caption(f"Imported {clf.meta['backbone']} for {', '.join(clf.classes)} at {clf.image_size} px.")
        except ValueError as err:
            st.error(str(err))
elif result is not None:
    clf = S.setdefault("own_classifiers", {}).get(id(result)) or export.from_result(result)
    S["own_classifiers"] = {id(result): clf}
    st.download_button("Download the model (.zip: model.pt state_dict, model.json, predict.py)",
                       lambda: export.to_zip(clf), file_name="transfer_lab_model.zip", mime="application/zip",
                       key="own_export", on_click="ignore")
    with st.expander("How to use the exported model in Python"):
        st.code(export.SNIPPET, language="python")
if clf is None:
    st.info("Train a model above, or import one, to classify new images.")
    st.stop()
file_tab, shot_tab = st.tabs(["Upload an image", "Webcam"])
image = file_tab.file_uploader("An image to classify", type=IMAGE_TYPES, key="own_predict_file")
shot = shot_tab.camera_input("Take a photo to classify", key="own_predict_cam")
for f in (image, shot):
    if f is None:
        continue
    try:
        top = clf.topk(f.getvalue(), k=min(5, len(clf.classes)))
    except ValueError as err:
        st.error(f"{f.name}: {err}")
        continue
    pic, chart = st.columns([1, 3])
    pic.image(f.getvalue(), caption=f.name, width=220)
    ui.chart(plots.topk_bars(top, f"Prediction: {top[0][0]} ({top[0][1]:.0%})"), f"own_top_{f.file_id}", chart)
