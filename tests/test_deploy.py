"""Hosting (docs/deploy.md): `make run` listens on this machine only; a server other machines can reach runs in
shared mode, where each session's uploads and runs on them are its own; the files that host a class in Docker."""
import ipaddress
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request

import pytest
from fixtures import ROOT, open_page
from fixtures import free_port as _free_port

from tl_core import serve, store


def test_the_repo_config_binds_this_machine_only():
    with open(ROOT / ".streamlit" / "config.toml", "rb") as f:
        assert tomllib.load(f)["server"]["address"] == "localhost"


def _listening_on(monkeypatch, address):
    """serve.shared() in an app whose Streamlit option server.address is `address`."""
    from streamlit import config

    real = config.get_option
    monkeypatch.setattr(config, "get_option", lambda key: address if key == "server.address" else real(key))
    return serve.shared()


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.7", "fe80::1",
                                     "class.example.org", "", None])
def test_a_server_other_machines_can_reach_is_shared(monkeypatch, address):
    for name in (serve.SHARED, serve.WORKERS, serve.RAY):
        monkeypatch.delenv(name, raising=False)
    assert _listening_on(monkeypatch, address) is True   # "" / unset: Streamlit listens on every interface


@pytest.mark.parametrize("address", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.1.1", "::1", "[::1]"])
def test_a_server_on_this_machine_only_is_one_users(monkeypatch, address):
    for name in (serve.SHARED, serve.WORKERS, serve.RAY):
        monkeypatch.delenv(name, raising=False)
    assert _listening_on(monkeypatch, address) is False


def test_TL_SHARED_says_otherwise(monkeypatch):
    for name in (serve.WORKERS, serve.RAY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(serve.SHARED, "0")      # a host that wants every run to be everyone's, knowingly
    assert _listening_on(monkeypatch, "0.0.0.0") is False
    monkeypatch.setenv(serve.SHARED, "1")      # behind a reverse proxy on this machine: localhost, yet a class's
    assert _listening_on(monkeypatch, "127.0.0.1") is True
    monkeypatch.delenv(serve.SHARED)
    monkeypatch.setenv(serve.WORKERS, "2")
    assert _listening_on(monkeypatch, "localhost") is True


def test_outside_the_app_the_address_variable_decides(monkeypatch):
    """A process that has not imported Streamlit (the CLI, a worker) reads STREAMLIT_SERVER_ADDRESS, else is one
    user's; and shared() imports no Streamlit there."""
    for name in (serve.SHARED, serve.WORKERS, serve.RAY, serve.ADDRESS):
        monkeypatch.delenv(name, raising=False)
    for name in [m for m in sys.modules if m == "streamlit" or m.startswith("streamlit.")]:
        monkeypatch.delitem(sys.modules, name)
    assert serve.shared() is False
    monkeypatch.setenv(serve.ADDRESS, "0.0.0.0")
    assert serve.shared() is True
    monkeypatch.setenv(serve.ADDRESS, "127.0.0.1")
    assert serve.shared() is False
    assert "streamlit" not in sys.modules


@pytest.mark.parametrize("address, shown", [("0.0.0.0", "0 of 0 runs"), ("localhost", "1 of 1 runs")])
def test_the_runs_page_keeps_another_sessions_upload_apart_when_other_machines_can_reach_it(monkeypatch, tmp_path,
                                                                                        address, shown):
    for name in (serve.SHARED, serve.WORKERS, serve.RAY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    db = store.Store(tmp_path)
    db.finish(db.begin("own", {"dataset": "own: holiday.zip"}, session="another-session", private=True), {"config": {}})
    assert _listening_on(monkeypatch, address) is (address == "0.0.0.0")
    at = open_page("app_pages/runs.py", {})
    assert not at.exception and shown in at.caption[0].value
    assert any("A shared server" in c.value for c in at.caption) is (address == "0.0.0.0")


def test_make_run_listens_on_this_machine_only(tmp_path):
    """`streamlit run app.py` with the repo's config (no --server.address, as `make run`): every socket it listens
    on is a loopback one, so no other machine can open the app."""
    psutil = pytest.importorskip("psutil")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != serve.ADDRESS}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=ROOT, env={**env, "TL_DATA_DIR": str(tmp_path)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail("streamlit did not start within 90 s")
                time.sleep(0.5)
        try:
            conns = psutil.Process(proc.pid).net_connections(kind="inet")
        except psutil.AccessDenied:
            pytest.skip("this machine does not let psutil read the server's sockets")
        listening = {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert "127.0.0.1" in listening, listening
        assert all(ipaddress.ip_address(ip.split("%")[0]).is_loopback for ip in listening), listening
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_docker_files_host_a_class():
    cpu, cuda = ((ROOT / name).read_text().replace("\\\n", " ") for name in ("Dockerfile", "Dockerfile.cuda"))
    for text in (cpu, cuda):
        assert re.search(r"^USER (?!root\b|0\b)\S+", text, re.M), "runs as a non-root user"
        assert re.search(r"TL_SHARED=1", text) and "0.0.0.0" in text
        assert re.search(r"^HEALTHCHECK .*/_stcore/health", text, re.M)
        assert "requirements.txt" in text and "TL_DATA_DIR=/data" in text
    assert re.search(r"^FROM python:3\.11-slim", cpu, re.M)
    assert re.search(r"^(ARG \w+=|FROM )(nvidia/cuda|pytorch/pytorch):", cuda, re.M)
    compose = (ROOT / "compose.yaml").read_text()
    for needed in ("TL_SHARED", "TL_DATA_DIR: /data", "TL_WORKERS", "env_file", "healthcheck", "/_stcore/health",
                   "tl-data:/data"):
        assert needed in compose, needed
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored and ".env" in ignored


def test_the_cpu_wheel_index_is_named_in_the_dockerfile_only():
    index = "download.pytorch" + ".org"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    naming = sorted(f for f in files if (ROOT / f).is_file() and index in (ROOT / f).read_text(errors="ignore"))
    assert naming == ["Dockerfile"]
