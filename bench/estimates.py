"""How right the estimate before a lab run is (tl_core/lab_cost.py reference_seconds, scaled by this machine's
rate), per backbone, with and without augmentation, in this process.

    python bench/estimates.py                 # every backbone whose weights are here, small runs (a few minutes)
    python bench/estimates.py --measure       # the reference rates: a scratch cell at 1 and 4 epochs per backbone

Other work on a shared machine swings seconds 2-10x, so this machine's rate is measured here, first, on the lab's
default run shape (Lite0, scratch, 1 seed, 3 epochs), and every other run is estimated with it: the ratios
estimate / measured are what to read (within 0.7-1.3 is the goal).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tl_core import backbones, contract, lab_cost, reuse  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402

AUGMENT = ("color", "crop", "flip")


def measured(cfg) -> float:
    reuse.FEATURES.clear()
    reuse.SCRATCH.clear()
    start = time.perf_counter()
    finetune.run(cfg, device="cpu")
    return time.perf_counter() - start


def size_of(backbone: str) -> int:
    return 224 if backbones.entry(backbone).fixed_size else 64


def measure_rates(names) -> None:
    """The slope (ms per pass) and intercept (s per cell) of a scratch cell's time against its passes."""
    for name in names:
        cfg = finetune.FinetuneConfig(backbone=name, weights="scratch", seeds=1, image_size=size_of(name))
        times, passes = [], []
        for epochs in (1, 4):
            c = replace(cfg, epochs=epochs)
            times.append(measured(c))
            passes.append(lab_cost.cell_cost(c, "scratch", 50, 200, False))
        ms = 1000 * (times[1] - times[0]) / (passes[1] - passes[0])
        print(f"{name}: {ms:.3f} ms per pass at {cfg.image_size} px, {times[0] - passes[0] * ms / 1000:.2f} s per "
              f"cell (1 epoch {times[0]:.1f} s, 4 epochs {times[1]:.1f} s)", flush=True)


def check(names) -> None:
    base = finetune.FinetuneConfig(seeds=1, epochs=3, weights="scratch")
    rate = measured(base) / lab_cost.reference_seconds(contract.record(base))
    print(f"this machine's rate: {rate:.2f} x the reference machine (Lite0, scratch, 1 seed, 3 epochs)\n")
    print(f"{'backbone':<20} {'augment':<8} {'weights':<10} {'estimate':>9} {'measured':>9} {'ratio':>6}")
    for name in names:
        ok = backbones.weights_status(name)[0]
        for aug in ((), AUGMENT):
            cfg = replace(base, backbone=name, image_size=size_of(name), weights="both" if ok else "scratch",
                          augment=aug, seeds=2)
            est = rate * lab_cost.reference_seconds(contract.record(cfg))
            took = measured(cfg)
            print(f"{name:<20} {'yes' if aug else 'no':<8} {cfg.weights:<10} {est:>8.1f}s {took:>8.1f}s "
                  f"{est / took:>6.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help="measure the reference rates instead")
    parser.add_argument("--backbones", default="", help="comma-separated (default: all but vit_b_16)")
    args = parser.parse_args(argv)
    names = args.backbones.split(",") if args.backbones else [b for b in backbones.IMAGE if b != "vit_b_16"]
    (measure_rates if args.measure else check)(names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
