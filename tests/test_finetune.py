"""The fine-tuning lab end to end: pretrained beats scratch where it should, over seeds; sweeps; JSON."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from fixtures import TINY_LAB

from tl_core import finetuning
from tl_core.experiments import finetune


@pytest.mark.slow   # EfficientNet-Lite0, both weights, 3 seeds x 12 epochs at 48 px
def test_pretrained_lite0_feature_extraction_beats_scratch_on_digits_at_5_shots():
    cfg = finetune.FinetuneConfig(backbone="efficientnet_lite0", weights="both", dataset="digits", shots=5,
                                  freeze="all", seeds=3, epochs=12, lr=3e-3, image_size=48)
    result = finetune.run(cfg, device="cpu")
    p, s = result.summary("pretrained"), result.summary("scratch")
    assert all(a > b for a, b in zip(p["val_acc_seeds"], s["val_acc_seeds"]))   # in every seed
    assert p["val_acc"] - s["val_acc"] >= 0.10                                 # by a clear margin
    assert finetune.verdict(result)[0] == "helped"
    assert result.runs[0].confusion.sum() == 10 * cfg.val_per_class


def test_run_records_curves_per_epoch_and_a_fixed_val_set():
    cfg = finetune.FinetuneConfig(backbone="shapes_cnn", weights="pretrained", dataset="faces", image_size=32,
                                  shots=2, epochs=3, seeds=2)
    result = finetune.run(cfg, device="cpu")
    assert [r.seed for r in result.runs] == [0, 1]
    for r in result.runs:
        assert r.history.epochs_run == 3 and len(r.history.val_acc) == 3
    assert len(result.val) == 2 * cfg.val_per_class
    assert 0 <= result.to_json()["val_acc"] <= 1


@pytest.mark.slow
def test_sweep_grid_covers_shots_and_freeze_depths_with_scratch_trained_fully():
    cfg = finetune.SweepConfig(**TINY_LAB, epochs=3, seeds=2, weights="both", shots=(1, 5), freezes=("all", "2"))
    sw = finetune.sweep(cfg, device="cpu")
    assert sw.grid("pretrained").shape == (2, 2) and not np.isnan(sw.grid("pretrained")).any()
    assert sw.grid("scratch").shape == (1, 2)
    assert {r["freeze"] for r in sw.records if r["weights"] == "scratch"} == {"0"}   # every stage trained
    assert len(sw.records) == 2 * 2 * 2 + 2 * 2


def test_a_freeze_depth_is_one_row_however_it_is_spelt():
    """'all' (the CLI's word) and 4 (the page's slider, shapes_cnn has 5 stages) are the same depth."""
    cfg = finetune.SweepConfig(**TINY_LAB, epochs=1, weights="pretrained", shots=(1,),
                               freezes=("all", "4", "none", "0"))
    sw = finetune.sweep(cfg, device="cpu")
    assert sw.freezes == ["4", "0"] and sw.grid("pretrained").shape == (2, 1)
    assert finetune.FinetuneConfig(backbone="shapes_cnn", freeze="all").resolve() == \
        finetune.FinetuneConfig(backbone="shapes_cnn", freeze="4").resolve()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tl_core", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow   # a python -m tl_core process that fine-tunes EfficientNet-Lite0
def test_cli_finetune_json_keys():
    proc = _cli("finetune", "--backbone", "efficientnet_lite0", "--weights", "pretrained", "--dataset", "digits",
                "--shots", "5", "--freeze", "all", "--epochs", "3", "--seed", "0", "--image-size", "32", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("val_acc", "train_acc", "history", "seconds", "device", "config"):
        assert key in out
    assert len(out["history"]["val_acc"]) == 3 and len(out["history"]["train_loss"]) == 3
    assert out["config"]["shots"] == 5 and out["config"]["freeze"] == "9" and out["frozen_stages"] == 9  # all = 9 of 10


@pytest.mark.slow   # a python -m tl_core process that trains a 2 x 2 grid
def test_cli_sweep_returns_the_grid():
    proc = _cli("sweep", "--backbone", "shapes_cnn", "--dataset", "faces", "--image-size", "32", "--epochs", "2",
                "--shots", "1,5", "--freezes", "all,none", "--weights", "pretrained", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert np.asarray(out["grid"]["pretrained"]).shape == (2, 2)


@pytest.mark.parametrize("args,words", [   # a python -m tl_core process each: 5 s of imports
    pytest.param(["--backbone", "nope"], "invalid choice: 'nope'", marks=pytest.mark.slow),
    pytest.param(["--dataset", "nope"], "unknown dataset", marks=pytest.mark.slow),
    pytest.param(["--shots", "500"], "choose at most", marks=pytest.mark.slow),
    pytest.param(["--freeze", "99"], "freeze must be between", marks=pytest.mark.slow),
    pytest.param(["--backbone", "vit_b_16", "--weights", "scratch"], "only accepts 224 px", marks=pytest.mark.slow),
])
def test_cli_finetune_bad_input_one_line(args, words):
    proc = _cli("finetune", *args, "--epochs", "1", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]


@pytest.mark.slow   # a python -m tl_core process (5 s of imports)
def test_missing_hub_weights_offline_exit_with_what_to_do():
    from tl_core import backbones

    if backbones.weights_status("resnet18")[0]:
        pytest.skip("resnet18's weights are cached here")
    proc = _cli("finetune", "--backbone", "resnet18", "--epochs", "1", "--json")
    assert proc.returncode == 2 and "To fetch them once, online" in proc.stderr


def test_sweep_in_any_shots_order_trains_on_the_right_images():
    """Features are cached per images tensor; a later shots value must never get another's features."""
    cfg = finetune.SweepConfig(**TINY_LAB, weights="pretrained", epochs=2, batch_size=8, seeds=1,
                               shots=(1, 5, 20, 2, 10), freezes=("all",))
    sw = finetune.sweep(cfg, device="cpu")
    assert len(sw.records) == 5 and all(r["status"] == "finished" for r in sw.records)


def test_misclassified_and_confusion_use_the_first_runs_val_set():
    cfg = finetune.FinetuneConfig(backbone="shapes_cnn", dataset="faces", image_size=32, shots=2, epochs=1, seeds=2)
    result = finetune.run(cfg, device="cpu")
    from tl_core import data

    _, first_val = data.few_shot_split(data.load("faces", 32), 2, cfg.seed, cfg.val_per_class)
    assert torch.equal(result.val.labels, first_val.labels) and torch.equal(result.val.images, first_val.images)
    assert result.runs[0].confusion.sum() == len(result.val)


def test_gradual_and_discriminative_at_the_deepest_freeze_reach_the_stem():
    from tl_core import backbones, data, freeze

    n = len(backbones.stage_names("shapes_cnn"))
    train, val = data.few_shot_split(data.load("textures", 32), 2, 0)
    for strategy, epochs in (("gradual", 2 * n), ("discriminative", 1)):
        cfg = finetune.FinetuneConfig(**TINY_LAB, epochs=epochs, freeze=str(n - 1), strategy=strategy,
                                      unfreeze_every=2)
        model = backbones.create("shapes_cnn", "pretrained", num_classes=3)
        finetuning.Trainer(model, cfg, torch.device("cpu")).train(train, val)
        assert freeze.frozen_stages(model) == 0, strategy


@pytest.mark.slow
def test_cli_pretrain_to_an_unwritable_path_is_one_line_before_training():
    proc = _cli("pretrain", "--out", "README.md/inside-a-file.pt")
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_per_class_recall_equals_sklearns_recall_with_nan_for_a_class_without_images():
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 60)
    true[true == 2] = 1                      # class 2 has no validation image
    pred = np.where(rng.random(60) < 0.6, true, rng.integers(0, 5, 60))
    run = finetuning.FinetuneRun.__new__(finetuning.FinetuneRun)
    run.confusion, run.val_true, run.val_pred = np.zeros((5, 5)), true, pred
    want = recall_score(true, pred, labels=range(5), average=None, zero_division=np.nan)
    got = run.per_class_recall
    assert np.isnan(got[2]) and np.isnan(want[2])
    assert np.allclose(got, want, equal_nan=True) and 0 < np.nanmean(got) < 1


def test_validating_in_one_pass_gives_the_numbers_of_validating_in_training_batches(monkeypatch):
    """The faster path (finetuning.VAL_BATCH: validation and final predictions in one pass, under inference mode)
    against the path before it (passes of batch_size): the same accuracies, curves and confusion matrices."""
    from tl_core import reuse

    cfg = finetune.FinetuneConfig(**{**TINY_LAB, "dataset": "digits"}, weights="both", seeds=2, epochs=3)
    out = {}
    for size in (0, finetuning.VAL_BATCH):
        monkeypatch.setattr(finetuning, "VAL_BATCH", size)
        monkeypatch.setattr(reuse, "REUSE", False)
        r = finetune.run(cfg, device="cpu")
        out[size] = [(run.weights, run.seed, run.val_acc, run.train_acc, run.history.val_acc, run.history.train_loss,
                      run.confusion.tolist(), np.round(run.history.val_loss, 5).tolist()) for run in r.runs]
    assert out[0] == out[finetuning.VAL_BATCH]


def test_a_network_trained_whole_on_the_cpu_computes_in_channels_last_what_a_float64_reference_computes():
    """The faster layout (finetuning.CHANNELS_LAST) against a reference, the same weights: the same predictions
    and logits as the usual layout to float rounding, and one training step's gradients within 3% of the same
    network's in float64 (the usual layout is within 1%: another order of the same sums, with a few per cent of
    float32 error where BatchNorm's batch statistics cancel; fifteen epochs from scratch amplify that into other
    accuracies of the same spread: docs/benchmarks.md)."""
    from tl_core import backbones

    model = backbones.create("efficientnet_lite0", "scratch", 10, seed=3)
    assert finetuning.fast_layout(model, torch.device("cpu"))
    assert not finetuning.fast_layout(model, torch.device("meta"))                       # the CPU's only
    assert not finetuning.fast_layout(torch.nn.Sequential(torch.nn.Linear(4, 2)), torch.device("cpu"))
    x, y = torch.rand(24, 3, 48, 48, generator=torch.Generator().manual_seed(0)), torch.arange(24) % 10
    out = {}
    for name, layout, dtype in (("reference", torch.contiguous_format, torch.float64),
                                ("usual", torch.contiguous_format, torch.float32),
                                ("fast", torch.channels_last, torch.float32)):
        m = backbones.create("efficientnet_lite0", "scratch", 10, seed=3).to(dtype).to(memory_format=layout)
        m.train()
        torch.nn.functional.cross_entropy(m(x.to(dtype)), y).backward()
        m.eval()
        with torch.inference_mode():
            out[name] = (m(x.to(dtype)).double(), torch.cat([p.grad.double().flatten() for p in m.parameters()]))
    ref_logits, ref_grad = out["reference"]
    assert torch.equal(out["usual"][0].argmax(1), out["fast"][0].argmax(1))
    assert torch.allclose(out["usual"][0], out["fast"][0], atol=1e-4, rtol=1e-4)
    assert torch.allclose(out["fast"][0], ref_logits, atol=1e-4, rtol=1e-4)
    error = {k: float((out[k][1] - ref_grad).norm() / ref_grad.norm()) for k in ("usual", "fast")}
    assert error["usual"] < 0.01 and error["fast"] < 0.03, error


def test_channels_last_leaves_the_pretrained_condition_bit_for_bit_and_hands_back_the_usual_layout(monkeypatch):
    """A lab run with the faster layout: the pretrained condition (its head on cached features) gives exactly the
    numbers of the path before it, scratch trains in channels-last, and the weights the run keeps (export, predict,
    the workshop) are in the usual layout."""
    from tl_core import reuse

    cfg = finetune.FinetuneConfig(**{**TINY_LAB, "dataset": "digits"}, weights="both", seeds=1, epochs=2)
    seen, out = [], {}
    real = finetuning.Trainer.train

    def train(self, *args, **kwargs):
        seen.append(next(p for p in self.model.parameters() if p.dim() == 4).is_contiguous(
            memory_format=torch.channels_last))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(finetuning.Trainer, "train", train)
    for on in (False, True):
        monkeypatch.setattr(finetuning, "CHANNELS_LAST", on)
        monkeypatch.setattr(reuse, "REUSE", False)
        r = finetune.run(cfg, device="cpu")
        out[on] = [(run.val_acc, run.history.val_acc, run.history.train_loss, run.confusion.tolist())
                   for run in r.by_weights("pretrained")]
        assert all(t.is_contiguous() for t in r.model_state.values())
    assert out[False] == out[True]
    assert seen == [False, False, False, True]     # pretrained, scratch (usual layout); pretrained, scratch (fast)


def test_on_a_gpu_a_run_leaves_its_shared_features_in_host_memory_and_hands_the_rest_back(monkeypatch):
    """The GPU path, checked on the CPU: the lab's shared feature cache keeps its features in host memory; after
    a run on a GPU (`reuse.release`) the frozen network the cache built there is let go and the freed memory goes
    back to the device, while the features stay for the next run; after a CPU run nothing is let go."""
    from tl_core import device as devices
    from tl_core import reuse

    cfg = finetune.FinetuneConfig(**TINY_LAB, weights="pretrained", seeds=1, epochs=1)
    monkeypatch.setattr(reuse, "FEATURES", type(reuse.FEATURES)())
    finetune.run(cfg, device="cpu")
    (key, cache), = reuse.FEATURES.items()
    assert key == ("shapes_cnn", "cpu") and cache._model is not None and cache._batches
    assert all(t.device.type == "cpu" for t in cache._batches.values())
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    reuse.release("cpu")
    assert cache._model is not None and not emptied                 # a CPU run keeps everything for the next
    reuse.FEATURES[("shapes_cnn", "cuda")] = reuse.FEATURES.pop(key)  # the same cache, as a GPU run's
    reuse.release(torch.device("cuda"))
    assert cache._model is None and cache._batches and emptied == [True]
    assert isinstance(cache.model, torch.nn.Module)                    # built again when a run needs it
    x = torch.ones(3)
    assert devices.to_device(x, torch.device("cpu")) is x              # on the CPU, no copy


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "mobilenet_v3_small", "shapes_cnn"])
def test_folded_batchnorm_computes_what_the_network_computes_and_follows_its_training(name):
    """Validation's faster view (finetuning.Folded: BatchNorm folded into the convolution before it) against the
    network itself in eval mode, the reference: the same logits to float rounding and the same predictions, before
    and after the weights and BatchNorm statistics move in training."""
    from tl_core import backbones

    model = backbones.create(name, "scratch", 10, seed=1).to(memory_format=torch.channels_last)
    x = torch.rand(12, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    folded = finetuning.Folded(model)
    assert folded.pairs                                    # every one of these has conv → BatchNorm pairs
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(2):
        view = folded.current(x[:4])
        assert view is folded.copy                         # the check passed: validation runs on the copy
        model.eval()
        with torch.inference_mode():
            want, got = model(x), view(x)
        assert torch.equal(want.argmax(1), got.argmax(1))
        assert torch.allclose(want, got, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
        model.train()                                      # a step: weights and running statistics move
        torch.nn.functional.cross_entropy(model(x), torch.arange(12) % 10).backward()
        opt.step()


def test_folded_batchnorm_falls_back_to_the_network_where_folding_would_change_what_it_computes():
    """A BatchNorm registered after a convolution but not applied right after it (an activation between): the
    check finds the copy computes something else, and validation runs on the network itself."""
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)
            self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))

        def forward(self, x):
            return self.head(self.bn(torch.relu(self.conv(x) - 0.5)))

    model = Odd()
    x = torch.rand(6, 3, 8, 8)
    model.train()
    model(x)
    folded = finetuning.Folded(model)
    assert folded.pairs and folded.current(x[:4]) is model and folded.current(x[:4]) is model


def test_validating_on_folded_batchnorm_gives_the_curves_of_validating_on_the_network(monkeypatch):
    """A lab run validated on the folded copy (FOLD_BN) against the network itself, the same training: the same
    validation curves (a prediction on the edge may flip with float rounding: at most one image an epoch) and
    validation losses to rounding."""
    from tl_core import reuse

    cfg = finetune.FinetuneConfig(**{**TINY_LAB, "dataset": "digits"}, weights="scratch", seeds=2, epochs=3)
    out = {}
    for fold in (False, True):
        monkeypatch.setattr(finetuning, "FOLD_BN", fold)
        monkeypatch.setattr(reuse, "REUSE", False)
        out[fold] = finetune.run(cfg, device="cpu").runs
    one = 1 / (10 * cfg.val_per_class)
    for a, b in zip(out[False], out[True]):
        assert a.history.train_loss == b.history.train_loss          # validation does not touch training
        assert np.allclose(a.history.val_acc, b.history.val_acc, atol=one + 1e-9)
        assert np.allclose(a.history.val_loss, b.history.val_loss, rtol=1e-4, atol=1e-5)
        assert abs(a.val_acc - b.val_acc) <= one + 1e-9


def test_validating_in_cache_sized_passes_gives_the_numbers_of_one_pass(monkeypatch):
    """Validation and the final predictions of a network trained whole on the CPU run in passes whose widest
    activation fits PASS_BYTES (Lite0 at the lab's 64 px: passes of 53 of its 200 validation images, 1.2-1.4x
    faster than one pass). Against one pass, the reference: the same accuracies, curves and confusion matrices,
    the validation losses to rounding (a sum over other passes)."""
    from tl_core import backbones, reuse

    lite0 = backbones.create("efficientnet_lite0", "scratch", 10).to(memory_format=torch.channels_last)
    folded = finetuning.Folded(lite0)
    folded.current(torch.rand(4, 3, 64, 64))
    assert 48 <= folded.pass_size < 200 and finetuning.passes(1) == finetuning.VAL_BATCH

    cfg = finetune.FinetuneConfig(**{**TINY_LAB, "dataset": "digits"}, weights="scratch", seeds=2, epochs=3)
    out, sizes = {}, {2**40: set(), 1: set()}
    from tl_core import train

    real = train.evaluate
    for budget in (2**40, 1):            # one pass of everything; the smallest passes (48 images)
        monkeypatch.setattr(finetuning, "PASS_BYTES", budget)
        monkeypatch.setattr(train, "evaluate", lambda *a, **k: sizes[budget].add(a[3]) or real(*a, **k))
        monkeypatch.setattr(reuse, "REUSE", False)
        out[budget] = finetune.run(cfg, device="cpu").runs
    assert sizes == {2**40: {finetuning.VAL_BATCH}, 1: {48}}     # validation ran in those passes
    for a, b in zip(out[2**40], out[1]):
        assert (a.val_acc, a.train_acc, a.history.val_acc, a.history.train_loss, a.confusion.tolist()) == \
               (b.val_acc, b.train_acc, b.history.val_acc, b.history.train_loss, b.confusion.tolist())
        assert np.allclose(a.history.val_loss, b.history.val_loss, rtol=1e-5, atol=1e-6)
