"""A history that cannot be written: a full disk and a read-only store each say which in one line, leave no
half-written file and no run "running", and a read-only history is still shown (opened read-only)."""
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import fakes
import pytest
from fixtures import ROOT, Fake, open_page
from fixtures import TINY_TOY_ARGV as TINY_TOY

from tl_core import cli, serve, store

BIG = 20000   # epochs of a curve: a result that needs new pages in the history


@pytest.fixture
def full_disk(monkeypatch):
    """Call it and the history cannot grow any more: SQLite's own cap on the file's pages, so a write that needs
    room fails inside SQLite with SQLITE_FULL ("database or disk is full"), as on a full disk, while a small
    write that fits in the pages already there still lands."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        db = real(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 1")   # never below the file's present size: it cannot grow
        return db
    return lambda: monkeypatch.setattr(sqlite3, "connect", connect)


@pytest.fixture
def read_only(monkeypatch):
    """Call it and the history's file can be read but not written: SQLite opens it read-only, as it does a file on
    a read-only disk or one this user may not write (tests run as root, for whom chmod denies nothing)."""
    real = sqlite3.connect

    def connect(database, *args, uri=False, **kwargs):
        if not uri:
            database, uri = f"{Path(database).resolve().as_uri()}?mode=ro", True
        elif "mode=" not in str(database):
            database = f"{database}{'&' if '?' in str(database) else '?'}mode=ro"
        return real(database, *args, uri=uri, **kwargs)
    return lambda: monkeypatch.setattr(sqlite3, "connect", connect)


@pytest.fixture
def srv():
    before = serve.use(serve.Server())
    yield serve.server()
    serve.use(before)


def _one_line(text: str) -> bool:
    return "\n" not in text and "unreadable" not in text and "Traceback" not in text


# ---- a full disk -------------------------------------------------------------------------------------------------

def test_a_full_disk_when_a_tracked_run_ends_says_the_disk_is_full_and_leaves_it_not_running(tmp_path, full_disk):
    db = store.Store(tmp_path)
    with pytest.raises(OSError) as told:
        with db.track("finetune", {"i": 1}) as rec:
            full_disk()                                    # the disk fills while it trains
            rec["result"] = Fake({"i": 1}, 0.5, [0.5] * BIG)
    assert "could not be written: the disk is full" in str(told.value) and _one_line(str(told.value))
    (run,) = db.runs()                                     # a full disk is still read
    assert run.status == "failed" and "not recorded" in run.message and "disk is full" in run.message
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_full_disk_when_a_servers_run_ends_tells_its_followers_and_leaves_nothing_behind(tmp_path, full_disk, srv):
    # the disk fills while it trains (at its first step), and its result is large
    job, _ = srv.submit(fakes.request(n=2, value=0.5, curve=BIG, steps=1, pause=0.0), root=str(tmp_path),
                        progress=lambda fraction, message: full_disk())
    assert job.done.wait(60)
    assert job.status == "finished" and job.result is not None          # the followers still get the run
    assert "not recorded: the disk is full" in job.message and _one_line(job.message)
    (run,) = store.Store(tmp_path).runs()
    assert run.status == "failed" and "disk is full" in run.message     # not "running" until a restart
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_result_file_that_meets_a_full_disk_leaves_no_tmp_file(tmp_path, srv, monkeypatch):
    """The history takes the run; the server's copy of its whole result finds the disk full half-way."""
    real = Path.write_bytes

    def half_then_full(self, data):
        real(self, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    job, _ = srv.submit(fakes.request(n=3, value=0.5, curve=1, steps=1, pause=0.0), root=str(tmp_path))
    assert job.done.wait(60) and job.status == "finished"
    assert store.Store(tmp_path).runs()[0].status == "finished"
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("code,says", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                       (errno.EACCES, "read-only")])
def test_a_data_folder_that_cannot_be_made_says_why(tmp_path, monkeypatch, code, says):
    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OSError) as told:
        store.Store(tmp_path / "new")
    assert says in str(told.value) and "cannot create the data directory" in str(told.value)


# ---- a read-only history -----------------------------------------------------------------------------------------

def test_a_read_only_history_opens_read_only_and_lists_every_run(tmp_path, read_only):
    db = store.Store(tmp_path)
    a, b = db.record("finetune", Fake({"i": 1}, 0.5, [0.5])), db.record("finetune", Fake({"i": 2}, 0.6, [0.6]))
    read_only()
    ro = store.Store(tmp_path)
    assert [r.id for r in ro.runs()] == [b, a] and ro.get(a).curves == {"history.val_acc": [0.5]}
    assert ro.readonly and "read-only" in ro.problem and _one_line(ro.problem)
    for write in (lambda: ro.begin("toy", {}), lambda: ro.delete([a]), lambda: ro.rename(a, "x")):
        with pytest.raises(OSError, match="could not be written: it is read-only"):
            write()
    assert [r.id for r in ro.runs()] == [b, a]


def test_a_servers_run_on_a_read_only_history_tells_its_followers_it_was_not_recorded(tmp_path, read_only, srv):
    store.Store(tmp_path).record("finetune", Fake({"i": 1}, 0.5, [0.5]))
    read_only()
    job, _ = srv.submit(fakes.request(n=4, value=0.7, curve=1, steps=1, pause=0.0), root=str(tmp_path))
    assert job.done.wait(60) and job.status == "finished" and job.result is not None
    assert "not recorded" in job.message and "read-only" in job.message and _one_line(job.message)
    assert len(store.Store(tmp_path).runs()) == 1


def test_the_cli_on_a_read_only_history_says_so_in_one_line(tmp_path, read_only, capsys):
    store.Store(tmp_path).record("finetune", Fake({"i": 1}, 0.5, [0.5]))
    read_only()
    cli.main([*TINY_TOY, "--json", "--data-dir", str(tmp_path)])   # (--no-record trains it unrecorded)
    err = capsys.readouterr().err
    assert "could not be written: it is read-only" in err and err.count("\n") == 1 and _one_line(err.strip())
    assert cli.main(["runs", "list", "--json", "--data-dir", str(tmp_path)]) == 0     # the history still lists
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 1


def test_the_runs_page_shows_a_read_only_history_and_says_it_is_read_only(tmp_path, read_only, monkeypatch):
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    db = store.Store(tmp_path)
    a, b = db.record("finetune", Fake({"i": 1}, 0.5, [0.5])), db.record("finetune", Fake({"i": 2}, 0.6, [0.6]))
    read_only()
    at = open_page("app_pages/runs.py", {})
    assert not at.exception
    said = [w.value for w in at.warning]
    assert len(said) == 1 and "read-only" in said[0] and "not recorded" in said[0]
    assert len(at.dataframe[0].value) == 2 and at.multiselect(key="runs_pick").value == [b, a]
    assert "runs_label" not in at.session_state and "runs_delete" not in [b.key for b in at.button]   # not offered


SCRIPT = textwrap.dedent("""
    import json, sys
    from tl_core import store
    db = store.Store(sys.argv[1])
    out = {"ids": [r.id for r in db.runs()], "readonly": db.readonly, "problem": db.problem}
    try:
        db.begin("toy", {})
    except OSError as err:
        out["begin"] = str(err)
    print(json.dumps(out))
""")


def _as_a_user_who_cannot_write(folder: Path) -> dict:
    """Run SCRIPT on `folder` as a user who may read it but not write it: this user after a chmod, or, for root
    (whom chmod does not stop), the unprivileged user nobody with a Python that nobody may run."""
    folder.chmod(0o555)
    (folder / "runs.sqlite").chmod(0o444)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    command, user = [sys.executable], {}
    if os.geteuid() == 0:
        user = {"user": 65534, "group": 65534}
        # the checkout may sit in a folder only its owner can enter (a fresh clone in a private temp dir): nobody
        # reads a copy of the package instead (tl_core.store needs only the standard library)
        code = Path(tempfile.mkdtemp(prefix="tl-code-"))
        shutil.copytree(ROOT / "tl_core", code / "tl_core", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [code, *code.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        env["PYTHONPATH"] = str(code)
        for python in dict.fromkeys([sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]):
            try:
                if subprocess.run([python, "-c", "import sqlite3"], cwd="/", timeout=60, **user).returncode == 0:
                    command = [python]
                    break
            except (OSError, subprocess.SubprocessError):
                continue
        else:
            pytest.skip("no Python here that the unprivileged user nobody may run")
    try:
        run = subprocess.run([*command, "-c", SCRIPT, str(folder)], capture_output=True, text=True, env=env, cwd="/",
                             timeout=120, **user)
    finally:
        if env["PYTHONPATH"] != str(ROOT):
            shutil.rmtree(env["PYTHONPATH"], ignore_errors=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_read_only_folder_shows_its_whole_history_to_a_user_who_cannot_write_it():
    folder = Path(tempfile.mkdtemp(prefix="tl-read-only-"))
    try:
        folder.chmod(0o755)
        db = store.Store(folder)
        ids = [db.record("finetune", Fake({"i": i}, 0.5, [0.5])) for i in range(3)]
        seen = _as_a_user_who_cannot_write(folder)
        assert seen["ids"] == ids[::-1] and seen["readonly"] and "read-only" in seen["problem"]
        assert "could not be written: it is read-only" in seen["begin"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
