"""Finished results: in this server's memory (`Entry`) and beside the history on disk, the history's answer to a
later request for the same run (a restarted server, a result evicted from memory). Kept without pickle
(`tl_core.resultfile`), never a private run's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tl_core import store
from tl_core.serve.settings import int_env


@dataclass
class Entry:
    """A recent result in memory, and the run in the history that trained it."""
    result: object
    run_id: int | None
    seconds: float
    finished: float            # unix time
    session: str
    private: bool = False      # trained on a session's upload: only that session is shown it (shared server)


KEEP = "TL_KEEP_RESULTS"     # how many finished results stay on disk beside the history (default 64)
KEEP_MB = 256                # a larger result is not kept (it trains again when asked)


def keep(path: Path, result) -> None:
    """Write a finished run's whole result beside the history (atomically, without pickle: tl_core.resultfile),
    keeping the newest `TL_KEEP_RESULTS`. A private run's result is never written (see `Server.finish`). A result the
    format cannot hold, too large or that cannot be written is simply not kept: it trains again when asked."""
    from tl_core import resultfile

    try:
        blob = resultfile.dumps(result)
        if len(blob) > KEEP_MB * 2**20:
            return
        resultfile.write(path, blob)
        for old in path.parent.glob("*.pkl"):   # an earlier version's pickles: never read again, so not kept either
            old.unlink(missing_ok=True)
        kept = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[int_env(KEEP) or 64:]:
            old.unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - keeping it is a convenience: the run and its history are already saved
        return


def from_history(root: str, ident: str, db: store.Store | None = None) -> Entry | None:
    """The newest finished run with this identity in the history at `root` (`db`, when it is that history already
    open), with its kept result, or None. Only a result file in Transfer Lab's own format is read (no pickle: a
    file planted in the folder runs no code)."""
    from tl_core import resultfile

    try:
        if db is None or str(db.root) != root:
            db = store.Store(root)
        run = db.find(ident)
        if run is None:
            return None
        result = resultfile.load(db.result_file(run.id))
    except Exception:  # noqa: BLE001 - no file, an unreadable one, a history that cannot be read now: it trains
        return None
    return Entry(result, run.id, float(run.seconds or 0.0), float(run.finished or run.created), run.session,
                 run.private)
