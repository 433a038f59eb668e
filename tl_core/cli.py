"""Command-line twins of the pages: `python -m tl_core <experiment> ... --json`.

Each sub-command builds the same config dataclass a page builds, calls the same tl_core function,
and prints one JSON object (with --json) or a short human summary. Bad options end with exit code 2
and one line saying what is wrong; no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from tl_core import toy


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _add_toy(sub) -> None:
    p = sub.add_parser("toy", help="the regularisation toy: task A → task B with a few points")
    d = toy.ToyConfig()
    p.add_argument("--relation", choices=toy.RELATIONS, default=d.relation,
                   help="how task A relates to task B (default %(default)s)")
    p.add_argument("--b-points", type=int, default=d.b_points, help="training points for task B (1-20)")
    p.add_argument("--a-points", type=int, default=d.a_points, help="training points for task A")
    p.add_argument("--noise", type=float, default=d.noise, help="noise std on training targets")
    p.add_argument("--width", type=int, default=d.width, help="hidden units per layer")
    p.add_argument("--depth", type=int, default=d.depth, help="hidden layers")
    p.add_argument("--seeds", type=int, default=d.seeds, help="networks per condition")
    p.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs on task B")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs, help="epochs on task A")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=d.seed, help="data seed")
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cuda, mps or cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_toy)


def _config_from_args(cls, args):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def _run_toy(args) -> int:
    cfg = _config_from_args(toy.ToyConfig, args)
    result = toy.run(cfg, device=args.device)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        out = result.to_json()
        print(f"toy ({cfg.relation}, {cfg.b_points} B points, {cfg.seeds} seeds) on {out['device']} "
              f"in {out['seconds']:.2f} s")
        for name in ("scratch", "pretrained"):
            s = out[name]
            print(f"  {name:<10} train MSE {s['train_mse_mean']:.3g}   test MSE {s['test_mse_mean']:.3g}")
        print(out["verdict"])
    return 0 if result.status == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tl_core", description="Transfer Lab experiments")
    sub = parser.add_subparsers(dest="experiment", metavar="experiment", parser_class=OneLineParser)
    sub.required = True
    _add_toy(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as err:
        # bad values (out of range, unknown device, ...) are the user's to fix: one line, no traceback
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"python -m tl_core {args.experiment}: error: {first_line}\n")
        return 2
