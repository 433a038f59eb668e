"""Command-line twins of the pages: `python -m tl_core <experiment> ... --json`.

A thin loop over `tl_core.experiments` (only the command's own module is imported): every experiment's flags
come from its config's declared settings, its run is the same function its page calls, and its runs go into the
same history with the same recorded config. Bad options end with exit code 2 and one line saying what is wrong;
no traceback. `runs` reads and edits the history.
"""
from __future__ import annotations

import argparse
import json
import sys

from tl_core import contract, engine, experiments, i18n, serve, store
from tl_core.i18n import tr
from tl_core.run_request import RunRequest


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2, and a flag is never guessed from
    its first letters (`sweep --freeze 3` is not taken as `--freezes 3`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse's hook
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _progress(args):
    if getattr(args, "progress", False):
        return _bar
    if args.json:
        return None
    return lambda fraction, message: sys.stderr.write(f"\r{fraction:4.0%} {message:<60}")


def _bar(fraction: float, message: str, width: int = 30) -> None:
    """--progress: a bar on stderr (stdout stays one JSON object), e.g. `[#########.....]  62% message`."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {message[:60]:<60}")
    sys.stderr.flush()


def _add(sub, exp: contract.Experiment) -> None:
    p = sub.add_parser(exp.name, help=exp.help, description=exp.help)
    if exp.config is not None:
        contract.add_flags(p, exp.config)
    for option in exp.options:
        option.add(p)
    if exp.device:
        p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cuda, mps or cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr (also with --json)")
    p.add_argument("--lang", choices=list(i18n.LANGS), default=None,
                   help=f"the language of the verdict's words (default: ${i18n.ENV}, else en); JSON keys never change")
    if exp.recorded:
        p.add_argument("--no-record", action="store_true", help="don't keep this run in the history")
        p.add_argument("--data-dir", default=None, help="where the run history lives")
    p.set_defaults(command=exp)


def run_experiment(exp: contract.Experiment, args: argparse.Namespace) -> int:
    """Config from the flags → a run request, submitted as a page's is (`serve.submit`, trained here, recorded
    as running before it trains) → JSON (or a summary) on stdout."""
    cfg = contract.from_args(exp.config, args)
    cfg, inputs = exp.prepare(args, cfg) if exp.prepare else (cfg, {})
    request = RunRequest.of(exp.name, cfg, getattr(args, "extra", None),
                            inputs={name: fingerprint for name, (fingerprint, _) in inputs.items()}, device=args.device)
    root = _history_root(exp, args)
    job, _ = serve.submit(request, here=True, blobs={name: blob for name, (_, blob) in inputs.items()}, root=root,
                          session="cli", progress=_progress(args))
    if job.unrecorded:   # the history could not take it: it trained unrecorded
        sys.stderr.write(f"python -m tl_core {exp.name}: warning: "
                         + tr("run not recorded: {error}", error=job.unrecorded_error) + "\n")
    result = job.result
    if result is None:   # it failed before it had a result: one line, as a bad flag is
        raise (ValueError if job.bad_setting else RuntimeError)(job.error or job.status)
    extras = exp.after(args, result) if exp.after else {}
    model_path = extras.pop("model_path", None)   # for the history: where the run's model file is
    result.extras = extras                        # kept in the history's copy of the JSON too
    if job.run_id is not None and (extras or model_path):
        try:
            store.Store(root).finish(job.run_id, result, model_path=model_path)
        except OSError as err:
            sys.stderr.write(f"python -m tl_core {exp.name}: warning: "
                             + tr("the exported files were not recorded: {error}", error=err) + "\n")
    if not args.json or args.progress:
        sys.stderr.write("\n")
    out = {**result.to_json(), **extras}
    print(json.dumps(out) if args.json else exp.text(result, out) if exp.text else result.verdict().text)
    return 0 if result.status == "finished" else 1


def _history_root(exp: contract.Experiment, args: argparse.Namespace) -> str:
    """Where the run is recorded ("" for none: --no-record, or a history that cannot be opened, which warns)."""
    if exp.recorded and not args.no_record:
        try:
            return str(store.Store(args.data_dir).root)
        except OSError as err:
            sys.stderr.write(f"python -m tl_core {exp.name}: warning: " + tr("run not recorded: {error}", error=err)
                             + "\n")
    return ""


# ---- the run history ------------------------------------------------------------------------------------

def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="the run history: list, show, export, label, delete")
    cmds = p.add_subparsers(dest="runs_command", metavar="command", parser_class=OneLineParser)
    cmds.required = True
    q = cmds.add_parser("list", help="every run, newest first")
    q.add_argument("--kind", help="only this experiment kind (toy, finetune, sweep, ...)")
    for name in store.FILTER_FIELDS:
        q.add_argument(f"--{name}", help=f"only runs with this {name}")
    q.set_defaults(runs=_runs_list)
    q = cmds.add_parser("show", help="one run: config, metrics, curves")
    q.add_argument("id", type=int)
    q.set_defaults(runs=_runs_show)
    q = cmds.add_parser("export", help="runs as CSV (one row per run and epoch) and/or JSON")
    q.add_argument("ids", type=int, nargs="+")
    q.add_argument("--csv", help="write the CSV here")
    q.add_argument("--json-out", help="write the full runs as JSON here")
    q.set_defaults(runs=_runs_export)
    q = cmds.add_parser("label", help="name a run")
    q.add_argument("id", type=int)
    q.add_argument("label")
    q.set_defaults(runs=_runs_label)
    q = cmds.add_parser("delete", help="delete runs")
    q.add_argument("ids", type=int, nargs="+")
    q.set_defaults(runs=_runs_delete)
    for q in cmds.choices.values():
        q.add_argument("--data-dir", default=None,
                       help="where the history lives (default: $TL_DATA_DIR or ~/.local/share/transfer-lab)")
        q.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(command=None)


def _print(args, obj: dict, text: str) -> int:
    print(json.dumps(obj, default=str) if args.json else text)
    return 0


def _runs_list(args) -> int:
    db = store.Store(args.data_dir)
    runs = db.runs(kind=args.kind, **{f: getattr(args, f) for f in store.FILTER_FIELDS})
    lines = [f"{r.id:>5}  {r.kind:<9} {r.status:<11} {r.seconds or 0:>7.1f} s  {store.headline(r):<18} {r.label or ''}"
             for r in runs]
    return _print(args, {"database": str(db.path), "runs": [r.to_json() for r in runs]},
                  "\n".join(lines) or f"no runs in {db.path}")


def _runs_show(args) -> int:
    run = store.Store(args.data_dir).get(args.id)
    text = json.dumps({k: v for k, v in run.to_json().items() if k != "curves"}, indent=1, default=str)
    return _print(args, run.to_json(with_result=True), text + f"\ncurves: {', '.join(run.curves) or 'none'}")


def _runs_export(args) -> int:
    if not args.csv and not args.json_out:
        raise ValueError(tr("say where to write: --csv FILE and/or --json-out FILE"))
    runs = store.Store(args.data_dir).many(args.ids)
    written = []
    for path, text in ((args.csv, store.to_csv), (args.json_out, store.to_json)):
        if path:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text(runs))
            written.append(path)
    return _print(args, {"runs": [r.id for r in runs], "written": written},
                  f"wrote {len(runs)} runs to {', '.join(written)}")


def _runs_label(args) -> int:
    store.Store(args.data_dir).rename(args.id, args.label)
    return _print(args, {"id": args.id, "label": args.label}, f"run {args.id} is now {args.label!r}")


def _runs_delete(args) -> int:
    n = store.Store(args.data_dir).delete(args.ids)
    return _print(args, {"deleted": n}, f"deleted {n} runs")


def _lang_of(argv: list[str]) -> str | None:
    """The value of `--lang` in the arguments (`--lang es` or `--lang=es`), before they are parsed; else None."""
    for i, a in enumerate(argv):
        if a == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--lang="):
            return a.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tl_core", description="Transfer Lab experiments")
    sub = parser.add_subparsers(dest="experiment", metavar="experiment", parser_class=OneLineParser)
    sub.required = True
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["app"]:   # the app itself, not an experiment: Streamlit's flags follow
        from tl_core import launch

        return launch.main(argv[1:])
    named = next((a for a in argv if not a.startswith("-")), None)
    # one command: import and declare only it (starts faster); else every command, for --help and errors
    names = [named] if named in experiments.COMMANDS else [] if named == "runs" else experiments.COMMANDS
    for name in names:
        _add(sub, experiments.command(name))
    _add_runs(sub)
    sub.add_parser("app", help="start the app (then Streamlit's flags, e.g. --server.port 8502)")
    # the language first, so that a bad value's one line (a flag's type, checked while parsing) is in it too
    i18n.set_language(_lang_of(argv))
    args = parser.parse_args(argv)
    ray_before = engine.running()
    i18n.set_language(getattr(args, "lang", None))   # None: TL_LANG, else English
    try:
        if args.command is None:
            return args.runs(args)
        if args.command.main is not None:
            return args.command.main(args)
        return run_experiment(args.command, args)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): __main__ exits quietly
    except (ValueError, RuntimeError, OSError) as err:
        # bad values (out of range, unknown device, ...) are the user's to fix: one line, no traceback
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"python -m tl_core {args.experiment}: error: {first_line}\n")
        return 2
    finally:
        if not ray_before:
            engine.shutdown()  # a Ray this command started ends with it: no raylet is left behind
