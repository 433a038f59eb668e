"""Shared pytest fixtures: the AppTest app, the lecture's prepared history, and for browser tests a Streamlit server
plus headless Chromium. The tiny configs and helpers they share are in tests/fixtures.py.

Tests marked `browser` are skipped, with a plain reason, where Chromium is not installed; CI sets
TL_REQUIRE_BROWSER=1 so that there a missing browser fails instead. Under pytest-xdist (`make test`) each worker
trains on one torch thread (OMP_NUM_THREADS=1, inherited by the CLI runs, servers and worker processes it starts):
several workers share the 2 cores, none spinning on another's threads.
"""
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from fixtures import APP_TIMEOUT, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, open_page  # noqa: F401
from streamlit.testing.v1 import AppTest

_free_port = free_port   # the name load_fault.py and older tests import


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _longest_files_first(items)
    if CHROMIUM is not None:
        return
    if os.environ.get("TL_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError("TL_REQUIRE_BROWSER=1 but Chromium is not installed (apt-get install chromium)")
    skip = pytest.mark.skip(reason="Chromium not installed: browser tests SKIPPED "
                                   "(apt-get install chromium to run them)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def _longest_files_first(items):
    """Under pytest-xdist (`make test`: --dist loadfile --no-loadscope-reorder) a file is one unit of work, handed out
    in this order: the longest first, so that no worker is left with a long file at the end while the others wait.
    A file's length is guessed from its marks (a slow or browser test takes seconds, most others a fraction of one);
    within a file the order stays as written."""
    def seconds(item):
        return 15.0 if ("slow" in item.keywords or "browser" in item.keywords) else 0.5

    length, first = {}, {}
    for i, item in enumerate(items):
        length[item.path] = length.get(item.path, 0.0) + seconds(item)
        first.setdefault(item.path, i)
    items.sort(key=lambda item: (-length[item.path], first[item.path]))


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
    from tl_core.serve import scheduler

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(scheduler, "_SERVER", {})
    return tmp_path


@pytest.fixture
def app():
    """The whole app (navigation, sidebar) on its Home page, with a fresh Streamlit cache."""
    import streamlit as st

    st.cache_data.clear()
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT).run()


@pytest.fixture(scope="module")
def lecture_env(tmp_path_factory):
    """Tiny configs and the session's lecture history for everything in the module using it (and its server)."""
    from tl_core import lecture

    history = tmp_path_factory.getbasetemp() / "lecture-history"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(lecture.TINY_ENV, "1")
        mp.setenv("TL_DATA_DIR", str(history))
        yield history


@pytest.fixture(scope="module")
def prepared(lecture_env):
    """The lecture prepared once (idempotent: a second call, in another module, finds every run in the history)."""
    import torch

    from tl_core import device as devices
    from tl_core import lecture, store

    with devices.one_cpu_thread(torch.device("cpu")):  # the tiny models train faster on one thread of a busy CPU
        return lecture.prepare(store.Store(lecture_env), session="test", device="cpu")


@pytest.fixture(scope="module")
def server():
    port = free_port()
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


@pytest.fixture(scope="module")
def mic_page(tmp_path_factory):
    """Headless Chromium with a fake microphone that plays a shipped clip (the Spanish "cinco", with half a second
    of silence either side, looped by Chromium): what st.audio_input records. The microphone is allowed without
    asking. Yields (page, the word said)."""
    import numpy as np
    from playwright.sync_api import sync_playwright

    from tl_core import audio, userclips

    ds = audio.spoken_words()
    row = next(i for i in range(len(ds)) if ds.words[i] == "cinco")
    silence = np.zeros(audio.RATE // 2, np.int16)
    wav = tmp_path_factory.mktemp("mic") / "cinco.wav"
    wav.write_bytes(userclips.to_wav(np.concatenate([silence, ds.waves[row], silence])))
    args = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-audio-capture={wav}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, permissions=["microphone"])
        yield context.new_page(), "cinco"
        browser.close()
