"""The experiment contract: what every Transfer Lab experiment is made of, written once.

An experiment is
- a **config**: a frozen dataclass whose fields are declared with `setting(...)`, so each carries its
  type, range or choices and help text. From these come the CLI flags (`add_flags`, `from_args`),
  the validation (`validate`: one line saying what is wrong), the page widgets' ranges and help, and
  the config the run history records (`record`: the same dict from a page and from the CLI);
- a **run** function `run(cfg, progress=None, should_stop=None, device="auto", **inputs) -> Result`
  whose seeds × conditions go through the one runner (`run_cells`);
- a **Result** that names its metrics, curves and verdict, so the store and the Runs page read them
  instead of guessing from key names.

`Experiment` ties the three together for the CLI (`tl_core.cli` is a loop over
`tl_core.experiments.COMMANDS`) and for the pages' Train/Stop/record helper.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from tl_core.i18n import N_, fmt, tr

Progress = Callable[[float, str], None]
Stop = Callable[[], bool]


# ---- settings: a config field that knows its type, range, choices and help ------------------------

def setting(default, help: str, *, choices=None, lo=None, hi=None, label: str = "", flag: str = "",
            record: bool = True, cli: bool = True, check: Callable[[Any], str] | None = None,
            title: str = "", steps: tuple | None = None, span: tuple | None = None):
    """A config field. choices: the allowed values (a dict's keys, with the dict's values as their help);
    lo/hi: the inclusive range of a number (or of each number in a tuple); label: how messages name it
    (default: the flag without dashes); flag: the CLI flag (default: --name-with-dashes); record: part of
    the recorded config; cli: a CLI flag at all; check(value) -> "" or what is wrong (beyond range).
    The page widget (`app_pages.ui.widget`) reads: title (its label), steps (the values a page offers, e.g.
    learning rates 1e-4 … 3e-2; a slider over them) or span ((lo, hi) or (lo, hi, step): a slider narrower
    than the range the CLI accepts)."""
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None,
            "choice_help": dict(choices) if isinstance(choices, dict) else {}, "lo": lo, "hi": hi,
            "label": label, "flag": flag, "record": record, "cli": cli, "check": check,
            "title": title, "steps": steps, "span": span}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a list setting (configs are frozen and hashable)")
    return field(default=default, metadata=meta)


ALL = "all"  # how "None" is spelt for an optional count, e.g. shots: all that are left


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Any            # int, float, str or bool: the type of the value, or of each item of a tuple
    many: bool           # a tuple of `kind`
    optional: bool       # None allowed (spelt "all" on the CLI)
    default: Any
    help: str
    choices: tuple | None
    choice_help: dict
    lo: float | None
    hi: float | None
    label: str
    flag: str
    record: bool
    cli: bool
    check: Callable[[Any], str] | None
    title: str = ""              # the page widget's label
    steps: tuple | None = None   # the values a page widget offers
    span: tuple | None = None    # a page slider's (lo, hi[, step])

    def problem(self, value) -> str:
        """What is wrong with `value` for this setting, or ""."""
        items = value if self.many else (value,)
        if self.many and not isinstance(value, tuple):
            return tr("{label} must be a list, got {value}", label=self.label, value=repr(value))
        for v in items:
            if v is None and self.optional:
                continue
            if not _is(v, self.kind):
                return tr("{label} must be {kind}, got {value}", label=self.label, kind=tr(_kind_name(self.kind)),
                          value=repr(v))
            if self.kind is float and not math.isfinite(v):
                return tr("{label} must be a finite number, got {value}", label=self.label, value=v)
            if self.choices is not None and v not in self.choices:
                return tr("{label} must be one of {choices}, got {value}", label=self.label,
                          choices=", ".join(map(str, self.choices)), value=repr(v))
            if self.lo is not None and self.hi is not None and not self.lo <= v <= self.hi:
                return tr("{label} must be between {lo} and {hi}, got {value}", label=self.label,
                          lo=fmt(self.lo, "g"), hi=fmt(self.hi, "g"), value=fmt(v, "g"))
            if self.lo is not None and self.hi is None and v < self.lo:
                return tr("{label} must be {lo} or more, got {value}", label=self.label, lo=fmt(self.lo, "g"),
                          value=fmt(v, "g"))
        return self.check(value) if self.check else ""

    def parse(self, text: str):
        """A CLI value: comma-separated for a tuple, "all" for None."""
        if self.many:
            return tuple(self._one(t.strip()) for t in text.split(",") if t.strip())
        return self._one(text)

    def _one(self, text: str):
        if self.optional and text == ALL:
            return None
        if self.kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise argparse.ArgumentTypeError(tr("{label} must be {kind}, got {value}", label=self.label,
                                                kind=tr(_kind_name(bool)), value=repr(text)))
        try:
            return self.kind(text)
        except ValueError:
            kind = tr(_kind_name(self.kind))
            spelled = tr("{kind} or {all}", kind=kind, all=ALL) if self.optional else kind
            raise argparse.ArgumentTypeError(tr("{label} must be {kind}, got {value}", label=self.label, kind=spelled,
                                                value=repr(text))) from None

    def text(self, value) -> str:
        """The CLI spelling of a value (for help texts and links)."""
        if self.many:
            return ",".join(self.text_one(v) for v in value)
        return self.text_one(value)

    def text_one(self, v) -> str:
        return ALL if v is None else str(v)


def _is(v, kind) -> bool:
    if kind is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind is int:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    return isinstance(v, kind)


def _kind_name(kind) -> str:
    """The kind's name in English (marked for the catalogue: `tr` it where it is shown)."""
    return {int: N_("a whole number"), float: N_("a number"), str: N_("text"),
            bool: N_("true or false")}.get(kind, str(kind))


def _unpack(hint) -> tuple[Any, bool, bool]:
    """(item type, many, optional) of a field's annotation: int, int | None, tuple[str, ...], ..."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = len(args) < len(typing.get_args(hint)), args[0]
        origin = typing.get_origin(hint)
    if origin is tuple:
        kind, many, inner_optional = _unpack(typing.get_args(hint)[0])
        return kind, True, optional or inner_optional
    return hint, False, optional


_SETTINGS: dict[type, tuple[Setting, ...]] = {}


def settings(cls_or_cfg) -> tuple[Setting, ...]:
    """The declared settings of a config class (or instance), in field order."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    if cls not in _SETTINGS:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if "help" not in f.metadata:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting(...)")
            kind, many, optional = _unpack(hints[f.name])
            m = f.metadata
            out.append(Setting(f.name, kind, many, optional, f.default, m["help"], m["choices"], m["choice_help"],
                               m["lo"], m["hi"], m["label"] or f.name.replace("_", "-"),
                               m["flag"] or "--" + f.name.replace("_", "-"), m["record"], m["cli"], m["check"],
                               m.get("title", ""), m.get("steps"), m.get("span")))
        _SETTINGS[cls] = tuple(out)
    return _SETTINGS[cls]


def spec(cls_or_cfg, name: str) -> Setting:
    return next(s for s in settings(cls_or_cfg) if s.name == name)


def validate(cfg) -> None:
    """Every setting in its type, range and choices, then the config's own cross-field `check()`; the
    first problem raises ValueError with one line."""
    for s in settings(cfg):
        problem = s.problem(getattr(cfg, s.name))
        if problem:
            raise ValueError(problem)
    extra = getattr(cfg, "check", None)
    if extra is not None:
        extra()


def resolved(cfg):
    """The config as it runs and is recorded: its own `resolve()` (e.g. freeze 'all' → a stage count), if any."""
    resolve = getattr(cfg, "resolve", None)
    return resolve() if resolve is not None else cfg


def record(cfg) -> dict:
    """The config the run history keeps: recorded settings, tuples as lists; the same from page and CLI."""
    cfg = resolved(cfg)
    return {s.name: list(getattr(cfg, s.name)) if s.many else getattr(cfg, s.name)
            for s in settings(cfg) if s.record}


def from_record(cls, recorded: dict):
    """The config a recorded dict describes (its lists as tuples again); what it lacks keeps the default."""
    values = {s.name: tuple(recorded[s.name]) if s.many and isinstance(recorded[s.name], list) else recorded[s.name]
              for s in settings(cls) if s.name in recorded}
    return cls(**values)


def add_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One CLI flag per setting. Flags left out keep the dataclass default (argparse.SUPPRESS), so
    `from_args` knows which were given."""
    for s in settings(cls):
        if not s.cli:
            continue
        helps = [s.help]
        if s.choice_help:
            helps.append("; ".join(f"{k}: {v}" for k, v in s.choice_help.items()))
        if s.lo is not None and s.hi is not None:
            helps.append(f"{s.lo:g}-{s.hi:g}")
        if s.default not in ((), ""):
            helps.append(f"default {s.text(s.default) if s.default is not None or s.optional else 'none'}")
        text = " · ".join(h for h in helps if h).replace("%", "%%")
        if s.kind is bool and not s.many:
            on = s.flag
            off = "--no-" + s.flag[2:]
            group = parser.add_mutually_exclusive_group()
            group.add_argument(on, dest=s.name, action="store_true", default=argparse.SUPPRESS, help=text)
            group.add_argument(off, dest=s.name, action="store_false", default=argparse.SUPPRESS,
                               help=f"the opposite of {on}")
            continue
        choices = s.choices if (s.choices is not None and not s.many and s.kind is str) else None
        parser.add_argument(s.flag, dest=s.name, type=s.parse, choices=choices, default=argparse.SUPPRESS,
                            metavar=None if choices else s.name.upper(), help=text)


def given(args: argparse.Namespace, cls) -> dict:
    """The settings given on the command line."""
    return {s.name: getattr(args, s.name) for s in settings(cls) if hasattr(args, s.name)}


def from_args(cls, args: argparse.Namespace, **overrides):
    """The config the command line asked for: defaults, then the given flags, then `overrides`."""
    return cls(**{**given(args, cls), **overrides})


# ---- results: what a run says about itself ---------------------------------------------------------

class Verdict(NamedTuple):
    kind: str    # a claim's kind (helped | hurt | tie | single), mixed, unfit, stopped, diverged, ...
    text: str    # one honest sentence, whichever way it goes


@dataclass(kw_only=True)
class Result:
    """What every experiment returns. A subclass (a dataclass) sets `kind` and `headline`, holds its `config`, and
    gives `body()` (its own JSON keys), `metrics()`, `curves()` and `verdict()`; what every result shares is here:
    how the run ended, where and how long it ran, and the JSON around the body."""
    status: str = "finished"   # finished | stopped | diverged | failed
    message: str = ""          # why it ended early, in words
    device: str = ""           # where it trained, in words
    seconds: float = 0.0
    kind = ""                  # the experiment's name: store kind and CLI command
    headline = ""              # the metric a list of runs shows for this run

    def body(self) -> dict:
        """The experiment's own JSON keys (numbers, curves, `claim`)."""
        return {}

    def to_json(self) -> dict:
        """The run as JSON: the experiment, its recorded config, its body, the verdict and how the run ended."""
        kind, sentence = self.verdict()
        config = getattr(self, "config", None)
        return {"experiment": self.kind, "config": record(config) if config is not None else {}, **self.body(),
                "verdict": sentence, "verdict_kind": kind, "status": self.status, "message": self.message,
                "device": self.device, "seconds": round(self.seconds, 3)}

    def metrics(self) -> dict[str, float]:
        """Named final numbers (dotted names), finite floats only."""
        return {}

    def curves(self) -> dict[str, list]:
        """Named per-epoch series (dotted names); per-seed curves as their mean."""
        return {}

    def verdict(self) -> Verdict:
        return Verdict("single", "")

    def ended_early(self) -> Verdict:
        """The verdict of a run that did not finish (stopped, diverged, failed), in its own words."""
        return Verdict(self.status, self.message or tr("The run ended early ({status}).", status=self.status))

    def record(self) -> dict:
        """What the run history stores: the whole JSON (with what the CLI added, e.g. exported files), plus
        the named metrics and curves."""
        out = {**self.to_json(), **getattr(self, "extras", {})}
        metrics = {k: float(v) for k, v in self.metrics().items() if _finite(v)}
        return {"json": out, "metrics": metrics, "curves": self.curves(), "headline": self.headline,
                "status": self.status, "message": self.message, "device": self.device, "seconds": self.seconds}


class ConditionsResult(Result):
    """A Result of conditions over seeds. A subclass gives `ran()` (the conditions that ran, in order),
    `runs_of(condition)` (that condition's runs, one per seed, each with a `history`) and
    `summary(condition)` (its `val_acc`, `val_acc_std`, `train_acc`); the metrics and curves the history
    keeps follow from these, the first condition's numbers also at the top level."""
    CURVES = ("val_acc", "val_loss", "train_acc", "train_loss")   # in the order a comparison reads them

    def metrics(self) -> dict[str, float]:
        out = {}
        for i, c in enumerate(self.ran()):
            s = self.summary(c)
            if i == 0:
                out.update(val_acc=s["val_acc"], val_acc_std=s["val_acc_std"], train_acc=s["train_acc"])
            out.update({f"conditions.{c}.{k}": s[k] for k in ("val_acc", "val_acc_std", "train_acc")})
        return out

    def curves(self) -> dict[str, list]:
        return {f"conditions.{c}.history.{k}": mean_curve([getattr(r.history, k) for r in self.runs_of(c)])
                for k in self.CURVES for c in self.ran()}


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)


# ---- the one runner for seeds × conditions ---------------------------------------------------------

class Stopped(Exception):
    """Stop was asked while a run was preparing (e.g. caching frozen features), before its first epoch."""


@dataclass(frozen=True)
class Cell:
    """One unit of a plan: a condition and a seed (plus whatever else varies, e.g. shots)."""
    condition: str
    seed: int
    extra: tuple = ()        # (name, value) pairs: e.g. (("shots", 5), ("freeze", "9"))

    def __getitem__(self, name: str):
        return dict(self.extra)[name]

    @property
    def label(self) -> str:
        parts = [self.condition.replace("_", " "), f"seed {self.seed}"]
        return ", ".join(parts + [f"{k} {v if v is not None else ALL}" for k, v in self.extra])


@dataclass
class Outcome:
    """What `run_cells` gives back: one result per cell that ran, and how the plan ended."""
    results: list = field(default_factory=list)
    cells: list = field(default_factory=list)
    status: str = "finished"   # finished | stopped | diverged | failed (engine "ray": cells that raised twice)
    message: str = ""
    failed: list = field(default_factory=list)   # (cell label, reason) of each cell that failed (engine "ray")


def plan(conditions, seeds: int, first_seed: int = 0, **varying) -> list[Cell]:
    """Every condition × seed (× every value of each `varying` list), seeds outermost per condition."""
    cells = [Cell(c, first_seed + s) for c in conditions for s in range(seeds)]
    for name, values in varying.items():
        cells = [dataclasses.replace(cell, extra=cell.extra + ((name, v),)) for cell in cells for v in values]
    return cells


def run_cells(cells: list[Cell], train_one: Callable, progress: Progress | None = None,
              should_stop: Stop | None = None, epochs: int = 0, span: tuple[float, float] = (0.0, 1.0),
              keep_going: bool = False, on_cell: Callable | None = None) -> Outcome:
    """Train every cell in order, in this process (a grid that may run on Ray calls `tl_core.engine.run_cells`,
    which comes here for engine "local"): `train_one(cell, on_epoch, should_stop)` returns the cell's result, which
    has a `history` (train.History) or a `status`. Progress goes from span[0] to span[1], per epoch when `epochs` is
    given; Stop is checked before every cell and passed to the training loop, which checks it every epoch. The plan
    ends at the first cell that did not finish (stopped or diverged), or, with `keep_going`, goes on past a diverged
    cell (the outcome still says "diverged"). `on_cell(cell, result)` sees each finished cell as it arrives."""
    out = Outcome()
    lo, hi = span
    n = max(len(cells), 1)

    def report(i: int, done: float, text: str) -> None:
        if progress is not None:
            progress(lo + (hi - lo) * (i + done) / n, text)

    for i, cell in enumerate(cells):
        if should_stop is not None and should_stop():
            out.status, out.message = "stopped", f"stopped by the user after {i} of {len(cells)} runs"
            break

        def on_epoch(epoch, hist, i=i, cell=cell):
            if epochs:
                report(i, min((epoch + 1) / epochs, 1.0), f"{cell.label}: epoch {epoch + 1}/{epochs}")

        try:
            result = train_one(cell, on_epoch, should_stop)
        except Stopped as stop:
            out.status, out.message = "stopped", f"{stop} (run {i + 1} of {len(cells)}, {cell.label})"
            break
        out.results.append(result)
        out.cells.append(cell)
        if on_cell is not None:  # e.g. the run history keeping each finished cell at once
            on_cell(cell, result)
        report(i, 1.0, f"{cell.label}: done")
        history = getattr(result, "history", None)
        status = getattr(history, "status", None) or getattr(result, "status", "finished")
        if status != "finished" and out.status != "diverged":
            out.status = status
            out.message = getattr(history, "message", "") or getattr(result, "message", "")
            if status == "stopped" and not out.message:
                out.message = f"stopped by the user in run {i + 1} of {len(cells)} ({cell.label})"
            elif status != "stopped":
                out.message = f"{cell.label}: {out.message}"
        if status == "stopped" or (status != "finished" and not keep_going):
            break
    return out


def seed_stats(values) -> dict:
    """Mean, standard deviation and per-seed values of one number measured over seeds."""
    vals = [float(v) for v in values]
    return {"mean": float(np.mean(vals)) if vals else float("nan"),
            "std": float(np.std(vals)) if vals else float("nan"), "seeds": vals}


def mean_curve(curves: list[list]) -> list[float]:
    """The seeds' mean of per-epoch curves (cut to the shortest, e.g. after a Stop)."""
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [float(np.mean([c[i] for c in curves])) for i in range(n)]


# ---- an experiment -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """A CLI argument that is not a setting: a file to read or write. A flag without dashes is positional."""
    flag: str
    help: str
    default: Any = None
    type: Callable = str
    nargs: str | None = None
    required: bool = False

    def add(self, parser: argparse.ArgumentParser) -> None:
        kwargs = {"help": self.help, "type": self.type}
        if self.nargs:
            kwargs["nargs"] = self.nargs
        if self.flag.startswith("-"):
            kwargs.update(default=self.default, required=self.required)
        parser.add_argument(self.flag, **kwargs)


@dataclass(frozen=True)
class Experiment:
    """An experiment (or a tool): everything Transfer Lab keeps about it, declared in its module.

    Experiments: `run(cfg, progress=, should_stop=, device=, **inputs) -> Result`. `prepare(args, cfg)`
    returns (cfg, inputs) from the extra `options` (e.g. read a zip of images); `after(args, result)`
    writes what the options ask for and returns extra JSON keys (e.g. the exported files); `text(result,
    out)` is the human summary printed without --json. A tool (inspect, load, predict, pretrain) has no
    config and its own `main(args) -> exit code`.

    What the app needs of it, declared here rather than in tables elsewhere:
    - `page`: the path (`tl_core/pages.toml`) of the page whose button asks for it; `plots`: the module in
      `tl_core/plots/` that draws its JSON;
    - `live`: the page draws its validation curves while it trains;
    - `private`: it trains on a user's upload, so on a shared server a run is its session's alone;
    - `cost(record) -> units`: what the estimate scales (seconds = units × a rate measured on this machine),
      and `rate_of`: the experiment whose rate it borrows until it has runs of its own (own images use the
      lab's trainer); `reference`: seconds per unit on the reference laptop, for a first run anywhere;
    - `inputs`: what a run takes beyond its config (an upload), each `name: load(blob, cfg, record) -> run
      keyword arguments`, so that a run request (config + the inputs' fingerprints and bytes) rebuilds the
      run anywhere, in a worker process too (`tl_core.run_request`);
    - `narrate(out) -> Verdict`: what a lecture step on it says of its run's JSON (default: its verdict)."""
    name: str
    help: str
    config: type | None = None
    run: Callable[..., Any] | None = None
    options: tuple[Option, ...] = ()
    prepare: Callable[[argparse.Namespace, Any], tuple[Any, dict]] | None = None
    after: Callable[[argparse.Namespace, Any], dict] | None = None
    text: Callable[[Any, dict], str] | None = None
    main: Callable[[argparse.Namespace], int] | None = None
    recorded: bool = True        # its runs go into the history
    device: bool = True          # takes --device
    page: str = ""
    plots: str = ""
    live: bool = False
    private: bool = False
    cost: Callable[[dict], float] | None = None
    rate_of: str = ""
    reference: float | None = None
    inputs: dict[str, Callable[..., dict]] = field(default_factory=dict)
    narrate: Callable[[dict], Any] | None = None

    def trains(self) -> bool:
        """An experiment with a config and a run (not a tool with its own main)."""
        return self.config is not None and self.run is not None
