"""Transfer Lab: see transfer learning happen. Entry point: `streamlit run app.py` (or `make run`)."""
import streamlit as st

from tl_core import device, engine

st.set_page_config(page_title="Transfer Lab", page_icon=":material/science:", layout="wide")

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/lecture.py", title="Lecture", icon=":material/co_present:", url_path="lecture"),
    st.Page("app_pages/toy.py", title="Regularisation toy", icon=":material/show_chart:", url_path="toy"),
    st.Page("app_pages/finetune.py", title="Fine-tuning lab", icon=":material/tune:", url_path="finetune"),
    st.Page("app_pages/layers.py", title="What layers learn", icon=":material/layers:", url_path="layers"),
    st.Page("app_pages/domains.py", title="Which strategy?", icon=":material/grid_view:", url_path="domains"),
    st.Page("app_pages/own.py", title="Your own images", icon=":material/photo_camera:", url_path="own"),
    st.Page("app_pages/selfsup.py", title="Self-supervised pretraining", icon=":material/visibility_off:", url_path="ssl"),
    st.Page("app_pages/state.py", title="State-dict workshop", icon=":material/database:", url_path="state"),
    st.Page("app_pages/gtl.py", title="Guided Transfer Learning", icon=":material/explore:", url_path="gtl"),
    st.Page("app_pages/text.py", title="Transfer for text", icon=":material/translate:", url_path="text"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
]
nav = st.navigation(pages)
st.sidebar.caption(f"Training device: **{device.describe()}**")
st.sidebar.caption(f"Sweeps run on: **{engine.describe(*engine.app_engine())}**")
nav.run()
