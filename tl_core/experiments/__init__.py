"""Transfer Lab's experiments, one module each, every one declared through `tl_core.contract`.

COMMANDS says which module declares each command, so that `python -m tl_core toy` imports the toy alone
(not the text encoder's libraries, nor the lab's); EXPERIMENTS (name → Experiment, every command) is what
`--help` and the tests loop over. The pages import the modules themselves.
"""
import importlib

COMMANDS = {
    "toy": "tl_core.experiments.toy",
    "finetune": "tl_core.experiments.finetune",
    "sweep": "tl_core.experiments.finetune",
    "predict": "tl_core.experiments.finetune",
    "ssl": "tl_core.experiments.selfsup",
    "inspect": "tl_core.experiments.workshop",
    "load": "tl_core.experiments.workshop",
    "gtl": "tl_core.experiments.gtl",
    "gtl-sweep": "tl_core.experiments.gtl_sweep",
    "pretrain": "tl_core.experiments.pretrain",
    "layers": "tl_core.experiments.layers",
    "domains": "tl_core.experiments.domains",
    "text": "tl_core.experiments.text",
    "text-sweep": "tl_core.experiments.text",
    "lecture": "tl_core.lecture",   # the lecture's tool: it runs the experiments above, step by step
}


def command(name: str):
    """The Experiment behind a command, importing only the module that declares it."""
    module = importlib.import_module(COMMANDS[name])
    return next(e for e in module.EXPERIMENTS if e.name == name)


def __getattr__(name: str):
    if name == "EXPERIMENTS":
        return {n: command(n) for n in COMMANDS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
