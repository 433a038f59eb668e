"""Glossary: every term the pages use (tl_core.glossary), in the order a course meets them, with a filter."""
import streamlit as st

from tl_core import glossary
from tl_core.i18n import tr


def said(term: str, text: str) -> tuple[str, str]:
    """A term and its entry as this language says them, searched as shown; an entry the catalogue has not
    translated yet keeps its term in English too (never a Spanish term over an English entry)."""
    return (tr(term), tr(text)) if tr(text) != text else (term, text)


st.title(tr("Glossary"))
st.markdown(tr("The words Transfer Lab uses, once each. A page's **?** beside a term shows the same entry."))
wanted = st.text_input(tr("Find a term"), key="glo_find", placeholder=tr("e.g. LoRA")).strip().lower()
terms = dict(said(t, text) for t, text in glossary.TERMS.items())
shown = {t: text for t, text in terms.items() if wanted in t.lower() or wanted in text.lower()}
if not shown:
    st.info(tr("No term mentions “{wanted}”.", wanted=wanted))
for term, text in shown.items():
    st.markdown(f"**{term}** — {text}")
