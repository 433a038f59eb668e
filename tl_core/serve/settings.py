"""Where a class's runs train and what one session may ask for, read from the environment.

`TL_WORKERS` unset → in this process, one at a time (a laptop). `TL_WORKERS=N` → up to N runs at once, each in a
worker process. With `TL_RAY_ADDRESS` set → as Ray tasks on that cluster. `shared()`: whether a class shares this
server (each session's uploads and runs on them are then its own); `admin()`: the teacher's token.
"""
from __future__ import annotations

import os
import sys

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
POLL_S = 0.25

# ---- where runs train ------------------------------------------------------------------------------------

def int_env(name: str) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None


def workers() -> int:
    """TL_WORKERS: runs at once in worker processes (0: in this process, one at a time)."""
    return int_env(WORKERS)


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



class Refused(ValueError):
    """A shared server's limit on one session's runs (how many at once, how long one run) said in one line."""


def session_limits() -> tuple[int, float]:
    """(runs one session may have queued or training at once, the longest run in seconds) on a shared server."""
    runs = int_env(SESSION_RUNS) or 2
    minutes = int_env(RUN_MINUTES) or 20
    return runs, minutes * 60.0

