"""The run being trained now keeps what it has finished so far: a grid calls `checkpoint(partial)` after each cell,
and whoever records the run (`tl_core.store.Store.track`, or the server's run thread through `live`) writes it.
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_LIVE: contextvars.ContextVar = contextvars.ContextVar("tl_live_run", default=None)


def checkpoint(partial) -> None:
    """Keep what the run being recorded (`Store.track`, on a page or the CLI) has finished so far: a grid
    calls this after each cell, so a crash, a kill or a Stop loses no finished cell. The run stays
    "running" (a dead process's run then shows as interrupted, with these cells). No-op when no run is
    being recorded; a history that cannot be written now is left for the run's final write."""
    keep = _LIVE.get()
    if keep is not None:
        try:
            keep(partial)
        except OSError:
            pass


@contextmanager
def live(keep) -> Iterator[None]:
    """Route `checkpoint(partial)` calls made inside the block to keep(partial): a run trained away from its
    `track` (in the server's run thread or a worker process) keeps its finished cells the same way."""
    token = _LIVE.set(keep)
    try:
        yield
    finally:
        _LIVE.reset(token)
