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

from tl_core import backbones, data, finetune, freeze, gtl, toy


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


def _shots(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shots must be a whole number or 'all', got {text!r}") from None


def _classes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _add_finetune_options(p) -> None:
    d = finetune.FinetuneConfig()
    p.add_argument("--backbone", default=d.backbone, help=f"one of {', '.join(backbones.REGISTRY)}")
    p.add_argument("--weights", default=d.weights, choices=("pretrained", "scratch", "both"))
    p.add_argument("--dataset", default=d.dataset, help=f"one of {', '.join(data.DATASETS)}")
    p.add_argument("--classes", type=_classes, default=None, help="comma-separated subset, e.g. 3,8")
    p.add_argument("--freeze", default=d.freeze, help="frozen stages: all (all but the head), none, or a count")
    p.add_argument("--strategy", default=d.strategy, choices=tuple(freeze.STRATEGIES))
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--image-size", type=int, default=d.image_size, help="pixels; small is fast on a CPU")
    p.add_argument("--seeds", type=int, default=d.seeds, help="runs per weights condition, for bands")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-per-class", type=int, default=d.val_per_class)
    p.add_argument("--unfreeze-every", type=int, default=d.unfreeze_every)
    p.add_argument("--no-cache", dest="cache", action="store_false", help="re-run frozen stages every epoch")
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cuda, mps or cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_finetune(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a backbone on a few-shot dataset")
    _add_finetune_options(p)
    p.add_argument("--shots", type=_shots, default=finetune.FinetuneConfig().shots, help="per class, or all")
    p.set_defaults(func=_run_finetune)
    p = sub.add_parser("sweep", help="val accuracy over a shots x freeze-depth grid")
    _add_finetune_options(p)
    p.add_argument("--shots", type=lambda t: [_shots(x) for x in t.split(",")], default=[1, 5, 20],
                   help="comma-separated, e.g. 1,5,20,all")
    p.add_argument("--freezes", type=lambda t: [x.strip() for x in t.split(",")], default=["all", "none"],
                   help="comma-separated freeze depths, e.g. all,4,none")
    p.set_defaults(func=_run_sweep)
    p = sub.add_parser("pretrain", help="pretrain Transfer Lab's small CNN on generated shapes (assets/)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(backbones.SHAPES_CNN))
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_pretrain)


def _progress(args):
    if args.json:
        return None
    return lambda fraction, message: sys.stderr.write(f"\r{fraction:4.0%} {message:<60}")


def _run_finetune(args) -> int:
    cfg = _config_from_args(finetune.FinetuneConfig, args)
    result = finetune.run(cfg, progress=_progress(args), device=args.device)
    out = result.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        sys.stderr.write("\n")
        print(f"{cfg.backbone}, {cfg.dataset}, {cfg.shots or 'all'} shots/class, freeze {cfg.freeze} "
              f"({out['frozen_stages']} of {len(out['stages'])} stages), {cfg.strategy}, on {out['device']} "
              f"in {out['seconds']:.1f} s")
        for weights, summary in out["conditions"].items():
            print(f"  {weights:<10} val acc {summary['val_acc']:.3f} ± {summary['val_acc_std']:.3f}   "
                  f"train acc {summary['train_acc']:.3f}")
    return 0 if result.status == "finished" else 1


def _run_sweep(args) -> int:
    shots = args.shots
    args.shots = None
    cfg = _config_from_args(finetune.FinetuneConfig, args)
    result = finetune.sweep(cfg, shots, args.freezes, progress=_progress(args), device=args.device)
    out = result.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        sys.stderr.write("\n")
        for weights, grid in out["grid"].items():
            print(f"{weights}: val accuracy, rows freeze {args.freezes}, columns shots {shots}")
            for fr, row in zip(["none"] if weights == "scratch" else args.freezes, grid):
                print(f"  {fr:>5}  " + "  ".join(f"{v:.3f}" for v in row))
    return 0 if result.status == "finished" else 1


def _run_pretrain(args) -> int:
    from tl_core import pretrain

    out = pretrain.pretrain_shapes(epochs=args.epochs, seed=args.seed, out=args.out, device=args.device)
    print(json.dumps(out) if args.json else f"saved {out['out']}: val acc {out['val_acc']:.3f} in {out['seconds']} s")
    return 0


def _add_gtl(sub) -> None:
    p = sub.add_parser("gtl", help="Guided Transfer Learning: scouts, guide values, guided fine-tuning")
    d = gtl.GTLConfig()
    p.add_argument("--arch", default=d.arch, choices=tuple(gtl.ARCHS), help="base network (default %(default)s)")
    p.add_argument("--target-classes", type=_classes, default=d.target_classes,
                   help="digits held out of pretraining, the few-shot target task (default 7,8,9)")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs)
    p.add_argument("--scouts", type=int, default=d.scouts, help="scouts, trained at once (default %(default)s)")
    p.add_argument("--scout-classes", type=int, default=d.scout_classes, help="source classes per scout")
    p.add_argument("--scout-images", type=int, default=d.scout_images, help="images per class per scout")
    p.add_argument("--scout-epochs", type=int, default=d.scout_epochs)
    p.add_argument("--scout-lr", type=float, default=d.scout_lr)
    p.add_argument("--change", default=d.change, choices=tuple(gtl.CHANGES), help="raw guide: squared or abs change")
    p.add_argument("--focus", default=d.focus, choices=tuple(gtl.FOCUS), help="per-tensor normalisation")
    p.add_argument("--temperature", type=float, default=d.temperature, help="1 = as is, >1 warmer, <1 colder")
    p.add_argument("--free-fraction", type=float, default=d.free_fraction,
                   help="0 = off; else binary guide: this top fraction free, the rest frozen")
    p.add_argument("--shots", type=int, default=d.shots, help="target training images per class")
    p.add_argument("--seeds", type=int, default=d.seeds, help="few-shot splits per condition, for bands")
    p.add_argument("--epochs", type=int, default=d.epochs, help="target fine-tuning epochs")
    p.add_argument("--lr", type=float, default=d.lr, help="target Adam learning rate")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-per-class", type=int, default=d.val_per_class)
    p.add_argument("--guide-out", default=None, help="save the guide here as a .pt (parameter name -> tensor)")
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cuda, mps or cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_gtl)


def _run_gtl(args) -> int:
    cfg = _config_from_args(gtl.GTLConfig, args)
    result = gtl.run(cfg, progress=_progress(args), device=args.device)
    if args.guide_out:
        gtl.guide_file(result.guide, args.guide_out)
    out = result.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        sys.stderr.write("\n")
        print(f"GTL: {cfg.arch}, target digits {','.join(cfg.target_classes)}, {cfg.shots} shot(s), {cfg.scouts} "
              f"scouts on {cfg.scout_classes} classes, on {out['device']} in {out['seconds']:.1f} s")
        for c in gtl.CONDITIONS:
            print(f"  {c:<17} val acc {out[c]['val_acc_mean']:.3f} ± {out[c]['val_acc_std']:.3f}")
        print(f"  mean guide {out['guide']['mean']:.3f}: " +
              ", ".join(f"{n} {v:.2f}" for n, v in out["guide"]["per_layer"].items()))
        print(out["verdict"])
    return 0 if result.status == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tl_core", description="Transfer Lab experiments")
    sub = parser.add_subparsers(dest="experiment", metavar="experiment", parser_class=OneLineParser)
    sub.required = True
    _add_toy(sub)
    _add_finetune(sub)
    _add_gtl(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as err:
        # bad values (out of range, unknown device, ...) are the user's to fix: one line, no traceback
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"python -m tl_core {args.experiment}: error: {first_line}\n")
        return 2
