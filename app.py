"""Transfer Lab: see transfer learning happen. Entry point: `streamlit run app.py` (or `make run`)."""
import streamlit as st

from tl_core import device, engine, i18n, serve
from tl_core.i18n import tr
from tl_core.pages import PAGES

# an emoji icon is drawn in the browser: a Material icon as the page icon is fetched from Google's font server.
# No menu_items: with them, a Stop pressed while a run trains left the page frozen until the run ended
# (tests/test_browser_stop.py). The sidebar's About line says instead where the Glossary and Runs are.
st.set_page_config(page_title="Transfer Lab", page_icon="🧪", layout="wide")


def _switch_language():
    """The switch writes `?lang=` (always, the browser's own language too: the choice stays explicit), so the
    page's link carries it."""
    st.query_params["lang"] = st.session_state["lang_switch"]


# the language of this page run: ?lang= (the switch below writes it, so a teacher's link carries it), else this
# session's last choice (moving to another page leaves the URL's parameters behind), else the browser's
# (st.context.locale), else English. Everything shown after this line speaks it (tl_core.i18n).
chosen = i18n.normal(st.query_params.get("lang")) or i18n.normal(st.session_state.get("lang_switch"))
lang = i18n.set_language(chosen or i18n.normal(st.context.locale))
if chosen and st.query_params.get("lang") != lang:
    st.query_params["lang"] = lang
st.session_state["lang_switch"] = lang
nav = st.navigation([st.Page(p.file, title=tr(p.title), icon=f":material/{p.icon}:", url_path=p.path or None,
                             default=not p.path) for p in PAGES], expanded=True)   # every page shown: no "View more"
st.sidebar.radio("Language · Idioma", list(i18n.LANGS), horizontal=True,
                 format_func=i18n.LANGS.get, key="lang_switch", on_change=_switch_language,
                 help="English or Spanish; the link carries it (?lang=es), so a class opens it in the "
                      "same language · Inglés o español; el enlace lo lleva (?lang=es).")
if lang != i18n.DEFAULT:
    # the one text left in English: Streamlit draws its file uploader's words in the browser, out of the app's reach
    st.sidebar.caption(tr("File uploads: the words inside the upload box (“Drag and drop files here”, “Browse "
                          "files”) are Streamlit's own and stay in English."))
st.sidebar.caption("  \n".join((   # one block: the page's own settings start higher in the sidebar
    tr("Training device: **{device}**", device=device.describe()),
    tr("Sweeps run on: **{engine}**", engine=engine.describe(*engine.app_engine())),
    tr("Runs train in: **{where}**", where=serve.describe())
    + (tr(" · a shared server: your uploads are yours") if serve.shared() else ""))))
st.sidebar.caption(tr("About Transfer Lab"), help=tr(
    "**Transfer Lab**: see transfer learning happen, one live experiment per page. New words are explained on the "
    "**Glossary** page (last in the list above); every run you train is kept on **Runs**, where two runs of one "
    "experiment can be compared."))
nav.run()
