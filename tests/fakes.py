"""Fake experiments for the serving tests: declared like a real one (a config, a run, a result), registered with
`tl_core.experiments.register`, so a test asks for a run the way a page does (a run request, `serve.submit`) and a
worker process rebuilds it from the request. `fake` sleeps through its steps, reporting progress and checking
Stop; `fake-private` is declared private (trained on an upload: its input `init` is a few bytes)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from tl_core import contract, experiments
from tl_core.contract import setting
from tl_core.run_request import RunRequest
from tl_core.serve.estimates import units

CALLS: list = []   # every run that trained in this process: its config (a test clears it first)


@dataclass(frozen=True)
class FakeConfig:
    steps: int = setting(20, "steps, each a pause", lo=1)
    pause: float = setting(0.02, "seconds per step", lo=0.0, hi=10.0)
    value: float = setting(1.0, "the number the run reports")
    fail: str = setting("", "fail at the end with this message (\"\": finish)")
    n: int = setting(0, "a tag: runs that differ only by it are different runs")
    curve: int = setting(0, "points in its curve (a large result needs new pages in the history)", lo=0)


@dataclass
class Done(contract.Result):
    config: dict
    value: float = 1.0
    weights: torch.Tensor | None = None
    curve: list = None
    kind = "fake"
    headline = "value"

    def body(self) -> dict:
        return {"value": self.value}

    def to_json(self) -> dict:
        return {"config": self.config, "value": self.value, "status": self.status, "seconds": self.seconds,
                **({"curve": self.curve} if self.curve else {})}

    def metrics(self) -> dict:
        return {"value": self.value}

    def curves(self) -> dict:
        return {"curve": list(self.curve or [])}


def run(cfg: FakeConfig, progress=None, should_stop=None, device: str = "auto", init: bytes | None = None) -> Done:
    CALLS.append(cfg)
    record = contract.record(cfg)
    weights = torch.full((4,), cfg.value)
    for i in range(cfg.steps):
        if should_stop is not None and should_stop():
            return Done(record, cfg.value, weights, status="stopped", message=f"stopped after {i} steps")
        if progress is not None:
            progress((i + 1) / cfg.steps, f"step {i + 1}/{cfg.steps}")
        time.sleep(cfg.pause)
    if cfg.fail:
        raise RuntimeError(cfg.fail)
    return Done(record, cfg.value, weights, [cfg.value] * cfg.curve, seconds=cfg.steps * cfg.pause)


def _bytes(blob: bytes, cfg, record) -> dict:
    return {"init": blob}


EXPERIMENTS = (
    contract.Experiment("fake", "a fake run of a few steps", FakeConfig, run, page="toy", plots="toy",
                        cost=lambda c: units(1, c["steps"])),
    contract.Experiment("fake-private", "a fake run on an upload", FakeConfig, run, page="toy", plots="toy",
                        private=True, cost=lambda c: units(1, c["steps"]), inputs={"init": _bytes}),
)
experiments.register(__name__)


def request(kind: str = "fake", owner: str = "", digest: str = "", **settings) -> RunRequest:
    """The request for a fake run with these settings (`digest`: the fingerprint of a private run's upload)."""
    return RunRequest.of(kind, FakeConfig(**settings), inputs={"init": f"sha256:{digest}"} if digest else {},
                         owner=owner)


def count_trainings(monkeypatch, experiment: str = "") -> list:
    """Every run this process trains from here on (of `experiment`, or of any): the list of their configs, as the
    run request recorded them (`run_request.execute` is where every run starts training)."""
    from tl_core import run_request

    seen, real = [], run_request.execute

    def execute(request, *args, **kwargs):
        if not experiment or request.experiment == experiment:
            seen.append(request.config)
        return real(request, *args, **kwargs)
    monkeypatch.setattr(run_request, "execute", execute)
    return seen
