"""Transfer Lab: see transfer learning happen. Entry point: `streamlit run app.py` (or `make run`)."""
import streamlit as st

from tl_core import device, engine, serve
from tl_core.pages import PAGES

st.set_page_config(page_title="Transfer Lab", page_icon=":material/science:", layout="wide")

nav = st.navigation([st.Page(p.file, title=p.title, icon=f":material/{p.icon}:", url_path=p.path or None,
                             default=not p.path) for p in PAGES])
st.sidebar.caption(f"Training device: **{device.describe()}**")
st.sidebar.caption(f"Sweeps run on: **{engine.describe(*engine.app_engine())}**")
st.sidebar.caption(f"Runs train in: **{serve.describe()}**"
                   + (" · a shared server: your uploads are yours" if serve.shared() else ""))
nav.run()
