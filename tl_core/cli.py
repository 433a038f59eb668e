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

from tl_core import backbones, data, finetune, freeze, gtl, store, toy


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


def _record(args, kind: str, out: dict, model_path: str | None = None) -> None:
    """Keep the run in the history (as the pages do); a history that can't be written only warns."""
    if getattr(args, "no_record", True):
        return
    try:
        store.Store(args.data_dir).record(kind, out, session="cli", model_path=model_path)
    except OSError as err:
        sys.stderr.write(f"python -m tl_core {kind}: warning: run not recorded: {err}\n")


def _run_toy(args) -> int:
    cfg = _config_from_args(toy.ToyConfig, args)
    result = toy.run(cfg, device=args.device)
    _record(args, "toy", result.to_json())
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
    _record(args, "finetune", out)
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
    _record(args, "sweep", out)
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


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="the run history: list, show, export, label, delete")
    cmds = p.add_subparsers(dest="runs_command", metavar="command", parser_class=OneLineParser)
    cmds.required = True
    data_dir = dict(default=None, help="where the history lives (default: $TL_DATA_DIR or ~/.local/share/transfer-lab)")
    q = cmds.add_parser("list", help="every run, newest first")
    q.add_argument("--kind", help="only this experiment kind (toy, finetune, sweep, ...)")
    for name in store.FILTER_FIELDS:
        q.add_argument(f"--{name}", help=f"only runs with this {name}")
    q.set_defaults(func=_runs_list)
    q = cmds.add_parser("show", help="one run: config, metrics, curves")
    q.add_argument("id", type=int)
    q.set_defaults(func=_runs_show)
    q = cmds.add_parser("export", help="runs as CSV (one row per run and epoch) and/or JSON")
    q.add_argument("ids", type=int, nargs="+")
    q.add_argument("--csv", help="write the CSV here")
    q.add_argument("--json-out", help="write the full runs as JSON here")
    q.set_defaults(func=_runs_export)
    q = cmds.add_parser("label", help="name a run")
    q.add_argument("id", type=int)
    q.add_argument("label")
    q.set_defaults(func=_runs_label)
    q = cmds.add_parser("delete", help="delete runs")
    q.add_argument("ids", type=int, nargs="+")
    q.set_defaults(func=_runs_delete)
    for q in cmds.choices.values():
        q.add_argument("--data-dir", **data_dir)
        q.add_argument("--json", action="store_true", help="print one JSON object")


def _print(args, obj: dict, text: str) -> int:
    print(json.dumps(obj, default=str) if args.json else text)
    return 0


def _runs_list(args) -> int:
    db = store.Store(args.data_dir)
    runs = db.runs(kind=args.kind, **{f: getattr(args, f) for f in store.FILTER_FIELDS})
    lines = [f"{r.id:>5}  {r.kind:<9} {r.status:<11} {r.seconds or 0:>7.1f} s  {r.label or ''}" for r in runs]
    return _print(args, {"database": str(db.path), "runs": [r.to_json() for r in runs]},
                  "\n".join(lines) or f"no runs in {db.path}")


def _runs_show(args) -> int:
    run = store.Store(args.data_dir).get(args.id)
    text = json.dumps({k: v for k, v in run.to_json().items() if k != "curves"}, indent=1, default=str)
    return _print(args, run.to_json(with_result=True), text + f"\ncurves: {', '.join(run.curves) or 'none'}")


def _runs_export(args) -> int:
    if not args.csv and not args.json_out:
        raise ValueError("say where to write: --csv FILE and/or --json-out FILE")
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


RECORDED = ("toy", "finetune", "sweep", "ssl", "gtl")  # experiments whose runs go into the history


def _add_state(sub) -> None:
    from tl_core import state

    p = sub.add_parser("inspect", help="keys, shapes, dtypes and sizes of a .pt/.pth/.safetensors state_dict")
    p.add_argument("file", help="a state_dict file (read safely: tensors only, no pickled code)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_inspect)
    p = sub.add_parser("load", help="load a state_dict into an architecture: missing / unexpected / mismatched")
    p.add_argument("file", help="a .pt/.pth/.safetensors state_dict")
    p.add_argument("--into", required=True, help=f"architecture: one of {', '.join(state.ARCHITECTURES)}")
    p.add_argument("--num-classes", type=int, default=None, help="give the architecture a head for N classes")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="load what matches in name and shape, report the rest (default: strict)")
    p.add_argument("--strip-prefix", default="", help="remove this prefix from keys that have it, e.g. module.")
    p.add_argument("--add-prefix", default="", help="add this prefix to every key, e.g. encoder.")
    p.add_argument("--init", default="scratch", choices=("scratch", "pretrained"),
                   help="weights the model starts from before loading (what missing keys keep)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_load)


def _run_inspect(args) -> int:
    from tl_core import state

    f = state.read_path(args.file)
    result = state.inspect(f.state, f.name, notes=f.notes)
    out = dict(result.to_json(), format=f.format)
    if args.json:
        print(json.dumps(out))
        return 0
    for note in f.notes:
        print(f"note: {note}")
    for r in out["keys"]:
        print(f"  {r['key']:<50} {str(tuple(r['shape'])):<20} {r['dtype']:<9} {r['elements']:>10,}")
    for g in out["groups"]:
        print(f"  {g['module']:<30} {g['elements']:>12,} values in {g['keys']} tensors")
    print(f"{out['n_keys']} tensors, {out['total_elements']:,} values, {out['total_mb']:.2f} MB")
    return 0


def _run_load(args) -> int:
    """Exit 0 when the weights loaded (strict: all matched; strict off: what matched), 1 when strict
    loading failed (the report says why), 2 for a file or option that cannot be used at all."""
    from tl_core import state

    f = state.read_path(args.file)
    cfg = state.LoadConfig(arch=args.into, num_classes=args.num_classes, strict=args.strict,
                           strip_prefix=args.strip_prefix, add_prefix=args.add_prefix, init=args.init)
    report = state.load_into(f.state, cfg, f.name, f.notes)
    out = report.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        print(out["message"])
        for title, items in (("missing", report.missing), ("unexpected", report.unexpected),
                             ("shape-mismatched", [f"{m['key']} file {tuple(m['file_shape'])} model "
                                                   f"{tuple(m['model_shape'])}" for m in report.mismatched])):
            print(f"{title} ({len(items)}):" + "".join(f"\n  {k}" for k in items[:40])
                  + (f"\n  … and {len(items) - 40} more" if len(items) > 40 else ""))
        for hint in report.hints:
            print(f"hint: {hint}")
    return 0 if report.ok else 1
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
    args.dataset, args.classes = f"own: {images.source}", None  # as the page names it
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
    _record(args, "own", out, model_path=(out.get("export") or {}).get("model.pt"))
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
    _record(args, "ssl", out, model_path=args.save_encoder)
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
    _record(args, "gtl", out, model_path=args.guide_out)
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
    _add_own(sub)
    _add_ssl(sub)
    _add_state(sub)
    _add_gtl(sub)
    _add_runs(sub)
    for name in RECORDED:
        sub.choices[name].add_argument("--no-record", action="store_true", help="don't keep this run in the history")
        sub.choices[name].add_argument("--data-dir", default=None, help="where the run history lives")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): __main__ exits quietly
    except (ValueError, RuntimeError, OSError) as err:
        # bad values (out of range, unknown device, ...) are the user's to fix: one line, no traceback
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"python -m tl_core {args.experiment}: error: {first_line}\n")
        return 2
