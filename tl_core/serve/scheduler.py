"""The class's runs in this process: an identical run trains once, the queue is visible, every follower is told.

- the runs in flight, by identity: a second session asking for a run that is training *follows* it (its
  progress, its live curve, its result) instead of queueing an identical training; a run in flight that every
  follower has left (Stop, page closed) is stopped, and one that fails (or whose worker is killed) is reported
  to every follower: the next request trains it again;
- a bounded cache of recent results, by identity, shared by every session: the objects a page draws from
  (trained weights, images) are in memory only, so a result not in it is trained again (or read back from
  the history's kept results, `tl_core.serve.kept`);
- the queue: first come, first served, with each waiting run's position and an estimate of its wait.

Where runs train is `tl_core.serve.executors`; nothing here imports Streamlit or torch at import time.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from tl_core import experiments, store
from tl_core.i18n import fmt, tr
from tl_core.run_request import RunRequest, code_version, experiment_of
from tl_core.serve.estimates import about
from tl_core.serve.executors import Executors
from tl_core.serve.kept import Entry, from_history, keep
from tl_core.serve.progress import Progress
from tl_core.serve.settings import (
    CACHE,
    CACHE_MB,
    WORKER_THREADS,
    Refused,
    int_env,
    ray_address,
    session_limits,
    workers,
)


@dataclass(eq=False)
class Job:
    """One training that any number of sessions follow."""
    id: int
    identity: str
    root: str                  # the history it is recorded in ("" when none)
    kind: str
    config: dict
    request: RunRequest | None = None
    blobs: dict = field(default_factory=dict)   # the inputs' bytes, until it has trained
    module: str = ""                            # where its experiment is declared (a worker imports it)
    session: str = ""
    private: bool = False
    estimate: float | None = None
    run_id: int | None = None
    state: str = "queued"      # queued | running | done
    status: str = ""           # finished | diverged | stopped | failed, once done
    fraction: float = 0.0
    message: str = ""
    live: dict = field(default_factory=dict)
    result: object = None
    error: str = ""
    bad_setting: bool = False  # the error is a setting the user can fix (a ValueError): said in one line
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    where: str = "this process"
    pid: int | None = None
    waiters: set = field(default_factory=set)
    version: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    future: object = None
    pool: object = None
    payload: bytes | None = None
    tries: int = 0
    unrecorded: str = ""       # why the history could not take it when it started (the followers are told)
    unrecorded_error: str = "" # and the error's own line (the command line prints it)
    stopped_by: str = ""       # "stopped by the teacher": what its followers are told when it ends stopped
    observer: Callable | None = None   # inline: the caller's progress(fraction, message)
    also_stop: Callable | None = None  # inline: the caller's should_stop()

    def left(self) -> float | None:
        """Seconds until it is done, from its estimate and how far it got."""
        if self.state == "done":
            return 0.0
        if self.state == "queued" or self.started is None:
            return self.estimate
        elapsed = time.monotonic() - self.started
        if self.fraction >= 0.1:
            return elapsed * (1 - self.fraction) / self.fraction
        return None if self.estimate is None else max(self.estimate - elapsed, elapsed * 0.1)


class Server(Executors):
    """This process's runs: in flight by identity, a FIFO queue over `slots` places to train, recent results.
    workers=0: one place, in this process; workers=N: N worker processes; ray_address: Ray tasks; inline: each
    run trains in the thread that submits it, at once (the command line, the lecture's preparation)."""

    def __init__(self, workers: int = 0, ray_address: str = "", cache_size: int | None = None,
                 threads: int | None = None, inline: bool = False):
        self.workers, self.ray_address, self.inline = int(workers), ray_address, inline
        self.slots = max(1, self.workers or (4 if ray_address else 1))
        from tl_core import budget

        self.cache_size = cache_size if cache_size is not None else (int_env(CACHE) or 16)
        self.cache_bytes = budget.env_mb(CACHE_MB, 1024) * budget.MB
        self.threads = threads if threads is not None else int_env(WORKER_THREADS) or None
        self.lock = threading.RLock()
        self.flight: dict[tuple[str, str], Job] = {}
        self.order: list[Job] = []                     # not yet done, in the order asked
        self.cache = budget.ByteLRU(self.cache_bytes, self.cache_size,
                                    size=lambda entry: budget.nbytes(entry.result))   # (root, identity) → Entry
        self.ids = itertools.count(1)
        self.generation = None
        self._local: queue.Queue | None = None
        self._pool = None
        self._events = None
        self._stops = None
        self._ray = None

    # ---- in words
    problem = ""    # why the environment's TL_WORKERS was not used

    def where(self) -> str:
        if self.problem:
            return tr("this process, one run at a time ({problem})", problem=self.problem)
        if self.ray_address:
            return tr("Ray cluster at {address}, up to {n} runs at once", address=self.ray_address, n=self.slots)
        if self.workers:
            return (tr("{n} worker processes, up to {n} runs at once", n=self.workers) if self.workers != 1 else
                    tr("1 worker process, one run at a time"))
        return tr("this process, one run at a time")

    # ---- recent results
    def sync(self, generation) -> None:
        """Forget every recent result when `generation` changes (the app ties it to Streamlit's cache, so its
        'Clear caches' and st.cache_data.clear() clear this too)."""
        with self.lock:
            if generation != self.generation:
                self.generation = generation
                self.cache.clear()

    def lookup(self, root: str, ident: str, session: str | None = None, db=None) -> Entry | None:
        """The result of a finished run with this identity: a recent one in memory, else the newest in the
        history at `root` whose whole result this server kept on disk (a restarted server, or one evicted from
        memory). None: it trains. With `session` (a shared server), a private run of another session is never
        returned, whichever way it is found. `db`: that history already open (a page's)."""
        entry = self.cache.get((root, ident))
        if entry is None and root and ident:
            entry = from_history(root, ident, db)
            if entry is not None:
                self.remember(root, ident, entry)
        if entry is not None and session is not None and entry.private and entry.session != session:
            return None
        return entry

    def remember(self, root: str, ident: str, entry: Entry) -> None:
        self.cache.put((root, ident), entry)

    def clear(self) -> None:
        self.cache.clear()

    # ---- runs in flight
    def in_flight(self, root: str, ident: str) -> Job | None:
        with self.lock:
            return self.flight.get((root, ident))

    def submit(self, request: RunRequest, *, blobs: dict | None = None, root: str = "", session: str = "",
               private: bool | None = None, estimate: float | None = None, source: str = "",
               limited: bool = False, progress: Callable | None = None,
               should_stop: Callable | None = None) -> tuple[Job, object]:
        """Follow the run a request names (its identity): the one in flight, else a new one, recorded as
        "running" in the history at `root` now (a server killed while it waits leaves it "interrupted"), queued,
        then trained from the request (`run_request.execute`). `blobs`: its inputs' bytes by name (or functions
        that make them: called only when it trains anew). `private` (default: what its experiment declares): on
        a shared server only its session is shown it. `source`: where it was asked for, when not on its
        experiment's page (store.SOURCES: "lecture"). An inline server trains it before returning, telling
        `progress` and asking `should_stop` as it goes.
        `limited` (a shared server, not the teacher): a new run is refused (`Refused`) when `session` already has
        TL_SESSION_RUNS runs queued or training, or when its estimate is over TL_MAX_RUN_MINUTES; following a run
        in flight is never refused. Returns (job, token): pass the token to `leave` when no longer following."""
        token = object()
        exp = experiment_of(request)
        private = exp.private if private is None else bool(private)
        ident, kind, config = request.identity(), request.experiment, request.config
        with self.lock:
            job = self.flight.get((root, ident))
            if job is None or job.stop.is_set():
                if limited:
                    self._check_limits(session, estimate)
                made = {k: v() if callable(v) else v for k, v in (blobs or {}).items()}
                job = Job(next(self.ids), ident, root, kind, config, request, made, experiments.module_of(kind),
                          session=session, private=private, estimate=estimate, observer=progress,
                          also_stop=should_stop)
                if root:
                    try:
                        job.run_id = store.Store(root).begin(kind, config, session=session, identity=ident,
                                                             code=code_version(), private=private,
                                                             source=source)
                    except OSError as err:   # it trains unrecorded, and its followers are told why
                        job.run_id, job.unrecorded = None, getattr(err, "why", "") or str(err)
                        job.unrecorded_error = str(err).strip().splitlines()[0] if str(err).strip() else job.unrecorded
                self.flight[(root, ident)] = job
                self.order.append(job)
                if not self.inline:
                    self._dispatch(job)
            job.waiters.add(token)
        if self.inline and job.state == "queued":
            self._run_here(job)
        return job, token

    def _check_limits(self, session: str, estimate: float | None) -> None:
        most, longest = session_limits()
        if estimate is not None and estimate > longest:
            raise Refused(tr("This run would take {about} on this server, over the class's limit of {most} min for "
                             "one run: choose fewer epochs, seeds or images (or ask the teacher).",
                             about=about(estimate), most=fmt(longest / 60, ".0f")))
        mine = [j for j in self.order if j.session == session and j.state != "done" and not j.stop.is_set()]
        if len(mine) >= most:
            raise Refused(tr("You already have {n} run queued or training on this shared server (the limit is {most} "
                             "per session): wait for one to finish, or stop one.", n=len(mine), most=most)
                          if len(mine) == 1 else
                          tr("You already have {n} runs queued or training on this shared server (the limit is {most} "
                             "per session): wait for one to finish, or stop one.", n=len(mine), most=most))

    def jobs(self) -> list[Job]:
        """The runs queued or training now, in the order asked (the teacher's view)."""
        with self.lock:
            return [j for j in self.order if j.state != "done" and not j.stop.is_set()]

    def stop_now(self, job_id: int) -> bool:
        """Stop a run for every session following it (the teacher's Stop). False when it is no longer running."""
        with self.lock:
            job = next((j for j in self.order if j.id == job_id and j.state != "done"), None)
            if job is None or job.stop.is_set():
                return False
            job.stopped_by = "stopped by the teacher"
            self._stop(job)
        return True

    def leave(self, job: Job, token) -> int:
        """Stop following `job`; the last follower to leave stops it. Returns how many still follow it."""
        with self.lock:
            job.waiters.discard(token)
            left = len(job.waiters)
            if left == 0 and job.state != "done":
                self._stop(job)
        return left

    def ahead(self, job: Job) -> tuple[int, float | None]:
        """(runs ahead of it, seconds until its result): the runs training now and those asked before it,
        placed in turn on the first free place (list scheduling over `slots`)."""
        with self.lock:
            before = [j for j in self.order if j.state != "done" and j is not job and not j.stop.is_set()
                      and (j.state == "running" or (job.state == "queued" and j.submitted <= job.submitted))]
            if job.state == "running":
                return 0, job.left()
            running = [j for j in before if j.state == "running"]
            waiting = sorted((j for j in before if j.state == "queued"), key=lambda j: j.submitted)
            free = sorted([j.left() for j in running] + [0.0] * max(self.slots - len(running), 0))
            unknown = any(t is None for t in free)
            free = [t or 0.0 for t in free]
            for j in waiting:
                t = free.pop(0)
                unknown |= j.estimate is None
                free = sorted(free + [t + (j.estimate or 0.0)])
            start = free[0] if free else 0.0
            total = None if unknown or job.estimate is None else start + job.estimate
            return len(before), total

    def busy(self) -> tuple[int, float | None]:
        """(runs in flight, seconds until a place is free for a new run)."""
        with self.lock:
            active = [j for j in self.order if j.state != "done" and not j.stop.is_set()]
            if len(active) < self.slots:
                return len(active), 0.0
            probe = Job(0, "", "", "", {}, estimate=0.0)
            probe.submitted = time.monotonic()
            self.order.append(probe)
            try:
                _, seconds = self.ahead(probe)
            finally:
                self.order.remove(probe)
            return len(active), seconds

    # ---- running them
    def _update(self, job: Job, **changes) -> None:
        with self.lock:
            for k, v in changes.items():
                setattr(job, k, v)
            job.version += 1

    def _event(self, job: Job, what: str, *args) -> None:
        if what == "progress":
            fraction, message = args
            self._update(job, fraction=max(job.fraction, min(fraction, 1.0)), message=message)
            if job.observer is not None:
                job.observer(fraction, message)
        elif what == "live":
            label, condition, curves = args
            with self.lock:
                job.live[label] = {"condition": condition, **curves}
                job.version += 1
        elif what == "start":
            (pid,) = args
            self._update(job, state="running", started=time.monotonic(), pid=pid)
            if job.run_id is not None and pid != os.getpid():
                try:
                    store.Store(job.root).claim(job.run_id, pid)
                except OSError:
                    pass
        elif what == "checkpoint":
            (partial,) = args
            if job.run_id is not None:
                try:
                    store.Store(job.root).finish(job.run_id, partial, status="running", message="")
                except OSError:
                    pass

    def _progress(self, job: Job) -> Progress:
        return Progress(lambda what, *args: self._event(job, what, *args))

    def _finish(self, job: Job, result=None, error: str = "", bad: bool = False, status: str = "") -> None:
        """Record how the run ended, keep a result worth showing, and tell every follower."""
        if result is not None:
            status = status or getattr(result, "status", "finished") or "finished"
        else:
            status = status or "failed"
        if status == "stopped" and job.stopped_by and not error:
            error = job.stopped_by
        message = error or (job.message if status == "stopped" and result is None else None)
        recorded = job.run_id is not None
        if job.run_id is not None:
            try:
                db = store.Store(job.root)
                if result is not None:
                    db.finish(job.run_id, result, kind=getattr(result, "kind", None) or None)
                else:
                    db.finish(job.run_id, {"config": job.config}, status=status,
                              message=message or ("stopped by the user" if status == "stopped" else "failed"))
            except Exception as err:  # noqa: BLE001 - the followers still get the run; the history says why not
                error, recorded = error or "", False
                why = getattr(err, "why", "") or f"{type(err).__name__}: {err}"   # StorageError: "the disk is full"
                job.message = f"{job.message} (not recorded: {why})".strip()
        elif job.unrecorded:   # the history could not take it when it started
            job.message = f"{job.message} (not recorded: {job.unrecorded})".strip()
        if result is not None and status in ("finished", "diverged"):
            self.remember(job.root, job.identity, Entry(result, job.run_id, float(getattr(result, "seconds", 0.0)),
                                                        time.time(), job.session, job.private))
        if result is not None and status == "finished" and recorded and job.root and not job.private:
            keep(store.Store(job.root).result_file(job.run_id), result)  # before anyone is told (never a private one)
        with self.lock:
            job.state, job.status, job.result, job.error, job.bad_setting = "done", status, result, error, bad
            job.version += 1
            if self.flight.get((job.root, job.identity)) is job:
                del self.flight[(job.root, job.identity)]
            if job in self.order:
                self.order.remove(job)
            job.payload, job.blobs = None, {}
        job.done.set()

    def _stop(self, job: Job) -> None:
        """Every follower left: a queued run leaves the queue (recorded as stopped), a training one stops at
        its next step (the training loop checks), keeping its finished epochs."""
        job.stop.set()
        if self._stops is not None:
            self._stops[job.id % len(self._stops)] = 1
        if self._ray is not None:
            self._ray_stop(job)
        if job.state == "queued":
            if job.future is not None and hasattr(job.future, "cancel"):
                job.future.cancel()
            ahead = self.ahead(job)[0]
            self._update(job, message=job.stopped_by or
                         f"stopped while waiting for its turn ({ahead} run{'s' * (ahead != 1)} ahead)")
            self._finish(job, status="stopped", error=job.message)
        with self.lock:
            if self.flight.get((job.root, job.identity)) is job:
                del self.flight[(job.root, job.identity)]   # a new request trains afresh


def submit(request: RunRequest, *, here: bool = False, **kwargs) -> tuple[Job, object]:
    """The one way to ask for a run: `Server.submit` on this process's server (a page's button), or with
    `here`, on a server of its own that trains it in this thread now (the command line, the lecture)."""
    return (Server(inline=True) if here else server()).submit(request, **kwargs)


def describe() -> str:
    """Where the app's runs train, in words (the sidebar)."""
    return server().where()



# ---- this process's server ------------------------------------------------------------------------------------

_SERVER: dict = {}
_SERVER_LOCK = threading.Lock()


def server() -> Server:
    """This process's Server, made on first use from TL_WORKERS / TL_RAY_ADDRESS."""
    with _SERVER_LOCK:
        if "it" not in _SERVER:
            try:
                _SERVER["it"] = Server(workers(), ray_address())
            except ValueError as err:   # a bad TL_WORKERS: one run at a time, and the sidebar says why
                _SERVER["it"] = Server()
                _SERVER["it"].problem = str(err)
        return _SERVER["it"]


def use(srv: Server | None) -> Server | None:
    """Make `srv` this process's Server (tests; None: the next `server()` reads the environment again).
    Returns the one it replaces."""
    with _SERVER_LOCK:
        before = _SERVER.pop("it", None)
        if srv is not None:
            _SERVER["it"] = srv
        return before
