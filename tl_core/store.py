"""The run history: every experiment a user runs, kept in an embedded SQLite database.

One row per run: its kind (toy, finetune, sweep, ...), full config, per-epoch curves, final metrics,
device, duration, status, timestamps, and where its model file is (if one was saved). The database
lives in a user data directory (`TL_DATA_DIR`, else `$XDG_DATA_HOME/transfer-lab`, else
`~/.local/share/transfer-lab`) so the history survives restarts.

Every write is one transaction in WAL mode, so a server killed mid-write leaves a consistent
history. A run is written as "running" before it trains; if its process dies, the next `Store()`
finds the row's process gone and marks it "interrupted". Each call opens its own connection, so
any number of threads (Streamlit sessions) can record at once.

A history that cannot be written says why in one line (`StorageError`: the disk is full, or it is read-only),
and one that can only be read (a read-only disk or folder, a file this user may not write) is opened
read-only: every run is shown, `problem` says so, and each write raises. A run whose final write finds the
disk full is marked "failed" with a small write that still fits, so it is not left "running".

Beside it: why a read or write failed (`tl_core.storage_errors`), a run's finished cells kept as it trains
(`tl_core.live_run`), and lists of runs as people see them, filtered, compared and exported (`tl_core.run_views`).
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tl_core.i18n import tr
from tl_core.live_run import live
from tl_core.run_views import FILTER_FIELDS, headline, to_csv, to_json, visible  # noqa: F401  (cli's and serve's)
from tl_core.storage_errors import BUSY, FULL, READ_ONLY, UNREADABLE, StorageError, reason_of

STATUSES = ("running", "finished", "stopped", "diverged", "failed", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    label    TEXT NOT NULL DEFAULT '',
    status   TEXT NOT NULL,
    config   TEXT NOT NULL,            -- JSON object
    metrics  TEXT NOT NULL DEFAULT '{}',  -- JSON: name -> number
    curves   TEXT NOT NULL DEFAULT '{}',  -- JSON: name -> [value per epoch]
    result   TEXT NOT NULL DEFAULT '{}',  -- JSON: the experiment's whole to_json()
    message  TEXT NOT NULL DEFAULT '',
    device   TEXT NOT NULL DEFAULT '',
    seconds  REAL,
    created  REAL NOT NULL,            -- unix time
    finished REAL,
    model_path TEXT,
    session  TEXT NOT NULL DEFAULT '',
    host     TEXT NOT NULL,
    pid      INTEGER NOT NULL,
    started  TEXT NOT NULL DEFAULT '', -- the process's start time: with pid, one process
    headline TEXT NOT NULL DEFAULT '', -- the metric a list of runs shows (the result names it)
    identity TEXT NOT NULL DEFAULT '', -- what the run's numbers depend on (tl_core.serve.identity): kind, config,
                                       -- dataset, code version; a finished run with it is the answer to it
    code     TEXT NOT NULL DEFAULT '', -- the code version it trained with (tl_core.serve.code_version)
    private  INTEGER NOT NULL DEFAULT 0, -- trained on a user's upload: on a shared server only its session sees it
    source   TEXT NOT NULL DEFAULT ''  -- where it was asked for, when not on an experiment's own page: "lecture"
);
CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind);
"""
_INDEXES = "CREATE INDEX IF NOT EXISTS runs_identity ON runs(identity, status);"
_ADDED = {"started": "TEXT NOT NULL DEFAULT ''", "headline": "TEXT NOT NULL DEFAULT ''",
          "identity": "TEXT NOT NULL DEFAULT ''", "code": "TEXT NOT NULL DEFAULT ''",
          "private": "INTEGER NOT NULL DEFAULT 0", "source": "TEXT NOT NULL DEFAULT ''"}   # an older history lacks them
SOURCES = {"lecture": "the lecture"}   # Run.source → how the Runs page marks it

def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Where Transfer Lab keeps its history and saved models."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("TL_DATA_DIR"):
        return Path(os.environ["TL_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "transfer-lab"


@dataclass
class Run:
    id: int
    kind: str
    label: str
    status: str
    config: dict
    metrics: dict
    curves: dict
    message: str
    device: str
    seconds: float | None
    created: float
    finished: float | None
    model_path: str | None
    session: str
    headline: str = ""
    result: dict = field(default_factory=dict, repr=False)
    identity: str = ""
    code: str = ""
    private: bool = False
    source: str = ""

    @property
    def name(self) -> str:
        """What a person calls this run: its label, or kind and number."""
        return self.label or f"#{self.id} {self.kind}"

    def to_json(self, with_result: bool = False) -> dict:
        out = {k: getattr(self, k) for k in ("id", "kind", "label", "status", "config", "metrics", "curves",
                                             "message", "device", "seconds", "created", "finished",
                                             "model_path", "session", "headline", "identity", "code",
                                             "private", "source")}
        if with_result:
            out["result"] = self.result
        return out


def _started(pid: int) -> str:
    """When process `pid` started (Linux: clock ticks since boot, from /proc), or "" where unknown.
    With the pid it names one process: a restarted server often gets the same small pid again."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _started(pid) in ("", started)


class Store:
    """The run history in `<data_dir>/runs.sqlite`."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = data_dir(root)
        self.readonly, self.problem, self._uri = False, "", ""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = reason_of(err)
            why = f"the disk is full ({err.strerror})" if reason == FULL else \
                f"it is read-only ({err.strerror})" if reason == READ_ONLY else err.strerror or str(err)
            raise StorageError(reason, f"cannot create the data directory {self.root}: {why}") from None
        self.path = self.root / "runs.sqlite"
        if not self.path.exists() and not os.access(self.root, os.W_OK):
            raise StorageError(READ_ONLY, f"The run history could not be created: {self.root} is read-only")
        try:
            if not self._create():
                raise StorageError(READ_ONLY, "attempt to write a readonly database")
        except StorageError as err:
            if err.reason != READ_ONLY or not self.path.is_file():
                raise
            self._open_read_only(err)
            return
        try:
            self.recover()
        except StorageError as err:   # its runs are marked when the history can be written again
            if err.reason != FULL:
                raise

    def _open_read_only(self, err: StorageError) -> None:
        """Open the history for reading only (SQLite's mode=ro). In a folder this user cannot write, SQLite cannot
        make the shared-memory file that reading a WAL history needs: then it reads the file as it is
        (immutable=1), which nobody can be changing through this folder either."""
        self.readonly = True
        self.problem = (f"The run history in {self.root} is read-only: its runs are shown, but new runs are not "
                        f"recorded and none can be labelled or deleted ({err.detail or err}).")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        for self._uri in (uri, f"{uri}&immutable=1"):   # each connection opens self._uri
            try:
                with self._connect() as db:
                    db.execute("SELECT count(*) FROM runs").fetchone()
                return
            except StorageError as again:
                if again.reason != READ_ONLY and "unable to open" not in str(again):
                    raise
        raise StorageError(UNREADABLE, f"the run history {self.path} is read-only and could not be read")

    def _create(self) -> bool:
        """WAL mode (kept in the file) and the table. Several sessions may open a new history at the same
        moment, and switching to WAL does not wait for a lock: try again for a while. Returns whether the
        history can be written (a file SQLite opened read-only reads until its first write)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                with self._connect() as db:
                    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                    columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
                    for column, kind in _ADDED.items():  # an older history
                        if column not in columns:
                            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                    db.execute(_INDEXES)
                    return self._writable(db)
            except StorageError as err:
                if err.reason != BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def _writable(db: sqlite3.Connection) -> bool:
        """Whether this connection may write: a write that changes nothing (the header's user_version set to
        itself), rolled back. A history another process is writing now is writable; none is waited for."""
        db.execute("PRAGMA busy_timeout=0")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if reason_of(err) == BUSY:
                return True
            raise
        try:
            db.execute(f"PRAGMA user_version={int(db.execute('PRAGMA user_version').fetchone()[0])}")
            return True
        except sqlite3.OperationalError as err:
            if reason_of(err) != READ_ONLY:
                raise
            return False
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    @property
    def models_dir(self) -> Path:
        path = self.root / "models"
        path.mkdir(exist_ok=True)
        return path

    def _error(self, err: BaseException, writing: bool = False) -> StorageError:
        """A failed read or write of the history as one line that says why."""
        reason = reason_of(err)
        if reason in (FULL, READ_ONLY):
            why = "the disk is full" if reason == FULL else "it is read-only"
            return StorageError(reason, f"The run history could not be written: {why} ({self.path}: {err})", str(err))
        if reason == BUSY:
            return StorageError(BUSY, f"the run history {self.path} is busy: {err}")
        return StorageError(UNREADABLE, f"the run history {self.path} could not be written: {err}" if writing else
                            f"the run history {self.path} is unreadable: {err}")

    @contextmanager
    def _connect(self, writing: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            db = (sqlite3.connect(self._uri, uri=True, timeout=30, isolation_level=None) if self._uri else
                  sqlite3.connect(self.path, timeout=30, isolation_level=None))
        except sqlite3.Error as err:
            raise StorageError(reason_of(err), f"cannot open the run history {self.path}: {err}") from None
        try:
            if not self._uri:
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.row_factory = sqlite3.Row
            yield db
        except sqlite3.DatabaseError as err:
            raise self._error(err, writing) from None
        except StorageError:
            raise
        except OSError as err:   # the system's own: ENOSPC, EROFS, ...
            if reason_of(err) == UNREADABLE:
                raise
            raise self._error(err, writing) from None
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands, or none of it. A write SQLite gave up on (a full disk) is
        already rolled back: what the caller is told is why it failed, not that there is nothing to roll back."""
        if self.readonly:
            raise StorageError(READ_ONLY, f"The run history could not be written: it is read-only ({self.path})")
        with self._connect(writing=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass   # closing the connection rolls it back
                raise

    # ---- writing -------------------------------------------------------------------------------
    def begin(self, kind: str, config: dict, session: str = "", label: str = "", identity: str = "",
              code: str = "", private: bool = False, source: str = "") -> int:
        """A run about to train: recorded as "running" so that a crash leaves it "interrupted". identity and
        code: what its numbers depend on (see tl_core.serve); private: trained on a user's upload; source: where
        it was asked for when not on its experiment's page ("lecture", see SOURCES)."""
        if source and source not in SOURCES:
            raise ValueError(f"unknown run source {source!r}: one of {', '.join(SOURCES)}")
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO runs (kind, label, status, config, created, session, host, pid, started, identity, code, "
                "private, source) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, label, json.dumps(config, default=str), time.time(), session, socket.gethostname(), os.getpid(),
                 _started(os.getpid()), identity, code, int(bool(private)), source))
            return int(cur.lastrowid)

    def claim(self, run_id: int, pid: int) -> None:
        """The process now training a run (a worker process of the server): if it dies, the run shows as
        interrupted, as it would if the server itself died."""
        with self._write() as db:
            db.execute("UPDATE runs SET pid=?, started=? WHERE id=? AND status='running'",
                       (int(pid), _started(int(pid)), int(run_id)))

    def finish(self, run_id: int, result, status: str | None = None, model_path: str | None = None,
               message: str | None = None, kind: str | None = None) -> None:
        """Store a run's outcome: a contract.Result, which names its metrics, curves and headline (or, for a
        run that ended before it had one, a plain dict such as its config)."""
        rec = result.record() if hasattr(result, "record") else {"json": dict(result), "metrics": {}, "curves": {}}
        out = rec["json"]
        status = status or rec.get("status") or out.get("status", "finished")
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        message = message if message is not None else str(rec.get("message", out.get("message", "")))
        try:
            with self._write() as db:
                db.execute(
                    "UPDATE runs SET status=?, metrics=?, curves=?, result=?, message=?, device=?, seconds=?, "
                    "finished=?, model_path=COALESCE(?, model_path), headline=?, kind=COALESCE(?, kind) WHERE id=?",
                    (status, json.dumps(rec["metrics"]), json.dumps(rec["curves"]), json.dumps(out, default=str),
                     message, str(rec.get("device", out.get("device", ""))), rec.get("seconds", out.get("seconds")),
                     time.time(), str(Path(model_path).resolve()) if model_path else None, rec.get("headline", ""),
                     kind or None, run_id))
        except StorageError as err:
            if err.reason == FULL and status != "running":   # a checkpoint waits for the run's final write
                self._unrecorded(run_id, status, message, err)
            raise

    def _unrecorded(self, run_id: int, status: str, message: str, err: StorageError) -> None:
        """The run's outcome did not fit on a full disk: mark its row with a write small enough to fit in the
        pages it already has, so it does not stay "running". A run that trained is marked failed (a finished
        run with no numbers would be taken as the answer to its settings); a stop or failure keeps its status."""
        status = status if status in ("stopped", "failed") else "failed"
        note = f"{message}; " if message else ""
        try:
            with self._write() as db:
                db.execute("UPDATE runs SET status=?, message=?, finished=? WHERE id=? AND status='running'",
                           (status, f"{note}its result was not recorded: {err.why}", time.time(), int(run_id)))
        except OSError:
            pass   # not even that fits: the next server start marks it interrupted

    def record(self, kind: str, result, config: dict | None = None, session: str = "",
               model_path: str | None = None, label: str = "") -> int:
        """Record a finished experiment in one go. `config`: what to record as its settings (default: the
        config in the result's JSON)."""
        if config is None:
            config = result.to_json().get("config", {}) if hasattr(result, "to_json") else result.get("config", {})
        run_id = self.begin(kind, config, session=session, label=label)
        self.finish(run_id, result, model_path=model_path)
        return run_id

    @contextmanager
    def track(self, kind: str, config: dict, session: str = "", **begin) -> Iterator[dict]:
        """Record a run around its training: `with store.track(kind, config) as rec: rec["result"] = result`.
        It is written as "running" before the block trains (a history that cannot be written raises a
        StorageError then, before it trains); the result may name a more precise kind (the lab's run on your
        own images is "own"). A Stop (Streamlit ends the script with a BaseException) is kept as "stopped", an
        error as "failed"; either keeps what the block put in rec["result"] by then. A final write that finds
        the disk full marks the run failed and raises. `begin`: identity, code, private, source (see `begin`)."""
        run_id = self.begin(kind, config, session=session, **begin)
        rec: dict = {"id": run_id}

        def keep(partial) -> None:  # checkpoint(): what the run has finished so far, kept now
            rec["result"] = partial
            self.finish(run_id, partial, status="running", message="")

        try:
            with live(keep):
                yield rec
        except Exception as err:
            self._finish_quietly(run_id, rec.get("result", {"config": config}), "failed", str(err))
            raise
        except BaseException:
            self._finish_quietly(run_id, rec.get("result", {"config": config}), "stopped",
                                 rec.get("where", "stopped by the user"))
            raise
        result = rec.get("result", {"config": config})
        self.finish(run_id, result, model_path=rec.get("model_path"), kind=getattr(result, "kind", None))

    def _finish_quietly(self, run_id: int, result, status: str, message: str) -> None:
        """Mark a run stopped or failed while its own exception propagates: if the history can't be
        written now, the run is marked with what still fits (a full disk) or stays "running" and shows as
        interrupted later, and the user sees the Stop or the error rather than a database message."""
        try:
            self.finish(run_id, result, status=status, message=message)
        except OSError:
            pass

    def recover(self) -> int:
        """Mark as "interrupted" the runs left "running" by a process on this host that no longer exists (not in
        a read-only history: they show as they are)."""
        if self.readonly:
            return 0
        host = socket.gethostname()
        with self._connect() as db:
            rows = db.execute("SELECT id, pid, started FROM runs WHERE status='running' AND host=?", (host,)).fetchall()
        dead = [r["id"] for r in rows if not _alive(r["pid"], r["started"])]
        if dead:
            with self._write() as db:
                db.executemany("UPDATE runs SET status='interrupted', message='the process running it ended "
                               "before it finished (server stopped or crashed)' WHERE id=? AND status='running'",
                               [(i,) for i in dead])
        return len(dead)

    def rename(self, run_id: int, label: str, session: str | None = None) -> None:
        """Label a run; with `session`, only a run of that session (a shared server's rule)."""
        run = self.get(run_id, with_result=False)
        if session is not None and run.session != session:
            raise ValueError(tr("run #{id} belongs to another session: only the teacher can relabel it", id=run_id))
        with self._write() as db:
            db.execute("UPDATE runs SET label=? WHERE id=?", (label.strip(), run_id))

    def delete(self, run_ids: Iterable[int], session: str | None = None) -> int:
        """Delete runs; with `session`, only those of that session (a shared server's rule). Returns how many."""
        ids = [int(i) for i in run_ids]
        mine = "" if session is None else " AND session=?"
        with self._write() as db:
            gone = [i for i in ids if db.execute(f"DELETE FROM runs WHERE id=?{mine}",
                                                 (i,) if session is None else (i, session)).rowcount]
        for i in gone:   # the result a server kept to show it again (tl_core.serve) goes with it
            self.result_file(i).unlink(missing_ok=True)
        return len(gone)

    def result_file(self, run_id: int) -> Path:
        """Where a server keeps a finished run's whole result (trained weights, images: what a page draws), so
        that any session asking for the same run later is shown it at once (tl_core.serve). Data only: tensors and
        JSON in one safetensors file (tl_core.resultfile), never a pickle; never a private run's."""
        return self.root / "results" / f"{int(run_id)}.safetensors"

    def find(self, identity: str) -> Run | None:
        """The newest finished run with this identity (kind, config, dataset, code version): the answer to it."""
        if not identity:
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE identity=? AND status='finished' ORDER BY id DESC LIMIT 1",
                             (identity,)).fetchone()
        return None if row is None else self._run(row, with_result=False)

    # ---- reading -------------------------------------------------------------------------------
    @staticmethod
    def _run(row: sqlite3.Row, with_result: bool) -> Run:
        return Run(id=row["id"], kind=row["kind"], label=row["label"], status=row["status"],
                   config=json.loads(row["config"]), metrics=json.loads(row["metrics"]),
                   curves=json.loads(row["curves"]), message=row["message"], device=row["device"],
                   seconds=row["seconds"], created=row["created"], finished=row["finished"],
                   model_path=row["model_path"], session=row["session"], headline=row["headline"],
                   result=json.loads(row["result"]) if with_result else {}, identity=row["identity"],
                   code=row["code"], private=bool(row["private"]), source=row["source"])

    def runs(self, kind: str | None = None, session: str | None = None, **config_filters) -> list[Run]:
        """All runs, newest first; filter by kind, session, and config fields (dataset=..., backbone=...)."""
        query, args = "SELECT * FROM runs", []
        where = [(c, v) for c, v in (("kind", kind), ("session", session)) if v]
        if where:
            query += " WHERE " + " AND ".join(f"{c}=?" for c, _ in where)
            args = [v for _, v in where]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id DESC", args).fetchall()
        out = [self._run(r, with_result=False) for r in rows]
        for key, value in config_filters.items():
            if value:
                out = [r for r in out if str(r.config.get(key)) == str(value)]
        return out

    def get(self, run_id: int, with_result: bool = True) -> Run:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (int(run_id),)).fetchone()
        if row is None:
            raise ValueError(tr("no run with id {id} in {path}", id=run_id, path=self.path))
        return self._run(row, with_result)

    def many(self, run_ids: Iterable[int]) -> list[Run]:
        return [self.get(i) for i in run_ids]
