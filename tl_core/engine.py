"""Where a grid's cells run: one after another in this process (`local`), or as Ray tasks (`ray`).

A grid experiment's config declares the two settings below and passes them to `contract.run_cells`:

    engine: str = engine.engine_setting()
    address: str = engine.address_setting()
    ...
    contract.run_cells(cells, train_one, progress, should_stop, engine=cfg.engine, address=cfg.address)

Neither is part of the recorded config: a grid gives the same cells wherever it runs.
"""
from __future__ import annotations

from tl_core.contract import setting

ENGINES = {"local": "every cell in this process, one after another (the default)",
           "ray": "every cell as a Ray task: a local Ray started inside the command, or the cluster at --address"}


def engine_setting():
    return setting("local", "where the grid's cells run", choices=ENGINES, record=False)


def address_setting():
    return setting("", "a Ray cluster to join (ray://host:10001 or host:6379; default: $RAY_ADDRESS, else a local Ray)",
                   record=False)


def run_cells_ray(cells, train_one, progress=None, should_stop=None, epochs=0, span=(0.0, 1.0),
                  keep_going=False, address=""):
    """The Ray engine: the same Outcome as `contract.run_cells` with engine="local", cell for cell."""
    raise NotImplementedError("the Ray engine is not built yet")
