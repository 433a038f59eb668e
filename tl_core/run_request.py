"""A run, as a piece of data: which experiment, its recorded config, and the fingerprints of its inputs.

Every way to ask for a run builds a `RunRequest` and hands it to `tl_core.serve.submit` (a page's button, the
command line, the lecture); wherever the run then trains (this process, a worker process, a Ray task) it is
rebuilt from the request by `execute`, the one function that turns a request into a training: it looks the
experiment up in the registry, rebuilds the config from its record, rebuilds each input from its bytes with the
loader the experiment declares (`contract.Experiment.inputs`), and calls the experiment's `run`. No code crosses
a process boundary, only the request and the inputs' bytes.

A run's numbers depend on what it was asked and on the code that trains it. `RunRequest.identity()` names that,
with `code_version()` (a hash of tl_core's source files, computed once per process). The run history keeps each
run's identity, so a finished run is the answer to anyone asking for the same identity.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@functools.cache
def code_version() -> str:
    """A hash of tl_core's source files, once per process: runs trained by other code are other runs."""
    h = hashlib.sha256()
    for path in sorted(ROOT.rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def identity(kind: str, config: dict, data: str = "", owner: str = "", device: str = "auto") -> str:
    """What a run's numbers depend on, as one key: its kind, recorded config, dataset (`data`: e.g. the sha256
    of an upload's bytes; "" for a built-in dataset, which the config names), the kind of device it trains on
    (`trained_on`: a GPU's numbers are not a CPU's) and the code version. `owner`: the session a private run
    belongs to on a shared server, so that no other session's request is ever the same run (not followed, not
    shown), even for a file with the same bytes."""
    where = trained_on(device)
    text = json.dumps({"kind": kind, "config": config, "data": data, "code": code_version(),
                       **({"owner": owner} if owner else {}),
                       **({"device": where} if where != "cpu" else {})}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def trained_on(device: str = "auto") -> str:
    """The kind of device a run asked for this way trains on here ("auto" resolved: "cuda" on a GPU machine), as
    its identity names it: a GPU's result is never served as a CPU run's, and "auto" and "cpu" on a CPU-only
    machine are the same run. A device this machine lacks keeps its name (the run then says why it cannot)."""
    from tl_core import device as devices

    try:
        return devices.pick(device or "auto").type
    except ValueError:
        return str(device)


def plain(obj):
    """JSON's view of a recorded config (tuples as lists, everything else as text): what the history keeps."""
    return json.loads(json.dumps(obj, default=str))


@dataclass(frozen=True)
class RunRequest:
    """One run asked for. `experiment`: a registered name (`tl_core.experiments`); `config`: its config as the
    history records it (`contract.record`, plus what the config cannot say, e.g. where loaded weights came from);
    `inputs`: name → fingerprint of each input that is not in the config (an upload; its bytes travel beside the
    request); `owner`: the session whose private run it is on a shared server; `device`: as the CLI's --device;
    `one_thread`: train on one CPU thread (the lecture's small steps; the same numbers)."""
    experiment: str
    config: dict
    inputs: dict = field(default_factory=dict)
    owner: str = ""
    device: str = "auto"
    one_thread: bool = False
    how: dict = field(default_factory=dict)   # settings the history does not record (where a grid runs: --engine
                                              # ray, --address): they change no number, so not the identity

    @classmethod
    def of(cls, experiment: str, cfg, extra: dict | None = None, **kwargs) -> RunRequest:
        """The request for a config object (validated: a setting out of range raises ValueError here)."""
        from tl_core import contract

        contract.validate(cfg)
        resolved = contract.resolved(cfg)
        how = {s.name: getattr(resolved, s.name) for s in contract.settings(resolved) if not s.record}
        return cls(experiment, plain({**contract.record(cfg), **(extra or {})}), how=plain(how), **kwargs)

    def data(self) -> str:
        """The inputs' fingerprints as one string ("" when the config names all the data)."""
        return "; ".join(f"{k}={v}" for k, v in sorted(self.inputs.items()))

    def identity(self) -> str:
        return identity(self.experiment, self.config, self.data(), self.owner, self.device)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> RunRequest:
        return cls(**obj)


def experiment_of(request: RunRequest, module: str | None = None):
    """The registered Experiment a request names (`module`: where it is declared, when a worker is told)."""
    from tl_core import experiments

    exp = experiments.command(request.experiment, module)
    if not exp.trains():
        raise ValueError(f"{request.experiment} is a tool, not an experiment that trains")
    return exp


def execute(request: RunRequest, blobs: dict | None = None, progress=None, should_stop=None,
            module: str | None = None):
    """Train the run a request describes and return its result: the experiment's config rebuilt from the record,
    each input rebuilt from its bytes (`blobs`: name → bytes) by the experiment's loader, then its `run`. A bad
    setting or a missing input raises ValueError, saying which."""
    from tl_core import contract
    from tl_core import device as devices

    exp = experiment_of(request, module)
    cfg = contract.from_record(exp.config, {**request.config, **request.how})
    contract.validate(cfg)
    kwargs: dict = {}
    for name in request.inputs:
        load = exp.inputs.get(name)
        if load is None:
            raise ValueError(f"{request.experiment} takes no input named {name!r}")
        blob = (blobs or {}).get(name)
        if blob is None:
            raise ValueError(f"the run's input {name!r} is not here (it is read again from its upload)")
        kwargs.update(load(blob, cfg, request.config))
    run = functools.partial(exp.run, cfg, progress=progress, should_stop=should_stop, device=request.device,
                            **kwargs)
    if request.one_thread:
        with devices.one_cpu_thread(devices.pick(request.device)):
            return run()
    return run()
