import streamlit as st

from app_pages import presenter, ui
from tl_core import i18n, lecture, lecture_cli
from tl_core.i18n import tr

N = len(lecture.STEPS)


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
        st.warning(tr("This link asked for step `{given}`: the lecture has steps 1 to {n}. Showing step {step}.",
                      given=given[:20], n=N, step=st.session_state["step"]))
# the projector view (compact, no sidebar): the toggle's value, or the link's before the toggle is drawn
big = st.session_state.get("lec_big", st.query_params.get("lec_big", "false") == "true")
if big:
    st.html(presenter.PROJECTOR_CSS)
    link = ui.LinkSettings("lec_")
else:
    link = ui.page(tr("Lecture"), "lec_", tr("Transfer learning in the order a lecture tells it: every step a live "
                                             "experiment on a small setting. **←/→** move between steps; each step "
                                             "opens in its full page with the same settings."))
presenter.keys(key="lec_keys", on_move_change=on_key)

nav = st.columns([1.1, 4.1, 1.1, 1.5, 1.2], vertical_alignment="center")
nav[1].selectbox(tr("Step"), range(1, N + 1), key="lec_jump", label_visibility="collapsed",
                 on_change=lambda: go(st.session_state["lec_jump"]),
                 format_func=lambda i: tr("Step {i} of {n} · {title}", i=i, n=N, title=tr(lecture.step_at(i).title)))
nav[0].button(tr("← Previous"), key="lec_prev", on_click=move, args=(-1,), disabled=st.session_state["step"] == 1,
              width="stretch")
nav[2].button(tr("Next →"), key="lec_next", on_click=move, args=(1,), disabled=st.session_state["step"] == N,
              width="stretch")
nav[3].toggle(tr("Projector"), key="lec_big", bind=ui.URL, help=tr("large type, no sidebar, each chart inside the "
                                                                   "window"))
# the teacher's notes never reach the projected page: the toggle is offered (and read) only in the normal view
notes = not big and nav[4].toggle(tr("Notes"), key="lec_notes", help=tr("what to point at and what to ask; only in "
                                                                        "the normal view, never in the projector view "
                                                                        "the class sees"))
link.report()

db = ui.history()
if not big:
    presenter.prepare_sidebar(db)
    lang = i18n.language()   # Streamlit may make the file outside this script run: in the page's language
    st.sidebar.download_button(tr("Download the handout (HTML)"), lambda: lecture_cli.handout(db, lang=lang),
                               file_name="transfer-lab-lecture.html", mime="text/html", key="lec_handout",
                               on_click="ignore", icon=":material/download:",
                               help=tr("every step's title, text, verdict and chart in one file that opens "
                                       "offline; steps not prepared yet say so"))

number = st.session_state["step"]
st.query_params["step"] = str(number)
step = lecture.step_at(number)
st.header(f"{number}. {tr(step.title)}")
words, picture = st.columns([2, 3]) if big else (st.container(), st.container())
words.markdown(tr(step.text))
if notes:
    words.info(tr("**Teacher notes.** {notes}", notes=tr(step.notes)), icon=":material/school:")


def show(out: dict) -> None:
    ui.verdict(step.verdict(out), words)
    fig = step.chart(out)
    ui.chart(lecture.projector_figure(fig) if big else fig, f"lec_chart_{step.key}", picture)


url = lecture.link(step)
if not step.trains():
    show(step.compute(step.experiment()))
    words.caption(tr("Nothing trains in this step: it is computed at once."))
    words.markdown(tr("[Open in the full page with these settings →]({url})", url=url))
    st.stop()

cfg = step.config()
before = lecture.latest(step, db, cfg)
label = (tr("Re-run") if big else tr("Re-run live")) if before else (tr("Run") if big else tr("Run live"))
with words:
    shown = (tr("{label} (measured: {s} s)", label=label, s=i18n.number(max(before.seconds, 1), 0))
             if before and before.seconds and not big else label)
    result = ui.run_button(f"lec_{step.key}", shown, step.kind, cfg,
                           results=st.session_state.setdefault("lec_results", {}), key=(step.key, cfg),
                           button_key=f"lec_run_{step.key}", source="lecture", one_thread=True,
                           adopt=False)   # a run in the history is shown below as the history's
if result is not None:
    show(lecture.result_json(result))
    words.caption(tr("Live run: {s} s on {device}, kept in Runs.", s=i18n.number(result.seconds, 1),
                     device=result.device))
elif before is not None:
    show(before.result)
    words.caption(tr("From the run history: run #{id}, {s} s on {device}. **{label}** trains it again now.",
                     id=before.id, s=i18n.number(before.seconds or 0, 1), device=before.device, label=label))
else:
    words.info(tr("Press **{label}** to train this step now, or **Prepare the lecture** (sidebar) to run every step "
                  "in advance.", label=label))
words.markdown(tr("[Open in the full page with these settings →]({url})", url=url))
