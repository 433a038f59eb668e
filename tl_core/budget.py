"""Memory budgets in bytes: what an object holds, and a cache that keeps the newest entries within a budget.

Every process-wide cache of the server (recent results, what pages derive from them, the lab's reused scratch runs,
frozen features) is bounded by the bytes it holds, not only by how many entries: one large result (a run on
thousands of uploaded images) must not keep the class's server at its memory limit.

    cache = ByteLRU(budget=512 * 2**20, most=16)
    cache.put(key, value)          # evicts the oldest entries until both limits hold
    cache.get(key)                 # None when absent; a hit becomes the newest
"""
from __future__ import annotations

import collections
import dataclasses
import os
import threading

import numpy as np
import torch

MB = 2**20


def env_mb(name: str, default: int) -> int:
    """A budget in MB from the environment (a whole number), else `default`."""
    text = os.environ.get(name, "").strip()
    try:
        return max(int(text), 0) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number of MB, got {text!r}") from None


def nbytes(obj, _seen: set | None = None, _depth: int = 0) -> int:
    """The bytes of array data `obj` holds: tensors (each storage once), numpy arrays, bytes and strings, through
    lists, tuples, dicts, dataclasses, modules and objects' attributes. Python's own object overhead is not
    counted: it is small beside the arrays a result keeps."""
    seen = set() if _seen is None else _seen
    if _depth > 12 or id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        try:
            storage = obj.untyped_storage()
            if storage.data_ptr() in seen:
                return 0
            seen.add(storage.data_ptr())
            return int(storage.nbytes())
        except (RuntimeError, NotImplementedError):
            return obj.element_size() * obj.numel()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return len(obj)
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, (int, float, bool, type(None), complex)):
        return 0
    if isinstance(obj, torch.nn.Module):
        return sum(nbytes(t, seen, _depth + 1) for t in obj.state_dict(keep_vars=True).values())
    if isinstance(obj, dict):
        return sum(nbytes(k, seen, _depth + 1) + nbytes(v, seen, _depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
        return sum(nbytes(v, seen, _depth + 1) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        inner = getattr(obj, "__dict__", None)
        if inner is None:
            inner = {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
        return nbytes(inner, seen, _depth + 1)
    inner = getattr(obj, "__dict__", None)
    return nbytes(inner, seen, _depth + 1) if isinstance(inner, dict) else 0


class ByteLRU:
    """An LRU cache within `budget` bytes and `most` entries (thread-safe). An entry larger than the whole budget
    is not kept at all. `size(value)` measures an entry (default: `nbytes`)."""

    def __init__(self, budget: int, most: int = 1_000_000, size=nbytes):
        self.budget, self.most, self.size = int(budget), int(most), size
        self._items: collections.OrderedDict = collections.OrderedDict()   # key → (value, bytes)
        self._lock = threading.RLock()
        self.bytes = 0

    def get(self, key, default=None):
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return default
            self._items.move_to_end(key)
            return hit[0]

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def put(self, key, value, size: int | None = None) -> bool:
        """Keep `value` as the newest entry; evict the oldest past the budget. False when it is too large to keep."""
        n = self.size(value) if size is None else int(size)
        with self._lock:
            self.pop(key)
            if n > self.budget:
                return False
            self._items[key] = (value, n)
            self.bytes += n
            while self._items and (self.bytes > self.budget or len(self._items) > self.most):
                self._evict()
            return key in self._items

    def __setitem__(self, key, value) -> None:
        self.put(key, value)

    def pop(self, key, default=None):
        with self._lock:
            hit = self._items.pop(key, None)
            if hit is None:
                return default
            self.bytes -= hit[1]
            return hit[0]

    def _evict(self) -> None:
        _, (_, n) = self._items.popitem(last=False)
        self.bytes -= n

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0
