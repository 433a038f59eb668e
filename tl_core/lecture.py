"""Lecture mode: the steps (`tl_core.lecture_steps`) against the run history, and preparing them.

What a step shows is read from the run's recorded JSON, so a run prepared yesterday by another server draws exactly
as one made a second ago:

    latest(step, db)      the newest finished run of the step's config in the history, or None
    prepare(db, ...)      run every step that has no such run yet (the lecture is then instant)
    shown(step, db)       what a step shows without training: its JSON and that run

Each step's run is asked for as every run is (`serve.submit`, a `RunRequest`), here or in worker processes that
prepare several steps at once. The handout and the command line are `tl_core.lecture_cli`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from tl_core import run_request, serve, store
from tl_core.lecture_steps import (  # noqa: F401
    FIVE,
    STEPS,
    TINY_ENV,
    Check,
    Step,
    Unavailable,
    base_size,
    figures_module,
    link,
    projector_figure,
    recorded,
    request_for,
    status,
    step_at,
    weights_demo,
)
from tl_core.serve import executors

# ---- the history: a step's latest run ----------------------------------------------------------------

def latest(step: Step, db: store.Store | None, cfg=None) -> store.Run | None:
    """The newest finished run of this step's config in the history (with its whole JSON), or None."""
    if db is None or not step.trains():
        return None
    try:
        want = recorded(cfg if cfg is not None else step.config())
    except Unavailable:
        return None
    for run in db.runs(kind=step.kind):
        if run.status == "finished" and run.config == want:
            return db.get(run.id)
    return None


def result_json(result) -> dict:
    """A fresh result as the history stores it (what the step's chart and verdict read)."""
    return run_request.plain(result.record()["json"])



# ---- preparing the lecture, and the handout ----------------------------------------------------------

@dataclass
class Prepared:
    """What `prepare` did for one step."""
    number: int
    step: Step
    state: str                 # "history" (a run was there), "ran", "stopped", "failed", "unavailable", "instant"
    run_id: int | None = None
    seconds: float | None = None
    message: str = ""

    def to_json(self) -> dict:
        return {"step": self.number, "key": self.step.key, "title": self.step.title, "state": self.state,
                "run_id": self.run_id, "seconds": self.seconds, "message": self.message, "link": link(self.step)}


WORKERS_ENV = "TL_LECTURE_WORKERS"   # how many worker processes prepare the lecture (default: 2 on a CPU)
STARTUP_S = 3.0                      # a worker process's start (Python, torch, tl_core) on an idle 2-core machine


def workers_for(device: str = "auto") -> int:
    """Worker processes to prepare the lecture with: TL_LECTURE_WORKERS, else one per core up to 2 on a CPU (each
    step trains on one thread, so two steps at once use both cores of a laptop), else 1 (a GPU: one at a time)."""
    given = os.environ.get(WORKERS_ENV, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ValueError(f"{WORKERS_ENV} must be a whole number of at least 1, got {given!r}")
        return int(given)
    from tl_core import device as devices

    return max(1, min(2, os.cpu_count() or 1)) if devices.pick(device).type == "cpu" else 1


def _plan(db: store.Store | None, force: bool = False) -> tuple[list[Prepared], list[tuple[Prepared, Any]], dict]:
    """Every step's entry, the (entry, config) runs to train (longest first), and the steps that share each run."""
    out = []
    for i, step in enumerate(STEPS, 1):
        why = status(step)
        out.append(Prepared(i, step, "unavailable" if why else "pending" if step.trains() else "instant",
                            message=why or ("" if step.trains() else "nothing to train: shown at once")))
    todo, seen = [], {}
    for entry in (p for p in out if p.state == "pending"):
        cfg = entry.step.config()
        run = latest(entry.step, db, cfg) if not force else None
        if run is not None:
            entry.state, entry.run_id, entry.seconds = "history", run.id, run.seconds
        elif (entry.step.kind, cfg) in seen:   # another step with this config runs it: share its run
            seen[entry.step.kind, cfg].append(entry)
        else:
            seen[entry.step.kind, cfg] = [entry]
            todo.append((entry, cfg))
    todo.sort(key=lambda t: -t[0].step.seconds)   # longest first: the workers finish close together
    return out, todo, seen


def makespan(seconds: list[float], workers: int) -> float:
    """How long `workers` processes take for jobs of these lengths, each taking the longest job left when free."""
    ends = [0.0] * max(workers, 1)
    for s in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += s
    return max(ends)


def estimate(db: store.Store | None, device: str = "auto", force: bool = False,
             workers: int | None = None) -> tuple[float, int, int]:
    """(seconds, steps to train, worker processes): how long `prepare` will take on an idle 2-core machine, from
    each step's measured time there (a busy or slower machine takes longer; a faster one, less)."""
    _, todo, _ = _plan(db, force)
    workers = _workers(workers, device, db, len(todo))
    seconds = [entry.step.seconds for entry, _ in todo]
    return (makespan(seconds, workers) + (STARTUP_S if workers > 1 else 0.0) if todo else 0.0), len(todo), workers


def _workers(workers: int | None, device: str, db, jobs: int) -> int:
    workers = workers_for(device) if workers is None else workers
    return max(1, min(workers, jobs)) if db is not None else 1   # workers record what they train in the history


def prepare(db: store.Store | None, session: str = "lecture", progress=None, should_stop=None, device: str = "auto",
            force: bool = False, workers: int | None = None, pool: Workers | None = None) -> list[Prepared]:
    """Run, once, every step that has no finished run of its config in the history (all of them with `force`),
    each recorded like any run; steps that share a config share its run. With more than one worker (the default on
    a CPU with 2 cores or more: `workers_for`), the steps train in that many worker processes at once, longest
    first, each on one thread and recording its runs in the history itself; a step's numbers are the same as
    alone. Progress goes over the steps that train, by their measured time; a Stop ends the running steps' runs
    (kept as stopped) and skips the rest. `pool`: workers started ahead (`Workers`, recording in `db`: the command
    line's), given every step at once: each worker works out its step's config and looks in the history itself,
    so no step waits for this process to import the experiments; the pool is closed at the end."""
    if pool is not None:
        return _in_pool(pool, db, progress, should_stop, force)
    out, todo, seen = _plan(db, force)
    workers = _workers(workers, device, db, len(todo))
    if workers > 1:
        _in_workers(todo, db, session, progress, should_stop, device, workers)
    else:
        for j, (entry, cfg) in enumerate(todo):
            if should_stop is not None and should_stop():
                entry.state, entry.message = "stopped", "not run: the lecture's preparation was stopped"
                continue

            def sub(fraction, message, j=j, entry=entry):
                if progress is not None:
                    progress((j + min(fraction, 1.0)) / len(todo),
                             f"step {entry.number} ({entry.step.title}): {message}")

            entry.state, entry.run_id, entry.seconds, entry.message = _run_step(entry.step, cfg, db, session, sub,
                                                                                should_stop, device)
    for entry, cfg in todo:   # steps that shared a run show it
        for other in seen[entry.step.kind, cfg][1:]:
            other.state, other.run_id, other.seconds = ("history" if entry.state == "ran" else entry.state,
                                                        entry.run_id, entry.seconds)
    return out


def _run_step(step: Step, cfg, db, session: str, progress, should_stop, device: str) -> tuple:
    """Train one step's config, submitted and recorded in the history as every run is: (state, run id, seconds,
    message)."""
    job, _ = serve.submit(request_for(step, cfg, device), here=True, root=str(db.root) if db is not None else "",
                          session=session, source="lecture", progress=progress, should_stop=should_stop)
    if job.result is None:   # one step that fails (kept as failed in the history) leaves the rest
        return ("stopped" if job.status == "stopped" else "failed"), job.run_id, None, \
            (str(job.error).splitlines() or [job.status])[0]
    result = job.result
    return ("ran" if result.status == "finished" else result.status), job.run_id, result.seconds, result.message


# ---- worker processes: several steps at once --------------------------------------------------------------

class Workers:
    """Worker processes for several steps at once, started ahead: each imports torch and the steps' experiments while
    this process plans (its own imports, the history), then takes jobs (j, step key, config, mode) first come first
    served and sends events: ("start", j, pid), ("progress", j, fraction, message), ("done", j, state, run id,
    seconds, message, json or None). `root`: the history the workers record in (None: nothing recorded)."""

    def __init__(self, workers: int, root: str | None, session: str = "lecture", device: str = "auto"):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.jobs, self.events, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.procs = [ctx.Process(target=_worker, args=(self.jobs, self.events, self.stop, os.getpid(), root, session,
                                                        device), daemon=True, name=f"tl-lecture-{i + 1}")
                      for i in range(workers)]
        with executors.spawning():   # a worker imports tl_core by name, not the app's script
            for proc in self.procs:
                proc.start()
        self.closed = False

    def __len__(self) -> int:
        return len(self.procs)

    def run(self, jobs_: list, on_event, should_stop=None) -> None:
        """Run the jobs; each event goes to on_event(event) in this thread. A job whose worker ended without saying
        is done as failed; should_stop() asks every worker to stop (each keeps its running step's run as stopped)."""
        import queue

        for job in jobs_:
            self.jobs.put(job)
        self.close(wait=False)
        left, where = {job[0] for job in jobs_}, {}
        try:
            while left:
                if should_stop is not None and not self.stop.is_set() and should_stop():
                    self.stop.set()
                try:
                    event = self.events.get(timeout=0.2)
                except queue.Empty:
                    gone = {proc.pid for proc in self.procs if not proc.is_alive()}
                    for j in [j for j in left if where.get(j) in gone or len(gone) == len(self.procs)]:
                        left.discard(j)
                        on_event(("done", j, "failed", None, None, "the worker process preparing it ended before it "
                                                                     "finished (killed, or out of memory)", None))
                    continue
                if event[0] == "start":
                    where[event[1]] = event[2]
                elif event[0] == "done":
                    left.discard(event[1])
                on_event(event)
        except BaseException:   # a Stop raised by the page (or ^C): the workers stop too, keeping their runs as stopped
            self.stop.set()
            raise
        finally:
            self.close()

    def close(self, wait: bool = True) -> None:
        """No more jobs: each worker ends after the ones it has (with `wait`, wait for that)."""
        if not self.closed:
            self.closed = True
            for _ in self.procs:
                self.jobs.put(None)
        if wait:
            for proc in self.procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()


def _in_pool(pool: Workers, db: store.Store, progress, should_stop, force: bool) -> list[Prepared]:
    """Every step that trains goes to the pool at once, longest first (mode "plan": the worker skips a step that is
    unavailable or has a run of its config in the history, as `_plan` does, and looks again just before training,
    so steps that share a config share a run when one follows the other)."""
    out = [Prepared(i, step, "pending" if step.trains() else "instant",
                    message="" if step.trains() else "nothing to train: shown at once")
           for i, step in enumerate(STEPS, 1)]
    todo = sorted(((p, None) for p in out if p.state == "pending"), key=lambda t: -t[0].step.seconds)
    if db is None:
        raise ValueError("preparing in worker processes needs the run history they record in")
    _in_workers(todo, db, "", progress, should_stop, "", len(pool), pool, "force" if force else "plan")
    return out


def _in_workers(todo: list, db: store.Store, session: str, progress, should_stop, device: str, workers: int,
                pool: Workers | None = None, mode: str = "record") -> None:
    weight = [max(entry.step.seconds, 0.5) for entry, _ in todo]
    done = [0.0] * len(todo)

    def on_event(event) -> None:
        j, entry = event[1], todo[event[1]][0]
        if event[0] == "progress":
            done[j] = min(max(float(event[2]), 0.0), 1.0)
        elif event[0] == "done":
            done[j] = 1.0
            entry.state, entry.run_id, entry.seconds, entry.message = event[2:6]
        if progress is not None and event[0] in ("progress", "done"):
            message = event[3] if event[0] == "progress" else entry.state
            progress(sum(w * d for w, d in zip(weight, done)) / sum(weight),
                     f"step {entry.number} ({entry.step.title}): {message}")

    pool = pool if pool is not None else Workers(workers, str(db.root), session, device)
    pool.run([(j, entry.step.key, cfg, mode) for j, (entry, cfg) in enumerate(todo)], on_event, should_stop)


def _worker(jobs, events, stop, parent: int, root: str | None, session: str, device: str) -> None:
    """A worker process: take jobs until told to end; train each step's config on one thread ("record": recorded in
    the history at `root`, as `prepare` does; "plan" / "force": the step's config worked out here, skipped when
    unavailable or (plan) in the history, else recorded; "check": not recorded, its JSON sent back)."""
    import threading

    def orphaned() -> None:   # the parent is gone (killed): end rather than train for no one
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    db = store.Store(root) if root else None
    steps = {step.key: step for step in STEPS}
    while (job := jobs.get()) is not None:
        j, key, cfg, mode = job
        if stop.is_set():
            events.put(("done", j, "stopped", None, None, "not run: the lecture's preparation was stopped", None))
            continue
        events.put(("start", j, os.getpid()))

        def progress(fraction, message, j=j):
            events.put(("progress", j, fraction, message))

        if mode in ("plan", "force"):
            step = steps[key]
            why = status(step)
            cfg = None if why else step.config()
            run = latest(step, db, cfg) if cfg is not None and mode == "plan" else None
            if why or run is not None:
                events.put(("done", j, "unavailable", None, None, why, None) if why else
                           ("done", j, "history", run.id, run.seconds, "", None))
                continue
        if mode in ("record", "plan", "force"):
            events.put(("done", j, *_run_step(steps[key], cfg, db, session, progress, stop.is_set, device), None))
        else:
            events.put(("done", j, *check_run(steps[key], cfg, progress, stop.is_set, device)))


def check_run(step: Step, cfg, progress, should_stop, device: str) -> tuple:
    """Train one step's config without recording it: (state, None, seconds, message, its JSON or None)."""
    try:
        result = step.run(cfg, progress, should_stop, device)
    except Exception as err:  # noqa: BLE001 - reported as the step's failure
        return "failed", None, None, (str(err).splitlines() or [type(err).__name__])[0], None
    state = "ran" if result.status == "finished" else result.status
    return state, None, result.seconds, result.message, result_json(result)


def shown(step: Step, db: store.Store | None) -> tuple[dict | None, store.Run | None]:
    """What a step shows without training: its JSON (computed at once, or the latest run's) and that run."""
    if status(step):
        return None, None
    if not step.trains():
        return step.compute(step.experiment()), None
    run = latest(step, db)
    return (run.result, run) if run is not None else (None, None)
