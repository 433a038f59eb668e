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

from tl_core import backbones, data, finetune, freeze, toy


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


def _add_ssl(sub) -> None:
    from tl_core import ssl

    p = sub.add_parser("ssl", help="masked-reconstruction pretraining, then scratch vs SSL encoder on few labels")
    d = ssl.SSLConfig()
    p.add_argument("--data", choices=tuple(ssl.DATA), default=d.data, help="expression (synthetic) or digits")
    p.add_argument("--labels", type=int, default=d.labels, help="labelled samples per class downstream")
    p.add_argument("--mask-ratio", type=float, default=d.mask_ratio, help="fraction of features/patches hidden")
    p.add_argument("--seeds", type=int, default=d.seeds, help="downstream runs per condition, for bands")
    p.add_argument("--seed", type=int, default=d.seed, help="data, pretraining and first downstream seed")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs, help="epochs over the unlabelled pool")
    p.add_argument("--epochs", type=int, default=d.epochs, help="downstream epochs (full batch)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--hidden", type=int, default=d.hidden, help="encoder hidden units")
    p.add_argument("--latent", type=int, default=d.latent, help="encoder output size")
    p.add_argument("--sweep", type=lambda t: [int(x) for x in t.split(",") if x.strip()], default=[],
                   help="more label counts per class for accuracy vs labels, e.g. 1,2,5,20")
    p.add_argument("--save-encoder", default=None, help="write the encoder-only state_dict (.pt) here")
    p.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cuda, mps or cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_ssl)


def _run_ssl(args) -> int:
    from pathlib import Path

    from tl_core import ssl

    cfg = _config_from_args(ssl.SSLConfig, args)
    result = ssl.run(cfg, label_counts=args.sweep, progress=_progress(args), device=args.device)
    out = result.to_json()
    if args.save_encoder:
        Path(args.save_encoder).write_bytes(result.pretrained.encoder)
        out["encoder_file"] = args.save_encoder
    if args.json:
        print(json.dumps(out))
    else:
        sys.stderr.write("\n")
        rl = out["recon_loss"]
        print(f"ssl on {cfg.data}, mask ratio {cfg.mask_ratio}, on {out['device']} in {out['seconds']:.1f} s; "
              f"masked reconstruction MSE {rl['first']:.3f} → {rl['last']:.3f} (1.0 = predict the mean)")
        for n in result.label_counts:
            print(f"  {n} labels/class: " + "   ".join(
                f"{mode} {s['val_acc']:.3f} ± {s['val_acc_std']:.3f}" for mode, s in out["by_labels"][str(n)].items()))
        print(ssl.verdict(result)[1])
    return 0 if result.status == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tl_core", description="Transfer Lab experiments")
    sub = parser.add_subparsers(dest="experiment", metavar="experiment", parser_class=OneLineParser)
    sub.required = True
    _add_toy(sub)
    _add_finetune(sub)
    _add_ssl(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as err:
        # bad values (out of range, unknown device, ...) are the user's to fix: one line, no traceback
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"python -m tl_core {args.experiment}: error: {first_line}\n")
        return 2
