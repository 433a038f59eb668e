"""Benchmark: what augmentation costs a frozen-feature lab run (feature extraction: all stages but the head frozen).

Plain, the frozen prefix runs once over the training and validation images (cached) and every epoch trains the head
on the cached features; augmented (flip, crop, colour jitter), every epoch's training images are new, so the frozen
prefix runs on them every epoch (the validation images' features are still computed once). Same backbone, data,
seed and epochs in one process, plain and augmented alternating (the fastest of --repeats each: other work on a
shared CPU only ever adds time). Prints the per-epoch time ratio augmented/plain (train.fit's epochs: for the plain
run the head alone), the whole run's ratio (features, epochs, final predictions) and the cost model's prediction
(`lab_cost.augment_cost`, from this machine's measured milliseconds per image) of the whole run's ratio.

    python bench/augment_cost.py [--epochs 15] [--size 64] [--shots 5] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from tl_core import backbones, card, data, finetuning, lab_cost  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402


def train_once(cfg: finetune.FinetuneConfig, train, val) -> tuple[float, float, float]:
    """(whole run s, per-epoch s, val accuracy) of one pretrained run, model built outside the timing."""
    model = backbones.create(cfg.backbone, "pretrained", num_classes=len(train.classes), seed=cfg.seed)
    trainer = finetuning.Trainer(model, cfg.resolve(), torch.device("cpu"))
    start = time.perf_counter()
    run = trainer.fit_and_score("pretrained", cfg.seed, train, val)
    return time.perf_counter() - start, run.history.seconds / run.history.epochs_run, run.val_acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment", default="flip,crop,color")
    args = parser.parse_args()
    names = tuple(args.augment.split(","))
    plain = finetune.FinetuneConfig(backbone=args.backbone, weights="pretrained", dataset="digits", shots=args.shots,
                                    epochs=args.epochs, image_size=args.size, seeds=1)
    augmented = replace(plain, augment=names)
    train, val = data.few_shot_split(data.load("digits", args.size), args.shots, 0, plain.val_per_class)
    train_once(replace(augmented, epochs=1), train, val)  # warm-up
    print(f"{args.backbone} at {args.size} px, digits, {len(train)} train / {len(val)} val images, {args.epochs} "
          f"epochs, feature extraction, batch {plain.batch_size}, {torch.get_num_threads()} CPU threads; "
          f"augmentation: {','.join(augmented.resolve().augment)}")
    times: dict[str, list] = {"plain": [], "augmented": []}
    for _ in range(args.repeats):
        for name, cfg in (("plain", plain), ("augmented", augmented)):
            times[name].append(train_once(cfg, train, val))
    best = {name: (min(t[0] for t in ts), min(t[1] for t in ts), ts[0][2]) for name, ts in times.items()}
    for name, (whole, epoch, acc) in best.items():
        print(f"  {name:<10} run {whole:7.2f} s   per epoch {1000 * epoch:8.1f} ms   val acc {acc:.3f}")
    ms = card.card(args.backbone, args.size).ms_per_image
    model = lab_cost.augment_cost(augmented, ms_per_image=ms)
    print(f"per-epoch ratio augmented/plain: {best['augmented'][1] / best['plain'][1]:.1f}x")
    print(f"whole-run ratio augmented/plain: {best['augmented'][0] / best['plain'][0]:.2f}x "
          f"(cost model, from {ms:.2f} ms per image and {model['augment_ms_per_image']:.2f} ms to augment one, "
          f"measured here: {model['ratio']:.2f}x)")


if __name__ == "__main__":
    main()
