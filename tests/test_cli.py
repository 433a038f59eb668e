"""`python -m tl_core ... --json`: the CLI twins print one JSON object; bad options give one line."""
import json
import subprocess
import sys

import pytest


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tl_core", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow   # a python -m tl_core process training the toy's defaults
def test_toy_json_has_the_keys_outside_checks_read():
    proc = _cli("toy", "--seeds", "30", "--b-points", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for cond in ("scratch", "pretrained"):
        for key in ("test_mse_mean", "train_mse_mean"):
            assert isinstance(out[cond][key], float)
        assert len(out[cond]["test_mse"]) == 30
    assert out["seconds"] > 0
    assert out["config"]["seeds"] == 30 and out["config"]["b_points"] == 2 and out["config"]["relation"] == "shifted"
    assert out["pretrained"]["test_mse_mean"] < out["scratch"]["test_mse_mean"]


@pytest.mark.slow   # a python -m tl_core process training the toy (300 pretraining epochs)
def test_toy_options_reach_the_config():
    proc = _cli("toy", "--relation", "unrelated", "--noise", "0.2", "--epochs", "60", "--lr", "0.02",
                "--seed", "3", "--seeds", "5", "--json")
    cfg = json.loads(proc.stdout)["config"]
    assert (cfg["relation"], cfg["noise"], cfg["epochs"], cfg["lr"], cfg["seed"]) == ("unrelated", 0.2, 60, 0.02, 3)


@pytest.mark.parametrize("args,words", [
    (["toy", "--b-points", "0"], "b-points must be between 1 and 20"),
    pytest.param(["toy", "--relation", "sideways"], "invalid choice", marks=pytest.mark.slow),   # a process each:
    pytest.param(["toy", "--lr", "fast"], "lr must be a number, got 'fast'", marks=pytest.mark.slow),   # 2 of 5 fast
    pytest.param(["toy", "--noise", "-1"], "noise must be between", marks=pytest.mark.slow),
    (["toy", "--device", "quantum"], "device must be one of"),
    pytest.param(["nosuchexperiment"], "invalid choice", marks=pytest.mark.slow),   # imports every experiment: 5 s
])
def test_bad_options_exit_non_zero_with_one_line(args, words):
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
