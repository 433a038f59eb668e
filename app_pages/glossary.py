"""Glossary: every term the pages use (tl_core.glossary), in the order a course meets them, with a filter."""
import streamlit as st

from tl_core import glossary

st.title("Glossary")
st.markdown("The words Transfer Lab uses, once each. A page's **?** beside a term shows the same entry.")
wanted = st.text_input("Find a term", key="glo_find", placeholder="e.g. LoRA").strip().lower()
shown = {t: text for t, text in glossary.TERMS.items() if wanted in t.lower() or wanted in text.lower()}
if not shown:
    st.info(f"No term mentions “{wanted}”.")
for term, text in shown.items():
    st.markdown(f"**{term}** — {text}")
