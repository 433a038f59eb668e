"""Serving a class from one server: an identical run trains once, the queue is visible, a class server uses its cores.

A run's numbers depend on what it was asked (its kind, its recorded config, its dataset: for your own images the
upload's fingerprint) and on the code that trains it. `identity()` names that, with `code_version()` (a hash of
tl_core's source files, computed once per process). The run history keeps each run's identity, so a finished
run is the answer to anyone asking for the same identity; and this process's `Server` keeps:

- the runs in flight, by identity: a second session asking for a run that is training *follows* it (its
  progress, its live curve, its result) instead of queueing an identical training; a run in flight that every
  follower has left (Stop, page closed) is stopped, and one that fails (or whose worker is killed) is reported
  to every follower: the next request trains it again;
- a bounded cache of recent results, by identity, shared by every session: the objects a page draws from
  (trained weights, images) are in memory only, so a result not in it is trained again;
- the queue: first come, first served, with each waiting run's position and an estimate of its wait.

Where runs train: `TL_WORKERS` unset → in this process, one at a time (a laptop). `TL_WORKERS=N` → up to N
runs at once, each in a worker process of a `concurrent.futures.ProcessPoolExecutor` (spawn). With
`TL_RAY_ADDRESS` set → as Ray tasks on that cluster (up to `TL_WORKERS`, default 4, at once). A run in a worker
gives the same numbers as its solo CLI run: it is alone in its process, seeded by its config, and uses the
same number of torch threads as a solo run (`TL_WORKER_THREADS` trades that for speed: a run then equals the
CLI run with that many threads, `OMP_NUM_THREADS=k python -m tl_core ...`).

Nothing here imports Streamlit (the pages' side is `app_pages/ui.py`) or torch at import time (worker
processes set their thread count first).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import pickle
import queue
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tl_core import store

ROOT = Path(__file__).resolve().parent
WORKERS = "TL_WORKERS"              # up to this many runs at once, in worker processes
WORKER_THREADS = "TL_WORKER_THREADS"
RAY = "TL_RAY_ADDRESS"              # the same variable sends the app's sweeps to Ray (tl_core.engine)
SHARED = "TL_SHARED"                # a server shared by a class (also implied by TL_WORKERS / TL_RAY_ADDRESS)
ADMIN = "TL_ADMIN_TOKEN"            # the teacher's token: manage every session's runs
ADDRESS = "STREAMLIT_SERVER_ADDRESS"  # Streamlit's server.address as a variable (`make host` binds 0.0.0.0)
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")   # with 127/8 and ::1
CACHE = "TL_CACHE_RESULTS"          # how many recent results stay in memory (default 16)
CACHE_MB = "TL_CACHE_MB"            # and within how many MB (default 1024): a result is weighed by its arrays
SESSION_RUNS = "TL_SESSION_RUNS"    # on a shared server: one session's runs queued or training at once (default 2)
RUN_MINUTES = "TL_MAX_RUN_MINUTES"  # on a shared server: the longest run one session may ask for (default 20)
PRIVATE_KINDS = ("own", "continue")  # trained on a user's upload: on a shared server, theirs alone
POLL_S = 0.25


# ---- what a run depends on ----------------------------------------------------------------------------

@functools.cache
def code_version() -> str:
    """A hash of tl_core's source files, once per process: runs trained by other code are other runs."""
    h = hashlib.sha256()
    for path in sorted(ROOT.rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def identity(kind: str, config: dict, data: str = "", owner: str = "") -> str:
    """What a run's numbers depend on, as one key: its kind, recorded config, dataset (`data`: e.g. the sha256
    of an upload's bytes; "" for a built-in dataset, which the config names) and the code version. `owner`: the
    session a private run belongs to on a shared server, so that no other session's request is ever the same run
    (not followed, not shown), even for a file with the same bytes."""
    text = json.dumps({"kind": kind, "config": config, "data": data, "code": code_version(),
                       **({"owner": owner} if owner else {})}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ---- where runs train ------------------------------------------------------------------------------------

def _int_env(name: str) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None


def workers() -> int:
    """TL_WORKERS: runs at once in worker processes (0: in this process, one at a time)."""
    return _int_env(WORKERS)


def ray_address() -> str:
    return os.environ.get(RAY, "").strip()


def shared() -> bool:
    """A server a class shares: each session's uploads, labels and runs on them are its own (see `store.visible`).
    TL_SHARED=1/0 says so outright; else it is shared when TL_WORKERS or TL_RAY_ADDRESS is set, or when other
    machines can reach it: Streamlit's `server.address` (read at run time, from `--server.address`, its
    STREAMLIT_SERVER_ADDRESS variable or .streamlit/config.toml) is not a loopback address. Unset, Streamlit
    listens on every interface, so that counts as reachable; the repo's config.toml binds localhost."""
    flag = os.environ.get(SHARED, "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    try:
        many = workers() > 0
    except ValueError:   # a bad TL_WORKERS trains one run at a time (the sidebar says so): not a class server
        many = False
    if flag in ("1", "true", "yes", "on") or many or bool(ray_address()):
        return True
    import ipaddress

    if "streamlit" in sys.modules:   # in the app: the address this server listens on (never imported otherwise)
        from streamlit import config

        address = config.get_option("server.address")
    else:
        address = os.environ.get(ADDRESS)
        if address is None:          # not a Streamlit server (the CLI, a worker): one user's
            return False
    address = (address or "").strip().strip("[]").lower()
    if address in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:               # "" (every interface), a host name, a unix socket behind a proxy: reachable
        return True


def teacher() -> bool:
    """Whether this server has a teacher's token (TL_ADMIN_TOKEN) to ask for."""
    return bool(os.environ.get(ADMIN, ""))


def admin(token: str) -> bool:
    """Whether `token` is the teacher's (TL_ADMIN_TOKEN; none set: nobody is)."""
    import hmac

    expected = os.environ.get(ADMIN, "")
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def describe() -> str:
    """Where the app's runs train, in words (the sidebar)."""
    return server().where()


# ---- how long a run takes: a cost model, scaled by this machine's history -----------------------------------

# seconds per cost unit when the history has no run of the kind yet: the default lab run took 42.6 s on the
# 2-core reference machine (a laptop-class CPU); own images and continue-fine-tuning are the same trainer
FAMILY = {"own": "finetune", "continue": "finetune", "sweep": "finetune"}


def _n(value, default: float) -> float:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return sum(_n(v, default) for v in value) or default
    return default


def cost(kind: str, config: dict) -> float:
    """A run's cost in arbitrary units: seeds × epochs × conditions × images (× (size/64)² for images, × the
    cells of a grid). Only ratios matter: seconds = cost × the kind's rate on this machine."""
    c = config
    seeds = _n(c.get("seeds"), 1)
    epochs = _n(c.get("epochs"), 1) + _n(c.get("pretrain_epochs"), 0) + _n(c.get("scout_epochs"), 0) * _n(
        c.get("scouts"), 0) / 4
    weights = c.get("weights")
    conditions = 2 if weights == "both" else len(c.get("conditions") or c.get("methods") or c.get("strategies")
                                                 or [1])
    images = _n(c.get("shots"), 20) if "shots" in c else _n(c.get("labels"), 20) if "labels" in c else 20
    size = (_n(c.get("image_size"), 64) / 64) ** 2
    grid = len(c.get("freezes") or [1])
    return max(seeds * epochs * conditions * images * size * grid, 1e-9)


REFERENCE = {"finetune": 42.6 / cost("finetune", {"seeds": 3, "epochs": 15, "weights": "both", "shots": 5,
                                                  "image_size": 64})}


def estimate(kind: str, config: dict, db: store.Store | None = None) -> tuple[float | None, int]:
    """(seconds, runs it is based on): the median rate (seconds per cost unit) of the last 20 finished runs of
    this kind (else of its family: own images are the lab's trainer) in this history, times the run's cost;
    with no such run, the reference machine's rate for the lab's family, else (None, 0)."""
    runs = []
    if db is not None:
        try:
            for k in (kind, FAMILY.get(kind)):
                if k and not runs:
                    runs = [r for r in db.runs(kind=k) if r.status == "finished" and r.seconds][:20]
        except OSError:
            runs = []
    if runs:
        rate = statistics.median(r.seconds / cost(r.kind, r.config) for r in runs)
        return rate * cost(kind, config), len(runs)
    ref = REFERENCE.get(FAMILY.get(kind, kind))
    return (ref * cost(kind, config), 0) if ref else (None, 0)


def about(seconds: float | None) -> str:
    """'about 40 s', 'about 3 min', or 'no estimate yet'."""
    if seconds is None or not math.isfinite(seconds):
        return "no estimate yet"
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5) if seconds >= 10 else round(seconds)} s"
    return f"about {round(seconds / 60)} min"


def by_cost(progress, costs: list[float]):
    """`progress` for a plan whose cells cost unequal time: `contract.run_cells` reports (i + done) / n for
    cell i; this reports the cost done instead, so the bar moves as time passes, not as cells are counted."""
    total = float(sum(costs))
    if progress is None or total <= 0 or not costs:
        return progress
    n = len(costs)
    before = list(itertools.accumulate([0.0, *costs]))

    def mapped(fraction, message=""):
        x = min(max(float(fraction), 0.0), 1.0) * n
        i = min(int(x), n - 1)
        progress((before[i] + costs[i] * (x - i)) / total, message)

    if hasattr(progress, "epoch"):
        mapped.epoch = progress.epoch
    return mapped


# ---- what a run reports while it trains -------------------------------------------------------------------

class Progress:
    """The `progress(fraction, message)` a run is given, plus `epoch(label, epoch, history, condition="")` for
    the live curve: the protocol's backwards-compatible extension (a runner that has an epoch's History calls
    it). Until the runner does, a call from inside a training loop's epoch callback finds that History (a
    local `hist`, with the runner's `cell`) in the callers' frames."""

    def __init__(self, emit: Callable[..., None]):
        self.emit = emit
        self.explicit = False

    def __call__(self, fraction: float, message: str = "") -> None:
        self.emit("progress", float(fraction), str(message))
        if not self.explicit:
            found = _history_in_callers()
            if found is not None:
                self._live(*found)

    def epoch(self, label: str, epoch: int, hist, condition: str = "") -> None:
        self.explicit = True
        self._live(label, condition, hist)

    def _live(self, label: str, condition: str, hist) -> None:
        curves = {k: [_mean(v) for v in getattr(hist, k, [])] for k in ("val_acc", "val_loss", "train_loss")}
        self.emit("live", str(label), str(condition), {k: v for k, v in curves.items() if v})


def _mean(v) -> float:
    return float(sum(v) / len(v)) if isinstance(v, (list, tuple)) and v else float(v)


def _history_in_callers(depth: int = 6):
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        hist = frame.f_locals.get("hist")
        if hist is not None and hasattr(hist, "val_loss") and hasattr(hist, "train_loss"):
            cell = frame.f_locals.get("cell")
            if cell is not None and hasattr(cell, "label"):
                return cell.label, getattr(cell, "condition", ""), hist
            return "pretraining", "", hist
        frame = frame.f_back
    return None


# ---- runs in flight, and recent results --------------------------------------------------------------------

@dataclass
class Entry:
    """A recent result in memory, and the run in the history that trained it."""
    result: object
    run_id: int | None
    seconds: float
    finished: float            # unix time
    session: str
    private: bool = False      # trained on a session's upload: only that session is shown it (shared server)


class Refused(ValueError):
    """A shared server's limit on one session's runs (how many at once, how long one run) said in one line."""


def session_limits() -> tuple[int, float]:
    """(runs one session may have queued or training at once, the longest run in seconds) on a shared server."""
    runs = _int_env(SESSION_RUNS) or 2
    minutes = _int_env(RUN_MINUTES) or 20
    return runs, minutes * 60.0


@dataclass(eq=False)
class Job:
    """One training that any number of sessions follow."""
    id: int
    identity: str
    root: str                  # the history it is recorded in ("" when none)
    kind: str
    config: dict
    fn: Callable
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
    stopped_by: str = ""       # "stopped by the teacher": what its followers are told when it ends stopped

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


class Server:
    """This process's runs: in flight by identity, a FIFO queue over `slots` places to train, recent results.
    workers=0: one place, in this process; workers=N: N worker processes; ray_address: Ray tasks."""

    def __init__(self, workers: int = 0, ray_address: str = "", cache_size: int | None = None,
                 threads: int | None = None):
        self.workers, self.ray_address = int(workers), ray_address
        self.slots = max(1, self.workers or (4 if ray_address else 1))
        from tl_core import budget

        self.cache_size = cache_size if cache_size is not None else (_int_env(CACHE) or 16)
        self.cache_bytes = budget.env_mb(CACHE_MB, 1024) * budget.MB
        self.threads = threads if threads is not None else _int_env(WORKER_THREADS) or None
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
            return f"this process, one run at a time ({self.problem})"
        if self.ray_address:
            return f"Ray cluster at {self.ray_address}, up to {self.slots} runs at once"
        if self.workers:
            return f"{self.workers} worker process{'es' * (self.workers != 1)}, up to {self.workers} " \
                   f"run{'s' * (self.workers != 1)} at once"
        return "this process, one run at a time"

    # ---- recent results
    def sync(self, generation) -> None:
        """Forget every recent result when `generation` changes (the app ties it to Streamlit's cache, so its
        'Clear caches' and st.cache_data.clear() clear this too)."""
        with self.lock:
            if generation != self.generation:
                self.generation = generation
                self.cache.clear()

    def lookup(self, root: str, ident: str, session: str | None = None) -> Entry | None:
        """The result of a finished run with this identity: a recent one in memory, else the newest in the
        history at `root` whose whole result this server kept on disk (a restarted server, or one evicted from
        memory). None: it trains. With `session` (a shared server), a private run of another session is never
        returned, whichever way it is found."""
        entry = self.cache.get((root, ident))
        if entry is None and root and ident:
            entry = _from_history(root, ident)
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

    def submit(self, ident: str, kind: str, config: dict, fn: Callable, *, root: str = "", session: str = "",
               private: bool = False, estimate: float | None = None, source: str = "",
               limited: bool = False) -> tuple[Job, object]:
        """Follow the run with this identity: the one in flight, else a new one, recorded as "running" in the
        history at `root` now (a server killed while it waits leaves it "interrupted"), queued, then trained.
        `source`: where it was asked for, when not on its experiment's page (store.SOURCES: "lecture").
        `limited` (a shared server, not the teacher): a new run is refused (`Refused`) when `session` already has
        TL_SESSION_RUNS runs queued or training, or when its estimate is over TL_MAX_RUN_MINUTES; following a run
        in flight is never refused. Returns (job, token): pass the token to `leave` when no longer following."""
        token = object()
        with self.lock:
            job = self.flight.get((root, ident))
            if job is None or job.stop.is_set():
                if limited:
                    self._check_limits(session, estimate)
                job = Job(next(self.ids), ident, root, kind, config, fn, session=session, private=private,
                          estimate=estimate)
                if root:
                    try:
                        job.run_id = store.Store(root).begin(kind, config, session=session, identity=ident,
                                                             code=code_version(), private=private,
                                                             source=source)
                    except OSError as err:   # it trains unrecorded, and its followers are told why
                        job.run_id, job.unrecorded = None, getattr(err, "why", "") or str(err)
                self.flight[(root, ident)] = job
                self.order.append(job)
                self._dispatch(job)
            job.waiters.add(token)
        return job, token

    def _check_limits(self, session: str, estimate: float | None) -> None:
        most, longest = session_limits()
        if estimate is not None and estimate > longest:
            raise Refused(f"This run would take {about(estimate)} on this server, over the class's limit of "
                          f"{longest / 60:.0f} min for one run: choose fewer epochs, seeds or images (or ask the "
                          f"teacher).")
        mine = [j for j in self.order if j.session == session and j.state != "done" and not j.stop.is_set()]
        if len(mine) >= most:
            raise Refused(f"You already have {len(mine)} run{'s' * (len(mine) != 1)} queued or training on this "
                          f"shared server (the limit is {most} per session): wait for one to finish, or stop one.")

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
            probe = Job(0, "", "", "", {}, lambda *a: None, estimate=0.0)
            probe.submitted = time.monotonic()
            self.order.append(probe)
            try:
                _, seconds = self.ahead(probe)
            finally:
                self.order.remove(probe)
            return len(active), seconds

    # ---- running them
    def _dispatch(self, job: Job) -> None:
        if self.ray_address:
            self._ray_submit(job)
        elif self.workers:
            self._pool_submit(job)
        else:
            self._local_submit(job)

    def _update(self, job: Job, **changes) -> None:
        with self.lock:
            for k, v in changes.items():
                setattr(job, k, v)
            job.version += 1

    def _event(self, job: Job, what: str, *args) -> None:
        if what == "progress":
            fraction, message = args
            self._update(job, fraction=max(job.fraction, min(fraction, 1.0)), message=message)
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
            _keep(store.Store(job.root).result_file(job.run_id), result)  # before anyone is told (never a private one)
        with self.lock:
            job.state, job.status, job.result, job.error, job.bad_setting = "done", status, result, error, bad
            job.version += 1
            if self.flight.get((job.root, job.identity)) is job:
                del self.flight[(job.root, job.identity)]
            if job in self.order:
                self.order.remove(job)
            job.payload = None
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

    # ---- in this process, one at a time
    def _local_submit(self, job: Job) -> None:
        if self._local is None:
            self._local = queue.Queue()
            threading.Thread(target=self._local_loop, name="tl-serve-runs", daemon=True).start()
        self._local.put(job)

    def _local_loop(self) -> None:
        from tl_core import device as devices

        while True:
            job = self._local.get()
            if job.state == "done":
                continue
            with devices.one_run_at_a_time():
                if job.state == "done":
                    continue
                try:
                    self._run_here(job)
                except Exception as err:  # noqa: BLE001 - never lose the thread that trains every session's runs
                    if job.state != "done":
                        self._finish(job, error=f"{type(err).__name__}: {err}")

    def _run_here(self, job: Job) -> None:
        with self.lock:   # every follower may have left while it waited for the turn
            if job.state != "queued" or job.stop.is_set():
                return
            self._event(job, "start", os.getpid())
        keep = functools.partial(self._event, job, "checkpoint")
        try:
            with store.live(keep):
                result = job.fn(self._progress(job), job.stop.is_set)
        except ValueError as err:
            self._finish(job, error=str(err), bad=True)
        except Exception as err:  # noqa: BLE001 - every follower is told, in one line
            if type(err).__name__ == "Stopped":
                self._finish(job, status="stopped", error=str(err))
            else:
                self._finish(job, error=f"{type(err).__name__}: {err}")
        else:
            self._finish(job, result=result)

    # ---- worker processes
    def _executor(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("spawn")
            _install_preparation()
            if self._events is None:
                self._events = ctx.Queue()
                self._stops = ctx.Array("b", 4096, lock=False)
                threading.Thread(target=self._drain, name="tl-serve-events", daemon=True).start()
                _at_shutdown(self.shutdown)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                initargs=(self._events, self._stops, self.threads, self.workers > 1, os.getpid(), sys.path))
        return self._pool

    def _pool_submit(self, job: Job) -> None:
        if job.payload is None:
            try:
                import cloudpickle

                job.payload = cloudpickle.dumps(job.fn)
            except Exception as err:  # noqa: BLE001 - e.g. a run that holds a lock or an open file
                job.where = f"this process (could not be sent to a worker: {type(err).__name__})"
                self._local_submit(job)
                return
        job.where, job.tries = "a worker process", job.tries + 1
        _SPAWNING.on = True    # a worker it starts must not run the app's script (see _preparation)
        try:
            with self.lock:
                pool = job.pool = self._executor()
                self._stops[job.id % len(self._stops)] = 0
                try:
                    job.future = pool.submit(_work, job.id, job.id % len(self._stops), job.payload)
                except RuntimeError:   # the pool broke a moment ago
                    self._pool = None
                    pool = job.pool = self._executor()
                    job.future = pool.submit(_work, job.id, job.id % len(self._stops), job.payload)
        finally:
            _SPAWNING.on = False
        job.future.add_done_callback(lambda f, job=job: self._pool_done(job, f))

    def _pool_done(self, job: Job, future) -> None:
        from concurrent.futures import CancelledError
        from concurrent.futures.process import BrokenProcessPool

        if job.state == "done":
            return
        try:
            out = future.result()
        except CancelledError:
            return
        except BrokenProcessPool:
            with self.lock:
                if self._pool is job.pool:
                    self._pool = None
            if job.started is None and job.tries < 3 and not job.stop.is_set():   # it never started: try again
                self._pool_submit(job)
            else:
                self._finish(job, error="the worker process training it ended before it finished (killed, or out "
                                        "of memory)")
            return
        except Exception as err:  # noqa: BLE001 - e.g. a result that could not be sent back
            self._finish(job, error=f"{type(err).__name__}: {err}")
            return
        self._outcome(job, out)

    def _outcome(self, job: Job, out: tuple) -> None:
        what = out[0]
        if what == "result":
            self._finish(job, result=out[1])
        elif what == "error":
            _, text, bad = out
            self._finish(job, error=text, bad=bad, status="stopped" if text.startswith("Stopped:") else "")
        else:  # "cancelled": every follower left before it started
            self._finish(job, status="stopped", error=job.message or "stopped before it started")

    def _drain(self) -> None:
        while True:
            try:
                raw = self._events.get()
            except (EOFError, OSError):
                return
            try:
                what, job_id, *args = pickle.loads(raw)
            except Exception:  # noqa: BLE001 - an event that could not be read is dropped
                continue
            with self.lock:
                job = next((j for j in self.order if j.id == job_id), None)
            if job is not None:
                self._event(job, what, *args)

    # ---- Ray
    def _ray_submit(self, job: Job) -> None:
        from tl_core import engine

        if job.payload is None:
            import cloudpickle

            job.payload = cloudpickle.dumps(job.fn)
        ray = engine._ray()
        if self._ray is None:
            engine.connect(self.ray_address)
            from ray.util.queue import Queue

            board = ray.remote(num_cpus=0)(_Board).remote()
            self._ray = {"events": Queue(), "board": board,
                         "task": ray.remote(num_cpus=1, max_retries=0)(_work_ray)}
            threading.Thread(target=self._ray_drain, name="tl-serve-ray", daemon=True).start()
        job.where, job.tries = f"Ray at {self.ray_address}", job.tries + 1
        ref = self._ray["task"].remote(job.id, job.payload, self._ray["events"], self._ray["board"], self.threads)
        job.future = ref
        threading.Thread(target=self._ray_wait, args=(job, ref), daemon=True).start()

    def _ray_wait(self, job: Job, ref) -> None:
        import ray

        try:
            out = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - a task that raised, or whose worker died
            self._finish(job, error=f"the Ray task training it failed: {type(err).__name__}")
            return
        self._outcome(job, out)

    def _ray_drain(self) -> None:
        while True:
            try:
                raw = self._ray["events"].get(timeout=1)
            except Exception:  # noqa: BLE001 - Empty, or the queue actor went away
                continue
            what, job_id, *args = pickle.loads(raw)
            with self.lock:
                job = next((j for j in self.order if j.id == job_id), None)
            if job is not None:
                self._event(job, what, *args)

    def _ray_stop(self, job: Job) -> None:
        try:
            self._ray["board"].stop.remote(job.id)
        except Exception:  # noqa: BLE001
            pass

    def shutdown(self) -> None:
        """Stop every run (the server is going down) and the worker processes, without waiting for them: the
        history shows their runs as interrupted."""
        with self.lock:
            for job in self.order:
                job.stop.set()
        if self._stops is not None:
            for i in range(len(self._stops)):
                self._stops[i] = 1
        pool, self._pool = self._pool, None
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):
                try:
                    proc.kill()
                except Exception:  # noqa: BLE001
                    pass
            pool.shutdown(wait=False, cancel_futures=True)


# ---- finished results on disk: the history's answer to a later request -------------------------------------------

KEEP = "TL_KEEP_RESULTS"     # how many finished results stay on disk beside the history (default 64)
KEEP_MB = 256                # a larger result is not kept (it trains again when asked)


def _keep(path: Path, result) -> None:
    """Write a finished run's whole result beside the history (atomically, without pickle: tl_core.resultfile),
    keeping the newest `TL_KEEP_RESULTS`. A private run's result is never written (see `_finish`). A result the
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
        for old in kept[_int_env(KEEP) or 64:]:
            old.unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - keeping it is a convenience: the run and its history are already saved
        return


def _from_history(root: str, ident: str) -> Entry | None:
    """The newest finished run with this identity in the history at `root`, with its kept result, or None. Only
    a result file in Transfer Lab's own format is read (no pickle: a file planted in the folder runs no code)."""
    from tl_core import resultfile

    try:
        db = store.Store(root)
        run = db.find(ident)
        if run is None:
            return None
        result = resultfile.load(db.result_file(run.id))
    except Exception:  # noqa: BLE001 - no file, an unreadable one, a history that cannot be read now: it trains
        return None
    return Entry(result, run.id, float(run.seconds or 0.0), float(run.finished or run.created), run.session,
                 run.private)


def _at_shutdown(fn) -> None:
    """Run fn when the interpreter exits, before concurrent.futures waits for its workers' running tasks."""
    register = getattr(threading, "_register_atexit", None)
    try:
        (register or __import__("atexit").register)(fn)
    except RuntimeError:
        pass


# ---- inside a worker process ---------------------------------------------------------------------------------

_WORKER: dict = {}
_SPAWNING = threading.local()


def _preparation(name, _real=None):
    """multiprocessing's spawn tells a new process to re-run the parent's __main__ first. Under Streamlit that
    is the app's script (its runner installs each script run as __main__), which a worker must not run: while
    this module starts a worker, leave __main__ out (the worker imports tl_core by name)."""
    data = _REAL_PREPARATION(name)
    if getattr(_SPAWNING, "on", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


def _install_preparation() -> None:
    from multiprocessing import spawn

    global _REAL_PREPARATION
    if spawn.get_preparation_data is not _preparation:
        _REAL_PREPARATION = spawn.get_preparation_data
        spawn.get_preparation_data = _preparation


_REAL_PREPARATION = None


def _init_worker(events, stops, threads: int | None, passive: bool, parent: int, path: list[str]) -> None:
    """A worker process: its torch threads (a solo run's count unless TL_WORKER_THREADS), and a watchdog that
    ends it when the server is gone (a killed server leaves no orphan training)."""
    sys.path[:] = list(dict.fromkeys([*path, *sys.path]))
    if passive:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # several workers share the cores: wait asleep
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    _WORKER.update(events=events, stops=stops)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _work(job_id: int, slot: int, payload: bytes):
    """One run in a worker process: ("result", result) | ("error", text, bad_setting) | ("cancelled",)."""
    events, stops = _WORKER["events"], _WORKER["stops"]
    if stops[slot]:
        return ("cancelled",)
    emit = lambda what, *args: events.put(pickle.dumps((what, job_id, *args)))  # noqa: E731
    return _train(payload, emit, lambda: bool(stops[slot]))


def _train(payload: bytes, emit, should_stop):
    import cloudpickle

    emit("start", os.getpid())
    try:
        fn = cloudpickle.loads(payload)
        with store.live(lambda partial: emit("checkpoint", partial)):
            result = fn(Progress(emit), should_stop)
    except ValueError as err:
        return ("error", str(err), True)
    except Exception as err:  # noqa: BLE001 - sent back as text: an exception object may not unpickle
        name = type(err).__name__
        return ("error", f"{'Stopped: ' if name == 'Stopped' else name + ': '}{err}", False)
    return ("result", result)


class _Board:
    """A Ray actor holding the stop flags of the runs it serves."""

    def __init__(self):
        self.stopped = set()

    def stop(self, job_id: int) -> None:
        self.stopped.add(job_id)

    def is_stopped(self, job_id: int) -> bool:
        return job_id in self.stopped


def _work_ray(job_id: int, payload: bytes, events, board, threads: int | None):
    import ray
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    flag = {"stop": False, "checked": 0.0}

    def should_stop() -> bool:
        if time.monotonic() - flag["checked"] > 0.5:
            flag["checked"] = time.monotonic()
            flag["stop"] = bool(ray.get(board.is_stopped.remote(job_id)))
        return flag["stop"]

    emit = lambda what, *args: events.put(pickle.dumps((what, job_id, *args)))  # noqa: E731
    return _train(payload, emit, should_stop)


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
