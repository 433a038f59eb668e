import streamlit as st

from app_pages import ui
from tl_core import device as devices, lecture
from tl_core.plots import base as figures

N = len(lecture.STEPS)
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
keys = st.components.v2.component("lecture_keys", html="<span></span>", js=KEYS_JS)


def go(number: int) -> None:
    st.session_state["step"] = st.session_state["lec_jump"] = min(max(number, 1), N)


def move(by: int) -> None:
    go(st.session_state["step"] + by)


def on_key() -> None:
    move({"next": 1, "previous": -1}.get(st.session_state["lec_keys"].move, 0))


if "step" not in st.session_state:  # the step lives in the URL (?step=4), so a link opens there
    given = st.query_params.get("step", "1")
    go(int(given) if given.isdigit() else 1)
    if not given.isdigit() or not 1 <= int(given) <= N:
        st.warning(f"This link asked for step `{given[:20]}`: the lecture has steps 1 to {N}. Showing step "
                   f"{st.session_state['step']}.")
link = ui.page("Lecture", "lec_", "Transfer learning in the order a lecture tells it: every step a live experiment on "
               "a small setting. **←/→** move between steps; each step opens in its full page with the same settings.")
keys(key="lec_keys", on_move_change=on_key)

nav = st.columns([1.2, 5, 1.2], vertical_alignment="bottom")
nav[1].selectbox("Step", range(1, N + 1), key="lec_jump", label_visibility="collapsed",
                 on_change=lambda: go(st.session_state["lec_jump"]),
                 format_func=lambda i: f"Step {i} of {N} · {lecture.step_at(i).title}")
nav[0].button("← Previous", key="lec_prev", on_click=move, args=(-1,), disabled=st.session_state["step"] == 1,
              width="stretch")
nav[2].button("Next →", key="lec_next", on_click=move, args=(1,), disabled=st.session_state["step"] == N,
              width="stretch")
with st.sidebar:
    st.header("Presenter")
    big = st.toggle("Projector view", key="lec_big", bind=ui.URL, help="large type and chart text for the back of a room")
    notes = st.toggle("Teacher notes", key="lec_notes", help="what to point at and what to ask; hidden from the class")
link.report()
if big:  # the projector view: large type everywhere on the page, not only in the charts
    st.html("<style>.stMainBlockContainer p, .stMainBlockContainer li {font-size: 1.6rem !important; "
            "line-height: 1.45} .stMainBlockContainer h1 {font-size: 3.4rem !important} "
            ".stMainBlockContainer h2 {font-size: 2.6rem !important} "
            ".stMainBlockContainer button p, .stMainBlockContainer [data-baseweb='select'] div "
            "{font-size: 1.3rem !important}</style>")

db = ui.history()
with st.sidebar:
    st.header("Before the class")
    st.caption("Runs every step once, in advance, on this machine; the lecture then shows each result at once "
               "(from the run history) and offers to re-run it live.")
    if st.session_state.pop("lec_preparing", False):   # the last preparation ended by a Stop (or a page change)
        st.warning("The preparation was stopped: the steps it finished are kept in the history, the step it was "
                   "running is kept as stopped. Press **Prepare the lecture** again to run the rest.")
    if st.button("Prepare the lecture", type="primary", key="lec_prepare", disabled=db is None,
                 help="needs the run history, which this machine can't write now" if db is None else None):
        st.session_state["lec_preparing"] = True
        bar = st.progress(0.0, text="Preparing the lecture…")
        st.button("Stop", key="lec_prepare_stop")

        def progress(fraction, message):
            if not ui.stop_requested():  # touching Streamlit now would end the run before it is kept
                bar.progress(min(fraction, 1.0), text=message)

        with devices.one_run_at_a_time(lambda: bar.progress(0.0, text="Waiting for a run of another session…")):
            done = lecture.prepare(db, ui.session_id(), progress, ui.stop_requested)
        st.session_state.pop("lec_preparing", None)
        bar.empty()
        ran = [p for p in done if p.state == "ran"]
        st.success(f"Prepared: {len(ran)} step(s) run now, {sum(p.state == 'history' for p in done)} already in the "
                   f"history.")
        for p in done:
            if p.state in ("failed", "stopped", "diverged"):
                st.warning(f"Step {p.number} ({p.step.title}): {p.state}. {p.message}")
    st.download_button("Download the handout (HTML)", lambda: lecture.handout(db, projector=big),
                       file_name="transfer-lab-lecture.html", mime="text/html", key="lec_handout", on_click="ignore",
                       icon=":material/download:", help="every step's title, text and chart in one file that opens "
                       "offline; steps not prepared yet say so")

number = st.session_state["step"]
st.query_params["step"] = str(number)
step = lecture.step_at(number)
st.header(f"{number}. {step.title}")
st.markdown(step.text)
if notes:
    st.info(f"**Teacher notes.** {step.notes}", icon=":material/school:")


def chart(out: dict) -> None:
    ui.verdict(step.verdict(out))
    fig = step.chart(out)
    ui.chart(figures.projector(fig) if big else fig, f"lec_chart_{step.key}")


why = lecture.status(step)
if why:
    st.warning(why, icon=":material/construction:")
    st.stop()
url = lecture.link(step)
if not step.trains():
    chart(step.compute(step.experiment()))
    st.caption("Nothing trains in this step: it is computed at once.")
    st.markdown(f"[Open in the full page with these settings →]({url})")
    st.stop()

cfg = step.config()
before = lecture.latest(step, db, cfg)
results = st.session_state.setdefault("lec_results", {})
label = "Re-run live" if before else "Run live"
result = ui.run_button(f"lec_{step.key}", label + (f" (about {max(before.seconds, 1):.0f} s)"
                                                   if before and before.seconds else ""), step.kind, cfg,
                       lambda progress, stop: step.run(cfg, progress=progress, should_stop=stop),
                       results=results, key=(step.key, cfg), button_key=f"lec_run_{step.key}")
if result is not None:
    chart(lecture.result_json(result))
    st.caption(f"Live run: {result.seconds:.1f} s on {result.device}, kept in Runs.")
elif before is not None:
    chart(before.result)
    st.caption(f"From the run history: run #{before.id}, {before.seconds or 0:.1f} s on {before.device}. "
               f"**{label}** trains it again now.")
else:
    st.info(f"Press **{label}** to train this step now, or **Prepare the lecture** (sidebar) to run every step in "
            "advance.")
st.markdown(f"[Open in the full page with these settings →]({url})")
