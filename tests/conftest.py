from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP_TIMEOUT = 120  # seconds: training on a 2-core CPU is slow compared with AppTest's default 3 s


@pytest.fixture
def app():
    """The whole app (navigation, sidebar) on its Home page, with a fresh Streamlit cache."""
    import streamlit as st

    st.cache_data.clear()
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT).run()
