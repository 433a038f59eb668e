"""A page's settings: widgets made from an experiment's declared settings (range, choices, help), bound to the
page's URL with Streamlit's own `bind="query-params"` so that a link reproduces an experiment, and `LinkSettings`,
which tells the user when a link carried values the page could not use. Pages reach these through `ui`.
"""
from __future__ import annotations

import streamlit as st

from tl_core import contract, names
from tl_core.i18n import tr

URL = "query-params"  # bind= value for every settings widget: its value lives in the page's URL
APP_WIDE = {"lang"}   # link parameters of every page (app.py reads them), never a page's setting


def page(title: str, prefix: str, intro: str, settings: str = "", help: str | None = None) -> "LinkSettings":
    """A page's title, introduction (with `help`, its "?": e.g. the glossary's entries of the terms it names) and
    the heading of its settings in the sidebar; returns the page's link checker (call `.report()` after its
    settings widgets)."""
    st.title(title)
    link = LinkSettings(prefix)
    st.markdown(intro, help=help)
    if settings:
        st.sidebar.header(settings)
    return link


def title(s: contract.Setting) -> str:
    """A setting's widget label in English (the message id): its declared title, else its label in words."""
    return s.title or s.label.replace("-", " ").capitalize()


def texts(s: contract.Setting) -> list[str]:
    """The words a setting's widget shows (its label, its help, each choice's help): what the catalogue
    translates (tools/i18n_sync.py reads every declared setting through this)."""
    return [title(s), s.help, *s.choice_help.values()]


def _help(s: contract.Setting) -> str:
    if s.choice_help:
        return "\n".join(f"- **{k}**: {tr(v)}" for k, v in s.choice_help.items())
    return tr(s.help)


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
    label = tr(label or title(s))
    horizontal = kwargs.pop("horizontal", True)
    common = {"key": key, "help": kwargs.pop("help", _help(s)), **({"bind": URL} if bind else {}), **kwargs}
    offered = options if options is not None else s.steps if s.steps is not None else s.choices
    if s.kind is bool and not s.many:
        return where.toggle(label, value=bool(default), **common)
    if s.many and _named(list(offered or default)) and fmt is None:
        return _boxes(where, label, key, list(offered or default), tuple(default), common["help"], bind)
    if s.many:
        opts = list(offered or default)
        texts = [_text(o) for o in opts] if None in opts else opts   # "all" stands for None
        # fmt changes what the URL carries too (a bound multiselect writes its options' text): keys, unless told
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


def _named(opts) -> bool:
    """Options that are conditions or strategies (`tl_core.names`): shown in words, one checkbox each."""
    return bool(opts) and all(isinstance(o, str) and o in names.CONDITIONS for o in opts)


def _boxes(where, label: str, key: str, opts: list, default: tuple, help: str, bind: bool) -> tuple:
    """A multi-choice setting of conditions as one checkbox per option, each in words ("fine-tune the last
    layers"), while the URL keeps the code's names as a multiselect's would (`?text_conditions=feature&...`,
    what the lecture's links and the CLI write): a bound multiselect writes its displayed text into the URL, and
    words there would break every link when a wording (or the language) changes. The boxes' state mirrors the
    link param by hand: read on the first draw, written back on each change (left out when at the default). The
    picked keys are in `st.session_state[key]`, as a widget's value would be, for the link check."""
    given = st.query_params.get_all(key) if bind else []
    given = given[0].split(",") if len(given) == 1 and "," in given[0] else given
    valid = [g for g in given if g in opts]
    start = tuple(valid) if given and len(valid) == len(given) else default
    if given and start != tuple(given) and bind:
        del st.query_params[key]          # a value it cannot use: dropped, and the link check says so

    def changed():
        picked = [o for o in opts if st.session_state.get(f"{key}__{o}")]
        st.session_state[key] = tuple(picked)
        if bind:
            if tuple(picked) == default:
                st.query_params.pop(key, None)
            else:
                st.query_params[key] = picked

    where.markdown(f"**{label}**", help=help)
    for o in opts:
        where.checkbox(names.condition(o), value=o in start, key=f"{key}__{o}", on_change=changed)
    picked = tuple(o for o in opts if st.session_state.get(f"{key}__{o}", o in start))
    st.session_state[key] = picked
    return picked


def widgets(cls, names, prefix: str, where=None, **per_name) -> dict:
    """Several settings' widgets in order: {name: value}; per_name[name] holds one widget's overrides."""
    return {n: widget(cls, n, prefix, where, **per_name.get(n, {})) for n in names}


def more_settings(cls, names, prefix: str, **per_name) -> dict:
    """Settings a class rarely changes (validation size, a class subset), in a closed expander of the sidebar: a
    link (the lecture's, a colleague's) still sets them, and the page runs exactly the config it names."""
    with st.sidebar.expander(tr("More settings")):
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
    return text if len(text) <= most else tr("{start}… ({n} characters)", start=text[:most], n=f"{len(text):,}")


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
        unknown = [k for k in self.given if k not in drawn and not k.startswith(self.prefix) and k not in APP_WIDE]
        for k in unknown:
            del st.query_params[k]
        problems = [tr("`{setting}` (not a valid value: using the default)",
                       setting=f"{k}={_cut(','.join(self.given[k]))}") for k in dropped]
        problems += [tr("`{setting}` (not a setting of this page)", setting=k) for k in unknown]
        if problems:
            self.slot.warning(tr("This link had settings the page could not use: {problems}.",
                                 problems="; ".join(problems)))
        return problems
