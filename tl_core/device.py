"""Where training runs, and how runs are made reproducible.

Transfer Lab trains on the best device present: CUDA, then Apple's MPS, then the CPU.
"""
from __future__ import annotations

import contextlib
import os
import random
import threading
from typing import Callable

import numpy as np
import torch

from tl_core.i18n import tr

CHOICES = ("auto", "cuda", "mps", "cpu")


def pick(preference: str = "auto") -> torch.device:
    """Return the device to train on: cuda → mps → cpu, or the one asked for by name."""
    if preference not in CHOICES:
        raise ValueError(tr("device must be one of {choices}, got {value}", choices=", ".join(CHOICES),
                            value=repr(preference)))
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError(tr("device 'cuda' was asked for, but no CUDA GPU is available here; use 'auto' or 'cpu'"))
    if preference == "mps" and not _mps_available():
        raise ValueError(tr("device 'mps' was asked for, but no Apple GPU is available here; use 'auto' or 'cpu'"))
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """`t` on `dev`. From the CPU to a GPU through pinned (page-locked) memory without blocking: the copy runs
    while the GPU still works on what was queued before it, and the next operation on the GPU waits for it.
    On the CPU, `t` itself."""
    dev = torch.device(dev)
    if dev.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


def release(dev: torch.device) -> None:
    """After a run on a GPU: hand the memory its tensors no longer use back to the device (torch's caching
    allocator keeps freed blocks for this process otherwise, where other runs and processes cannot have them).
    No-op elsewhere."""
    if torch.device(dev).type == "cuda":
        torch.cuda.empty_cache()


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def describe(dev: torch.device | None = None) -> str:
    """One line for the sidebar, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    dev = dev or pick()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    if dev.type == "mps":
        return tr("mps (Apple GPU)")
    with _THREADS_LOCK:  # while a tiny-model run holds one thread, the process's own count is the one it restores
        threads = _THREADS["before"] if _THREADS["active"] else torch.get_num_threads()
    return tr("cpu ({n} threads)", n=threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that the same config gives the same numbers on the CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def generator(seed: int) -> torch.Generator:
    """A private CPU random stream, so one part of a run does not shift the draws of another."""
    return torch.Generator().manual_seed(int(seed))


_THREADS = {"active": 0, "before": 0}
_THREADS_LOCK = threading.Lock()
_TURN = threading.Condition()
_TICKETS = {"next": 0, "serving": 0}   # first come, first served: a ticket per run that wants the turn


def queued() -> int:
    """Runs holding or waiting for this process's turn (`one_run_at_a_time`), the one training included."""
    with _TURN:
        return _TICKETS["next"] - _TICKETS["serving"]


@contextlib.contextmanager
def one_run_at_a_time(waiting: Callable[[], None] | None = None):
    """Train one run at a time in this process, first come first served. Sessions of one server share torch's
    global random stream (dropout draws from it) and its CPU thread count; run side by side, they changed each
    other's numbers. One after another, a run's numbers depend on its settings alone, the same as its CLI
    twin's. On 2 cores two runs at once are no faster than one after the other (a class server trains several
    at once in worker processes: see tl_core.serve). `waiting()` is called every half second while another run
    holds the turn (a page shows that; a Stop raised there leaves the queue)."""
    with _TURN:
        ticket = _TICKETS["next"]
        _TICKETS["next"] += 1
    try:
        with _TURN:
            while _TICKETS["serving"] != ticket:
                _TURN.wait(0.5)
                if _TICKETS["serving"] != ticket and waiting is not None:
                    _TURN.release()   # the callback may take its time (or raise): not while holding the queue
                    try:
                        waiting()
                    finally:
                        _TURN.acquire()
    except BaseException:
        _leave(ticket)
        raise
    try:
        yield
    finally:
        _leave(ticket)


_LEFT: set[int] = set()


def _leave(ticket: int) -> None:
    """Give up a ticket, served or not: the turn passes over every ticket given up before its time."""
    with _TURN:
        _LEFT.add(ticket)
        while _TICKETS["serving"] in _LEFT:
            _LEFT.discard(_TICKETS["serving"])
            _TICKETS["serving"] += 1
        _TURN.notify_all()


@contextlib.contextmanager
def one_cpu_thread(dev: torch.device):
    """One CPU thread while training tiny models (the SSL MLPs, GTL's scouts): splitting each small
    product over threads costs more than it saves, and on a busy 2-core laptop it made runs 5-20x
    slower (measured on both pages). The setting is process-wide and a server runs several sessions at
    once, so the last such run to end restores what the first one found. No-op off the CPU."""
    if dev.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        if _THREADS["active"] == 0:
            _THREADS["before"] = torch.get_num_threads()
        _THREADS["active"] += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["active"] -= 1
            if _THREADS["active"] == 0:
                torch.set_num_threads(_THREADS["before"])
