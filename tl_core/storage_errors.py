"""Why the run history (`tl_core.store`) could not be read or written: `StorageError`, with its reason (the disk is
full, the history is read-only, busy, or unreadable) read from SQLite's result code or the system's errno.

The standard library only, as `tl_core.store`.
"""
from __future__ import annotations

import errno
import sqlite3

FULL, READ_ONLY, BUSY, UNREADABLE = "full", "read-only", "busy", "unreadable"   # StorageError.reason
_WHY = {FULL: "the disk is full", READ_ONLY: "the run history is read-only"}


class StorageError(OSError):
    """The run history could not be read or written. `reason`: FULL, READ_ONLY, BUSY or UNREADABLE; `why`: the
    reason in a few words ("the disk is full"); `detail`: SQLite's or the system's own words; the message: one
    line a user understands, with the file and the detail in brackets."""

    def __init__(self, reason: str, message: str, detail: str = ""):
        super().__init__(message)
        self.reason, self.why, self.detail = reason, _WHY.get(reason, reason), detail


_CODES = {13: FULL, 8: READ_ONLY, 5: BUSY, 6: BUSY}   # SQLite's primary result codes: FULL, READONLY, BUSY, LOCKED
_ERRNOS = {errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EROFS: READ_ONLY, errno.EACCES: READ_ONLY,
           errno.EPERM: READ_ONLY}


def reason_of(err: BaseException) -> str:
    """Why a read or write of the history failed: FULL, READ_ONLY, BUSY or UNREADABLE."""
    if isinstance(err, StorageError):
        return err.reason
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _CODES:
            return _CODES[code & 0xFF]
        text = str(err).lower()
        return (FULL if "disk is full" in text else READ_ONLY if "readonly" in text or "read-only" in text
                else BUSY if "locked" in text or "busy" in text else UNREADABLE)
    if isinstance(err, OSError):
        return _ERRNOS.get(err.errno, UNREADABLE)
    return UNREADABLE
