"""Where a class's runs train, and the worker side: in this process one at a time, in worker processes
(`TL_WORKERS`), or as Ray tasks (`TL_RAY_ADDRESS`; the Ray connection is `tl_core.engine`'s).

A worker is sent a run request and its inputs' bytes (`payload`), never code, and rebuilds the run with
`tl_core.run_request.execute`, as this process does. A run in a worker gives the same numbers as its solo CLI
run: it is alone in its process, seeded by its config, and uses the same number of torch threads as a solo run
(`TL_WORKER_THREADS` trades that for speed).
"""
from __future__ import annotations

import functools
import os
import pickle
import queue
import sys
import threading
import time
from contextlib import contextmanager

from tl_core import run_request, store
from tl_core.run_request import RunRequest
from tl_core.serve.progress import Progress


class Executors:
    """The `Server`'s ways to train a queued job (mixed into it): `_dispatch` picks one."""

    def _dispatch(self, job) -> None:
        if self.ray_address:
            self._ray_submit(job)
        elif self.workers:
            self._pool_submit(job)
        else:
            self._local_submit(job)

    # ---- in this process, one at a time
    def _local_submit(self, job) -> None:
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

    def _run_here(self, job) -> None:
        with self.lock:   # every follower may have left while it waited for the turn
            if job.state != "queued" or job.stop.is_set():
                return
            self._event(job, "start", os.getpid())
        checkpoint = functools.partial(self._event, job, "checkpoint")
        also = job.also_stop
        should_stop = job.stop.is_set if also is None else (lambda: job.stop.is_set() or bool(also()))
        try:
            with store.live(checkpoint):
                result = run_request.execute(job.request, job.blobs, self._progress(job), should_stop, job.module)
        except ValueError as err:
            self._finish(job, error=str(err), bad=True)
        except Exception as err:  # noqa: BLE001 - every follower is told, in one line
            if type(err).__name__ == "Stopped":
                self._finish(job, status="stopped", error=str(err))
            else:
                self._finish(job, error=f"{type(err).__name__}: {err}")
        except BaseException:   # a page's Stop (Streamlit ends the script), ^C: kept as stopped, then on its way
            self._finish(job, status="stopped", error=job.message or "stopped by the user")
            raise
        else:
            self._finish(job, result=result)

    # ---- worker processes
    def _executor(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("spawn")
            install_preparation()
            if self._events is None:
                self._events = ctx.Queue()
                self._stops = ctx.Array("b", 4096, lock=False)
                threading.Thread(target=self._drain, name="tl-serve-events", daemon=True).start()
                at_shutdown(self.shutdown)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                initargs=(self._events, self._stops, self.threads, self.workers > 1, os.getpid(), sys.path))
        return self._pool

    def _pool_submit(self, job) -> None:
        if job.payload is None:
            job.payload = payload(job)
        job.where, job.tries = "a worker process", job.tries + 1
        _SPAWNING.on = True    # a worker it starts must not run the app's script (see install_preparation)
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

    def _pool_done(self, job, future) -> None:
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

    def _outcome(self, job, out: tuple) -> None:
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
    def _ray_submit(self, job) -> None:
        from tl_core import engine

        if job.payload is None:
            job.payload = payload(job)
        ray = engine.ray_module()
        if self._ray is None:
            engine.connect(self.ray_address)
            from ray.util.queue import Queue

            board = ray.remote(num_cpus=0)(_Board).remote()
            self._ray = {"events": Queue(), "board": board,
                         "task": ray.remote(num_cpus=1, max_retries=0)(_work_ray)}
            self._ray_reader = threading.Thread(target=self._ray_drain, name="tl-serve-ray", daemon=True)
            self._ray_reader.start()
            engine.before_shutdown(self._stop_ray_reader)
        job.where, job.tries = f"Ray at {self.ray_address}", job.tries + 1
        ref = self._ray["task"].remote(job.id, job.payload, self._ray["events"], self._ray["board"], self.threads)
        job.future = ref
        threading.Thread(target=self._ray_wait, args=(job, ref), daemon=True).start()

    def _ray_wait(self, job, ref) -> None:
        import ray

        try:
            out = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - a task that raised, or whose worker died
            self._finish(job, error=f"the Ray task training it failed: {type(err).__name__}")
            return
        self._outcome(job, out)

    def _ray_drain(self) -> None:
        import ray

        ray_state = self._ray
        while self._ray is ray_state and ray.is_initialized():   # a call after Ray ended would start a new local Ray
            try:
                raw = ray_state["events"].get_nowait()   # a short call: none in flight when Ray shuts down
            except Exception:  # noqa: BLE001 - Empty, or the queue actor went away
                time.sleep(0.2)
                continue
            what, job_id, *args = pickle.loads(raw)
            with self.lock:
                job = next((j for j in self.order if j.id == job_id), None)
            if job is not None:
                self._event(job, what, *args)

    def _ray_stop(self, job) -> None:
        try:
            self._ray["board"].stop.remote(job.id)
        except Exception:  # noqa: BLE001
            pass

    def _stop_ray_reader(self) -> None:
        """End the Ray events' reader and wait for it (its reads are short): Ray ends the whole process when a
        thread calls it after it shut down."""
        self._ray = None
        reader, self._ray_reader = getattr(self, "_ray_reader", None), None
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=10)

    def shutdown(self) -> None:
        """Stop every run (the server is going down) and the worker processes, without waiting for them: the
        history shows their runs as interrupted."""
        with self.lock:
            for job in self.order:
                job.stop.set()
        self._stop_ray_reader()   # the Ray connection is engine's, which ends it
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



def at_shutdown(fn) -> None:
    """Run fn when the interpreter exits, before concurrent.futures waits for its workers' running tasks."""
    register = getattr(threading, "_register_atexit", None)
    try:
        (register or __import__("atexit").register)(fn)
    except RuntimeError:
        pass


def payload(job) -> bytes:
    """What a worker process is sent: the run request, where its experiment is declared, its inputs' bytes
    (plain data: no code crosses the process boundary)."""
    return pickle.dumps({"request": job.request.to_json(), "module": job.module, "blobs": dict(job.blobs)})


@contextmanager
def spawning():
    """Start worker processes without re-running the parent's __main__ (under Streamlit, the app's script)."""
    install_preparation()
    _SPAWNING.on = True
    try:
        yield
    finally:
        _SPAWNING.on = False


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


def install_preparation() -> None:
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


def _train(sent: bytes, emit, should_stop):
    emit("start", os.getpid())
    try:
        asked = pickle.loads(sent)   # the parent's payload(): a dict of plain data
        request = RunRequest.from_json(asked["request"])
        with store.live(lambda partial: emit("checkpoint", partial)):
            result = run_request.execute(request, asked["blobs"], Progress(emit), should_stop, asked["module"])
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
