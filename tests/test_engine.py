"""Grids on Ray: every cell a Ray task on a local Ray (2 CPUs) gives the same cells as the local engine;
a cell that raises is retried once, then named, and the others finish; Stop cancels the outstanding
cells and the run history keeps every cell that finished (written as each arrived)."""
import json
import os
import socket
import time
from pathlib import Path

import pytest
from fixtures import TINY_LAB, argv, open_page, train_small_lab

from tl_core import cli, contract, engine, store
from tl_core.experiments import finetune

pytestmark = pytest.mark.slow   # a local Ray cluster, started for this file: seconds of waiting in every test
TINY = dict(**TINY_LAB, epochs=1, seeds=1, shots=(1, 5), freezes=("all", "none"))
TINY_FLAGS = argv(None, TINY)


def _raylets() -> set[int]:
    """The raylet processes on this machine (one per running local Ray)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and "raylet" in (proc / "comm").read_text():
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for this file's tests (the only ones that need it), shut down after them with
    nothing left behind: an idle local Ray still takes about a quarter of a core, which the later tests need."""
    before = _raylets()
    started = time.perf_counter()
    engine.connect(cpus=2)
    print(f"local Ray started in {time.perf_counter() - started:.1f} s")
    yield
    engine.shutdown()
    deadline = time.time() + 10
    while _raylets() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not _raylets() - before, "Ray's raylet was left running after the tests"


def test_a_sweep_on_ray_gives_the_same_cells_as_the_local_engine(local_ray, tmp_path, capsys):
    local = finetune.sweep(finetune.SweepConfig(**TINY), device="cpu")
    assert cli.main(["sweep", *TINY_FLAGS, "--engine", "ray", "--progress", "--json", "--data-dir",
                     str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["records"] == local.records                 # cell for cell, number for number, in plan order
    assert out["grid"] == local.to_json()["grid"]
    assert "3 of 3" in captured.err and "[####" in captured.err   # --progress: a bar on stderr as cells finish
    run = store.Store(tmp_path).get(1)
    assert run.status == "finished" and run.result["records"] == local.records
    assert "engine" not in run.config                      # where it ran is not part of the recorded config
    assert engine.running()                                # the CLI left the session's Ray alone


def test_a_cell_that_raises_is_retried_once_then_named_and_the_others_finish(local_ray, tmp_path):
    def train_one(cell, on_epoch, should_stop):       # runs in Ray workers: tries are counted in files
        (tmp_path / f"{cell.condition}-{cell.seed}-{time.time_ns()}").touch()
        if cell.condition == "broken":
            raise ValueError("no images for this cell")
        if cell.condition == "flaky" and len(list(tmp_path.glob(f"flaky-{cell.seed}-*"))) == 1:
            raise RuntimeError("a worker hiccup")
        return contract.Outcome(results=[cell.seed * 10])

    arrived = []
    out = engine.run_cells(contract.plan(["fine", "broken", "flaky"], 2), train_one, engine="ray",
                           on_cell=lambda cell, result: arrived.append(cell.label))
    assert [c.label for c in out.cells] == ["fine, seed 0", "fine, seed 1", "flaky, seed 0", "flaky, seed 1"]
    assert [r.results for r in out.results] == [[0], [10], [0], [10]]
    assert sorted(arrived) == sorted(c.label for c in out.cells)
    assert out.status == "failed"
    assert [label for label, _ in out.failed] == ["broken, seed 0", "broken, seed 1"]
    assert "broken, seed 0 (ValueError: no images for this cell)" in out.message
    tries = [p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir()]
    assert {k: tries.count(k) for k in set(tries)} == {"fine-0": 1, "fine-1": 1, "broken-0": 2, "broken-1": 2,
                                                        "flaky-0": 2, "flaky-1": 2}


def test_stop_cancels_the_rest_and_the_history_keeps_every_finished_cell(local_ray, tmp_path):
    db = store.Store(tmp_path)
    cfg = finetune.SweepConfig(**{**TINY, "seeds": 3, "shots": (1,), "engine": "ray"})
    cells = 3 * 2 + 3                                      # pretrained at two depths and scratch, 3 seeds each
    seen: dict = {}

    def should_stop() -> bool:                             # the user presses Stop once a cell is in the history
        run = db.get(db.runs()[0].id)
        if run.result.get("records") and not seen:
            seen.update(status=run.status, records=run.result["records"])
        return bool(seen)

    started = time.perf_counter()
    with db.track("sweep", contract.record(cfg)) as rec:
        rec["result"] = finetune.sweep(cfg, should_stop=should_stop, device="cpu")
    run = db.get(rec["id"])
    assert seen["status"] == "running"                     # written as it arrived, while the sweep still ran
    assert run.status == "stopped" and "stopped by the user" in run.message
    kept = run.result["records"]
    assert all(r in kept for r in seen["records"]) and 1 <= len(kept) < cells
    assert time.perf_counter() - started < 60


def test_the_labs_sweep_runs_on_the_ray_cluster_named_by_TL_RAY_ADDRESS(local_ray, monkeypatch):
    import ray

    address = ray.get_runtime_context().gcs_address      # the session's Ray, joined as a cluster would be
    monkeypatch.setenv("TL_RAY_ADDRESS", address)
    at = open_page("app_pages/finetune.py", {})
    assert any(f"Sweeps run on: **Ray cluster at {address}**" in c.value for c in at.sidebar.caption)
    train_small_lab(at, dataset="textures", epochs=1, seeds=1)
    assert f"The sweep runs on **Ray cluster at {address}**." in [c.value for c in at.caption]
    at.button(key="ft_sweep").click().run()
    assert not at.exception
    (cfg, sw), = at.session_state["ft_sweeps"].items()
    assert (cfg.engine, cfg.address, sw.status) == ("ray", address, "finished")
    assert len(sw.records) == (2 + 1) * 3 and len(at.get("plotly_chart")) >= 4   # 2 depths + scratch, 3 shots


def test_a_cluster_that_does_not_answer_is_one_line_and_exit_2(local_ray, capsys):
    with socket.socket() as s:                             # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["sweep", *TINY_FLAGS, "--engine", "ray", "--address", f"127.0.0.1:{port}", "--no-record"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"python -m tl_core sweep: error: no Ray cluster answers at 127.0.0.1:{port}")
    assert "\n" not in err and engine.running()            # one line; the session's Ray is left alone


def test_the_class_server_on_ray_rebuilds_a_run_from_its_request_with_the_solo_numbers(local_ray, tmp_path):
    """TL_RAY_ADDRESS: a run asked for on the class server is sent to Ray as its request (data, no code) and
    rebuilt there; its numbers are the solo run's, and it is recorded like any run."""
    import ray

    from tl_core import serve
    from tl_core.experiments import toy

    cfg = toy.ToyConfig(seeds=2, epochs=30, pretrain_epochs=30)
    srv = serve.Server(ray_address=ray.get_runtime_context().gcs_address)
    try:
        job, _ = srv.submit(serve.RunRequest.of("toy", cfg), root=str(tmp_path))
        assert job.done.wait(180) and job.status == "finished", job.error
        assert job.where.startswith("Ray at ") and job.pid != os.getpid()
        assert job.result.metrics() == toy.run(cfg, device="cpu").metrics()
        (run,) = store.Store(tmp_path).runs()
        assert run.status == "finished" and run.identity == job.identity
    finally:
        srv.shutdown()
