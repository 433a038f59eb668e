"""Collecting a user's images per class: a zip of class folders, webcam shots or single uploads, with
classes renamed or dropped. A widget group of the "Your own images" page (not a page: app.py does not
list it), kept apart so the page stays a short script."""
import streamlit as st

from tl_core import safeio, userdata
from tl_core.i18n import tr

S = st.session_state
IMAGE_TYPES = sorted(s.lstrip(".") for s in userdata.IMAGE_SUFFIXES)


def restore() -> None:
    """Streamlit drops a widget's value once its page is left. `own_keep` holds the class renames and
    drops (and the model source), updated by each widget's on_change; hand them back at every run."""
    for k, v in S.setdefault("own_keep", {"own_model_source": "trained here"}).items():
        S[k] = v


def kept(key: str, default=None) -> dict:
    """Widget arguments that keep `key`'s value across page switches."""
    keep = S["own_keep"]
    if key not in keep:
        keep[key] = S[key] = default

    def changed():
        S["own_keep"][key] = S[key]
    return {"key": key, "on_change": changed}


def add_files(imgs, class_name, files):
    """Add uploaded/webcam files to a class once each (a widget keeps returning its last file). One batch shares an
    upload's budget (pixels decoded, seconds), as a zip does: past it, the rest are not added, with one line."""
    seen = S.setdefault("own_seen", set())
    budget, spent, left = userdata.upload_budget(), None, 0
    for f in files:
        if f is None or f.file_id in seen:
            continue
        seen.add(f.file_id)
        if spent is not None:
            left += 1
            continue
        try:
            imgs = imgs.add_image(class_name, f.getvalue(), f.name, budget=budget)
        except safeio.BudgetSpent as err:
            spent, left = err, 1
        except ValueError as err:
            st.warning(tr("{file} was not added: {err}", file=f.name, err=err))
    if spent is not None:
        st.warning(tr("{n} file not added: {why}; upload it again to add it.", n=left, why=spent) if left == 1 else
                   tr("{n} files not added: {why}; upload them again to add them.", n=left, why=spent))
    S["own_data"] = imgs
    return imgs


def add_set(imgs: userdata.UserImages, new: userdata.UserImages) -> userdata.UserImages:
    """An uploaded set added to the images collected so far (`UserImages.merged`: nothing collected is dropped).
    Kept for the next runs as numbers (`own_added`), said in the page's language where shown."""
    merged = S["own_data"] = imgs.merged(new)
    S["own_added"] = ((len(merged) - len(imgs), new.source, len(imgs), len(merged), len(merged.classes))
                      if len(imgs) else None)
    return merged


def _added(added, source, before, total, classes) -> str:
    return tr("Added {added} images from {source} to the {before} collected: {total} in {classes} classes.",
              added=added, source=source, before=before, total=total, classes=classes)


def _zip_error(err: str, kept: int) -> str:
    return tr("{err} The {n} images collected so far are kept.", err=err, n=kept) if kept else err


def images() -> tuple[userdata.UserImages, userdata.UserImages]:
    """(collected, ready): every image collected so far, and the set to train on after renames and drops.
    Stops the page while there is nothing to train on."""
    imgs = S["own_data"] if "own_data" in S else userdata.UserImages.empty()
    gen = S.setdefault("own_gen", 0)  # bumped when a new zip replaces the set, so per-class widgets start fresh

    zip_tab, cam_tab = st.tabs([tr("Upload a zip of class folders"), tr("Webcam or single images")])
    with zip_tab:
        st.caption(tr("{layout} Limits: {limits}. A zip adds its images to those collected so far (a class of the "
                      "same name gets them); **Start over** clears them.", layout=tr(userdata.LAYOUT),
                      limits=userdata.limits_text()))
        up = st.file_uploader(tr("Zip of class folders"), type=["zip"], key="own_zip")
        if up is not None and S.get("own_zip_id") != up.file_id:
            S["own_zip_id"], S["own_zip_error"] = up.file_id, None
            try:   # a zip that cannot be read, or one class alone, never costs the images collected so far
                imgs = add_set(imgs, userdata.read_zip(up.getvalue(), up.name))
            except ValueError as err:   # kept as the error and the count, said in the page's language where shown
                S["own_zip_error"] = (f"{err}", len(imgs))
        if S.get("own_zip_error") and _zip_error(*S["own_zip_error"]):
            st.error(_zip_error(*S["own_zip_error"]))
        left, right = st.columns(2)
        if left.button(tr("Try a sample set"), key="own_sample", icon=":material/photo_library:",
                       help=tr("No photos yet? 40 photos that ship with scikit-image (astronaut, cat, coffee, rocket: "
                               "10 crops each), read as an uploaded zip is; added to the images collected so far.")):
            S["own_zip_error"] = None
            imgs = add_set(imgs, userdata.sample_set())   # userdata.read_zip of a zip built in memory
        if imgs.classes and right.button(tr("Start over"), key="own_clear", icon=":material/delete:",
                                         help=tr("clear every image and class collected so far")):
            imgs = S["own_data"] = userdata.UserImages.empty()
            S["own_zip_error"] = S["own_added"] = None
            S["own_gen"], gen = gen + 1, gen + 1   # the per-class widgets start fresh
        if S.get("own_added"):
            st.success(_added(*S["own_added"]))
    with cam_tab:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        new_class = left.text_input(tr("New class name"), key="own_new_class", placeholder=tr("e.g. thumbs up"))
        if right.button(tr("Add class"), key="own_add_class"):
            try:
                imgs = S["own_data"] = imgs.add_class(new_class)
            except ValueError as err:
                st.error(str(err))
        for i, c in enumerate(imgs.classes):
            with st.expander(tr("Add to **{name}** ({n} images)", name=c, n=imgs.counts()[c]),
                             expanded=i == len(imgs.classes) - 1):
                shot = st.camera_input(tr("Take a shot of {name}", name=c), key=f"own_cam_{gen}_{i}")
                files = st.file_uploader(tr("Or upload images of {name}", name=c), type=IMAGE_TYPES,
                                         accept_multiple_files=True, key=f"own_add_{gen}_{i}")
                imgs = add_files(imgs, c, [shot, *(files or [])])

    if not imgs.classes:
        st.info(tr("Upload a zip, or add classes and shots in the webcam tab, to begin."))
        st.stop()

    st.subheader(tr("Your classes: {n} images from {source}", n=len(imgs), source=imgs.source))
    renames, drops = {}, []
    for i, (c, n) in enumerate(imgs.counts().items()):
        thumbs, name_col, drop_col = st.columns([6, 2, 1], vertical_alignment="center")
        shown = imgs.of_class(c)[:10]
        if n:
            thumbs.image([t.permute(1, 2, 0).numpy() for t in shown], width=72,
                         caption=[""] * len(shown) if n <= 10 else [""] * 9 + [tr("+{n} more", n=n - 10)])
        else:
            thumbs.caption(tr("no images yet"))
        renames[c] = name_col.text_input(tr("{n} images · class name", n=n), **kept(f"own_rename_{gen}_{i}", c))
        if drop_col.checkbox(tr("drop"), **kept(f"own_drop_{gen}_{i}", False)):
            drops.append(c)
    try:
        ready = imgs.edited(renames, drops)
    except ValueError as err:
        st.error(str(err))
        st.stop()
    if imgs.skipped:
        with st.expander(tr("{n} file(s) skipped: see why", n=len(imgs.skipped))):
            st.table([{tr("file"): s.name, tr("reason"): s.reason} for s in imgs.skipped])
    return imgs, ready
