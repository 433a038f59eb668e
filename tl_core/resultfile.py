"""A finished run's whole result on disk without pickle: tensors as safetensors, everything else as JSON.

The server keeps a finished run's result beside the history so that a later request (after a restart, or once
it left memory) is answered at once (tl_core.serve). Reading a pickle runs whatever code the file names, so a
history folder someone could write to would be a way into the server. This format holds data only:

- one `.safetensors` file: every tensor and numpy array of the result, by number;
- its metadata `"tree"`: the rest as JSON, where a dataclass of tl_core is `{"@": "module:Class", "v": {...}}`,
  a tensor `{"@t": n}`, an array `{"@a": n}`, a tuple `{"@tu": [...]}`, a dict with other than string keys
  `{"@d": [[k, v], ...]}`, and a float that JSON cannot write `{"@f": "nan"}`.

Loading rebuilds only dataclasses defined in tl_core (`TRUSTED`; without calling their `__init__`), and fails on
anything else. A result holding something this format cannot say (a module, a function) is simply not kept: it trains
again when asked, as before.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
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


def _encode(obj, tensors: list):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"@f": repr(obj)}
    if isinstance(obj, torch.Tensor):
        tensors.append(obj.detach().cpu().contiguous().clone())
        return {"@t": len(tensors) - 1}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return {"@oa": [_encode(v, tensors) for v in obj.tolist()]}
        tensors.append(torch.from_numpy(np.ascontiguousarray(obj).copy()))
        return {"@a": len(tensors) - 1}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors)
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, tuple):
        return {"@tu": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("@") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"@d": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        if not cls.__module__.startswith(TRUSTED):
            raise Unsupported(f"{cls.__module__}.{cls.__qualname__}")
        inner = getattr(obj, "__dict__", None)
        if inner is None:
            inner = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"@": f"{cls.__module__}:{cls.__qualname__}", "v": {k: _encode(v, tensors) for k, v in inner.items()}}
    raise Unsupported(type(obj).__qualname__)


def _dataclass(name: str) -> type:
    module, _, qual = name.partition(":")
    if not module.startswith(TRUSTED) or not qual:
        raise ValueError(f"not a Transfer Lab class: {name!r}")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ValueError(f"not a Transfer Lab dataclass: {name!r}")
    return obj


def _decode(node, tensors: dict):
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "@t" in node:
        return tensors[str(node["@t"])]
    if "@a" in node:
        return tensors[str(node["@a"])].numpy()
    if "@oa" in node:
        return np.array([_decode(v, tensors) for v in node["@oa"]], dtype=object)
    if "@f" in node:
        return float(node["@f"])
    if "@tu" in node:
        return tuple(_decode(v, tensors) for v in node["@tu"])
    if "@d" in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["@d"]}
    if "@" in node:
        cls = _dataclass(node["@"])
        obj = object.__new__(cls)
        for k, v in node["v"].items():
            object.__setattr__(obj, k, _decode(v, tensors))
        return obj
    return {k: _decode(v, tensors) for k, v in node.items()}


def dumps(result) -> bytes:
    """The result as one safetensors file's bytes; raises Unsupported for what it cannot keep."""
    tensors: list = []
    tree = _encode(result, tensors)
    named = {str(i): t for i, t in enumerate(tensors)}
    return save_tensors(named, metadata={"format": FORMAT, "tree": json.dumps(tree, allow_nan=False)})


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
