"""What every page shares: charts with PNG/HTML export, the run history, and shareable links.

Not a page (app.py does not list it): the pages import it. Settings widgets are bound to the URL
with Streamlit's own `bind="query-params"`, so a link reproduces an experiment; `LinkSettings`
tells the user when a link carried values the page could not use.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

from tl_core import contract, device as devices, store

URL = "query-params"  # bind= value for every settings widget: its value lives in the page's URL

PNG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def page(title: str, prefix: str, intro: str, settings: str = "") -> "LinkSettings":
    """A page's title, introduction and the heading of its settings in the sidebar; returns the page's link
    checker (call `.report()` after its settings widgets)."""
    st.title(title)
    link = LinkSettings(prefix)
    st.markdown(intro)
    if settings:
        st.sidebar.header(settings)
    return link


def _help(s: contract.Setting) -> str:
    if s.choice_help:
        return "\n".join(f"- **{k}**: {v}" for k, v in s.choice_help.items())
    return s.help


def _text(v) -> str:
    return contract.ALL if v is None else str(v)


_UNSET = object()


def widget(cls, name: str, prefix: str, where=None, *, value=_UNSET, key: str = "", options=None, label: str = "",
           fmt=None, bind: bool = True, **kwargs):
    """The widget of setting `name` of config class `cls`, drawn from its declaration (`contract.setting`): its
    label (title), help, choices, range or the values a page offers; keyed `prefix + name` and bound to the
    page's URL, so a link carries it. Returns the value as the config takes it (a tuple for a list setting, None
    for "all"). value: the page's default when it is not the config's; options: the values offered instead of
    the declared ones; fmt: how an option reads; kwargs go to the Streamlit widget."""
    s = contract.spec(cls, name)
    where = where if where is not None else st.sidebar
    key = key or f"{prefix}{name}"
    default = s.default if value is _UNSET else value
    label = label or s.title or s.label.replace("-", " ").capitalize()
    horizontal = kwargs.pop("horizontal", True)
    common = {"key": key, "help": kwargs.pop("help", _help(s)), **({"bind": URL} if bind else {}), **kwargs}
    offered = options if options is not None else s.steps if s.steps is not None else s.choices
    if s.kind is bool and not s.many:
        return where.toggle(label, value=bool(default), **common)
    if s.many:
        opts = list(offered or default)
        texts = [_text(o) for o in opts] if None in opts else opts   # "all" stands for None
        picked = where.multiselect(label, texts, default=[texts[opts.index(v)] for v in default if v in opts],
                                   format_func=fmt or str, **common)
        return tuple(opts[texts.index(t)] for t in picked)
    if s.kind is str:
        choices = list(offered)
        if "captions" in common or (len(choices) <= 4 and all(len(str(c)) <= 14 for c in choices)):
            return where.radio(label, choices, index=choices.index(default), horizontal=horizontal,
                               format_func=fmt or str, **common)
        return where.selectbox(label, choices, index=choices.index(default), format_func=fmt or str, **common)
    if offered is not None:
        opts = list(offered)
        texts = [_text(o) for o in opts] if None in opts else opts
        picked = where.select_slider(label, texts, value=texts[opts.index(default)], format_func=fmt or str, **common)
        return opts[texts.index(picked)]
    lo, hi, *step = s.span or (s.lo, s.hi)
    if s.kind is float:
        return where.slider(label, float(lo), float(hi), float(default), step=float(step[0]) if step else None,
                            **common)
    return where.slider(label, int(lo), int(hi), int(default), step=int(step[0]) if step else 1, **common)


def widgets(cls, names, prefix: str, where=None, **per_name) -> dict:
    """Several settings' widgets in order: {name: value}; per_name[name] holds one widget's overrides."""
    return {n: widget(cls, n, prefix, where, **per_name.get(n, {})) for n in names}


def more_settings(cls, names, prefix: str, **per_name) -> dict:
    """Settings a class rarely changes (validation size, a class subset), in a closed expander of the sidebar: a
    link (the lecture's, a colleague's) still sets them, and the page runs exactly the config it names."""
    with st.sidebar.expander("More settings"):
        return widgets(cls, names, prefix, st, **per_name)


def chart(fig, key: str, where=st) -> None:
    """A plotly chart with plotly's own PNG export (camera icon) and a self-contained HTML download."""
    where.plotly_chart(fig, key=key, config={**PNG, "toImageButtonOptions": {**PNG["toImageButtonOptions"], "filename": key}})
    where.download_button("Download chart as HTML", lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                       file_name=f"{key}.html", mime="text/html", key=f"{key}_html", icon=":material/download:",
                       on_click="ignore", type="tertiary")


def keep(store: dict, key=None, value=None, most: int = 4) -> None:
    """Remember value in a session's store (when given); drop the oldest beyond `most` (built models and
    trained results can weigh hundreds of MB each)."""
    store.update({} if key is None else {key: value})
    while len(store) > most:
        store.pop(next(iter(store)))


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else ""


def history() -> store.Store | None:
    """The run history, or None (with a warning on the page) when its directory can't be written."""
    try:
        return store.Store()
    except OSError as err:
        st.warning(f"Runs are not being recorded: {err}")
        return None


@contextmanager
def recording(kind: str, config: dict):
    """Record the run trained inside the block: `with recording("toy", config) as rec: rec["result"] = result`."""
    db = history()
    with (db.track(kind, config, session=session_id()) if db else nullcontext({})) as rec:
        yield rec


def stop_requested() -> bool:
    """True once the user pressed Stop (or anything else: Streamlit then wants to rerun the page). Training
    checks it every epoch, so a Stop ends a run within one epoch and keeps the epochs done so far."""
    ctx = get_script_run_ctx()
    requests = getattr(ctx, "script_requests", None)
    return requests is not None and requests._state != ScriptRequestType.CONTINUE


def run_button(prefix: str, label: str, kind: str, cfg, run, *, results: dict, key=None, button_key: str = "",
               start: str = "Preparing…", disabled: bool = False, extra: dict | None = None):
    """The page's run button with a Stop beside it, and what a click does: `run(progress, should_stop)`
    under a progress bar, recorded in the history (as running before it trains, then finished, stopped
    or failed) with the config as `contract.record` writes it, the same as the CLI's (plus `extra`, for
    what the config cannot say, e.g. where loaded weights came from). A result that was not stopped is
    kept in `results[key]` (key: cfg unless given) and a rerun with the same settings shows it at once.
    A Stop ends the run at the next epoch; the history keeps it as stopped with the epochs it finished.
    A bad setting (ValueError) is shown, not raised. Returns the result kept for `key`, or None."""
    key = cfg if key is None else key
    cols = st.columns([2, 1, 4])
    clicked = cols[0].button(label, type="primary", key=button_key or f"{prefix}_run", disabled=disabled or key in results)
    if cols[1].button("Stop", key=f"{prefix}_stop") or st.session_state.get(f"{prefix}_running"):
        if st.session_state.pop(f"{prefix}_running", None):
            st.warning(f"Stopped by the user (last shown: {st.session_state.pop(f'{prefix}_where', 'the start')}); "
                       f"the run is kept in Runs with every epoch it finished.")
    if clicked:
        bar = st.progress(0.0, text=start)
        st.session_state[f"{prefix}_running"] = True
        try:
            with recording(kind, {**contract.record(cfg), **(extra or {})}) as rec:
                def progress(fraction, message):
                    rec["where"] = message
                    if stop_requested():  # touching Streamlit now would end the script before the run keeps its epochs
                        return
                    st.session_state[f"{prefix}_where"] = message
                    bar.progress(min(fraction, 1.0), text=message)
                with devices.one_run_at_a_time(lambda: bar.progress(0.0, text="Waiting for a run of another "
                                                                             "session to finish…")):
                    result = rec["result"] = run(progress, stop_requested)
            if result.status != "stopped":  # finished, or diverged: shown with its verdict
                results[key] = result
                st.session_state.pop(f"{prefix}_running", None)
        except ValueError as err:
            st.session_state.pop(f"{prefix}_running", None)
            st.error(str(err))
        except Exception:  # a failure is not a Stop
            st.session_state.pop(f"{prefix}_running", None)
            raise
        bar.empty()
    return results.get(key)


def verdict(v, where=st) -> None:
    """A result's verdict, coloured by what it says (a tie, a mix or a single seed in blue)."""
    {"helped": where.success, "hurt": where.error, "unfit": where.warning, "diverged": where.warning,
     "stopped": where.warning, "failed": where.error}.get(v.kind, where.info)(v.text)


def _same(value, given: list[str]) -> bool:
    """Whether a widget's value is what the link said (a bound value equal to the widget's default
    leaves the URL too: that one was used, not dropped)."""
    if isinstance(value, (list, tuple)):  # multiselects travel as repeated keys, or comma-separated
        texts = given if len(given) > 1 else given[0].split(",") if given and given[0] else []
        return [str(v) for v in value] == texts
    text = given[-1] if given else ""
    if isinstance(value, bool):
        return str(value).lower() == text.lower()
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def _cut(text: str, most: int = 60) -> str:
    """A link value as a notice shows it: a long one cut, so a pasted essay does not fill the page."""
    return text if len(text) <= most else f"{text[:most]}… ({len(text):,} characters)"


class LinkSettings:
    """Notes the query string a page was opened with; `report()`, called after the page's settings
    widgets (and again after widgets drawn further down), says which values were not valid (Streamlit
    drops them and uses the default) or are not settings of this page at all. Keys with the page's prefix whose widgets are drawn further down (or
    only after a Train) are left alone."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.given = {k: st.query_params.get_all(k) for k in st.query_params}
        self.slot = st.empty()

    def report(self) -> list[str]:
        now = set(st.query_params)
        drawn = set(st.session_state.keys())
        dropped = [k for k in self.given if k in drawn and k not in now and not _same(st.session_state[k], self.given[k])]
        unknown = [k for k in self.given if k not in drawn and not k.startswith(self.prefix)]
        for k in unknown:
            del st.query_params[k]
        problems = [f"`{k}={_cut(','.join(self.given[k]))}` (not a valid value: using the default)" for k in dropped]
        problems += [f"`{k}` (not a setting of this page)" for k in unknown]
        if problems:
            self.slot.warning("This link had settings the page could not use: " + "; ".join(problems) + ".")
        return problems
