"""Where a grid's cells run: one after another in this process (`local`), or as Ray tasks (`ray`).

A grid experiment's config declares the two settings below and runs its cells through `run_cells` here
(import the module as `engines`: inside the class body the field `engine` hides a module named `engine`):

    from tl_core import engine as engines
    engine: str = engines.engine_setting()
    address: str = engines.address_setting()
    ...
    engines.run_cells(cells, train_one, progress, should_stop, engine=cfg.engine, address=cfg.address)

Engine "local" is `contract.run_cells`, the one runner every experiment uses; this module depends on the
contract, never the other way round.

Neither is part of the recorded config: a grid gives the same cells wherever it runs.

The Ray engine (`run_cells_ray`) turns every cell into one Ray task. The experiment's `train_one` (a
closure over its config, its dataset and its device) is put into Ray's object store once per grid, and
each worker process unpickles it once and keeps it for every cell it runs, so the dataset is not re-read
or re-sent per task. Each cell seeds itself, so a cell gives the same numbers in a worker as in this
process. Cells arrive in any order: the outcome lists them in plan order, as the local engine does, and
`on_cell(cell, result)` sees each as it arrives (the run history keeps it at once). Stop cancels the
tasks not yet finished; a task that raised (or whose worker died) is retried once, then reported by name
while the other cells go on.

Without an address (and no $RAY_ADDRESS), Ray starts inside this process on this machine's cores, with
no dashboard and bound to 127.0.0.1; `shutdown()` (the CLI calls it on exit) stops what this module
started. With an address it joins that cluster and sends this copy of Transfer Lab (`tl_core` with its `assets/`)
along as Ray's working directory; the nodes need the same Python packages (requirements.txt).
"""
from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
from pathlib import Path

from tl_core import contract
from tl_core.contract import Cell, Outcome, setting
from tl_core.i18n import tr

ENGINES = {"local": "every cell in this process, one after another (the default)",
           "ray": "every cell as a Ray task: a local Ray started inside the command, or the cluster at --address"}
APP_ADDRESS = "TL_RAY_ADDRESS"      # the app's sweeps run on this Ray cluster when it is set
CPUS_PER_CELL = 1                   # each task's CPU share; its torch threads are limited to it
POLL_S = 0.2                        # how often Stop is checked while cells are running
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_NOT = ["artifacts", "tests", ".pytest_cache", "__pycache__", "*.sqlite"]


def engine_setting():
    return setting("local", "where the grid's cells run", choices=ENGINES, record=False)


def address_setting():
    return setting("", "a Ray cluster to join (ray://host:10001 or host:6379; default: $RAY_ADDRESS, else a local Ray)",
                   record=False)


def app_engine() -> tuple[str, str]:
    """(engine, address) for the app's sweeps: Ray at $TL_RAY_ADDRESS when it is set, else this process."""
    address = os.environ.get(APP_ADDRESS, "").strip()
    return ("ray", address) if address else ("local", "")


def describe(engine: str, address: str = "") -> str:
    """Where a grid runs, in words (the app's sidebar)."""
    if engine != "ray":
        return tr("this machine, one cell after another")
    return tr("Ray cluster at {address}", address=address) if address else tr("Ray on this machine's cores")


def run_cells(cells, train_one, progress=None, should_stop=None, epochs=0, span=(0.0, 1.0), keep_going=False,
              engine: str = "local", address: str = "", on_cell=None) -> Outcome:
    """A grid's cells on the engine its config names: "local", `contract.run_cells` (in this process, one after
    another); "ray", `run_cells_ray` (`train_one` must then be picklable and keep what it makes in its result: it
    runs in another process). The same Outcome, cell for cell, either way."""
    if engine == "ray":
        return run_cells_ray(cells, train_one, progress, should_stop, epochs, span, keep_going, address, on_cell)
    return contract.run_cells(cells, train_one, progress, should_stop, epochs=epochs, span=span, keep_going=keep_going,
                              on_cell=on_cell)


# ---- starting and stopping Ray ------------------------------------------------------------------------

_STARTED = {"by_us": False, "address": None}


class Unreachable(ValueError):
    """The Ray cluster named by --address (or $RAY_ADDRESS, $TL_RAY_ADDRESS) cannot be reached or started:
    a setting the user can fix, so the page shows it and the CLI exits 2 with this one line."""


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at host:port (Ray itself retries for long)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return                                   # "auto" and other forms: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise Unreachable(f"no Ray cluster answers at {address}: {err.strerror or err}") from None


def ray_module():
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray engine needs the `ray` package: pip install -r requirements.txt") from None
    return ray


def connect(address: str = "", cpus: int | None = None) -> None:
    """Join the Ray cluster at `address` (else $RAY_ADDRESS), or start Ray locally on `cpus` cores (default:
    all of this machine's). A Ray already started in this process (e.g. by a test) is used as it is."""
    ray = ray_module()
    address = address or os.environ.get("RAY_ADDRESS", "")
    if ray.is_initialized():
        if not _STARTED["by_us"] or not address or address in (_STARTED["address"], _gcs_address(ray)):
            return
    if address:
        _probe(address)
    if ray.is_initialized():
        shutdown()                              # this process joined another cluster before
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # offline: never phone home
    # Ray's token authentication stays on (it guards the local instance too); only its notice is quiet
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    common = {"log_to_driver": False, "configure_logging": True, "logging_level": "warning"}
    try:
        if address:  # the nodes get this copy of Transfer Lab (tl_core with its assets/, about 2 MB), not the venv
            ray.init(address=address, runtime_env={"working_dir": str(ROOT), "excludes": SHIPPED_NOT}, **common)
        else:
            ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False,
                     _node_ip_address="127.0.0.1", object_store_memory=512 * 2**20,
                     runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
                     **common)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError... : one line for the user
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise Unreachable(f"could not {where}: {first}") from None
    _STARTED.update(by_us=True, address=address)
    if not _STARTED.get("atexit"):
        _STARTED["atexit"] = atexit.register(shutdown)


def _gcs_address(ray) -> str:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # an older Ray without it: compare by the address given
        return ""


def running() -> bool:
    """Whether Ray is started in this process (without importing it: local runs never load Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


_BEFORE_SHUTDOWN: list = []   # what must stop using Ray first (a class server's event reader)


def before_shutdown(stop) -> None:
    """Call `stop()` before Ray shuts down: Ray ends the whole process when a thread still uses it afterwards."""
    _BEFORE_SHUTDOWN.append(stop)


def shutdown() -> None:
    """Stop the Ray this module started (a local one ends with its workers; a cluster is only left), once every
    user registered with `before_shutdown` has stopped using it."""
    while _BEFORE_SHUTDOWN:
        _BEFORE_SHUTDOWN.pop()()
    if _STARTED["by_us"]:
        _STARTED.update(by_us=False, address=None)
        ray_module().shutdown()


# ---- the Ray engine -----------------------------------------------------------------------------------

_WORKER_CACHE: dict = {}   # in a worker process: the grid's train_one, unpickled once per grid


def _run_cell(boxed, cell: Cell, threads: int):
    """One cell in a Ray worker. `boxed` is [ObjectRef of train_one]: inside a list Ray does not fetch it
    for us, so this worker fetches and unpickles it once and keeps it for the grid's next cells."""
    import ray
    import torch

    torch.set_num_threads(threads)
    key = boxed[0].hex()
    if key not in _WORKER_CACHE:
        _WORKER_CACHE.clear()               # an earlier grid's data
        _WORKER_CACHE[key] = ray.get(boxed[0])
    return _WORKER_CACHE[key](cell, lambda epoch, history: None, None)


_REMOTE = {}


def _remote():
    if "task" not in _REMOTE:
        # retries are ours (once, then the cell is reported by name): Ray's own are off
        _REMOTE["task"] = ray_module().remote(num_cpus=CPUS_PER_CELL, max_retries=0)(_run_cell)
    return _REMOTE["task"]


def _reason(err: BaseException) -> str:
    """One line: the exception a task raised (Ray wraps it), or what happened to its worker."""
    cause = getattr(err, "cause", None)
    err = cause if isinstance(cause, BaseException) else err
    text = (str(err).strip().splitlines() or [""])[-1 if cause is None else 0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _status(result) -> tuple[str, str]:
    history = getattr(result, "history", None)
    status = getattr(history, "status", None) or getattr(result, "status", "finished")
    return status, getattr(history, "message", "") or getattr(result, "message", "")


def run_cells_ray(cells, train_one, progress=None, should_stop=None, epochs=0, span=(0.0, 1.0),
                  keep_going=False, address="", on_cell=None) -> Outcome:
    """The Ray engine: the same Outcome as `contract.run_cells` (engine "local"), cell for cell.

    Progress moves as cells finish (`epochs` is not used: epochs run in the workers). A Stop cancels the
    outstanding tasks and keeps the finished cells ("stopped"). A diverged cell ends the grid the same way
    unless `keep_going`. A cell that raised is retried once; if it fails again it is left out and named in
    `Outcome.failed` and the message, the others go on, and the outcome is "failed"."""
    ray = ray_module()
    connect(address)
    task = _remote()
    boxed = [ray.put(train_one)]            # the closure and everything it holds, once per grid
    lo, hi = span
    n = len(cells)
    out = Outcome()
    results: dict[int, object] = {}
    failed: dict[int, str] = {}
    tries = {i: 0 for i in range(n)}
    pending = {}

    def submit(i: int) -> None:
        tries[i] += 1
        pending[task.remote(boxed, cells[i], CPUS_PER_CELL)] = i

    def cancel_all() -> None:
        for ref in pending:
            ray.cancel(ref)
        pending.clear()

    for i in range(n):
        submit(i)
    if progress is not None:
        progress(lo, f"{n} cell{'s' * (n != 1)} sent to Ray")
    while pending:
        if should_stop is not None and should_stop():
            out.status, out.message = "stopped", f"stopped by the user after {len(results)} of {n} runs"
            cancel_all()
            break
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
        for ref in ready:
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as err:
                if tries[i] < 2:
                    submit(i)
                else:
                    failed[i] = _reason(err)
                continue
            results[i] = result
            if on_cell is not None:
                on_cell(cells[i], result)
            if progress is not None:
                progress(lo + (hi - lo) * len(results) / max(n, 1), f"{cells[i].label}: done ({len(results)} of {n})")
            status, message = _status(result)
            if status != "finished" and out.status == "finished":
                out.status = status
                out.message = message if status == "stopped" else f"{cells[i].label}: {message}"
            if status != "finished" and not keep_going:
                cancel_all()
                break
    order = sorted(results)
    out.results, out.cells = [results[i] for i in order], [cells[i] for i in order]
    out.failed = [(cells[i].label, failed[i]) for i in sorted(failed)]
    if out.failed:
        named = "; ".join(f"{label} ({why})" for label, why in out.failed)
        failed = f"{len(out.failed)} of {n} cells failed twice and are left out: {named}"
        if out.status == "finished":
            out.status, out.message = "failed", failed
        else:
            out.message = f"{out.message}; {failed}"
    return out
