"""A class's server keeps each student's private runs theirs, reads nothing back with pickle, holds its caches within
budgets in bytes, and gives no student the whole server (issue #33: findings 1, 5 and 7).

Private runs (own images, continue fine-tuning) are keyed by their upload's content and their owner session; they are
checked against that session at every lookup, in memory and on disk, and never written beside the history. Public
results are kept as one safetensors file (tensors, and JSON in its metadata); a file planted in the results folder
runs no code. On a shared server one session has at most TL_SESSION_RUNS runs queued or training and none longer
than TL_MAX_RUN_MINUTES; the teacher sees and stops any run."""
import pickle
from pathlib import Path

import fakes
import pytest
import torch
from fixtures import open_page
from safetensors.torch import save as save_tensors

from tl_core import budget, resultfile, reuse, serve, store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def srv(monkeypatch):
    monkeypatch.setattr(resultfile, "TRUSTED", (*resultfile.TRUSTED, "fakes"))
    before = serve.use(serve.Server())
    yield serve.server()
    serve.use(before)


CFG = {"backbone": "shapes_cnn", "epochs": 3, "init": "model.pt"}


def ask_private(srv, root, session: str, digest: str, value: float, **kw):
    """A run on an upload (tests/fakes.py's private experiment), as a page on a shared server asks for it."""
    request = fakes.request("fake-private", owner=session, digest=digest, value=value, steps=1, pause=0.0)
    return srv.submit(request, blobs={"init": b"the upload"}, root=str(root), session=session, estimate=1.0, **kw)


# ---- finding 1: a private result is its owner's alone ------------------------------------------------------------

def test_a_second_session_with_a_different_file_of_the_same_name_and_size_gets_its_own_run(srv, tmp_path):
    (a, _), (b, _) = ask_private(srv, tmp_path, "alice", "aa" * 32, 0.25), ask_private(srv, tmp_path, "bob",
                                                                                         "bb" * 32, 0.75)
    assert a is not b and a.done.wait(30) and b.done.wait(30)
    assert float(a.result.weights[0]) == 0.25 and float(b.result.weights[0]) == 0.75
    assert len(store.Store(tmp_path).runs()) == 2                        # two trainings, one each
    # the same bytes uploaded by two students are still two runs: no session follows or sees another's
    assert serve.identity("continue", CFG, "sha256:x", owner="alice") != \
        serve.identity("continue", CFG, "sha256:x", owner="bob")


def test_a_private_result_is_checked_against_its_session_in_memory_and_on_disk(srv, tmp_path):
    job, _ = ask_private(srv, tmp_path, "alice", "aa" * 32, 0.25)
    assert job.done.wait(30) and job.status == "finished"
    root = str(tmp_path)
    assert srv.lookup(root, job.identity, "alice").result is job.result
    assert srv.lookup(root, job.identity, "bob") is None                # in memory: not another session's
    db = store.Store(tmp_path)
    assert not db.result_file(job.run_id).exists()                      # never written beside the history
    assert not list((tmp_path / "results").glob("*")) if (tmp_path / "results").exists() else True
    # even a result file for it (an older server's, a copied folder) is checked against its owner when read back
    resultfile.write(db.result_file(job.run_id), resultfile.dumps(job.result))
    restarted = serve.Server()
    assert restarted.lookup(root, job.identity, "bob") is None
    assert float(restarted.lookup(root, job.identity, "alice").result.weights[0]) == 0.25


def test_a_public_result_is_kept_as_safetensors_and_read_back_without_pickle(srv, tmp_path, monkeypatch):
    job, _ = srv.submit(fakes.request(value=0.5, steps=1, pause=0.0), root=str(tmp_path), session="s", estimate=1.0)
    ident = job.identity
    assert job.done.wait(30) and job.status == "finished"
    path = store.Store(tmp_path).result_file(job.run_id)
    assert path.suffix == ".safetensors" and path.is_file() and b"transfer-lab-result-1" in path.read_bytes()[:4096]

    def no_pickle(*a, **k):
        raise AssertionError("a result was read back with pickle")
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    back = serve.Server().lookup(str(tmp_path), ident)
    assert back.result.to_json() == job.result.to_json() and torch.equal(back.result.weights, job.result.weights)


class Boom:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_file_planted_in_the_results_folder_runs_no_code_and_is_not_shown(srv, tmp_path):
    job, _ = srv.submit(fakes.request(value=0.5, steps=1, pause=0.0), root=str(tmp_path), session="s", estimate=1.0)
    ident = job.identity
    assert job.done.wait(30)
    db = store.Store(tmp_path)
    path, marker = db.result_file(job.run_id), tmp_path / "pwned"
    boom = Boom()
    boom.marker = str(marker)
    planted = {
        "a pickle under the result's name": pickle.dumps(boom),
        "a pickle where an older version kept results": None,
        "a safetensors file of another program": save_tensors({"w": torch.zeros(2)}),
        "our format naming a class outside Transfer Lab": save_tensors(
            {"0": torch.zeros(1)}, metadata={"format": resultfile.FORMAT,
                                             "tree": '{"@": "subprocess:Popen", "v": {"args": "touch pwned"}}'}),
    }
    for what, raw in planted.items():
        if raw is None:
            path.unlink(missing_ok=True)
            path.with_suffix(".pkl").write_bytes(pickle.dumps(boom))
        else:
            path.write_bytes(raw)
        assert serve.Server().lookup(str(tmp_path), ident) is None, what   # not shown: it trains again
        assert not marker.exists(), what


def test_the_own_images_page_says_truthfully_what_is_kept_where(app):
    at = open_page("app_pages/own.py", {})
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "nothing is written to disk" not in text
    assert "never written to disk" in text and "settings, class names and scores (no images, no weights)" in text


# ---- finding 5: budgets in bytes, and no student holds the server ------------------------------------------------

def test_the_results_cache_is_bounded_in_bytes_oldest_first(monkeypatch):
    monkeypatch.setenv(serve.CACHE_MB, "1")
    srv = serve.Server()
    big = lambda v: serve.Entry(fakes.Done({}, weights=torch.full((100_000,), v)), None, 0.0, 0.0, "s")   # noqa: E731
    srv.remember("", "a", big(1.0))                           # 400 KB each: two fit in 1 MB, the third evicts one
    srv.remember("", "b", big(2.0))
    assert srv.lookup("", "a") is not None                    # a is now the newest
    srv.remember("", "c", big(3.0))
    assert srv.lookup("", "b") is None and srv.lookup("", "a") is not None and srv.lookup("", "c") is not None
    assert srv.cache.bytes <= 2**20
    srv.remember("", "huge", serve.Entry(torch.zeros(300_000), None, 0.0, 0.0, "s"))   # larger than the budget
    assert srv.lookup("", "huge") is None and srv.lookup("", "c") is not None


def test_what_pages_derive_and_the_scratch_runs_are_bounded_in_bytes(monkeypatch):
    from app_pages import ui

    monkeypatch.setattr(ui, "_ONCE", budget.ByteLRU(2**20, most=48, size=lambda hit: budget.nbytes(hit[1])))
    made = []
    results = [object() for _ in range(3)]
    for r in results:
        ui.once(r, "export", lambda: made.append(1) or bytes(400_000))
    assert len(made) == 3 and ui._ONCE.bytes <= 2**20
    ui.once(results[0], "export", lambda: made.append(1) or bytes(400_000))   # the oldest went: made again
    ui.once(results[2], "export", lambda: made.append(1) or bytes(400_000))   # the newest stayed
    assert len(made) == 4
    assert isinstance(reuse.SCRATCH, budget.ByteLRU) and reuse.SCRATCH.budget == 256 * 2**20


def test_one_session_may_have_two_runs_at_once_and_none_longer_than_the_limit(srv, tmp_path, monkeypatch):
    monkeypatch.setenv(serve.SESSION_RUNS, "2")
    monkeypatch.setenv(serve.RUN_MINUTES, "1")
    root = str(tmp_path)

    def ask(session, n, estimate=1.0, limited=True):
        return srv.submit(fakes.request(n=n, value=float(n), steps=400, pause=0.01), root=root, session=session,
                          estimate=estimate, limited=limited)
    (a, ta), (b, tb) = ask("greedy", 1), ask("greedy", 2)
    with pytest.raises(serve.Refused, match="already have 2 runs queued or training .* limit is 2 per session"):
        ask("greedy", 3)
    other, to = ask("patient", 4)                              # another student is not held up by the limit
    followed, tf = ask("greedy", 4)                            # following a run in flight is never refused
    assert followed is other
    with pytest.raises(serve.Refused,
                       match="about 60 min on this server, over the class.s limit of 1 min for one run"):
        ask("patient", 5, estimate=3600.0)
    teacher, tt = ask("teacher", 6, estimate=3600.0, limited=False)   # the teacher's token lifts the limits
    assert {j.id for j in srv.jobs()} == {a.id, b.id, other.id, teacher.id}
    # the teacher's Stop: a run stops for every session following it, and says who stopped it
    assert srv.stop_now(other.id) and other.done.wait(30) and other.status == "stopped"
    assert "stopped by the teacher" in (other.error or other.message)
    assert not srv.stop_now(other.id)
    for job, token in ((a, ta), (b, tb), (teacher, tt)):
        srv.leave(job, token)
    for job in (a, b, teacher):
        assert job.done.wait(30)
    ask("greedy", 7)                                           # its runs are done: it may ask again


def test_a_refused_run_is_said_on_the_page_and_the_teacher_sees_every_run_with_a_stop(app, tmp_path, monkeypatch):
    from app_pages import ui

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(serve.SHARED, "1")
    monkeypatch.setenv(serve.ADMIN, "chalk")
    monkeypatch.setenv(serve.RUN_MINUTES, "1")
    monkeypatch.setattr(serve, "estimate", lambda kind, config, db=None: (3600.0, 0))
    monkeypatch.setattr(ui, "session_id", lambda: "student")
    before = serve.use(serve.Server())
    try:
        lab = open_page("app_pages/finetune.py", {"ft_backbone": "shapes_cnn", "ft_image_size": "32"})
        lab.button(key="ft_train").click().run()
        assert not lab.exception
        assert any("over the class's limit" in e.value for e in lab.error)
        assert store.Store(tmp_path).runs() == []                           # refused before anything was recorded
        job, token = serve.server().submit(fakes.request(n=1, steps=2000, pause=0.01), session="student",
                                           estimate=20.0)
        runs = open_page("app_pages/runs.py", {})
        runs.sidebar.text_input(key="runs_token").input("chalk").run()
        assert not runs.exception and any("Training now" in s.value for s in runs.subheader)
        runs.button(key=f"runs_stop_{job.id}").click().run()
        assert job.done.wait(30) and job.status == "stopped"
        serve.server().leave(job, token)
    finally:
        serve.use(before)


def test_on_a_shared_server_only_the_teacher_prepares_the_lecture_and_the_token_outlives_the_runs_page(
        app, tmp_path, monkeypatch):
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(serve.SHARED, "1")
    monkeypatch.setenv(serve.ADMIN, "chalk")
    monkeypatch.setenv("TL_LECTURE_TINY", "1")
    at = open_page("app_pages/lecture.py", {})
    assert not at.exception and at.button(key="lec_prepare").disabled        # a student: it would hold everyone's runs
    at.switch_page("app_pages/runs.py").run()
    at.sidebar.text_input(key="runs_token").input("chalk").run()
    at.switch_page("app_pages/lecture.py").run()                             # the token's widget is gone here
    assert not at.exception and not at.button(key="lec_prepare").disabled
    at.switch_page("app_pages/runs.py").run()
    assert any("The teacher's token" in c.value for c in at.caption)         # still the teacher on Runs
