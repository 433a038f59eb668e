"""Serving runs: one way to ask for a run, an identical run trains once, the queue is visible, a class's server
uses its cores.

A run is asked for as data (`tl_core.run_request.RunRequest`: experiment, recorded config, the inputs'
fingerprints) through one function, `submit`: a page's button submits to this process's `Server`; the command
line and the lecture submit with `here=True`, to a server that trains it in their own thread. Every path records
the run in the history the same way (running when asked, then finished, stopped or failed) and rebuilds it from
the request (`run_request.execute`), in this process or in a worker.

One topic per module:
- `settings`: where runs train and what one session may ask for, from the environment;
- `scheduler`: the `Server` (runs in flight by identity, the queue, recent results) and `submit`;
- `executors`: this process, worker processes, Ray; the worker side;
- `estimates`: how long a run will take, from each experiment's declared cost;
- `progress`: what a run reports while it trains;
- `kept`: finished results kept beside the history.
"""
from tl_core.run_request import RunRequest, code_version, identity
from tl_core.serve.estimates import about, cost, estimate, references, units
from tl_core.serve.kept import Entry
from tl_core.serve.progress import Progress, by_cost
from tl_core.serve.scheduler import Job, Server, describe, server, submit, use
from tl_core.serve.settings import (
                                    ADDRESS,
                                    ADMIN,
                                    CACHE,
                                    CACHE_MB,
                                    POLL_S,
                                    RAY,
                                    RUN_MINUTES,
                                    SESSION_RUNS,
                                    SHARED,
                                    WORKER_THREADS,
                                    WORKERS,
                                    Refused,
                                    admin,
                                    ray_address,
                                    session_limits,
                                    shared,
                                    teacher,
                                    workers,
)

__all__ = ["ADDRESS", "ADMIN", "CACHE", "CACHE_MB", "POLL_S", "RAY", "RUN_MINUTES", "SESSION_RUNS", "SHARED",
           "WORKER_THREADS", "WORKERS", "Entry", "Job", "Progress", "Refused", "RunRequest", "Server", "about",
           "admin", "by_cost", "code_version", "cost", "describe", "estimate", "identity", "ray_address", "references",
           "server", "session_limits", "shared", "submit", "teacher", "units", "use", "workers"]
