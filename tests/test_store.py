"""The run history: what each experiment records, crash safety, concurrency, comparison and export."""
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from fixtures import ROOT, TINY_LAB, TINY_TOY_ARGV, Fake, argv
from fixtures import fake_result as _fake_result

from tl_core import cli, run_views, store

LAB_ARGV = argv("finetune", {**TINY_LAB, "epochs": 3, "seeds": 1, "weights": "both"})


def _cli(capsys, *argv) -> dict:
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_experiments_are_recorded_with_config_metrics_and_curves(tmp_path, capsys):
    toy_out = _cli(capsys, *TINY_TOY_ARGV, "--b-points", "4", "--data-dir", str(tmp_path))
    lab_out = _cli(capsys, *LAB_ARGV, "--data-dir", str(tmp_path))
    listed = _cli(capsys, "runs", "list", "--data-dir", str(tmp_path))["runs"]
    assert [r["kind"] for r in listed] == ["finetune", "toy"]           # newest first
    toy_run = _cli(capsys, "runs", "show", str(listed[1]["id"]), "--data-dir", str(tmp_path))
    assert toy_run["config"]["b_points"] == 4 and toy_run["status"] == "finished"
    assert toy_run["curves"]["scratch.curves.test_mse_mean"] == toy_out["scratch"]["curves"]["test_mse_mean"]
    assert toy_run["metrics"]["test_mse_ratio"] == pytest.approx(toy_out["test_mse_ratio"])
    lab_run = _cli(capsys, "runs", "show", str(listed[0]["id"]), "--data-dir", str(tmp_path))
    assert lab_run["config"]["backbone"] == "shapes_cnn" and lab_run["device"] == lab_out["device"]
    assert len(lab_run["curves"]["conditions.scratch.history.val_acc"]) == 3
    assert lab_run["metrics"]["conditions.pretrained.val_acc"] == pytest.approx(
        lab_out["conditions"]["pretrained"]["val_acc"])
    assert lab_run["result"]["classes"] == lab_out["classes"]
    assert _cli(capsys, "runs", "list", "--kind", "toy", "--data-dir", str(tmp_path))["runs"][0]["kind"] == "toy"
    listed = _cli(capsys, "runs", "list", "--dataset", "textures", "--data-dir", str(tmp_path))
    assert listed["runs"][0]["kind"] == "finetune"


@pytest.mark.slow
@pytest.mark.parametrize("argv,curve", [
    (["ssl", "--pretrain-epochs", "2", "--epochs", "10", "--seeds", "1"], "recon_loss.train"),
    (["gtl", "--scouts", "4", "--scout-epochs", "1", "--seeds", "2", "--epochs", "10"], "guided.val_acc"),
])
def test_ssl_and_gtl_runs_are_recorded_with_their_curves(tmp_path, capsys, argv, curve):
    out = _cli(capsys, *argv, "--data-dir", str(tmp_path))
    (run,) = store.Store(tmp_path).runs(kind=argv[0])
    assert run.config == out["config"] and run.status == "finished" and len(run.curves[curve]) >= 2


def test_no_record_and_bad_ids_give_one_line(tmp_path, capsys):
    _cli(capsys, *TINY_TOY_ARGV, "--no-record", "--data-dir", str(tmp_path))
    assert _cli(capsys, "runs", "list", "--data-dir", str(tmp_path))["runs"] == []
    assert cli.main(["runs", "show", "7", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run with id 7" in err


def test_what_changed_shows_only_the_fields_that_differ(tmp_path):
    db = store.Store(tmp_path)
    base = {"backbone": "efficientnet_lite0", "dataset": "digits", "freeze": "all", "shots": 5, "classes": [1, 2]}
    a = db.record("finetune", {"config": base})
    b = db.record("finetune", {"config": {**base, "freeze": "none"}})
    c = db.record("finetune", {"config": {**base, "freeze": "none", "shots": 20}})
    assert run_views.what_changed(db.many([a, b])) == {"freeze": ["all", "none"]}
    assert run_views.what_changed(db.many([a, b, c])) == {"freeze": ["all", "none", "none"], "shots": [5, 5, 20]}
    assert run_views.what_changed(db.many([b, b])) == {}
    d = db.record("toy", {"config": {"b_points": 2}})
    changed = run_views.what_changed(db.many([a, d]))
    assert changed["kind"] == ["finetune", "toy"] and changed["b_points"] == [None, 2] and "freeze" in changed


def test_csv_export_has_one_row_per_epoch_with_config_metric_and_curve_columns(tmp_path, capsys):
    db = store.Store(tmp_path)
    ids = [db.record("finetune", _fake_result(i, epochs=3)) for i in (10, 20)]
    db.rename(ids[0], "freeze all")
    out = tmp_path / "runs.csv"
    assert cli.main(["runs", "export", *map(str, ids), "--csv", str(out), "--json-out", str(tmp_path / "r.json"),
                     "--data-dir", str(tmp_path)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0])[:8] == run_views.CSV_BASE
    assert {"config.i", "config.dataset", "metric.val_acc", "curve.history.val_acc"} <= set(rows[0])
    assert len(rows) == 6 and [r["epoch"] for r in rows] == ["1", "2", "3"] * 2
    assert rows[0]["label"] == "freeze all" and float(rows[4]["curve.history.val_acc"]) == 0.2
    assert [r["id"] for r in json.loads((tmp_path / "r.json").read_text())] == ids


def test_concurrent_writers_lose_no_runs(tmp_path):
    """Five threads (as five browser sessions would) record 20 runs each into one history at once."""
    errors = []

    def session(s: int) -> None:
        db = store.Store(tmp_path)
        try:
            for i in range(20):
                with db.track("finetune", {"session": s, "i": i}, session=f"s{s}") as rec:
                    rec["result"] = Fake({"session": s, "i": i}, i / 100, [i / 100] * 50)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=session, args=(s,)) for s in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = store.Store(tmp_path)
    runs = db.runs()
    assert len(runs) == 100 and {r.status for r in runs} == {"finished"}
    for s in range(5):
        mine = db.runs(session=f"s{s}")
        assert sorted(r.config["i"] for r in mine) == list(range(20)) and {r.config["session"] for r in mine} == {s}


WRITER = textwrap.dedent("""
    import sys, time
    from tl_core import store
    from tests.fixtures import Fake
    db = store.Store(sys.argv[1])
    db.begin("finetune", {"what": "the run being trained when the server dies"})
    print("ready", flush=True)
    i = 0
    while True:  # record big runs as fast as possible until killed
        i += 1
        db.record("finetune", Fake({"i": i}, 0.5, [0.5] * 20000))
""")


def test_a_killed_server_leaves_a_readable_history_with_its_run_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert sqlite3.connect(tmp_path / "runs.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db = store.Store(tmp_path)  # opening the history after the crash marks the dead process's runs
    runs = db.runs()
    assert len(runs) >= 3
    first = runs[-1]
    assert first.status == "interrupted" and "ended before it finished" in first.message
    for run in runs[:-1]:  # each run either landed whole or is marked interrupted: never half-written
        assert (run.status, len(run.curves.get("history.val_acc", []))) in (("finished", 20000), ("interrupted", 0))


def test_a_stop_or_an_error_inside_a_tracked_run_is_kept_with_its_status(tmp_path):
    db = store.Store(tmp_path)
    with pytest.raises(KeyboardInterrupt):   # what a Stop looks like to the page: a BaseException
        with db.track("toy", {"a": 1}) as rec:
            rec["where"] = "epoch 3 of 10"
            raise KeyboardInterrupt
    with pytest.raises(ValueError):
        with db.track("toy", {"a": 2}):
            raise ValueError("shots must be positive")
    failed, stopped = db.runs()
    assert (stopped.status, stopped.message) == ("stopped", "epoch 3 of 10")
    assert (failed.status, failed.message) == ("failed", "shots must be positive")
    db.delete([failed.id])
    assert [r.id for r in db.runs()] == [stopped.id]


def test_an_unwritable_data_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli.main(["runs", "list", "--data-dir", str(blocker / "sub")]) == 2
    assert "cannot create the data directory" in capsys.readouterr().err


def test_a_restarted_server_with_the_same_pid_still_marks_the_old_run_interrupted(tmp_path):
    db = store.Store(tmp_path)
    live = db.begin("toy", {"who": "this process, still training"})
    old = db.begin("toy", {"who": "an earlier server that had this same pid"})
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:   # as if written by a process that started earlier
        con.execute("UPDATE runs SET started='1' WHERE id=?", (old,))
    store.Store(tmp_path)
    assert db.get(old).status == "interrupted" and db.get(live).status == "running"


def test_the_store_keeps_the_metrics_curves_and_headline_a_result_names(tmp_path):
    db = store.Store(tmp_path)
    run = db.get(db.record("finetune", _fake_result(30, epochs=4)))
    assert run.metrics == {"val_acc": 0.3}                 # named by the result; a NaN is not kept
    assert run.curves == {"history.val_acc": [0.3] * 4}
    assert run.headline == "val_acc" and run_views.headline(run) == "val_acc 30.0%"
    assert run.config == {"i": 30, "dataset": "digits"} and run.result["val_acc"] == 0.3
