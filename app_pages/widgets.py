"""A page's settings: widgets made from an experiment's declared settings (range, choices, help), bound to the
page's URL with Streamlit's own `bind="query-params"` so that a link reproduces an experiment, and `LinkSettings`,
which tells the user when a link carried values the page could not use. Pages reach these through `ui`.
"""
from __future__ import annotations

import streamlit as st

from tl_core import contract

URL = "query-params"  # bind= value for every settings widget: its value lives in the page's URL


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
    drops them and uses the default) or are not settings of this page at all. Keys with the page's prefix
    whose widgets are drawn further down (or only after a Train) are left alone."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.given = {k: st.query_params.get_all(k) for k in st.query_params}
        self.slot = st.empty()

    def report(self) -> list[str]:
        now = set(st.query_params)
        drawn = set(st.session_state.keys())
        dropped = [k for k in self.given
                   if k in drawn and k not in now and not _same(st.session_state[k], self.given[k])]
        unknown = [k for k in self.given if k not in drawn and not k.startswith(self.prefix)]
        for k in unknown:
            del st.query_params[k]
        problems = [f"`{k}={_cut(','.join(self.given[k]))}` (not a valid value: using the default)" for k in dropped]
        problems += [f"`{k}` (not a setting of this page)" for k in unknown]
        if problems:
            self.slot.warning("This link had settings the page could not use: " + "; ".join(problems) + ".")
        return problems
