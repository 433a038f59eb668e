"""Transfer Lab's experiments, one module each, every one declared through `tl_core.contract`.

COMMANDS (command → the module that declares it) is read from the modules' source, every
`contract.Experiment("name", ...)` in them (a pattern search: no import, a few milliseconds): so that
`python -m tl_core toy` imports the toy alone (not the text encoder's libraries, nor the lab's). EXPERIMENTS
(name → Experiment, every command) is what `--help` and the tests loop over. The pages import the modules themselves.
"""
import importlib
import re
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCES = [*sorted(p for p in _HERE.glob("*.py") if p.name != "__init__.py"), _HERE.parent / "lecture.py"]


_DECLARED = re.compile(r"\bExperiment\(\s*\"([\w-]+)\"")


def _declared() -> dict[str, str]:
    out = {}
    for path in _SOURCES:
        module = ("tl_core.experiments." if path.parent == _HERE else "tl_core.") + path.stem
        out.update({name: module for name in _DECLARED.findall(path.read_text(encoding="utf-8"))})
    return out


COMMANDS = _declared()


def command(name: str):
    """The Experiment behind a command, importing only the module that declares it."""
    module = importlib.import_module(COMMANDS[name])
    return next(e for e in module.EXPERIMENTS if e.name == name)


def __getattr__(name: str):
    if name == "EXPERIMENTS":
        return {n: command(n) for n in COMMANDS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
