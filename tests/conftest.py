"""Shared fixtures: the AppTest app, and for browser tests a Streamlit server plus headless Chromium.

Tests marked `browser` are skipped, with a plain reason, where Chromium is not installed; CI sets
TL_REQUIRE_BROWSER=1 so that there a missing browser fails instead.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
APP_TIMEOUT = 120  # seconds: training on a 2-core CPU is slow compared with AppTest's default 3 s
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync"]


def pytest_collection_modifyitems(config, items):
    if CHROMIUM is not None:
        return
    if os.environ.get("TL_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError("TL_REQUIRE_BROWSER=1 but Chromium is not installed (apt-get install chromium)")
    skip = pytest.mark.skip(reason="Chromium not installed: browser tests SKIPPED "
                                   "(apt-get install chromium to run them)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_history(tmp_path_factory):
    """Runs recorded by tests (pages, CLI, the browser's server) go to a throwaway history, never the user's."""
    os.environ["TL_DATA_DIR"] = str(tmp_path_factory.mktemp("transfer-lab-data"))
    yield


@pytest.fixture
def fresh_server(monkeypatch, tmp_path):
    """A server that has trained nothing yet: an empty history of its own and no shared results in memory, so a
    page at its defaults asks for a run instead of showing one another test trained (an identical run trains
    once, tl_core.serve)."""
    from tl_core import serve

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(serve, "_SERVER", {})
    return tmp_path


@pytest.fixture
def app():
    """The whole app (navigation, sidebar) on its Home page, with a fresh Streamlit cache."""
    import streamlit as st

    st.cache_data.clear()
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT).run()


def open_page(page: str, params: dict) -> AppTest:
    """A fresh browser session opening `page` with `params` in its URL, as a shared link would."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT)
    at.run()
    at.switch_page(page)
    at.query_params.update(params)
    return at.run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    log = open(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 90 s; see artifacts/streamlit.log")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # tall enough that a screenshot shows every chart (Streamlit scrolls inside its own container)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        yield page
        browser.close()
