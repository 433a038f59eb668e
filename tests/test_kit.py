"""The practitioner's kit: ONNX export that predicts what torch predicts (two backbones), a damaged model.onnx
refused in one line, the learning-rate finder (through train.fit, its suggestion inside its sweep), the sample
set (built in memory, read as an upload, learnable), and the model card's numbers."""
import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tl_core import backbones, card, cli, export, train, userdata
from tl_core.experiments import finetune, lr_find

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(weights="pretrained", shots=None, epochs=8, seeds=1, lr=3e-3, val_fraction=0.3, image_size=32)
_RUNS: dict = {}


@pytest.fixture(scope="module")
def sample():
    return userdata.sample_set()


def _trained(images, backbone: str):
    """One tiny fine-tuning per backbone on the sample set (feature extraction, 32 px), shared by the tests."""
    if backbone not in _RUNS:
        cfg = finetune.FinetuneConfig(backbone=backbone, dataset=f"own: {images.source}", **TINY)
        _RUNS[backbone] = finetune.run(cfg, dataset=images.to_imageset(32))
    return _RUNS[backbone]


# ---- ONNX ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["shapes_cnn", "efficientnet_lite0"])
def test_onnx_export_predicts_what_torch_predicts(sample, backbone, tmp_path, capsys):
    result = _trained(sample, backbone)
    clf = export.from_result(result)
    paths = export.save(clf, tmp_path)
    assert set(paths) == {"model.pt", "model.onnx", "model.json", "predict.py"}
    meta = json.loads((tmp_path / "model.json").read_text())
    onnx = meta["onnx"]
    assert onnx["opset"] == export.ONNX_OPSET and onnx["checked_on"] == f"{len(result.val.images)} validation images"
    assert 0 <= onnx["max_abs_diff"] <= export.PARITY_LIMIT
    # the reference: torch's probabilities against onnxruntime's, measured here again on the validation images
    ort_clf = export.load(tmp_path, onnx=True)
    assert ort_clf.runtime == "onnxruntime" and ort_clf.classes == clf.classes
    diff = float((ort_clf.probabilities(result.val.images) - clf.probabilities(result.val.images)).abs().max())
    assert diff <= export.PARITY_LIMIT and math.isclose(diff, onnx["max_abs_diff"], rel_tol=0.5, abs_tol=1e-6)
    # the CLI runs it, and names the same top classes as torch
    photo = tmp_path / "photo.png"
    photo.write_bytes(_png(sample.images[0]))
    assert cli.main(["predict", "--model", paths["model.pt"], str(photo), "--onnx", "--json", "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runtime"] == "onnxruntime"
    assert [t["class"] for t in out["predictions"][0]["top"]] == [c for c, _ in clf.topk(photo.read_bytes(), 2)]
    if backbone == "shapes_cnn":   # the shipped predict.py runs the ONNX model too
        script = subprocess.run([sys.executable, paths["predict.py"], "--onnx", str(photo)], capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert script.returncode == 0, script.stderr
        assert script.stdout.startswith(f"{photo}: {clf.topk(photo.read_bytes(), 1)[0][0]} ")


def _png(img: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, "PNG")
    return buf.getvalue()


def test_a_damaged_model_onnx_is_refused_in_one_line(sample, tmp_path, capsys):
    clf = export.from_result(_trained(sample, "shapes_cnn"))
    paths = export.save(clf, tmp_path)
    raw = bytearray((tmp_path / "model.onnx").read_bytes())
    (tmp_path / "photo.png").write_bytes(_png(sample.images[0]))
    (tmp_path / "model.onnx").write_bytes(bytes(raw[: len(raw) // 3]))          # truncated
    assert cli.main(["predict", "--model", paths["model.pt"], str(tmp_path / "photo.png"), "--onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.onnx is not a valid ONNX model" in err
    # a bundle whose model.onnx loads but does not predict what model.pt predicts: a weight flipped in place
    bundle = export.to_zip(clf)
    head = [m for m in clf.model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    weights = head.weight.detach().numpy().astype(np.float32).tobytes()
    assert raw.count(weights[:64]) == 1
    start = raw.index(weights[:64])
    raw[start:start + 64] = np.full(16, 50.0, np.float32).tobytes()
    bad = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bundle)) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, bytes(raw) if info.filename == "model.onnx" else src.read(info))
    with pytest.raises(ValueError, match="does not predict what model.pt predicts") as err:
        export.from_zip(bad.getvalue(), "bundle.zip")
    assert "\n" not in str(err.value)
    assert export.from_zip(bundle).classes == clf.classes                   # the intact bundle imports


def test_the_export_fails_in_one_line_when_parity_breaks(sample, monkeypatch):
    clf = export.from_result(_trained(sample, "shapes_cnn"))
    monkeypatch.setattr(export, "parity", lambda *a, **k: 3e-3)
    with pytest.raises(ValueError, match=r"parity check.*3\.00e-03.*more than the limit of 0\.0001") as err:
        export.to_zip(clf)
    assert "\n" not in str(err.value)


# ---- the learning-rate finder -----------------------------------------------------------------------------

def test_lr_finder_sweeps_through_train_fit_and_suggests_inside_its_range(monkeypatch):
    calls = []
    real = train.fit

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "fit", spy)
    cfg = lr_find.LrFindConfig(backbone="shapes_cnn", dataset="digits", shots=5, image_size=32, steps=40)
    res = lr_find.run(cfg)
    assert res.status == "finished" and len(calls) == 1                      # THE loop, once
    assert calls[0]["after_step"] is not None and calls[0]["loss_fn"] is not None
    lrs = np.array(res.lrs)
    assert len(lrs) == len(res.losses) >= 5 and np.all(np.diff(lrs) > 0)
    ratios = lrs[1:] / lrs[:-1]                                              # exponential: one growth factor
    assert np.allclose(ratios, (cfg.end_lr / cfg.start_lr) ** (1 / (cfg.steps - 1)), rtol=1e-6)
    # the rate fit's optimizer used at the last step is the one recorded: the tensor after_step set
    assert math.isclose(float(calls[0]["params"][0]["lr"]), cfg.lr_at(len(lrs)), rel_tol=1e-9)
    assert lrs.min() <= res.suggested_lr <= lrs.max() and cfg.start_lr <= res.suggested_lr <= cfg.end_lr
    assert res.rule.startswith(("steepest", "minimum"))
    step = lr_find.nearest_step(res.suggested_lr, finetune.FinetuneConfig.__dataclass_fields__["lr"].metadata["steps"])
    assert step in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def test_lr_finder_suggestion_rule():
    lrs = np.logspace(-6, 1, 50)
    loss = 2 - np.tanh(np.log10(lrs) + 2) + np.where(lrs > 1, (np.log10(lrs)) * 5, 0)   # falls fastest at 1e-2
    lr, rule = lr_find.suggest(lrs, loss)
    assert rule.startswith("steepest") and 5e-3 < lr < 2e-2
    lr, rule = lr_find.suggest(lrs, np.linspace(1, 3, 50))                 # rises from the start: min / 10
    assert rule.startswith("minimum") and lr == lrs[0]


def test_lr_find_cli_json(capsys):
    rc = cli.main(["lr-find", "--backbone", "shapes_cnn", "--dataset", "textures", "--shots", "5", "--image-size", "32",
                   "--steps", "15", "--batch-size", "8", "--json", "--no-record"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and {"lrs", "losses", "suggested_lr", "seconds", "config"} <= set(out)
    assert out["config"]["steps"] == 15 and len(out["lrs"]) <= 15
    assert cli.main(["lr-find", "--start-lr", "1", "--end-lr", "0.1", "--json"]) == 2
    assert "must be larger than start lr" in capsys.readouterr().err


# ---- the sample set -----------------------------------------------------------------------------------------

def test_the_sample_set_is_an_upload_that_trains_above_chance(sample, monkeypatch):
    read = []
    real = userdata.read_zip
    monkeypatch.setattr(userdata, "read_zip", lambda *a, **k: read.append(a) or real(*a, **k))
    again = userdata.sample_set()
    assert read and isinstance(read[0][0], bytes)                          # the upload path, from bytes in memory
    assert again.fingerprint == sample.fingerprint and not sample.skipped  # the same set every time
    counts = sample.counts()
    assert 3 <= len(counts) <= 4 and set(counts.values()) == {userdata.SAMPLE_PER_CLASS}
    result = _trained(sample, "efficientnet_lite0")                        # 8 epochs of the head, 32 px
    assert result.status == "finished" and len(result.val.images) == 3 * len(counts)
    assert result.summary("pretrained")["val_acc"] > 1.5 / len(counts)     # chance is 1 / classes


# ---- the model card -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,size", [("shapes_cnn", 32), ("efficientnet_lite0", 32)])
def test_model_card_numbers(name, size, monkeypatch):
    c = card.card(name, size)
    model = backbones.create(name, "pretrained")
    assert c.params == sum(p.numel() for p in model.parameters())
    assert c.size_mb > 0 and c.ms_per_image > 0 and c.image_size == size and c.threads >= 1
    assert c.weights_available and c.weights_source == backbones.REGISTRY[name].source
    monkeypatch.setattr(card, "measure_ms", lambda *a, **k: pytest.fail("measured twice"))
    assert card.card(name, size).ms_per_image == c.ms_per_image          # cached per (backbone, size)
    assert json.loads(json.dumps(c.to_json()))["params"] == c.params
    assert any(what == "Normalisation" and "mean" in v for what, v in c.rows())


def test_model_json_carries_the_exported_models_card(sample):
    clf = export.from_result(_trained(sample, "shapes_cnn"))
    meta = json.loads(export._files(clf)["model.json"])
    assert meta["card"]["params"] == sum(p.numel() for p in clf.model.parameters())
    assert meta["card"]["image_size"] == 32 and meta["card"]["ms_per_image"] > 0
