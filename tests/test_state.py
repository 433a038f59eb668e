"""The state-dict workshop's core and CLI: safe reading, the missing/unexpected/mismatched report,
prefixes, encoder/head exports, continue fine-tuning (the lab's run from loaded weights)."""
import json
import os
import subprocess
import sys

import pytest
import torch
from fixtures import TINY_LAB

from tl_core import backbones, cli, contract, masked_pretraining, state
from tl_core.experiments import finetune


@pytest.fixture(scope="module")
def shapes_sd():
    return state.export("shapes_cnn", "pretrained")


def _write(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


# ---- safe reading -----------------------------------------------------------------------------------

class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, "evil.pt", {"conv.weight": torch.zeros(2), "payload": _RunsCode(marker)})
    with pytest.raises(ValueError, match="refused") as err:
        state.read_path(path)
    assert "system" in str(err.value) and "weights_only" in str(err.value)
    assert not marker.exists()
    # and through the CLI: one line, exit 2, no traceback, still nothing ran
    assert cli.main(["inspect", str(path), "--json"]) == 2
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickle_carrying_code_is_refused_naming_the_call(tmp_path, protocol):
    import pickle

    marker = tmp_path / "pwned"
    raw = pickle.dumps({"w": torch.zeros(1), "x": _RunsCode(marker)}, protocol=protocol)
    with pytest.raises(ValueError, match="refused .*system"):
        state.read(raw, "plain.pkl.pt")
    assert not marker.exists()


def test_safetensors_content_is_recognised_whatever_the_extension(shapes_sd):
    f = state.read(state.to_bytes(shapes_sd, "safetensors"), "renamed.pt")
    assert f.format == "safetensors" and set(f.state) == set(shapes_sd)


def test_whole_saved_model_is_refused_with_advice(tmp_path):
    path = _write(tmp_path, "model.pt", backbones.ShapesCNN())
    with pytest.raises(ValueError, match=r"whole saved model.*state_dict\(\)"):
        state.read_path(path)


@pytest.mark.parametrize("raw,words", [
    (b"", "empty"),
    (b"this is not a checkpoint at all", "not a PyTorch file"),
])
def test_empty_and_corrupt_files_get_clear_messages(raw, words):
    with pytest.raises(ValueError, match=words):
        state.read(raw, "x.pt")


def test_truncated_file_is_refused(shapes_sd):
    raw = state.to_bytes(shapes_sd)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        state.read(raw[: len(raw) // 2], "half.pt")


def test_not_a_state_dict(tmp_path):
    with pytest.raises(ValueError, match=r"one tensor of shape \(3, 4\)"):
        state.read_path(_write(tmp_path, "t.pt", torch.zeros(3, 4)))
    with pytest.raises(ValueError, match="holds a list"):
        state.read_path(_write(tmp_path, "l.pt", [torch.zeros(1)]))
    with pytest.raises(ValueError, match="without tensors"):
        state.read_path(_write(tmp_path, "d.pt", {"a": 1, "b": "two"}))


def test_size_limit(monkeypatch):
    monkeypatch.setattr(state, "MAX_MB", 0.0001)
    with pytest.raises(ValueError, match="over the"):
        state.read(b"x" * 1000, "big.pt")


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_nested_checkpoints_are_unwrapped_and_say_so(tmp_path, shapes_sd, wrapper):
    path = _write(tmp_path, "ckpt.pth", {wrapper: shapes_sd, "epoch": 7, "optimizer": {"lr": 0.1}})
    f = state.read_path(path)
    assert list(f.state) == list(shapes_sd)
    assert any(wrapper in n and "epoch" in n for n in f.notes)
    assert all(torch.equal(f.state[k], v) for k, v in shapes_sd.items())


def test_safetensors_round_trip(tmp_path, shapes_sd):
    path = tmp_path / "w.safetensors"
    path.write_bytes(state.to_bytes(shapes_sd, "safetensors"))
    f = state.read_path(path)
    assert f.format == "safetensors" and set(f.state) == set(shapes_sd)  # safetensors sorts its keys
    assert all(torch.equal(f.state[k], v) and f.state[k].dtype == v.dtype for k, v in shapes_sd.items())
    assert state.load_into(f.state, state.LoadConfig("shapes_cnn")).outcome == "loaded"
    with pytest.raises(ValueError, match="not a valid safetensors"):
        state.read(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!", "bad.safetensors")


# ---- inspection and exports -------------------------------------------------------------------------

def test_inspect_counts_match_the_model(shapes_sd):
    ins = state.inspect_lab("shapes_cnn", "pretrained")
    model = state.build("shapes_cnn")
    assert [r["key"] for r in ins.rows] == list(model.state_dict())
    assert [g["module"] for g in ins.groups] == list(backbones.stage_names("shapes_cnn"))
    assert ins.total_elements == sum(v.numel() for v in model.state_dict().values())
    assert ins.total_bytes == sum(v.numel() * v.element_size() for v in shapes_sd.values())
    fc = next(g for g in ins.groups if g["module"] == "fc")
    assert fc["elements"] == backbones.param_count(model.fc)
    row = next(r for r in ins.rows if r["key"] == "conv1.0.weight")
    assert row["shape"] == [32, 3, 3, 3] and row["dtype"] == "float32"


def test_encoder_and_head_exports_partition_the_model(shapes_sd):
    enc, head = state.export("shapes_cnn", "pretrained", "encoder"), state.export("shapes_cnn", "pretrained", "head")
    assert list(head) == ["fc.weight", "fc.bias"]
    assert set(enc) | set(head) == set(shapes_sd) and not set(enc) & set(head)
    lite_head = state.export("efficientnet_lite0", "scratch", "head")
    assert list(lite_head) == ["classifier.weight", "classifier.bias"]


# ---- the load report ----------------------------------------------------------------------------------

def test_wrong_architecture_names_the_right_keys(shapes_sd):
    r = state.load_into(shapes_sd, state.LoadConfig("efficientnet_lite0"))
    assert r.outcome == "refused" and r.model is None and r.loaded == []
    assert r.unexpected == list(shapes_sd)                       # every shapes-CNN key is foreign there
    assert r.missing == list(state.build("efficientnet_lite0").state_dict())
    assert r.mismatched == []


def test_head_with_another_class_count_mismatches_only_the_head(shapes_sd):
    r = state.load_into(shapes_sd, state.LoadConfig("shapes_cnn", num_classes=3))
    assert r.outcome == "refused" and r.missing == [] and r.unexpected == []
    assert r.mismatched == [{"key": "fc.weight", "file_shape": [6, 128], "model_shape": [3, 128]},
                            {"key": "fc.bias", "file_shape": [6], "model_shape": [3]}]
    assert any("only the head differs" in h for h in r.hints)
    # strict off: everything but the head loads, no traceback (PyTorch's strict=False would raise here)
    r = state.load_into(shapes_sd, state.LoadConfig("shapes_cnn", num_classes=3, strict=False))
    assert r.outcome == "partial" and len(r.loaded) == len(shapes_sd) - 2
    assert torch.equal(r.model.state_dict()["conv3.0.weight"], shapes_sd["conv3.0.weight"])
    assert r.model.fc.out_features == 3


def test_module_prefix_is_all_unexpected_until_stripped(shapes_sd):
    wrapped = {"module." + k: v for k, v in shapes_sd.items()}
    r = state.load_into(wrapped, state.LoadConfig("shapes_cnn"))
    assert r.unexpected == list(wrapped) and r.missing == list(shapes_sd) and r.outcome == "refused"
    assert any("strip the prefix 'module.'" in h for h in r.hints)
    r = state.load_into(wrapped, state.LoadConfig("shapes_cnn", strip_prefix="module."))
    assert r.outcome == "loaded" and len(r.loaded) == len(shapes_sd)
    assert all(torch.equal(r.model.state_dict()[k], v) for k, v in shapes_sd.items())


def test_add_prefix_and_encoder_only_into_the_same_architecture(shapes_sd):
    enc = state.export("shapes_cnn", "pretrained", "encoder")
    stripped = {k.removeprefix("conv"): v for k, v in enc.items()}   # "1.0.weight", ... : "conv" is missing
    r = state.load_into(stripped, state.LoadConfig("shapes_cnn", add_prefix="conv", strict=False))
    assert r.missing == ["fc.weight", "fc.bias"] and r.unexpected == [] and r.outcome == "partial"
    r = state.load_into(enc, state.LoadConfig("shapes_cnn"))
    assert r.outcome == "refused" and r.missing == ["fc.weight", "fc.bias"]


# ---- CLI ------------------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tl_core", *args], capture_output=True, text=True, timeout=120)


def _main(capsys, *args):
    """The CLI in-process (fast): exit code and the one JSON object it printed."""
    code = cli.main(list(args))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out else None)


def test_cli_inspect_json(tmp_path, shapes_sd, capsys):
    path = _write(tmp_path, "shapes.pt", shapes_sd)
    code, out = _main(capsys, "inspect", str(path), "--json")
    assert code == 0
    assert out["n_keys"] == len(shapes_sd) and out["format"] == "pt"
    assert out["keys"][0] == {"key": "conv1.0.weight", "shape": [32, 3, 3, 3], "dtype": "float32",
                              "elements": 864, "bytes": 3456, "module": "conv1"}
    assert (sum(g["elements"] for g in out["groups"]) == out["total_elements"]
            == sum(v.numel() for v in shapes_sd.values()))


@pytest.mark.slow
def test_cli_load_exit_codes_and_report(tmp_path, shapes_sd, capsys):
    path = _write(tmp_path, "dp.pt", {"module." + k: v for k, v in shapes_sd.items()})
    proc = _cli("load", str(path), "--into", "shapes_cnn", "--json")   # the real command line, once
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"] == "refused" and out["n_unexpected"] == out["n_missing"] == len(shapes_sd)
    code, out = _main(capsys, "load", str(path), "--into", "shapes_cnn", "--strip-prefix", "module.", "--json")
    assert code == 0 and out["n_loaded"] == len(shapes_sd)
    plain = _write(tmp_path, "plain.pt", shapes_sd)
    code, out = _main(capsys, "load", str(plain), "--into", "shapes_cnn", "--num-classes", "3", "--no-strict", "--json")
    assert code == 0 and out["outcome"] == "partial"
    assert [m["key"] for m in out["mismatched"]] == ["fc.weight", "fc.bias"]
    with pytest.raises(SystemExit) as exit_:                  # the choices are the registry's: argparse says no
        cli.main(["load", str(plain), "--into", "nosuchnet", "--json"])
    assert exit_.value.code == 2 and "invalid choice: 'nosuchnet'" in capsys.readouterr().err
    assert cli.main(["load", str(plain), "--json"]) == 2         # --into is required
    assert "--into ARCH" in capsys.readouterr().err
    assert cli.main(["load", str(plain), "--into", "shapes_cnn", "--num-classes", "0", "--json"]) == 2
    assert "num-classes must be between 1 and 100000, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="architecture must be one of .*got 'nosuchnet'"):
        state.load_into(shapes_sd, state.LoadConfig("nosuchnet"))


def test_load_config_is_declared_once_for_cli_and_page():
    specs = {s.name: s for s in contract.settings(state.LoadConfig)}
    assert specs["arch"].choices == tuple(backbones.REGISTRY) and specs["arch"].flag == "--into"
    assert {"ssl_encoder_expression", "ssl_downstream_digits", "shapes_cnn"} <= set(specs["arch"].choices)
    assert specs["init"].choices == ("pretrained", "scratch")
    assert (specs["num_classes"].lo, specs["num_classes"].hi, specs["num_classes"].optional) == (1, 100_000, True)
    assert contract.record(state.LoadConfig("resnet18", 10)) == {
        "arch": "resnet18", "num_classes": 10, "strict": True, "strip_prefix": "", "add_prefix": "", "init": "scratch"}
    assert not hasattr(state, "ARCHITECTURES") and not hasattr(state, "continue_finetune")


def test_lab_file_loads_into_resnet18_from_scratch_with_the_report(tmp_path, capsys):
    """A real-world layout: a torchvision ResNet-18 state_dict (scratch here, offline) with a 10-class head,
    wrapped in a training checkpoint."""
    sd = state.build("resnet18", "scratch", num_classes=10).state_dict()
    path = _write(tmp_path, "r18.pth", {"model": sd, "epoch": 3})
    code, out = _main(capsys, "load", str(path), "--into", "resnet18", "--json")
    assert code == 1 and [m["key"] for m in out["mismatched"]] == ["fc.weight", "fc.bias"]
    assert out["n_missing"] == out["n_unexpected"] == 0
    assert any("unwrapped" in n for n in out["notes"])
    code, out = _main(capsys, "load", str(path), "--into", "resnet18", "--num-classes", "10", "--json")
    assert code == 0 and out["outcome"] == "loaded"


def _continue_cfg(**kw) -> finetune.FinetuneConfig:
    """What the page's "Continue fine-tuning" runs: the lab's config from the loaded weights."""
    return finetune.FinetuneConfig(**{**TINY_LAB, "weights": "pretrained", "freeze": "none", "shots": 10, "epochs": 4,
                                      "seeds": 2, "lr": 1e-3, **kw})


def test_continue_finetuning_from_loaded_weights(shapes_sd):
    r = state.load_into(shapes_sd, state.LoadConfig("shapes_cnn"))
    before = {k: v.clone() for k, v in r.model.state_dict().items()}
    res = finetune.run(_continue_cfg(epochs=2, shots=5), init=r.model, init_note="weights loaded from shapes.pt",
                       device="cpu")
    assert res.status == "finished" and len(res.runs) == 2
    assert all(len(run.history.val_acc) == 2 for run in res.runs)
    assert all(torch.equal(r.model.state_dict()[k], v) for k, v in before.items())  # the loaded model is kept
    assert res.frozen == 0 and res.weights_note == "weights loaded from shapes.pt"
    head = [v for k, v in res.model_state.items() if k.endswith("weight")][-1]
    assert head.shape == (3, 128)                         # a new head: the file's has 6 classes, textures 3
    # from the loaded weights, not the registry's: they reach what the workshop's own loop reached (67% for both
    # seeds, chance 33%)
    assert all(run.val_acc >= 0.6 for run in res.runs)
    out = json.loads(json.dumps(res.to_json()))
    assert out["classes"] == ["brick", "grass", "gravel"] and len(out["val_acc_seeds"]) == 2
    assert contract.record(res.config)["freeze"] == "0"


def test_continue_from_loaded_weights_is_not_the_registry_run_and_can_freeze(shapes_sd):
    """init= replaces the pretrained weights (a scrambled file trains differently), and the lab's freezing
    and frozen-prefix cache come with it."""
    r = state.load_into({k: v.flip(0) if v.dim() else v for k, v in shapes_sd.items()}, state.LoadConfig("shapes_cnn"))
    cfg = _continue_cfg(epochs=1, seeds=1, shots=5, freeze="4")
    loaded = finetune.run(cfg, init=r.model, init_note="scrambled", device="cpu")
    registry = finetune.run(cfg, device="cpu")
    assert loaded.frozen == registry.frozen == 4
    first = next(k for k in loaded.model_state if k.endswith("weight") and loaded.model_state[k].dim() == 4)
    assert not torch.equal(loaded.model_state[first], registry.model_state[first])
    assert torch.equal(loaded.model_state[first], r.model.state_dict()["conv1.0.weight"])   # frozen: unchanged


def test_figures_show_the_numbers_and_bands_have_no_stray_markers():
    from tl_core.plots import base
    from tl_core.plots import state as figures

    ins = state.inspect_lab("shapes_cnn", "pretrained")
    bars = figures.state_groups(ins).data[0]
    assert list(bars.x) == [g["module"] for g in ins.groups] and sum(bars.y) == ins.total_elements
    band, line = base.band_traces([1, 2, 3], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], "x", "#1b9e77")
    assert band.mode == "lines" and band.fill == "toself"   # a band's outline, not its vertices as dots


def test_the_ssl_encoder_file_loads_into_the_downstream_model_once_prefixed():
    """The self-supervised page's encoder-only download, taken to the workshop: the deck's flow."""
    genes = masked_pretraining.SHAPES["expression"][0]
    encoder = masked_pretraining.Encoder(genes, masked_pretraining.HIDDEN, masked_pretraining.LATENT)
    sd = state.read(masked_pretraining.encoder_bytes(encoder), "encoder.pt").state
    plain = state.load_into(sd, state.LoadConfig("ssl_downstream_expression", None, True, "", ""), "encoder.pt", [])
    assert plain.outcome == "refused" and len(plain.unexpected) == len(sd)
    assert any("encoder." in h for h in plain.hints)
    fixed = state.load_into(sd, state.LoadConfig("ssl_downstream_expression", None, False, "", "encoder."),
                            "encoder.pt", [])
    assert fixed.outcome == "partial" and sorted(fixed.missing) == ["head.bias", "head.weight"]
    x = torch.randn(3, genes)
    assert torch.equal(fixed.model.encoder(x), encoder(x))


def test_readme_examples_inspect_and_load_an_ssl_encoder(tmp_path, capsys):
    """README: `inspect enc.pt --json` and `load enc.pt --into ssl_downstream_expression --add-prefix encoder.
    --no-strict --json`."""
    path = tmp_path / "enc.pt"
    path.write_bytes(masked_pretraining.encoder_bytes(masked_pretraining.architecture("expression", downstream=False)))
    code, out = _main(capsys, "inspect", str(path), "--json")
    assert code == 0 and out["n_keys"] == 4 and out["format"] == "pt"
    code, out = _main(capsys, "load", str(path), "--into", "ssl_downstream_expression", "--add-prefix", "encoder.",
                      "--no-strict", "--json")
    assert code == 0 and out["outcome"] == "partial" and out["n_loaded"] == 4
    assert sorted(out["missing"]) == ["head.bias", "head.weight"]
    assert out["config"] == {"arch": "ssl_downstream_expression", "num_classes": None, "strict": False,
                             "strip_prefix": "", "add_prefix": "encoder.", "init": "scratch"}
