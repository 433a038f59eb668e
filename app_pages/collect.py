"""Collecting a user's images per class: a zip of class folders, webcam shots or single uploads, with
classes renamed or dropped. A widget group of the "Your own images" page (not a page: app.py does not
list it), kept apart so the page stays a short script."""
import streamlit as st

from tl_core import safeio, userdata

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
            st.warning(f"{f.name} was not added: {err}")
    if spent is not None:
        st.warning(f"{left} file{'s' * (left != 1)} not added: {spent}; upload {'them' if left != 1 else 'it'} again "
                   f"to add {'them' if left != 1 else 'it'}.")
    S["own_data"] = imgs
    return imgs


def add_set(imgs: userdata.UserImages, new: userdata.UserImages) -> userdata.UserImages:
    """An uploaded set added to the images collected so far (`UserImages.merged`: nothing collected is dropped)."""
    merged = S["own_data"] = imgs.merged(new)
    S["own_added"] = (f"Added {len(merged) - len(imgs)} images from {new.source} to the {len(imgs)} collected: "
                      f"{len(merged)} in {len(merged.classes)} classes." if len(imgs) else "")
    return merged


def images() -> tuple[userdata.UserImages, userdata.UserImages]:
    """(collected, ready): every image collected so far, and the set to train on after renames and drops.
    Stops the page while there is nothing to train on."""
    imgs = S["own_data"] if "own_data" in S else userdata.UserImages.empty()
    gen = S.setdefault("own_gen", 0)  # bumped when a new zip replaces the set, so per-class widgets start fresh

    zip_tab, cam_tab = st.tabs(["Upload a zip of class folders", "Webcam or single images"])
    with zip_tab:
        st.caption(f"{userdata.LAYOUT} Limits: {userdata.limits_text()}. "
                   "A zip adds its images to those collected so far (a class of the same name gets them); "
                   "**Start over** clears them.")
        up = st.file_uploader("Zip of class folders", type=["zip"], key="own_zip")
        if up is not None and S.get("own_zip_id") != up.file_id:
            S["own_zip_id"], S["own_zip_error"] = up.file_id, None
            try:   # a zip that cannot be read, or one class alone, never costs the images collected so far
                imgs = add_set(imgs, userdata.read_zip(up.getvalue(), up.name))
            except ValueError as err:
                S["own_zip_error"] = (f"{err}" + (f" The {len(imgs)} images collected so far are kept." if len(imgs)
                                                  else ""))
        if S.get("own_zip_error"):
            st.error(S["own_zip_error"])
        left, right = st.columns(2)
        if left.button("Try a sample set", key="own_sample", icon=":material/photo_library:",
                       help="No photos yet? 40 photos that ship with scikit-image (astronaut, cat, coffee, rocket: 10 "
                            "crops each), read as an uploaded zip is; added to the images collected so far."):
            S["own_zip_error"] = None
            imgs = add_set(imgs, userdata.sample_set())   # userdata.read_zip of a zip built in memory
        if imgs.classes and right.button("Start over", key="own_clear", icon=":material/delete:",
                                         help="clear every image and class collected so far"):
            imgs = S["own_data"] = userdata.UserImages.empty()
            S["own_zip_error"] = S["own_added"] = None
            S["own_gen"], gen = gen + 1, gen + 1   # the per-class widgets start fresh
        if S.get("own_added"):
            st.success(S["own_added"])
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
    return imgs, ready
