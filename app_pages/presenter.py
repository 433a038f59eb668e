"""The Lecture page's presenter tools (not a page: app.py does not list it): the arrow keys, the projector view's
styling, and Prepare the lecture in the sidebar."""
import time

import streamlit as st

from app_pages import ui
from tl_core import device as devices
from tl_core import i18n, lecture, serve
from tl_core.i18n import N_, tr

# ←/→ (and PageUp/PageDown, as presentation clickers send) move between steps, unless the focus is in a field
KEYS_JS = """
export default function(component) {
    const { setTriggerValue } = component;
    window.__tlLectureKey = (where) => setTriggerValue("move", where);
    if (!window.__tlLectureKeys) {
        window.__tlLectureKeys = true;
        document.addEventListener("keydown", (e) => {
            const t = e.target, tag = ((t && t.tagName) || "").toLowerCase();
            if (e.altKey || e.ctrlKey || e.metaKey || !window.__tlLectureKey) return;
            if (["input", "textarea", "select"].includes(tag) || (t && (t.isContentEditable ||
                t.getAttribute("role") === "slider"))) return;
            const where = {ArrowRight: "next", PageDown: "next", ArrowLeft: "previous", PageUp: "previous"}[e.key];
            if (where) { e.preventDefault(); window.__tlLectureKey(where); }
        });
    }
    return () => { window.__tlLectureKey = null; };
}
"""
# a step's outcome as Prepare reports it (the state itself is a key of the history)
STATES = {"failed": N_("failed"), "stopped": N_("stopped"), "diverged": N_("diverged")}
keys = st.components.v2.component("lecture_keys", html="<span></span>", js=KEYS_JS)

# The projector view: no sidebar, large type, the step's words beside its chart so that the chart fits the window
PROJECTOR_CSS = """<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
header[data-testid="stHeader"] {display: none}
.stMainBlockContainer {padding-top: 0.8rem !important; padding-bottom: 0 !important; max-width: 100% !important}
.stMainBlockContainer p, .stMainBlockContainer li {font-size: 1.55rem !important; line-height: 1.4}
.stMainBlockContainer h2 {font-size: 2.3rem !important; padding: 0.2rem 0 !important}
.stMainBlockContainer [data-baseweb='select'] div {font-size: 1.2rem !important}
.stMainBlockContainer button p {font-size: 1.1rem !important}
.stMainBlockContainer button {padding-left: 0.5rem !important; padding-right: 0.5rem !important}
.st-key-lec_big p, .st-key-lec_notes p {font-size: 1.1rem !important}
/* the run button's row (Run, Stop, the estimate): each button as wide as its label, the estimate takes the rest */
.stMainBlockContainer [data-testid="stHorizontalBlock"]:has([class*="st-key-lec_run_"]):not(
    :has([data-testid="stHorizontalBlock"])) > [data-testid="stColumn"]:has(button) {
    flex: 0 0 auto !important; width: auto !important; min-width: max-content !important}
.stMainBlockContainer [data-testid="stHorizontalBlock"]:has([class*="st-key-lec_run_"]):not(
    :has([data-testid="stHorizontalBlock"])) [data-testid="stCaptionContainer"] p {font-size: 1.1rem !important}
</style>"""


def prepare_sidebar(db) -> None:
    """Prepare the lecture (every step once, in advance, into the history), with a bar and Stop."""
    with st.sidebar:
        st.header(tr("Before the class"))
        st.caption(tr("Runs every step once, in advance, on this machine; the lecture then shows each result at once "
                      "(from the run history) and offers to re-run it live."))
        seconds, todo, workers = lecture.estimate(db) if db is not None else (0.0, 0, 1)
        s = i18n.number(max(seconds, 1), 0)
        if not todo:
            said = tr("Every step is prepared: the lecture shows each result at once.")
        elif workers > 1:
            said = (tr("Prepare will take about {s} s on an idle 2-core machine: {n} step to train, {workers} at a "
                       "time.", s=s, n=todo, workers=workers) if todo == 1 else
                    tr("Prepare will take about {s} s on an idle 2-core machine: {n} steps to train, {workers} at a "
                       "time.", s=s, n=todo, workers=workers))
        else:
            said = (tr("Prepare will take about {s} s on an idle 2-core machine: {n} step to train.", s=s, n=todo)
                    if todo == 1 else
                    tr("Prepare will take about {s} s on an idle 2-core machine: {n} steps to train.", s=s, n=todo))
        st.caption(said)
        if st.session_state.pop("lec_preparing", False):   # the last preparation ended by a Stop (or a page change)
            st.warning(tr("The preparation was stopped: the steps it finished are kept in the history, the step it "
                          "was running is kept as stopped. Press **Prepare the lecture** again to run the rest."))
        students = serve.shared() and not ui.is_teacher()   # on a class's server it holds every run for a minute
        if st.button(tr("Prepare the lecture"), type="primary", key="lec_prepare", disabled=db is None or students,
                     help=tr("needs the run history, which this machine can't write now") if db is None else
                     tr("on a shared server the teacher prepares the lecture (the teacher's token on the Runs page)")
                     if students else None):
            st.session_state["lec_preparing"] = True
            bar = st.progress(0.0, text=tr("Preparing the lecture…"))
            st.button(tr("Stop"), key="lec_prepare_stop")

            def progress(fraction, message):
                if not ui.stop_requested():  # touching Streamlit now would end the run before it is kept
                    bar.progress(min(fraction, 1.0), text=message)

            start = time.perf_counter()
            with devices.one_run_at_a_time(lambda: bar.progress(0.0, text=tr("Waiting for a run of another session…"))):
                done = lecture.prepare(db, ui.session_id(), progress, ui.stop_requested)
            st.session_state.pop("lec_preparing", None)
            bar.empty()
            ran = [p for p in done if p.state == "ran"]
            kept = sum(p.state == "history" for p in done)
            st.success(tr("Prepared: {ran} step(s) run now, {kept} already in the history ({s} s). The handout below "
                          "now holds every step.", ran=len(ran), kept=kept,
                          s=i18n.number(time.perf_counter() - start, 0)) if ran else
                       tr("Prepared: {ran} step(s) run now, {kept} already in the history. The handout below now "
                          "holds every step.", ran=len(ran), kept=kept))
            for p in done:
                if p.state in ("failed", "stopped", "diverged"):
                    st.warning(tr("Step {number} ({title}): {state}. {message}", number=p.number,
                                  title=tr(p.step.title), state=tr(STATES[p.state]), message=p.message))
