"""What every page shares: charts with PNG/HTML export, the session and the run history, and the run button.

Not a page (app.py does not list it): the pages import it. A page asks for a run with `run_button` (or `auto_run`):
a run request, submitted through `serve.submit` and followed on the page. Its settings widgets and shareable
links are `app_pages.widgets` (reached as `ui.widget`, `ui.page`, ...).
"""
from __future__ import annotations

import functools
import hashlib
import threading
import time
from contextlib import contextmanager, nullcontext

import orjson  # noqa: F401 - plotly's JSON engine ("auto" takes it when installed): every chart sent, 3x faster
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

from app_pages.widgets import URL, LinkSettings, more_settings, page, widget, widgets  # noqa: F401 - pages use ui.*
from tl_core import budget, glossary, run_request, serve, store
from tl_core.i18n import N_, tr

PNG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def chart(fig, key: str, where=st) -> None:
    """A plotly chart with plotly's own PNG export (camera icon) and a self-contained HTML download."""
    where.plotly_chart(fig, key=key,
                       config={**PNG, "toImageButtonOptions": {**PNG["toImageButtonOptions"], "filename": key}})
    where.download_button(tr("Download chart as HTML"), lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                       file_name=f"{key}.html", mime="text/html", key=f"{key}_html", icon=":material/download:",
                       on_click="ignore", type="tertiary")


def shared_figure(fig):
    """`fig`, serialised once for every session that shows it: a figure built once for a shared result (`once`) or
    a run's live chart is sent to each session following it, and Streamlit turns a plotly figure into its dict
    for every chart it sends (about 10 ms of the server's CPU a chart, holding the GIL: 4 charts for each of 30
    sessions is over a second taken from the run they wait for). The dict is made here, by the one session that
    builds the figure (under `once`'s or the live chart's lock), and reused: made on a first send instead, the
    sessions shown a result at the same moment each made it again (a class of 30 over 3 links: 34 dicts where 15
    figures were built). Such a figure is not changed afterwards (no page changes a shared figure). Anything but
    a plain plotly Figure is returned as it is."""
    import plotly.graph_objects as go

    if type(fig) is go.Figure:
        fig.__class__ = _shared_figure_class()
        fig.to_dict()
    return fig


@functools.cache
def _shared_figure_class():
    import plotly.graph_objects as go

    class SharedFigure(go.Figure):
        """A plotly Figure whose dict (what every chart of it sends) is made once."""

        def to_dict(self):
            made = self.__dict__.get("_tl_dict")
            if made is None:
                made = self._tl_dict = super().to_dict()
            return made

    return SharedFigure


def keep(store: dict, key=None, value=None, most: int = 4) -> None:
    """Remember value in a session's store (when given); drop the oldest beyond `most` (built models and
    trained results can weigh hundreds of MB each)."""
    store.update({} if key is None else {key: value})
    while len(store) > most:
        store.pop(next(iter(store)))


def session_id() -> str:
    """Who is asking: this browser (the same in every tab and after a reload, from the XSRF cookie Streamlit
    gives each browser, hashed so the history never holds the cookie), else this tab's Streamlit session."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return ""
    try:
        cookie = st.context.cookies.get("_streamlit_xsrf", "")
    except Exception:  # noqa: BLE001 - no request behind this run (tests, bare mode)
        cookie = ""
    if not isinstance(cookie, str):   # AppTest's stand-in
        cookie = ""
    return f"browser-{hashlib.sha256(_xsrf_token(cookie).encode()).hexdigest()[:16]}" if cookie else ctx.session_id


def _xsrf_token(cookie: str) -> str:
    """The token inside Tornado's XSRF cookie ("2|mask|masked token|time": the mask may change, the token not)."""
    parts = cookie.split("|")
    try:
        if parts[0] == "2" and len(parts) == 4:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()
    except ValueError:
        pass
    return cookie


TEACHER_KEY = "runs_token"   # the Runs page's sidebar field for the teacher's token (TL_ADMIN_TOKEN)
TEACHER = "tl_teacher"       # set once the token was given: a widget's value is gone on the next page


def is_teacher() -> bool:
    """Whether this session gave the teacher's token (on the Runs page): no per-session limits, every run, and
    the lecture's Prepare on a shared server."""
    if not serve.teacher():
        return False
    if serve.admin(str(st.session_state.get(TEACHER_KEY) or "")):
        st.session_state[TEACHER] = True
    return bool(st.session_state.get(TEACHER))


def history() -> store.Store | None:
    """The run history, or None (with a warning on the page) when it can't be opened. One that can only be read
    (a read-only disk or folder) is opened read-only: its runs are shown, and the page says, once, that new runs
    are not recorded. Opened once per page run (a page with run buttons asks several times; each opening checks
    the history's schema and whether it can be written, under a write lock the runs' own records wait for)."""
    ctx = get_script_run_ctx()
    kept = st.session_state.get("_tl_history") if ctx is not None else None
    if kept is not None and kept[0] is ctx.cursors:
        return kept[1]
    try:
        db = store.Store()
    except OSError as err:
        if _first_this_run(str(err)):
            st.warning(tr("Runs are not being recorded: {err}", err=err))
        db = None
    if db is not None and db.readonly and _first_this_run(db.problem):
        st.warning(db.problem)
    if ctx is not None:
        st.session_state["_tl_history"] = (ctx.cursors, db)
    return db


def _first_this_run(text: str) -> bool:
    """Whether this page run has not said `text` yet (a page with two run buttons opens the history twice)."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return True
    run, said = st.session_state.get("_tl_said", (None, set()))
    if run is not ctx.cursors:   # a new page run starts with new cursors (kept here, so never a reused id)
        run, said = ctx.cursors, set()
    first = text not in said
    st.session_state["_tl_said"] = (run, said | {text})
    return first


@contextmanager
def recording(kind: str, config: dict, **begin):
    """Record the run trained inside the block: `with recording("toy", config) as rec: rec["result"] = result`.
    `begin`: what else the history keeps of it (identity, code, private: see store.Store.begin). A read-only
    history trains it unrecorded (`history` says so on the page)."""
    db = history()
    with (db.track(kind, config, session=session_id(), **begin) if db and not db.readonly else nullcontext({})) as rec:
        yield rec


def stop_requested() -> bool:
    """True once the user pressed Stop (or anything else: Streamlit then wants to rerun the page). Training
    checks it every epoch, so a Stop ends a run within one epoch and keeps the epochs done so far."""
    ctx = get_script_run_ctx()
    requests = getattr(ctx, "script_requests", None)
    return requests is not None and requests._state != ScriptRequestType.CONTINUE


# ---- shared runs: an identical run trains once, for every session that asks (tl_core.serve) -------------------

DERIVED_MB = "TL_DERIVED_MB"   # what pages derive from shared results (exported models, figures): MB kept (512)
_ONCE = budget.ByteLRU(budget.env_mb(DERIVED_MB, 512) * budget.MB, most=48,
                       size=lambda hit: budget.nbytes(hit[1]))   # (id, what) -> (object, what was made of it)
_MAKING: dict = {}   # (id, what) -> (object, the lock its maker holds)
_ONCE_LOCK = threading.Lock()


def once(obj, what: str, make):
    """`make()` once per object and `what` in this process, for every session: what a page derives from a result
    that sessions share (tl_core.serve), e.g. its exported model, is made once, not once per session. Keeps the
    newest within TL_DERIVED_MB (default 512 MB) and 48 entries (a result has a few: its figures, its exported
    model). Sessions asking for the same thing wait for the one making it; a slow make (an ONNX export) holds up
    no one asking for anything else."""
    key = (id(obj), what)
    with _ONCE_LOCK:
        hit = _ONCE.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        making = _MAKING.setdefault(key, (obj, threading.Lock()))
        if making[0] is not obj:   # an id reused by a new object: the old maker's lock is not ours
            making = _MAKING[key] = (obj, threading.Lock())
    with making[1]:
        try:
            with _ONCE_LOCK:
                hit = _ONCE.get(key)
                if hit is not None and hit[0] is obj:
                    return hit[1]
            value = shared_figure(make())   # a figure: its dict made once too
            with _ONCE_LOCK:
                _ONCE.put(key, (obj, value))   # one larger than the whole budget is made again when asked
            return value
        finally:   # done or failed: the maker's lock goes (a failed make is tried again by the next asker)
            with _ONCE_LOCK:
                if _MAKING.get(key, (None,))[0] is obj:
                    del _MAKING[key]


@st.cache_data(show_spinner=False)
def _generation() -> str:
    """A token that changes when Streamlit's cache is cleared (st.cache_data.clear(), the menu's "Clear caches"):
    the results kept in memory for every session (tl_core.serve) are cleared with it."""
    import uuid

    return uuid.uuid4().hex


def shared_runs() -> serve.Server:
    """This server's shared runs: in flight, queued, and recent results (see tl_core.serve)."""
    srv = serve.server()
    srv.sync(_generation())
    return srv


def _ago(t: float) -> str:
    s = max(time.time() - t, 0)
    return (tr("just now") if s < 45 else tr("{n} min ago", n=round(s / 60)) if s < 5400
            else tr("{n} h ago", n=f"{s / 3600:.0f}"))


class _Ask:
    """What a page asks for: the run request (experiment, recorded config, the inputs' fingerprints), its
    identity, and what this server has of it. `inputs`: name → (fingerprint, a function that makes its bytes,
    called only when it trains anew)."""

    def __init__(self, kind: str, cfg, key, extra: dict | None, inputs: dict | None, private: bool | None,
                 source: str = "", one_thread: bool = False):
        self.kind, self.cfg, self.source = kind, cfg, source
        self.key = cfg if key is None else key
        inputs = inputs or {}
        self.blobs = {name: make for name, (_, make) in inputs.items()}
        self.private = run_request.experiment_of(run_request.RunRequest(kind, {})).private if private is None \
            else bool(private)
        self.srv, self.db = shared_runs(), history()
        self.root = str(self.db.root) if self.db is not None else ""
        self.shared, self.me = serve.shared(), session_id()
        owner = self.me if self.private and self.shared else ""   # a private run: this session's alone
        try:   # a setting the config cannot resolve: said when the user asks for the run
            self.request, self.problem = run_request.RunRequest.of(
                kind, cfg, extra, inputs={name: fp for name, (fp, _) in inputs.items()}, owner=owner,
                one_thread=one_thread), ""
        except ValueError as err:
            self.request, self.problem = None, str(err)
        self.record = self.request.config if self.request is not None else None
        self.identity = self.request.identity() if self.request is not None else ""
        self.entry = (self.srv.lookup(self.root, self.identity, self.me if self.shared else None, db=self.db)
                      if self.identity else None)

    def estimate(self) -> float | None:
        return serve.estimate(self.kind, self.record, self.db)[0] if self.record is not None else None

    def before(self, label: str) -> str:
        """The line beside the button before a click: the estimate, the queue, or who trains it now."""
        if self.record is None:
            return ""
        flight = self.srv.in_flight(self.root, self.identity)
        if flight is not None and not flight.stop.is_set():
            return tr("Training now for another session ({what}): **{label}** follows that run instead of training "
                      "it twice.", what=flight.message or tr("waiting for its turn"), label=label)
        seconds, based = serve.estimate(self.kind, self.record, self.db)
        about = serve.about(seconds)
        text = tr("{about} on this machine", about=about[:1].upper() + about[1:]) + (
            (tr(" (from {n} earlier run like it)", n=based) if based == 1 else
             tr(" (from {n} earlier runs like it)", n=based)) if based else
            tr(" (from the reference laptop: no run of its kind here yet)") if seconds is not None else "")
        busy, wait = self.srv.busy()
        if busy and wait:
            text += (tr(" · {n} run in the queue now: {wait} before yours starts", n=busy, wait=serve.about(wait))
                     if busy == 1 else
                     tr(" · {n} runs in the queue now: {wait} before yours starts", n=busy, wait=serve.about(wait)))
        old = self._stored()
        if old is not None:
            text += tr(" · trained before (run #{id}, {ago}), no longer in memory", id=old.id,
                       ago=_ago(old.finished or old.created))
        return text + "."

    def _stored(self):
        try:
            run = self.db.find(self.identity) if self.db is not None and self.identity else None
        except OSError:
            return None
        return None if run is not None and self.shared and run.private and run.session != self.me else run

    def shown(self, results: dict) -> str:
        """Put the shared result into this session's `results` (when it has none for the key); the line that
        says where a shown result comes from."""
        if self.entry is not None and self.key not in results:
            results[self.key] = self.entry.result
        if self.entry is None or results.get(self.key) is not self.entry.result:
            return ""
        run = tr("run #{id}, ", id=self.entry.run_id) if self.entry.run_id is not None else ""
        fill = dict(ago=_ago(self.entry.finished), run=run, s=f"{self.entry.seconds:.0f}")
        if self.entry.session == session_id():
            return tr("Trained {ago} ({run}{s} s), shown at once · **Re-run** trains it afresh.", **fill)
        return tr("Trained {ago} for another session ({run}{s} s), shown at once · **Re-run** trains it afresh.",
                  **fill)

    def submit(self) -> tuple:
        """(job, token); raises serve.Refused past a shared server's limits for one session (not the teacher's)."""
        return serve.submit(self.request, blobs=self.blobs, root=self.root, session=self.me, private=self.private,
                            estimate=self.estimate(), source=self.source, limited=self.shared and not is_teacher())


def _status(srv: serve.Server, job: serve.Job, start: str) -> str:
    if job.state == "queued":
        ahead, seconds = srv.ahead(job)
        if ahead:
            return (tr("Waiting for its turn: {n} run ahead of yours, {about} until its result", n=ahead,
                       about=serve.about(seconds)) if ahead == 1 else
                    tr("Waiting for its turn: {n} runs ahead of yours, {about} until its result", n=ahead,
                       about=serve.about(seconds)))
        return start
    left = job.left()
    what = job.message or start
    return tr("{what} · {about} left", what=what, about=serve.about(left)) if left is not None else what


_LIVE_FIGURES: dict = {}   # id(job) -> (job, epochs drawn, when built, figure)
_LIVE_LOCK = threading.Lock()   # its own: building a figure holds up no shared-result lookup


def _live_figure(job: serve.Job, epochs: int):
    """The live chart of `job` and the epochs it draws: built at most once a second for all the sessions that
    follow the run (a figure costs about 0.3 s of the server's CPU, and 8 followers each asking for their own
    every second slowed the very run they waited for by half)."""
    from tl_core.plots import live as live_figures

    with _LIVE_LOCK:
        hit = _LIVE_FIGURES.get(id(job))
        if hit is not None and hit[0] is job and (hit[1] == epochs or time.monotonic() - hit[2] < 1.0):
            return hit[3], hit[1]
        fig = shared_figure(live_figures.curves(dict(job.live)))   # sent to every follower: serialised once
        _LIVE_FIGURES[id(job)] = (job, epochs, time.monotonic(), fig)
        while len(_LIVE_FIGURES) > 16:
            del _LIVE_FIGURES[next(iter(_LIVE_FIGURES))]
        return fig, epochs


def _follow(prefix: str, job: serve.Job, token, start: str, live: bool) -> bool:
    """Show `job`'s progress (its queue position, its live curve) until it is done. False when this session
    stopped following it (Stop, or any other click: Streamlit wants to rerun the page); the run then goes on
    for the sessions still following it, or stops at its next step when none is left."""
    srv = serve.server()
    bar, note, chart = st.progress(0.0, text=start), st.empty(), st.empty() if live else None
    seen, drawn, charts, curves, curves_at = -1, 0.0, 0, 0, 0.0
    try:
        while not job.done.wait(serve.POLL_S):
            if stop_requested():  # touching Streamlit now would end the script before it leaves the run
                others = srv.leave(job, token)
                token = None
                st.session_state[f"{prefix}_others"] = others
                return False
            if job.version == seen and time.monotonic() - drawn < 1.0:
                continue
            seen, drawn = job.version, time.monotonic()
            st.session_state[f"{prefix}_where"] = job.message or start
            bar.progress(min(job.fraction, 1.0) if job.state == "running" else 0.0, text=_status(srv, job, start))
            followers = len(job.waiters)
            where = "" if job.where == "this process" else tr(" It trains in {where}.", where=job.where)
            if followers > 1 or where:
                note.caption((tr("{n} sessions follow this run: it trains once for all of them.", n=followers)
                              if followers > 1 else "") + where)
            epochs = sum(len(v.get("val_loss") or v.get("train_loss") or ()) for v in list(job.live.values()))
            # redrawn as epochs finish: at most once a second, and less often the more sessions follow the run (each
            # redraw is a whole chart drawn again in every follower's browser; the class keeps its CPU for the run)
            if chart is not None and epochs != curves and time.monotonic() - curves_at >= max(1.0, 0.5 * followers):
                fig, drawn_epochs = _live_figure(job, epochs)
                if drawn_epochs != curves:   # not the figure this session already shows
                    charts, curves, curves_at = charts + 1, drawn_epochs, time.monotonic()
                    chart.plotly_chart(fig, key=f"{prefix}_live_{charts}", config=PNG)
    finally:
        if token is not None and not job.done.is_set():
            srv.leave(job, token)
    bar.empty()
    note.empty()
    if chart is not None:
        chart.empty()
    return True


def _outcome(prefix: str, retry: str, job: serve.Job, results: dict, key) -> None:
    """What a finished follow shows: the result kept for `key`, or the failure every follower is told."""
    st.session_state.pop(f"{prefix}_running", None)
    if job.status in ("finished", "diverged"):   # shown with its verdict
        results[key] = job.result
        if "(not recorded:" in job.message:       # the history could not take it (a full disk, a read-only store)
            st.warning(tr("The run finished and is shown here, but the run history could not keep it ")
                       + job.message[job.message.index("(not recorded:"):])
    elif job.status == "failed" and job.bad_setting:
        st.error(job.error)
    elif job.status == "failed":
        st.error(tr("This run failed: {error}. Every session that was waiting for it is told; {retry} to train it "
                    "again.", error=job.error, retry=retry))
    else:
        st.warning(tr("The run was stopped before it finished ({why}).",
                      why=job.error or job.message or tr("stopped")))


def run_button(prefix: str, label: str, kind: str, cfg, *, results: dict, key=None, button_key: str = "",
               start: str = N_("Preparing…"), disabled: bool = False, extra: dict | None = None,
               live: bool | None = None, inputs: dict | None = None, private: bool | None = None, source: str = "",
               one_thread: bool = False, adopt: bool = True):
    """The page's run button with a Stop beside it, and what a click does: a run request for experiment `kind`
    with this config (`tl_core.run_request`), submitted through `serve.submit`, the one way to ask for a run,
    and followed under a progress bar. It is recorded in the history (as running before it trains, then
    finished, stopped or failed) with the config as `contract.record` writes it, the same as the CLI's (plus
    `extra`, for what the config cannot say, e.g. where loaded weights came from).

    `inputs`: what the run takes beyond its config (an upload), name → (fingerprint, a function returning its
    bytes), as the experiment declares them (`contract.Experiment.inputs`); the bytes are made only when the run
    trains anew, and travel with the request (to a worker process too).

    An identical run trains once on this server: a result another session trained with the same request (kind,
    recorded config, the inputs' fingerprints) is shown at once ("trained 3 min ago · Re-run"); a second session
    pressing the button while that run trains follows it. Before the click the line beside the button gives an
    estimate and the queue; while waiting, the bar gives the queue position, then the progress (by cost), and
    the live curve (`live`, default: what the experiment declares) draws validation accuracy and loss as epochs
    finish. A result that was not stopped is kept in `results[key]` (key: cfg unless given). A Stop leaves the
    run (it stops at the next epoch when no other session follows it; the history keeps it as stopped with the
    epochs it finished). A bad setting (ValueError) is shown, not raised; a failure is shown to every session
    waiting for it. `private` (default: what the experiment declares: runs on uploads): on a shared server only
    this session sees the run. `source`: where it is asked for when not on its experiment's page ("lecture": the
    Runs page marks it). `adopt=False`: another session's result is not shown before a click (a page that shows
    the history's run itself, as the lecture does). Returns the result kept for `key`, or None."""
    start = tr(start)
    ask = _Ask(kind, cfg, key, extra, inputs, private, source, one_thread)
    live = run_request.experiment_of(run_request.RunRequest(kind, {})).live if live is None else live
    key = ask.key
    shown = ask.shown(results) if adopt else ""
    cols = st.columns([2, 1, 1.2, 4], vertical_alignment="center")
    clicked = cols[0].button(label, type="primary", key=button_key or f"{prefix}_run",
                             disabled=disabled or key in results)
    again = key in results and cols[2].button(tr("Re-run"), key=f"{prefix}_rerun", disabled=disabled,
                                              type="secondary",
                                              help=tr("train it again now, afresh (the result shown stays in Runs)"))
    if cols[1].button(tr("Stop"), key=f"{prefix}_stop") or st.session_state.get(f"{prefix}_running"):
        if st.session_state.pop(f"{prefix}_running", None):
            others = st.session_state.pop(f"{prefix}_others", 0)
            where = st.session_state.pop(f"{prefix}_where", tr("the start"))
            if others:
                st.warning(tr("You stopped following the run (last shown: {where}); it goes on for the {n} other "
                              "session following it, and its result will be in Runs.", where=where, n=others)
                           if others == 1 else
                           tr("You stopped following the run (last shown: {where}); it goes on for the {n} other "
                              "sessions following it, and its result will be in Runs.", where=where, n=others))
            else:
                st.warning(tr("Stopped by the user (last shown: {where}); the run is kept in Runs with every epoch it "
                              "finished.", where=where))
    line = shown if key in results else ask.before(label)
    if line:
        cols[3].caption(line)
    if clicked or again:
        if ask.record is None:
            st.error(ask.problem)
            return results.get(key)
        if again:
            results.pop(key, None)
        try:
            job, token = ask.submit()
        except serve.Refused as err:   # a shared server's limit for one session: said, nothing lost
            st.error(str(err))
            return results.get(key)
        st.session_state[f"{prefix}_running"] = True
        if _follow(prefix, job, token, start, live):
            _outcome(prefix, tr("press **{label}**", label=label), job, results, key)
    return results.get(key)


def auto_run(prefix: str, kind: str, cfg, *, start: str = N_("Training…"), live: bool = False,
             extra: dict | None = None, inputs: dict | None = None, private: bool | None = None):
    """A page that trains as it opens (the toy): the shared result when this server has it (no new run in the
    history: a reuse is not a training), else the run in flight with the same settings, followed, else a new
    run. Shows where a shared result comes from, with a Re-run button. Returns the result, or None when it did
    not finish (stopped, failed: said on the page)."""
    start = tr(start)
    results = st.session_state.setdefault(f"{prefix}_shared", {})
    ask = _Ask(kind, cfg, None, extra, inputs, private)
    if ask.record is None:
        st.error(ask.problem)
        return None
    results.clear()
    line = ask.shown(results)
    if line:
        cols = st.columns([1, 6], vertical_alignment="center")
        if not cols[0].button(tr("Re-run"), key=f"{prefix}_rerun", help=tr("train it again now, afresh")):
            cols[1].caption(line)
            return results[ask.key]
        results.clear()
    try:
        job, token = ask.submit()
    except serve.Refused as err:
        st.error(str(err))
        return None
    if _follow(prefix, job, token, start, live):
        _outcome(prefix, tr("open the page again"), job, results, ask.key)
    return results.get(ask.key)


def verdict(v, where=st) -> None:
    """A result's verdict, coloured by what it says (a tie, a mix or a single seed in blue)."""
    {"helped": where.success, "hurt": where.error, "unfit": where.warning, "diverged": where.warning,
     "stopped": where.warning, "failed": where.error}.get(v.kind, where.info)(v.text)
    if v.kind not in ("unfit", "diverged", "stopped", "failed"):   # a claim: the words it uses, explained
        where.caption(tr("How this verdict is decided"),
                      help=glossary.help_for("claims rule", "paired", "95% interval"))
