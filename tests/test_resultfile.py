"""A finished run's whole result kept on disk without pickle (tl_core.resultfile): every experiment's real result
comes back equal (its JSON, and the tensors and arrays its page draws), a result holding a live network is not kept,
and a file naming anything but Transfer Lab's own dataclasses is refused before anything is built."""
import dataclasses
import json
import pathlib
import sys

import numpy as np
import pytest
import torch
from fixtures import TINY_LAB
from safetensors.torch import save as save_tensors
from torch import nn

from tl_core import resultfile
from tl_core.experiments import domains, finetune, gtl_sweep, inside, layers, lr_find, peft, selfsup, text, toy

# the smallest real runs (a few seconds at most each on one thread of a busy 2-core machine)
CASES = {
    "finetune": lambda: finetune.run(finetune.FinetuneConfig(
        **TINY_LAB, weights="both", shots=3, val_per_class=3, epochs=1, seeds=1), device="cpu"),
    "finetune-sweep": lambda: finetune.sweep(finetune.SweepConfig(
        **TINY_LAB, epochs=1, seeds=1, weights="both", shots=(1, 2), freezes=("all", "2"), val_per_class=3),
        device="cpu"),
    "toy": lambda: toy.run(toy.ToyConfig(seeds=2, epochs=20, pretrain_epochs=20), device="cpu"),
    "selfsup": lambda: selfsup.run(selfsup.SSLConfig(  # holds the encoder's state_dict as bytes
        data="expression", labels=2, seeds=1, pretrain_epochs=2, epochs=10), device="cpu"),
    "gtl-sweep": lambda: gtl_sweep.run(gtl_sweep.GTLSweepConfig(
        shots=(1, 2), seeds=2, pretrain_epochs=2, scouts=2, scout_epochs=1, epochs=2, val_per_class=5), device="cpu"),
    "domains": lambda: domains.run(domains.DomainsConfig(
        backbone="shapes_cnn", datasets=("textures",), shots=(2,), seeds=1, epochs=1, image_size=32,
        val_per_class=3,
        strategies=("feature_extraction", "scratch")), device="cpu"),
    "inside": lambda: inside.run(inside.InsideConfig(
        **TINY_LAB, shots=3, probe_shots=4, val_per_class=4, seeds=1, epochs=1, cam=2), device="cpu"),
    "layers": lambda: layers.run(layers.LayersConfig(
        **TINY_LAB, shots=3, epochs=1, seeds=1, val_per_class=3, patches=2), device="cpu"),
    "lr-find": lambda: lr_find.run(lr_find.LrFindConfig(
        backbone="shapes_cnn", dataset="digits", shots=3, image_size=32, steps=10), device="cpu"),
    "peft": lambda: peft.run(peft.PeftConfig(  # LoRA keeps its adapter file as bytes
        methods=("head", "lora"), ranks=(1,), shots=2, epochs=1, seeds=1, image_size=32, probe_size=32,
        val_per_class=4), device="cpu"),
    "text": lambda: text.run(text.TextConfig(
        conditions=("feature", "last_k"), shots=2, seeds=1, epochs=1, val_per_class=4), device="cpu"),
}


def _same(a, b, where="result") -> list[str]:
    """Where `b` (read back) differs from `a`: types, tensors and arrays (dtype, shape, values), everything else by
    ==, through lists, tuples, dicts and dataclasses."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        ok = isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and (
            torch.equal(a, b) or bool(torch.all((a == b) | (a.isnan() & b.isnan()))))
        return [] if ok else [f"{where}: tensor differs"]
    if isinstance(a, np.ndarray):
        if not (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape):
            return [f"{where}: array differs"]
        if a.dtype == object:
            return [d for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())) for d in _same(x, y, f"{where}[{i}]")]
        return [] if np.array_equal(a, b, equal_nan=a.dtype.kind in "fc") else [f"{where}: array values differ"]
    if type(a) is not type(b):
        return [f"{where}: {type(a).__qualname__} came back as {type(b).__qualname__}"]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys differ"]
        return [d for k in a for d in _same(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length differs"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same(x, y, f"{where}[{i}]")]
    if dataclasses.is_dataclass(a):
        if vars(a).keys() != vars(b).keys():
            return [f"{where}: attributes differ"]
        return [d for k in vars(a) for d in _same(vars(a)[k], vars(b)[k], f"{where}.{k}")]
    if isinstance(a, float) and a != a:
        return [] if b != b else [f"{where}: nan came back as {b!r}"]
    return [] if a == b else [f"{where}: {a!r} came back as {b!r}"]


def _json(result) -> str:
    return json.dumps(result.to_json(), sort_keys=True, default=str)


@pytest.mark.parametrize("name", list(CASES))
def test_a_real_result_comes_back_equal(name, tmp_path):
    result = CASES[name]()
    path = tmp_path / "result.safetensors"
    resultfile.write(path, resultfile.dumps(result))
    back = resultfile.load(path)
    assert type(back) is type(result)
    assert _json(back) == _json(result)
    assert _same(result, back) == []
    assert [p.name for p in tmp_path.iterdir()] == ["result.safetensors"]   # no temporary file left behind


def test_plain_data_of_every_kind_comes_back_with_its_type(tmp_path):
    value = {
        "bytes": b"\x00\x01enc", "empty": b"", "mutable": bytearray(b"ab"),
        "np": [np.float32(0.1), np.float64(2.5), np.int64(3), np.bool_(True), np.uint8(7), np.complex64(1j)],
        "sets": ({1, 2, "a"}, frozenset({(1, 2)}), set()),
        "paths": [pathlib.Path("/tmp/x"), pathlib.PurePosixPath("a/b")],
        "torch": [torch.float16, torch.bfloat16, torch.int64, torch.device("cpu")],
        "strings": np.array([["ab", "c"], ["d", "eee"]]), "raw": np.array([b"x", b"yz"]),
        "objects": np.array([(1, 2), (3, 4), None], dtype=object),
        "grid": np.array([[1.0, np.nan], [np.inf, -0.0]], dtype=np.float32),
        "special": [float("nan"), float("-inf"), 0.0, -(2 ** 70)],
        (1, "key"): {"@t": "looks like a tag"},
        "tensors": [torch.zeros(0), torch.tensor(3.0), torch.arange(6).reshape(2, 3).t(), torch.ones(2).bool()],
    }
    resultfile.write(tmp_path / "1.safetensors", resultfile.dumps(value))
    assert _same(value, resultfile.load(tmp_path / "1.safetensors")) == []




def test_a_result_holding_a_live_network_or_a_function_is_not_kept(tmp_path):
    from tl_core.serve import kept
    from tl_core.train import History

    hist = History("classification", status="finished")
    for live in (nn.Linear(2, 2), print, lambda: 0, complex(1, 2), torch.zeros(2, dtype=torch.complex128),
                 np.array(["2024-01-01"], dtype="datetime64[D]"), np.longdouble(1), np.zeros(2, np.longdouble)):
        holder = dataclasses.replace(hist)
        holder.model = live
        with pytest.raises(resultfile.Unsupported):
            resultfile.dumps(holder)
        kept.keep(tmp_path / "1.safetensors", holder)   # the server keeps nothing, and says nothing
        assert not list(tmp_path.iterdir())
    loop: list = []
    loop.append(loop)
    with pytest.raises(resultfile.Unsupported):
        resultfile.dumps(loop)


@dataclasses.dataclass
class Foreign:
    """A dataclass outside tl_core that a tl_core module happens to have imported."""
    made = 0

    def __post_init__(self):
        Foreign.made += 1


def _planted(path: pathlib.Path, tree) -> pathlib.Path:
    blob = save_tensors({}, metadata={"format": resultfile.FORMAT, "tree": json.dumps(tree)})
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("name", ["subprocess:Popen", "os:system", "builtins:eval", "tl_core.__main__:main",
                                  "tl_core.serve:os.system", "tl_core.serve:subprocess.Popen",
                                  "tl_core.contract:Foreign", "tl_core.train:History.__class__",
                                  "tl_core.experiments.toy:ToyResult.__init__.__globals__"])
def test_a_file_naming_anything_but_a_tl_core_dataclass_is_refused_and_builds_nothing(name, tmp_path, monkeypatch):
    from tl_core import contract

    monkeypatch.setattr(contract, "Foreign", Foreign, raising=False)
    marker = tmp_path / "ran"
    argv = ["touch", str(marker)]
    node = {"@": name, "v": {"args": argv, "command": f"touch {marker}", "source": f"open({str(marker)!r}, 'w')"}}
    path = _planted(tmp_path / "1.safetensors", {"config": {"@tu": [node]}})
    had_main = "tl_core.__main__" in sys.modules
    with pytest.raises(ValueError):
        resultfile.load(path)
    assert not marker.exists() and Foreign.made == 0
    assert ("tl_core.__main__" in sys.modules) == had_main     # never imported: it runs the command line


def test_a_tl_core_dataclass_cannot_be_given_dunder_attributes(tmp_path):
    node = {"@": "tl_core.train:History", "v": {"__class__": {"@": "tl_core.train:History", "v": {}}}}
    with pytest.raises(ValueError):
        resultfile.load(_planted(tmp_path / "1.safetensors", node))
    path = _planted(tmp_path / "2.safetensors", {"@": "tl_core.train:History", "v": {"status": "finished"}})
    assert resultfile.load(path).status == "finished"
