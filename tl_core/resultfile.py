"""A finished run's whole result on disk without pickle: tensors as safetensors, everything else as JSON.

The server keeps a finished run's result beside the history so that a later request (after a restart, or once
it left memory) is answered at once (tl_core.serve). Reading a pickle runs whatever code the file names, so a
history folder someone could write to would be a way into the server. This format holds data only:

- one `.safetensors` file: every tensor and numpy array of the result, by number;
- its metadata `"tree"`: the rest as JSON, where a dataclass of tl_core is `{"@": "module:Class", "v": {...}}`,
  a tensor `{"@t": n}`, an array `{"@a": n}`, a tuple `{"@tu": [...]}`, a dict with other than string keys
  `{"@d": [[k, v], ...]}`, and a float that JSON cannot write `{"@f": "nan"}`; more plain data: bytes `{"@by": n}`
  (a uint8 tensor), a numpy scalar `{"@ns": n}` (a 0-d array, its dtype kept), an array of strings `{"@sa": [...]}`,
  a set `{"@se": [...]}`, a path `{"@p": "..."}`, a torch dtype `{"@dt": "float32"}` and device `{"@dv": "cpu"}`.

Loading rebuilds only dataclasses defined in tl_core (`TRUSTED`; without calling their `__init__`), imports only
tl_core's own modules by a plain dotted name (never `tl_core.__main__`, which would run the command line), and
fails on anything else. A result holding something this format cannot say (a module, a function) is simply not
kept: it trains again when asked, as before.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import pathlib
import sys
import threading
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

FORMAT = "transfer-lab-result-1"
TRUSTED = ("tl_core.",)   # modules whose dataclasses a result file may name (code extends it, never a file)


class Unsupported(TypeError):
    """The result holds something this format does not keep."""


_PATHS = {"PurePath": pathlib.PurePath, "PurePosixPath": pathlib.PurePosixPath,
          "PureWindowsPath": pathlib.PureWindowsPath, "Path": pathlib.Path, "PosixPath": pathlib.Path,
          "WindowsPath": pathlib.Path}
_SETS = {"set": set, "frozenset": frozenset}


def _encode(obj, tensors: list):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic):      # before int/float: np.float64 is a float, and its type is kept
        if obj.dtype.kind == "S":
            return _encode(bytes(obj), tensors)
        if obj.dtype.kind not in "biufc":
            raise Unsupported(f"numpy {obj.dtype}")
        return {"@ns": _array(np.asarray(obj), tensors)}
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"@f": repr(obj)}
    if isinstance(obj, (bytes, bytearray)):
        tensors.append(torch.from_numpy(np.frombuffer(bytes(obj), dtype=np.uint8).copy()))
        return {"@by": len(tensors) - 1, **({"m": 1} if isinstance(obj, bytearray) else {})}
    if isinstance(obj, torch.Tensor):
        tensors.append(obj.detach().cpu().contiguous().clone())
        return {"@t": len(tensors) - 1}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return {"@oa": [_encode(v, tensors) for v in obj.ravel().tolist()], "sh": list(obj.shape)}
        if obj.dtype.kind in "US":
            return {"@sa": obj.ravel().tolist() if obj.dtype.kind == "U" else [v.hex() for v in obj.ravel().tolist()],
                    "dt": obj.dtype.str, "sh": list(obj.shape)}
        if obj.dtype.kind not in "biufc":
            raise Unsupported(f"numpy array of {obj.dtype}")
        return {"@a": _array(obj, tensors)}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, tuple):
        return {"@tu": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("@") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"@d": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if type(obj) in (set, frozenset):
        return {"@se": [_encode(v, tensors) for v in obj], "k": type(obj).__name__}
    if isinstance(obj, pathlib.PurePath) and type(obj).__name__ in _PATHS:
        return {"@p": str(obj), "k": type(obj).__name__}
    if isinstance(obj, torch.dtype):
        return {"@dt": str(obj).removeprefix("torch.")}
    if isinstance(obj, torch.device):
        return {"@dv": str(obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        name = f"{cls.__module__}:{cls.__qualname__}"
        try:
            if _dataclass(name) is not cls:    # a class loading could not find again (a local one, a shadowed name)
                raise ValueError(name)
        except ValueError:
            raise Unsupported(f"{cls.__module__}.{cls.__qualname__}") from None
        inner = getattr(obj, "__dict__", None)
        if inner is None:
            inner = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"@": name, "v": {k: _encode(v, tensors) for k, v in inner.items()}}
    raise Unsupported(type(obj).__qualname__)


def _array(a: np.ndarray, tensors: list) -> int:
    try:
        tensors.append(torch.from_numpy(np.array(a, order="C", copy=True)))  # not ascontiguousarray: 0-d stays 0-d
    except TypeError:            # a dtype torch has no tensor of (float128)
        raise Unsupported(f"numpy array of {a.dtype}") from None
    return len(tensors) - 1


def _module(module: str):
    """One of tl_core's own modules, by a plain dotted name: nothing private (`tl_core.__main__` runs the command
    line when imported), nothing outside the package."""
    parts = module.split(".")
    if not module.startswith(TRUSTED) or not all(p.isidentifier() and not p.startswith("_") for p in parts):
        raise ValueError(f"not a Transfer Lab module: {module!r}")
    loaded = sys.modules.get(module)
    return loaded if loaded is not None else importlib.import_module(module)


def _dataclass(name: str) -> type:
    module, _, qual = name.partition(":")
    if not qual or not all(p.isidentifier() and not p.startswith("__") for p in qual.split(".")):
        raise ValueError(f"not a Transfer Lab class: {name!r}")
    try:
        obj = _module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(f"no Transfer Lab class {name!r} here") from None
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ValueError(f"not a Transfer Lab dataclass: {name!r}")
    if not obj.__module__.startswith(TRUSTED):     # a foreign dataclass a tl_core module imported
        raise ValueError(f"not a Transfer Lab class: {name!r} is {obj.__module__}.{obj.__qualname__}")
    return obj


def _objects(items: list, shape) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):      # one by one: numpy would take equal-length lists for another dimension
        out[i] = v
    return out.reshape(shape)


def _decode(node, tensors: dict):
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "@t" in node:
        return tensors[str(node["@t"])]
    if "@a" in node:
        return tensors[str(node["@a"])].numpy()
    if "@ns" in node:
        return tensors[str(node["@ns"])].numpy()[()]
    if "@by" in node:
        raw = tensors[str(node["@by"])].numpy().tobytes()
        return bytearray(raw) if node.get("m") else raw
    if "@oa" in node:
        items = [_decode(v, tensors) for v in node["@oa"]]
        if "sh" not in node:           # written before shapes were kept
            return np.array(items, dtype=object)
        return _objects(items, tuple(node["sh"]))
    if "@sa" in node:
        dtype = np.dtype(node["dt"])
        if dtype.kind not in "US":
            raise ValueError(f"not an array of strings: {node['dt']!r}")
        items = node["@sa"] if dtype.kind == "U" else [bytes.fromhex(v) for v in node["@sa"]]
        return np.array(items, dtype=dtype).reshape(tuple(node["sh"]))
    if "@f" in node:
        return float(node["@f"])
    if "@tu" in node:
        return tuple(_decode(v, tensors) for v in node["@tu"])
    if "@d" in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["@d"]}
    if "@se" in node:
        return _SETS[node["k"]](_decode(v, tensors) for v in node["@se"])
    if "@p" in node:
        return _PATHS[node["k"]](node["@p"])
    if "@dt" in node:
        dtype = getattr(torch, str(node["@dt"]), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"not a torch dtype: {node['@dt']!r}")
        return dtype
    if "@dv" in node:
        return torch.device(str(node["@dv"]))
    if "@" in node:
        cls = _dataclass(node["@"])
        obj = object.__new__(cls)
        for k, v in node["v"].items():
            if not isinstance(k, str) or k.startswith("__"):
                raise ValueError(f"not an attribute of {node['@']}: {k!r}")
            object.__setattr__(obj, k, _decode(v, tensors))
        return obj
    return {k: _decode(v, tensors) for k, v in node.items()}


def dumps(result) -> bytes:
    """The result as one safetensors file's bytes; raises Unsupported for what it cannot keep."""
    tensors: list = []
    try:
        tree = _encode(result, tensors)
    except RecursionError:
        raise Unsupported("a result that holds itself (or is nested too deep)") from None
    named = {str(i): t for i, t in enumerate(tensors)}
    try:
        return save_tensors(named, metadata={"format": FORMAT, "tree": json.dumps(tree, allow_nan=False)})
    except KeyError as err:      # a tensor dtype safetensors has no name for (complex128)
        raise Unsupported(f"tensor of {err.args[0] if err.args else 'this dtype'}") from None


def load(path: Path):
    """The result kept at `path`. Raises (OSError, ValueError, ...) for a missing, foreign or damaged file."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path.name} is not a Transfer Lab result file")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _decode(json.loads(meta["tree"]), tensors)


def write(path: Path, blob: bytes) -> None:
    """Write atomically: a temporary file beside it, then a rename (none left behind when the write fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
