"""Transfer Lab's experiments, one module each, every one declared through `tl_core.contract.Experiment`.

MODULES is the registry: each experiment module and the names it declares (the module's `EXPERIMENTS`). It is the
one table a new experiment adds a line to; `tests/test_contract.py` checks that it and the modules agree, so a
name cannot be missing here or declared twice. Looking a name up imports its module alone: `transfer-lab toy`
starts without the text encoder's libraries or the lab's. EXPERIMENTS (name → Experiment, every name) is what
`--help`, the estimate and the tests loop over; it imports every module.

`register(module)` adds a module that lives outside tl_core (a test's fake experiment); a run request sent to a
worker process names its module, so the worker imports it the same way.
"""
from __future__ import annotations

import importlib

MODULES: dict[str, tuple[str, ...]] = {
    "tl_core.experiments.toy": ("toy",),
    "tl_core.experiments.finetune": ("finetune", "sweep", "own", "continue", "predict"),
    "tl_core.experiments.layers": ("layers",),
    "tl_core.experiments.inside": ("inside",),
    "tl_core.experiments.domains": ("domains",),
    "tl_core.experiments.peft": ("peft",),
    "tl_core.experiments.selfsup": ("ssl",),
    "tl_core.experiments.gtl": ("gtl",),
    "tl_core.experiments.gtl_sweep": ("gtl-sweep",),
    "tl_core.experiments.lr_find": ("lr-find",),
    "tl_core.experiments.text": ("text", "text-sweep"),
    "tl_core.experiments.lm": ("lm-next", "lm"),
    "tl_core.experiments.lm_pretrain": ("lm-pretrain",),
    "tl_core.experiments.audio": ("audio", "audio-own", "audio-predict"),
    "tl_core.experiments.audio_shift": ("audio-shift",),
    "tl_core.experiments.workshop": ("inspect", "load"),
    "tl_core.experiments.pretrain": ("pretrain",),
    "tl_core.lecture_cli": ("lecture",),
}

COMMANDS: dict[str, str] = {name: module for module, names in MODULES.items() for name in names}


def register(module: str) -> None:
    """Add the experiments a module outside this registry declares (its `EXPERIMENTS`), in this process."""
    declared = tuple(e.name for e in importlib.import_module(module).EXPERIMENTS)
    MODULES[module] = declared
    COMMANDS.update({name: module for name in declared})


def module_of(name: str) -> str:
    """The module that declares `name`; ValueError, saying which names exist, for an unknown one."""
    try:
        return COMMANDS[name]
    except KeyError:
        raise ValueError(f"unknown experiment {name!r}: one of {', '.join(sorted(COMMANDS))}") from None


def command(name: str, module: str | None = None):
    """The Experiment behind a name, importing only the module that declares it (`module`: a worker process is
    told which)."""
    found = importlib.import_module(module or module_of(name))
    return next(e for e in found.EXPERIMENTS if e.name == name)


def __getattr__(name: str):
    if name == "EXPERIMENTS":
        return {n: command(n) for n in COMMANDS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
