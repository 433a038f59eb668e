"""Benchmark: the toy's band trained as stacked seeds vs a plain Python loop over the same seeds.

Both arms run in this process on the same data and settings, so the printed ratio is robust to a
noisy machine; absolute seconds are printed too. Target: >= 10x at 50 seeds, and the 50-seed band
for both conditions under 2 s on a 2-core CPU.

    python bench/toy_band.py [--seeds 50] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tl_core.experiments import toy  # noqa: E402

CPU = torch.device("cpu")


def stacked(cfg: toy.ToyConfig) -> np.ndarray:
    """Transfer Lab's way: every seed of both conditions trained at once."""
    _, pretrained, _ = toy.train_conditions(cfg, toy.make_data(cfg), toy.member_seeds(cfg), CPU)
    return pretrained.test_mse


def loop_over_seeds(cfg: toy.ToyConfig) -> np.ndarray:
    """The naive way: the same networks, one seed after another (each a 1-member stack)."""
    data = toy.make_data(cfg)
    return np.concatenate([toy.train_conditions(cfg, data, [seed], CPU)[1].test_mse
                           for seed in toy.member_seeds(cfg)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each arm")
    args = parser.parse_args()
    cfg = toy.ToyConfig(seeds=args.seeds)
    stacked(toy.ToyConfig(seeds=2, epochs=5, pretrain_epochs=5))  # warm-up

    def best(fn):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    stacked_s = best(lambda: stacked(cfg))
    # the loop arm is slow, so it is timed once on a tenth of the seeds and scaled: per-seed cost is flat
    sample = max(1, args.seeds // 10)
    loop = best(lambda: loop_over_seeds(toy.ToyConfig(seeds=sample))) * args.seeds / sample

    # same answers: member k of the stack equals the single network with k's seed (first seeds)
    agree = np.allclose(stacked(toy.ToyConfig(seeds=sample)), loop_over_seeds(toy.ToyConfig(seeds=sample)),
                        rtol=1e-3, atol=1e-6)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seeds} seeds, both conditions")
    print(f"stacked band : {stacked_s:.2f} s")
    print(f"python loop  : {loop:.2f} s (timed on {sample} seeds, scaled)")
    print(f"ratio        : {loop / stacked_s:.1f}x (target >= 10x); stacked under 2 s: {stacked_s < 2}")
    print(f"same results as the loop: {agree}")


if __name__ == "__main__":
    main()
