"""Benchmark: LoRA's training step and Adam state against full fine-tuning's, in one process.

EfficientNet-Lite0 (ImageNet weights), one batch of images, steps through THE training loop (`train.fit`, one
full-batch step per epoch), each arm built as the peft experiment builds it (`peft_methods.build`):

    full         every weight trains, on the images
    LoRA last    rank r on block 7's 1×1 convs and conv_head (scope last): stem and blocks 1-6 frozen and untouched,
                 so their features are computed once (the frozen-prefix cache) and each step runs the rest
    LoRA all     rank r on every block's 1×1 convs and conv_head: only the stem is untouched, each step runs it all

Prints seconds per step and the Adam state's bytes (its tensors, measured after the steps), and full / LoRA as
ratios. One CPU thread, as the experiment trains.

    python bench/peft_step.py [--size 64] [--batch 32] [--steps 10] [--rank 4]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from tl_core import device as devices  # noqa: E402
from tl_core import peft_methods  # noqa: E402
from tl_core.train import FitConfig, caught_optimizer, fit, frozen_features, optimizer_state_bytes  # noqa: E402


def arm(cfg: peft_methods.PeftConfig, condition: str, x: torch.Tensor, y: torch.Tensor, steps: int) -> dict:
    model, _, _ = peft_methods.build(cfg, condition, 3, 0, torch.device("cpu"))
    depth = peft_methods.untouched(model)
    start = time.perf_counter()
    inputs = frozen_features(model.prefix(depth), x) if depth else x   # once: the cache's work
    cache_s = time.perf_counter() - start
    net = model.suffix(depth)
    params = [p for p in model.parameters() if p.requires_grad]
    fit(net, (inputs, y), None, FitConfig(epochs=1, lr=1e-3), params=params)          # warm-up
    with caught_optimizer(params[0]) as caught:
        hist = fit(net, (inputs, y), None, FitConfig(epochs=steps, lr=1e-3), params=params)
    return {"step_s": hist.seconds / steps, "adam_bytes": optimizer_state_bytes(caught["opt"]), "cache_s": cache_s,
            "trainable": sum(p.numel() for p in params), "cached_stages": depth}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rank", type=int, default=4)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(args.batch, 3, args.size, args.size, generator=g), torch.arange(args.batch) % 3
    base = peft_methods.PeftConfig(ranks=(args.rank,), image_size=args.size)
    lora = f"lora_r{args.rank}"
    with devices.one_cpu_thread(torch.device("cpu")):
        arms = {"full": arm(base, "full", x, y, args.steps),
                "LoRA last": arm(base, lora, x, y, args.steps),
                "LoRA all": arm(replace(base, scope="all"), lora, x, y, args.steps)}
    print(f"efficientnet_lite0 at {args.size} px, batch {args.batch}, {args.steps} steps, LoRA rank {args.rank}, "
          f"one CPU thread")
    for name, a in arms.items():
        print(f"{name:<10} {a['step_s'] * 1000:8.1f} ms/step  Adam state {a['adam_bytes'] / 2**20:8.3f} MB  "
              f"trainable {a['trainable']:>9,}  stages cached {a['cached_stages']} ({a['cache_s']:.2f} s once)")
    full = arms["full"]
    for name in ("LoRA last", "LoRA all"):
        a = arms[name]
        print(f"full / {name}: step time ×{full['step_s'] / a['step_s']:.1f}, "
              f"Adam state ×{full['adam_bytes'] / a['adam_bytes']:.0f}")


if __name__ == "__main__":
    main()
