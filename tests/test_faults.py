"""Under load and faults: a run's numbers depend on its settings alone, runs are recorded before they
train, and Stop takes effect within one optimizer step (and while frozen features are being cached)."""
import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from fixtures import ROOT, argv

from tl_core import cli, contract, store
from tl_core import device as devices
from tl_core.experiments import finetune, selfsup
from tl_core.train import FitConfig, fit

LAB_SETTINGS = {"backbone": "efficientnet_lite0", "dataset": "digits", "weights": "both", "shots": 5, "epochs": 4,
                "seeds": 1, "image_size": 32}
LAB = finetune.FinetuneConfig(**LAB_SETTINGS)


def _numbers(result) -> list:
    return [(r.weights, r.val_acc, r.history.train_loss) for r in result.runs]


@pytest.mark.slow   # EfficientNet-Lite0 four times and an SSL run
def test_a_lab_run_beside_other_sessions_gives_its_solo_numbers_and_the_clis(capsys, tmp_path):
    """Dropout draws from torch's global stream and the SSL/GTL runs set the process's thread count: run
    side by side, sessions changed each other's numbers. One run at a time, they do not."""
    with devices.one_run_at_a_time():
        solo = _numbers(finetune.run(LAB, device="cpu"))
    results, errors = {}, []

    def session(name, fn):
        try:
            with devices.one_run_at_a_time():
                results[name] = fn()
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=session, args=("lab1", lambda: finetune.run(LAB, device="cpu"))),
               threading.Thread(target=session, args=("ssl", lambda: selfsup.run(selfsup.SSLConfig(
                   pretrain_epochs=2, epochs=10, seeds=1), device="cpu"))),
               threading.Thread(target=session, args=("lab2", lambda: finetune.run(LAB, device="cpu")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _numbers(results["lab1"]) == solo and _numbers(results["lab2"]) == solo
    assert cli.main([*argv("finetune", LAB_SETTINGS), "--device", "cpu", "--json", "--no-record"]) == 0
    out = json.loads(capsys.readouterr().out)
    for weights, val_acc, train_loss in solo:
        assert out["conditions"][weights]["val_acc"] == pytest.approx(val_acc, abs=1e-6)
        assert out["conditions"][weights]["history"]["train_loss"] == pytest.approx(train_loss, abs=1e-6)


def test_the_sidebar_reads_the_process_thread_count_while_a_tiny_model_run_holds_one():
    before = devices.describe(torch.device("cpu"))
    with devices.one_cpu_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
        assert devices.describe(torch.device("cpu")) == before


def test_stop_takes_effect_within_one_optimizer_step():
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    model = torch.nn.Linear(4, 2)
    steps = []
    hist = fit(model, (x, y), (x, y), FitConfig(epochs=50, batch_size=8),   # 8 steps an epoch
               on_epoch=lambda e, h: None, should_stop=lambda: len(steps) >= 20,
               after_step=lambda: steps.append(1))
    assert hist.status == "stopped" and len(steps) == 20            # not one step more
    assert hist.epochs_run == 2 and len(hist.val_acc) == 2           # the epoch cut short is not counted


def test_stop_while_the_frozen_features_are_cached_ends_the_run_as_stopped():
    calls = []
    cfg = finetune.FinetuneConfig(backbone="efficientnet_lite0", dataset="digits", weights="pretrained", shots=20,
                                  epochs=3, seeds=2, image_size=32, batch_size=8)
    result = finetune.run(cfg, should_stop=lambda: calls.append(1) or len(calls) > 3, device="cpu")
    assert result.status == "stopped" and "frozen stages' features" in result.message and result.runs == []
    assert len(calls) == 4                                           # checked batch by batch while caching


@pytest.mark.slow
def test_a_cli_run_killed_while_it_trains_is_in_the_history_as_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tl_core", "toy", "--epochs", "100000", "--pretrain-epochs", "10",
                             "--seeds", "3", "--json", "--data-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "runs.sqlite").exists():
        time.sleep(0.2)
    while time.time() < deadline and not store.Store(tmp_path).runs():
        time.sleep(0.2)
    (running,) = store.Store(tmp_path).runs()
    assert running.status == "running" and running.config["epochs"] == 100000   # recorded before it trains
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (killed,) = store.Store(tmp_path).runs()
    assert killed.status == "interrupted" and killed.id == running.id


def test_the_runner_reports_a_stop_in_preparation_with_the_cell_it_was_in():
    def train_one(cell, on_epoch, stop):
        raise contract.Stopped("stopped by the user while preparing")
    out = contract.run_cells(contract.plan(["pretrained"], 2), train_one)
    assert out.status == "stopped" and "run 1 of 2" in out.message and np.size(out.results) == 0
