"""Serving a class (tl_core/serve/): an identical run trains once for every session that asks, the queue and
its estimate, a Stop that leaves a shared run, failures told to every follower, worker processes that give
the solo run's numbers, and what a shared server shows each session."""
import os
import signal
import time

import fakes
import pytest
from fixtures import TINY_LAB, TINY_TOY, link, open_page

from tl_core import budget, contract, resultfile, serve, store
from tl_core.experiments import finetune


@pytest.fixture
def srv(tmp_path, monkeypatch):
    monkeypatch.setattr(resultfile, "TRUSTED", (*resultfile.TRUSTED, "fakes"))   # Done may be kept on disk
    fakes.CALLS.clear()
    before = serve.use(serve.Server())
    yield serve.server()
    serve.use(before)


def ask(srv, tmp_path, session="s", **settings):
    """A page's request for a fake run (tests/fakes.py) with these settings."""
    return serve.submit(fakes.request(**settings), root=str(tmp_path), session=session, estimate=1.0)


def test_the_identity_names_kind_config_data_and_code():
    a = serve.identity("finetune", {"shots": 5})
    assert a == serve.identity("finetune", {"shots": 5}) and len(serve.code_version()) == 12
    assert len({a, serve.identity("finetune", {"shots": 10}), serve.identity("own", {"shots": 5}),
                serve.identity("finetune", {"shots": 5}, data="upload-fingerprint")}) == 4


def test_eight_sessions_asking_at_once_share_one_training_and_one_run(srv, tmp_path):
    joined = [ask(srv, tmp_path, session=f"s{i}") for i in range(8)]
    assert len({id(job) for job, _ in joined}) == 1 and len(joined[0][0].waiters) == 8
    job = joined[0][0]
    assert job.done.wait(30) and job.status == "finished" and len(fakes.CALLS) == 1
    (run,) = store.Store(tmp_path).runs()
    assert run.status == "finished" and run.identity == job.identity and run.session == "s0"
    assert run.code == serve.code_version()
    entry = srv.lookup(str(tmp_path), job.identity)
    assert entry.result is job.result and entry.run_id == run.id          # the next session gets it at once
    again, _ = ask(srv, tmp_path)                                          # a Re-run trains afresh
    assert again is not job and again.done.wait(30) and len(fakes.CALLS) == 2 and len(store.Store(tmp_path).runs()) == 2


def test_a_finished_run_in_the_history_is_the_answer_after_a_restart_until_it_is_deleted(srv, tmp_path):
    job, _ = ask(srv, tmp_path, value=20.0)
    assert job.done.wait(30) and job.status == "finished"
    db = store.Store(tmp_path)
    assert db.result_file(job.run_id).is_file()
    restarted = serve.Server()                                         # a new server process: nothing in memory
    entry = restarted.lookup(str(tmp_path), job.identity)
    assert entry is not None and entry.run_id == job.run_id and entry.result.value == job.result.value == 20.0
    assert entry.session == "s" and len(fakes.CALLS) == 1 and len(db.runs()) == 1   # shown, not trained again
    other = fakes.request(steps=21, value=20.0).identity()
    assert restarted.lookup(str(tmp_path), other) is None              # another config is another run
    assert db.delete([job.run_id]) == 1 and not db.result_file(job.run_id).exists()
    assert serve.Server().lookup(str(tmp_path), job.identity) is None  # a deleted run is no answer


def test_a_stop_leaves_a_shared_run_which_stops_when_no_one_follows_it(srv, tmp_path):
    (job, a), (_, b) = ask(srv, tmp_path, steps=400), ask(srv, tmp_path, steps=400)
    while job.fraction < 0.02:
        time.sleep(0.01)
    assert srv.leave(job, a) == 1 and not job.stop.is_set()            # one of two left: it goes on
    time.sleep(0.1)
    assert job.state == "running"
    assert srv.leave(job, b) == 0 and job.done.wait(10) and job.status == "stopped"
    (run,) = store.Store(tmp_path).runs()
    assert run.status == "stopped" and "stopped after" in run.message
    assert srv.lookup(str(tmp_path), job.identity) is None             # a stopped run is not the answer


@pytest.mark.slow
def test_the_queue_gives_positions_estimates_and_a_queued_stop_leaves_it(srv, tmp_path):
    first, _ = ask(srv, tmp_path, steps=200, n=1)
    second, token2 = ask(srv, tmp_path, steps=5, n=2)
    third, token3 = ask(srv, tmp_path, steps=5, n=3)
    ahead, seconds = srv.ahead(third)
    assert ahead == 2 and seconds is not None and 2.0 <= seconds <= 3.0   # two runs of ~1 s, then its own
    assert srv.ahead(second)[0] == 1 and srv.busy()[0] == 3
    assert srv.leave(second, token2) == 0 and second.done.wait(5) and second.status == "stopped"
    assert srv.ahead(third)[0] == 1                                     # it moved up
    assert third.done.wait(30) and third.status == "finished" and first.status == "finished"
    statuses = {r.config["n"]: r.status for r in store.Store(tmp_path).runs()}
    assert statuses == {1: "finished", 2: "stopped", 3: "finished"}


def test_a_failure_is_told_to_every_follower_and_the_next_request_trains_again(srv, tmp_path):
    jobs = [ask(srv, tmp_path, steps=5, fail="out of cheese")[0] for _ in range(3)]
    assert jobs[0].done.wait(10) and {j.status for j in jobs} == {"failed"} and "out of cheese" in jobs[0].error
    (run,) = store.Store(tmp_path).runs()
    assert run.status == "failed" and "out of cheese" in run.message
    retry, _ = ask(srv, tmp_path, steps=5, fail="out of cheese")
    assert retry is not jobs[0] and retry.done.wait(10) and len(fakes.CALLS) == 2   # trained again (and failed)


def test_the_estimate_scales_this_machines_history_by_the_cost_model(tmp_path):
    db = store.Store(tmp_path)
    cfg = contract.record(finetune.FinetuneConfig(seeds=1, epochs=10))
    db.record("finetune", fakes.Done(cfg, seconds=20.0), config=cfg)
    bigger = {**cfg, "seeds": 3, "epochs": 20}
    seconds, based = serve.estimate("finetune", bigger, db)
    assert based == 1 and seconds == pytest.approx(20.0 * serve.cost("finetune", bigger) / serve.cost("finetune", cfg))
    assert 3 < seconds / 20.0 < 6   # 3x the seeds, 2x the epochs: the frozen features are computed once per run
    assert serve.estimate("own", cfg, db)[0] == pytest.approx(20.0)           # the lab's family
    # no run of its kind here: the reference laptop's rate (bench/references.py) times the run's cost
    toy = contract.record(__import__("tl_core.experiments.toy", fromlist=["ToyConfig"]).ToyConfig())
    first, based = serve.estimate("toy", toy, store.Store(tmp_path / "empty"))
    assert based == 0 and first == pytest.approx(serve.references()["toy"] * serve.cost("toy", toy))
    assert serve.about(42) == "about 40 s" and serve.about(200) == "about 3 min"


def test_progress_by_cost_moves_with_the_cost_done():
    seen = []
    mapped = serve.by_cost(lambda f, m: seen.append(round(f, 3)), [1.0, 9.0])
    for f in (0.25, 0.5, 0.75, 1.0):     # run_cells: half of cell 0, cell 0 done, half of cell 1, all done
        mapped(f, "")
    assert seen == [0.05, 0.1, 0.55, 1.0]


def test_the_live_curve_reaches_the_run_from_the_training_loop(srv, tmp_path):
    cfg = finetune.FinetuneConfig(**TINY_LAB, epochs=3, seeds=1, weights="pretrained")
    job, _ = srv.submit(serve.RunRequest.of("finetune", cfg), root="")
    assert job.done.wait(120) and job.status == "finished"
    (label, curve), = job.live.items()
    assert label == "pretrained, seed 0" and curve["condition"] == "pretrained"
    assert curve["val_acc"] == job.result.runs[0].history.val_acc and len(curve["val_loss"]) == 3


TINY = finetune.FinetuneConfig(**TINY_LAB, epochs=2, seeds=1)


def numbers(result) -> list:
    return [(r.weights, r.val_acc, r.history.val_acc, r.history.train_loss) for r in result.runs]


@pytest.mark.slow   # worker processes, two runs and a killed one retrained
def test_worker_processes_train_different_runs_at_once_with_the_solo_numbers_and_a_killed_one_is_told(tmp_path):
    srv = serve.Server(workers=2)
    try:
        cfgs = [TINY, finetune.FinetuneConfig(**{**TINY.__dict__, "shots": 2})]
        jobs = [srv.submit(serve.RunRequest.of("finetune", c), root=str(tmp_path))[0] for c in cfgs]
        solo = [numbers(finetune.run(c, device="cpu")) for c in cfgs]     # meanwhile, alone in this process
        assert all(j.done.wait(240) for j in jobs), [j.state for j in jobs]
        assert [j.status for j in jobs] == ["finished"] * 2 and [numbers(j.result) for j in jobs] == solo
        assert len({j.pid for j in jobs}) == 2 and os.getpid() not in {j.pid for j in jobs}   # two workers

        long = finetune.FinetuneConfig(**{**TINY.__dict__, "epochs": 1000, "weights": "scratch"})
        followers = [srv.submit(serve.RunRequest.of("finetune", long), root=str(tmp_path)) for _ in range(3)]
        job = followers[0][0]
        while job.fraction < 0.002:
            assert not job.done.is_set(), job.error
            time.sleep(0.1)
        assert store.Store(tmp_path).get(job.run_id).status == "running"
        os.kill(job.pid, signal.SIGKILL)                                    # kill -9 the worker training it
        assert job.done.wait(60) and job.status == "failed" and "worker process" in job.error
        assert {j.status for j, _ in followers} == {"failed"}               # every follower is told
        assert store.Store(tmp_path).get(job.run_id).status == "failed"
        retry = [srv.submit(serve.RunRequest.of("finetune", long), root=str(tmp_path)) for _ in range(3)]
        again = retry[0][0]
        assert len({id(j) for j, _ in retry}) == 1 and again is not job       # the retry trains once, afresh
        while again.fraction < 0.002:
            assert not again.done.is_set(), again.error
            time.sleep(0.1)
        assert again.pid != job.pid and all(srv.leave(j, t) >= 0 for j, t in retry)   # in a new worker; left
        assert again.done.wait(60) and again.status == "stopped"
    finally:
        srv.shutdown()


@pytest.mark.slow
def test_sharing_frozen_features_and_scratch_across_seeds_and_runs_keeps_every_number(monkeypatch):
    import collections

    from tl_core import reuse as reuse_caches

    # EfficientNet-Lite0: its convs give an image other bits in a batch of under 16 images than in a larger one,
    # so a cache shared image by image (not batch by batch) changed seed 1's numbers at this depth
    cfg = finetune.FinetuneConfig(image_size=32, epochs=1, seeds=2, freeze="6", weights="pretrained")
    runs = {}
    for reuse in (False, True):
        monkeypatch.setattr(reuse_caches, "REUSE", reuse)
        monkeypatch.setattr(reuse_caches, "FEATURES", collections.OrderedDict())
        monkeypatch.setattr(reuse_caches, "SCRATCH", budget.ByteLRU(2**30, most=12))
        finetune.run(finetune.FinetuneConfig(**{**cfg.__dict__, "freeze": "all"}), device="cpu")   # a run before
        runs[reuse] = [(r.weights, r.seed, r.val_acc, r.history.val_acc, r.history.train_loss, r.confusion.tolist())
                       for r in finetune.run(cfg, device="cpu").runs]
    assert runs[True] == runs[False] and len(runs[True]) == 2


# ---- the pages: several sessions in one process (AppTest), each with its own session id ----------------------

FAST_LAB = link("ft", {**TINY_LAB, "epochs": 2, "seeds": 1})   # TINY, as a page's link


@pytest.fixture
def sessions(app, tmp_path, monkeypatch):
    """A throwaway history and a switch between browser sessions (AppTest gives every session one id)."""
    from app_pages import ui

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    who = {"id": "session-a"}
    monkeypatch.setattr(ui, "session_id", lambda: who["id"])
    before = serve.use(serve.Server())

    def as_(name: str, page: str, params: dict):
        who["id"] = name
        return open_page(page, params)
    yield as_, who
    serve.use(before)


@pytest.mark.slow
def test_a_second_session_on_the_same_link_gets_the_result_at_once_and_rerun_trains_afresh(sessions, tmp_path,
                                                                                          monkeypatch):
    as_, who = sessions
    runs = lambda: len(store.Store(tmp_path).runs())   # noqa: E731 - a training is a run in the history
    a = as_("session-a", "app_pages/finetune.py", FAST_LAB)
    assert not a.exception and any("on this machine" in c.value for c in a.caption)      # an estimate before the click
    a.button(key="ft_train").click().run()
    assert not a.exception and runs() == 1
    start = time.perf_counter()
    b = as_("session-b", "app_pages/finetune.py", FAST_LAB)                               # the same link, later
    assert time.perf_counter() - start < 10 and not b.exception and runs() == 1
    assert b.button(key="ft_train").disabled and len(b.get("plotly_chart")) >= 2
    assert any("for another session" in c.value and "Re-run" in c.value for c in b.caption)
    (run,) = store.Store(tmp_path).runs()                                                 # a reuse is not a run
    assert b.session_state["ft_results"][next(iter(b.session_state["ft_results"]))] is \
        a.session_state["ft_results"][next(iter(a.session_state["ft_results"]))]
    b.button(key="ft_rerun").click().run()
    assert not b.exception and runs() == 2
    assert store.Store(tmp_path).runs()[0].session == "session-b"


def test_after_a_restart_a_session_opening_the_link_sees_the_run_from_the_history(sessions, tmp_path):
    as_, _ = sessions
    a = as_("session-a", "app_pages/finetune.py", FAST_LAB)
    a.button(key="ft_train").click().run()
    (run,) = store.Store(tmp_path).runs()
    serve.use(serve.Server())                                            # the server restarted
    start = time.perf_counter()
    b = as_("session-b", "app_pages/finetune.py", FAST_LAB)
    assert time.perf_counter() - start < 10 and not b.exception and b.button(key="ft_train").disabled
    assert any(f"run #{run.id}" in c.value and "Re-run" in c.value for c in b.caption)
    assert len(b.get("plotly_chart")) >= 2 and len(store.Store(tmp_path).runs()) == 1


def test_one_more_session_shown_a_shared_result_builds_and_serialises_none_of_its_charts(sessions, monkeypatch):
    """Issue #36: a class opening one result pays for its charts once. Streamlit turns a plotly figure into the
    dict it sends for every chart of every session (about 10 ms each, holding the GIL from the run the class waits
    for); the figures of a shared result (and a run's live chart) are built and serialised once, so a session
    shown the result adds neither, whatever the number of sessions, and sees the same charts and numbers."""
    import plotly.basedatatypes

    from tl_core.plots import finetune as figures

    as_, _ = sessions
    a = as_("session-a", "app_pages/finetune.py", FAST_LAB)
    a.button(key="ft_train").click().run()
    assert not a.exception
    built, serialised = [], []
    for name in ("curves", "first_confusion", "misclassified"):
        monkeypatch.setattr(figures, name, lambda *args, _f=getattr(figures, name), _n=name, **kw:
                            built.append(_n) or _f(*args, **kw))
    to_dict = plotly.basedatatypes.BaseFigure.to_dict
    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "to_dict",
                        lambda self: serialised.append(self) or to_dict(self))
    later = [as_(f"session-{i}", "app_pages/finetune.py", FAST_LAB) for i in range(4)]
    assert all(not b.exception for b in later)
    charts = [[c.proto.spec for c in b.get("plotly_chart")] for b in [a, *later]]
    assert len(charts[0]) >= 3 and all(c == charts[0] for c in charts), "every session shows the same charts"
    captions = [[c.value for c in b.caption if " s · frozen: " in c.value] for b in [a, *later]]
    assert captions[0] and all(c == captions[0] for c in captions)
    assert built == [] and serialised == [], (built, len(serialised))


def test_the_toy_page_records_one_run_per_training_not_per_visit(sessions, tmp_path):
    as_, _ = sessions
    toy_link = link("toy", {**TINY_TOY, "b_points": 4})
    for name in ("session-a", "session-b", "session-a"):
        at = as_(name, "app_pages/toy.py", toy_link)
        assert not at.exception and len(at.get("plotly_chart")) == 3
    (run,) = store.Store(tmp_path).runs(kind="toy")
    assert run.session == "session-a" and run.status == "finished"


def test_a_shared_server_shows_each_session_its_own_uploads_and_lets_it_manage_only_its_own(sessions, tmp_path,
                                                                                           monkeypatch):
    as_, _ = sessions
    monkeypatch.setenv(serve.SHARED, "1")
    monkeypatch.setenv(serve.ADMIN, "chalk")
    db = store.Store(tmp_path)
    mine = db.begin("toy", {"b_points": 2}, session="session-a", label="my toy")
    upload = db.begin("own", {"dataset": "own: holiday.zip"}, session="session-a", private=True)
    for i in (mine, upload):
        db.finish(i, {"config": {}})
    b = as_("session-b", "app_pages/runs.py", {})
    assert not b.exception and "1 of 1 runs" in b.caption[0].value                      # not session a's upload
    (shown,) = b.dataframe[0].value.to_dict("records")
    assert shown["id"] == mine and shown["label"] == ""                                   # nor its label
    b.multiselect(key="runs_pick").set_value([mine]).run()
    assert any("other sessions'" in c.value for c in b.caption)                              # no label or delete for it
    assert [t.key for t in b.text_input] == ["runs_token"]
    assert db.delete([mine, upload], session="session-b") == 0 and len(db.runs()) == 2    # deletes only its own
    with pytest.raises(ValueError, match="another session"):
        db.rename(mine, "mine now", session="session-b")
    b.text_input(key="runs_token").input("chalk").run()                                    # the teacher
    assert "2 of 2 runs" in b.caption[0].value
    a = as_("session-a", "app_pages/runs.py", {})
    assert "2 of 2 runs" in a.caption[0].value and not a.exception


def test_a_page_run_opens_the_history_once_whatever_its_run_buttons_ask(sessions, monkeypatch):
    """Opening the history checks its schema and whether it can be written, under a write lock the runs' own records
    wait for: the lab page (its Train button, the learning-rate finder's, the lookups of results on disk) opens it
    once per page run, for each of a class's sessions, not once per question."""
    as_, _ = sessions
    opened = []
    real = store.Store.__init__
    monkeypatch.setattr(store.Store, "__init__", lambda self, *a, **k: opened.append(1) or real(self, *a, **k))
    page = as_("session-a", "app_pages/finetune.py", FAST_LAB)
    assert not page.exception and any("on this machine" in c.value for c in page.caption)   # estimates read it
    opened.clear()
    page.run()
    assert not page.exception and len(opened) == 1


def test_sessions_shown_a_shared_result_at_the_same_moment_serialise_each_chart_once(monkeypatch):
    """A link's result reaches all its followers at once: each session's page asks for the same figure and Streamlit
    asks each for its dict in the same second. The dict is made by the session that builds the figure, so eight
    sessions at once make it once (made on the first send, they each made it again: 34 dicts for 15 figures in a
    class of 30 over 3 links), and every session sends the same chart."""
    import threading

    import plotly.basedatatypes
    import plotly.graph_objects as go

    from app_pages import ui

    made = []
    to_dict = plotly.basedatatypes.BaseFigure.to_dict
    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "to_dict", lambda self: made.append(1) or to_dict(self))
    result, gate, sent = object(), threading.Barrier(8), []

    def session():
        gate.wait()
        fig = ui.once(result, "cam en", lambda: go.Figure(go.Heatmap(z=[[i * j for j in range(300)]
                                                                        for i in range(300)])))
        sent.append(fig.to_dict())

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent) == 8 and all(s is sent[0] for s in sent) and sent[0]["data"][0]["z"][-1][-1] == 299 * 299
    assert len(made) == 1
