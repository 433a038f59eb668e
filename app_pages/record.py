"""Collecting a user's clips per class: recorded in the browser (`st.audio_input`) or a zip of class folders of
WAV/FLAC/OGG files, each through `tl_core.userclips` (the safe reader: size and duration budgets, one line for what
is refused). A widget group of the Machine listening page (not a page: app.py does not list it)."""
import streamlit as st

from app_pages import ui
from tl_core import audio_export, safeio, userclips
from tl_core.i18n import tr

S = st.session_state


def _add(clips, class_name: str, f, budget) -> userclips.UserClips:
    seen = S.setdefault("listen_seen", set())
    if f is None or f.file_id in seen:
        return clips
    seen.add(f.file_id)
    try:
        return clips.add_clip(class_name, f.getvalue(), f.name, budget)
    except (safeio.BudgetSpent, ValueError) as err:
        st.warning(tr("{clip} was not added: {error}", clip=f.name or tr("The recording"), error=err))
        return clips


def clips() -> userclips.UserClips | None:
    """The user's clips so far (None before any class exists); stored in the session only, never on disk."""
    got = S.get("listen_clips")
    if got is None:   # (not `or`: a set whose classes have no clips yet is empty, and falsy, but kept)
        got = userclips.UserClips()
    gen = S.setdefault("listen_gen", 0)
    rec_tab, zip_tab = st.tabs([tr("Record in the browser"), tr("Upload a zip of class folders")])
    with zip_tab:
        st.caption(tr("{layout} Limits: {limits}. A new zip replaces the clips so far.", layout=tr(userclips.LAYOUT),
                      limits=userclips.limits_text()))
        up = st.file_uploader(tr("Zip of class folders"), type=["zip"], key="listen_zip")
        if up is not None and S.get("listen_zip_id") != up.file_id:
            S["listen_zip_id"], S["listen_zip_error"] = up.file_id, None
            try:
                got = userclips.read_zip(up.getvalue(), up.name)
                S["listen_gen"] = gen = gen + 1
            except ValueError as err:
                S["listen_zip_error"] = str(err)
        if S.get("listen_zip_error"):
            st.error(S["listen_zip_error"])
    with rec_tab:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        name = left.text_input(tr("New class (a word, or a speaker's name)"), key="listen_new_class",
                               placeholder=tr("e.g. yes"))
        if right.button(tr("Add class"), key="listen_add_class"):
            try:
                got = got.add_class(name)
            except ValueError as err:
                st.error(str(err))
        budget, before = userclips.upload_budget(), len(got)
        for i, c in enumerate(got.classes):
            n = got.counts()[c]
            said = (tr("Record **{name}** ({n} clip)", name=c, n=n) if n == 1 else
                    tr("Record **{name}** ({n} clips)", name=c, n=n))
            with st.expander(said, expanded=i == len(got.classes) - 1):
                got = _add(got, c, st.audio_input(tr("Say “{name}”, then stop", name=c), key=f"listen_rec_{gen}_{i}"),
                           budget)
        if len(got) > before:   # drawn again, so that the class's count above says the new clip too
            S["listen_clips"] = got
            st.rerun()
    S["listen_clips"] = got
    if not got.classes:
        st.info(tr("Add a class and record a few clips of it (or upload a zip) to begin: 5 or more per class, at "
                   "least 2 classes."))
        return None
    counts = ", ".join(f"**{c}** {n}" for c, n in got.counts().items())
    st.caption(tr("Your clips ({n}): {counts}. They stay in this session's memory only.", n=len(got), counts=counts)
               if got.source == userclips.UserClips.source else
               tr("Your clips ({n} from {source}): {counts}. They stay in this session's memory only.", n=len(got),
                  source=got.source, counts=counts))
    if got.skipped:
        with st.expander(tr("{n} file(s) skipped: see why", n=len(got.skipped))):
            st.table([{tr("file"): s.name, tr("reason"): s.reason} for s in got.skipped])
    for note in got.notes:
        st.warning(note)
    return got


def download_model(result) -> None:
    """The run's trained model (the first seed of its best pretrained condition) as a zip: model.pt, model.onnx
    (checked against torch) and model.json, exported once per result; a failed export is one line."""
    if getattr(result, "model_state", None) is None:
        return
    kept = S.get("listen_export")
    if kept is None or kept[0] is not result:
        def made():
            clf = audio_export.from_result(result)
            return result, audio_export.to_zip(clf), audio_export.parity_line(clf), clf.meta["trained"]["label"]
        try:
            kept = S["listen_export"] = ui.once(result, "audio_export", made)
        except ValueError as err:
            st.error(tr("Export: {error}", error=err))
            return
    st.download_button(tr("Download the trained model ({model}, first seed; .zip: model.pt, model.onnx, model.json)",
                          model=kept[3]), kept[1], file_name="transfer_lab_listening_model.zip", mime="application/zip",
                       key="listen_export_button", on_click="ignore", icon=":material/download:")
    st.caption(tr("{parity}. Classify a recording with it: `python -m tl_core audio-predict --model model.pt "
                  "--wav clip.wav [--onnx]`.", parity=kept[2]))
