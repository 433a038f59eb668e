"""Pretrain Transfer Lab's own small CNN on generated shapes; its checkpoint ships in tl_core/assets/.

    python -m tl_core pretrain [--epochs 8] [--out tl_core/assets/shapes_cnn.pt]

The source task (circles, squares, triangles, crosses, rings, stars) is generated, so the checkpoint
is reproducible on any machine in about a minute on a laptop CPU, and gives a pretrained model whose
source domain is near to digits and far from microscopy.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from tl_core import backbones, contract, data
from tl_core import device as devices
from tl_core.train import FitConfig, fit


def pretrain_shapes(epochs: int = 8, seed: int = 0, out: Path = backbones.SHAPES_CNN, device: str = "auto") -> dict:
    if not 1 <= epochs <= 200:
        raise ValueError(f"epochs must be between 1 and 200, got {epochs}")
    out = Path(out)
    try:  # fail before a minute of training, not after
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(out.suffix + ".tmp").touch()
        out.with_suffix(out.suffix + ".tmp").unlink()
    except OSError as err:
        raise ValueError(f"cannot write {out}: {err.strerror or err}") from None
    start = time.perf_counter()
    dev = devices.pick(device)
    devices.seed_everything(seed)
    ds = data.load("shapes", backbones.entry("shapes_cnn").input_size)
    train, val = data.few_shot_split(ds, None, seed, val_per_class=50)
    model = backbones.ShapesCNN(num_classes=len(ds.classes))
    staged = backbones.StagedModel([("normalize", backbones.Normalize((0.5,) * 3, (0.25,) * 3)), ("cnn", model)])
    hist = fit(staged.to(dev), (train.images, train.labels), (val.images, val.labels),
               FitConfig(epochs=epochs, lr=2e-3, batch_size=64, seed=seed), task="classification")
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out)
    return {"experiment": "pretrain", "out": str(out), "classes": ds.classes, "epochs": epochs,
            "val_acc": hist.val_acc[-1] if hist.val_acc else None, "history": hist.as_dict(),
            "status": hist.status, "device": devices.describe(dev), "seconds": round(time.perf_counter() - start, 2)}


def _main(args) -> int:
    out = pretrain_shapes(epochs=args.epochs, seed=args.seed, out=args.out, device=args.device)
    print(json.dumps(out) if args.json else f"saved {out['out']}: val acc {out['val_acc']:.3f} in {out['seconds']} s")
    return 0


EXPERIMENTS = (contract.Experiment(
    "pretrain", "pretrain Transfer Lab's small CNN on generated shapes (tl_core/assets/)", main=_main, recorded=False,
    options=(contract.Option("--epochs", "epochs on the shapes (1-200)", default=8, type=int),
             contract.Option("--seed", "split and initialisation seed", default=0, type=int),
             contract.Option("--out", "where to write the checkpoint", default=str(backbones.SHAPES_CNN)))),)
