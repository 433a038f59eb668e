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


_LAB_SHOTS = object()  # "--shots not given": 5 for a built-in dataset, all for your own zip


def _add_own(sub) -> None:
    """Your own images: `finetune --data-zip classes.zip [--export DIR]` and `predict --model model.pt img`.
    The zip options join the lab's `finetune` sub-command (same flags, same JSON) rather than a twin of it."""
    p = sub.choices["finetune"]
    p.add_argument("--data-zip", default=None, help="a zip of class folders of your own images (instead of --dataset)")
    p.add_argument("--val-fraction", type=float, default=finetune.FinetuneConfig().val_fraction,
                   help="with --data-zip: class-balanced validation share (default %(default)s)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="save the trained model there: model.pt (state_dict), model.json, predict.py")
    p.set_defaults(func=_run_finetune_own, shots=_LAB_SHOTS)
    p = sub.add_parser("predict", help="top-k classes of images with a model exported by finetune --export")
    p.add_argument("images", nargs="+", help="image files (jpg, png, webp, bmp, gif, tiff)")
    p.add_argument("--model", required=True, help="the exported model.pt (model.json beside it), its folder or zip")
    p.add_argument("--top-k", type=int, default=3, help="classes to list per image (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_predict)


def _run_finetune_own(args) -> int:
    from tl_core import export, userdata

    if args.shots is _LAB_SHOTS:
        args.shots = None if args.data_zip else finetune.FinetuneConfig().shots
    if args.data_zip is None:
        if args.export:
            raise ValueError("--export saves a model trained on your own images: add --data-zip")
        return _run_finetune(args)
    images = userdata.read_zip(args.data_zip)
    if args.classes:
        unknown = [c for c in args.classes if c not in images.classes]
        if unknown:
            raise ValueError(f"class {unknown[0]!r} is not in {args.data_zip}: it has {', '.join(images.classes)}")
        images = images.edited(drop=[c for c in images.classes if c not in args.classes])
    args.dataset, args.classes = f"zip:{images.source}", None
    cfg = _config_from_args(finetune.FinetuneConfig, args)
    cfg.validate(own_data=True)
    dataset = images.to_imageset(cfg.image_size)  # raises, saying what is needed, before any warning prints
    for line in [*(f"skipped {s.name}: {s.reason}" for s in images.skipped), *images.warnings(cfg.val_fraction)]:
        sys.stderr.write(f"warning: {line}\n")
    result = finetune.run(cfg, progress=_progress(args), device=args.device, dataset=dataset)
    out = result.to_json()
    out["skipped"] = [{"file": s.name, "reason": s.reason} for s in images.skipped]
    out["counts"] = images.counts()
    if args.export and result.runs:
        out["export"] = export.save(export.from_result(result), args.export)
    if args.json:
        print(json.dumps(out))
    else:
        sys.stderr.write("\n")
        print(f"{cfg.backbone} on {images.source} ({', '.join(f'{c}: {n}' for c, n in out['counts'].items())}), "
              f"freeze {cfg.freeze}, {cfg.strategy}, on {out['device']} in {out['seconds']:.1f} s")
        for weights, summary in out["conditions"].items():
            print(f"  {weights:<10} val acc {summary['val_acc']:.3f} ± {summary['val_acc_std']:.3f}   "
                  f"train acc {summary['train_acc']:.3f}")
        if "export" in out:
            print(f"  saved {', '.join(out['export'].values())}")
    return 0 if result.status == "finished" else 1


def _run_predict(args) -> int:
    from pathlib import Path

    from tl_core import export, userdata

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    clf = export.load(args.model)
    predictions = []
    for path in args.images:
        try:
            top = clf.topk(Path(path).read_bytes(), args.top_k)
        except userdata.BadImage as err:
            raise ValueError(f"{path}: {err}") from None
        predictions.append({"image": path, "top": [{"class": c, "probability": p} for c, p in top]})
    if args.json:
        print(json.dumps({"model": str(args.model), "backbone": clf.meta["backbone"], "classes": clf.classes,
                          "image_size": clf.image_size, "predictions": predictions}))
    else:
        for pred in predictions:
            print(pred["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in pred["top"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tl_core", description="Transfer Lab experiments")
    sub = parser.add_subparsers(dest="experiment", metavar="experiment", parser_class=OneLineParser)
    sub.required = True
    _add_toy(sub)
    _add_finetune(sub)
    _add_own(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as err:
        # bad values (out of range, unknown device, ...) are the user's to fix: one line, no traceback
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"python -m tl_core {args.experiment}: error: {first_line}\n")
        return 2
