"""Benchmark: caching the frozen prefix vs re-running frozen stages every epoch (the naive loop).

Same backbone, data, seed and epochs in one process; prints measured ratios, and for each freeze depth the
ideal ratio from the stages' multiply-adds (forward = 1, backward = 2 units of the trainable part):
    naive  = E * [n_train * (P + 3 S) + n_val * (P + S)]
    cached = (n_train + n_val) * P + E * [n_train * 3 S + n_val * S]
Targets: feature extraction at E=10 >= 8x; partial freeze >= 0.7 of its ideal ratio.

    python bench/frozen_cache.py [--epochs 10] [--size 64] [--shots 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from tl_core import backbones, data, finetuning  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402


def train_once(cfg: finetune.FinetuneConfig, train, val) -> tuple[float, list]:
    """Time one fine-tuning run (training, per-epoch validation, final predictions), model built outside."""
    model = backbones.create(cfg.backbone, "pretrained", num_classes=len(train.classes))
    trainer = finetuning.Trainer(model, cfg, torch.device("cpu"))
    start = time.perf_counter()
    hist = trainer.train(train, val)
    trainer.predict(val.images)
    trainer.predict(train.images)
    return time.perf_counter() - start, hist.val_loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--shots", type=int, default=10)
    args = parser.parse_args()
    model = backbones.create(args.backbone, "pretrained", num_classes=10)
    n = len(model.stages)
    flops = backbones.stage_flops(model, args.size)
    depths = {"feature extraction": n - 1, "partial (last 3 stages train)": n - 3}
    base = finetune.FinetuneConfig(backbone=args.backbone, dataset="digits", shots=args.shots, epochs=args.epochs,
                                   image_size=args.size, batch_size=32)
    train, val = data.few_shot_split(data.load("digits", args.size), args.shots, 0, base.val_per_class)
    train_once(finetune.FinetuneConfig(**{**base.__dict__, "epochs": 1}), train, val)  # warm-up
    n_train, n_val = 10 * args.shots, 10 * base.val_per_class
    print(f"{args.backbone} at {args.size} px, digits, {n_train} train / {n_val} val images, {args.epochs} epochs")
    for label, k in depths.items():
        times = {}
        for cache in (True, False):
            cfg = finetune.FinetuneConfig(**{**base.__dict__, "freeze": str(k), "cache": cache})
            times[cache] = train_once(cfg, train, val)
        P, S = sum(flops[:k]), sum(flops[k:])
        naive = args.epochs * (n_train * (P + 3 * S) + n_val * (P + S))
        cached = (n_train + n_val) * P + args.epochs * (n_train * 3 * S + n_val * S)
        ideal = naive / cached
        naive += (n_train + n_val) * (P + S)      # both arms end with predictions on train and val
        cached += (n_train + n_val) * S
        ratio = times[False][0] / times[True][0]
        same = all(abs(a - b) < 1e-3 for a, b in zip(times[True][1], times[False][1]))
        print(f"{label:<32} frozen {k}/{n}: cached {times[True][0]:.2f} s, naive {times[False][0]:.2f} s, "
              f"ratio {ratio:.1f}x, ideal {ideal:.1f}x, {ratio / ideal:.2f} of ideal, same curves: {same}")


if __name__ == "__main__":
    main()
