"""Where the default lab run's time goes, what validating in one pass saves (tl_core/finetuning.py VAL_BATCH)
and what sharing across seeds and runs saves (tl_core/reuse.py REUSE), each against the path before it, in this
process: the ratios are what to read (other work on the machine swings the seconds 2-10x, not the ratios).

    python bench/lab_run.py            # the lab's default run (EfficientNet-Lite0, digits, 5 shots, 15 epochs, 3 seeds)
    python bench/lab_run.py --quick    # the same at 32 px, 5 epochs, 2 seeds (a few minutes on a busy laptop)

0. the default run, cold: the path before (validation in batches of 32, VAL_BATCH = 0) against today's (one
   pass of the 200 validation images under inference mode), the same accuracies, curves and confusion matrices;
1. the default run, cold (no earlier run in the process), with its time split: scratch training (and, inside it,
   per-epoch validation), frozen features, data and models, final predictions;
2. a second lab run that changes only the freeze depth or the strategy, as a class walks through the lab:
   today it trains scratch again; shared, scratch is the earlier run's and the frozen features are cached;
3. the default run, cold: the networks trained whole (scratch) as before against today's path, twice each,
   interleaved: trained and scored in channels-last layout (tl_core/finetuning.py CHANNELS_LAST), validated and
   scored on a copy with BatchNorm folded into the convolutions (FOLD_BN) in passes sized to the cache
   (PASS_BYTES), each alone too. The same arithmetic in
   another order: the pretrained condition's numbers are identical (its head trains on cached features either
   way), scratch's differ in the last bits and so in their accuracies; the bench prints both and their verdicts.

    python bench/lab_run.py --layout   # only part 3 (the issue-#36 ratio against the path before it)
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tl_core import backbones, data, finetuning, reuse, train  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402

PARTS = {"fit": (finetuning, "fit"), "validation": (train, "evaluate"), "frozen": (finetuning, "frozen_features"),
         "predict": (finetuning, "predict"), "models": (backbones, "create"), "data": (data, "load")}


class Timer:
    """Seconds spent in each part of a run (wrapping the functions it calls)."""

    def __init__(self):
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.scratch = 0.0

    def __enter__(self):
        self.real = {name: getattr(mod, attr) for name, (mod, attr) in PARTS.items()}
        for name, (mod, attr) in PARTS.items():
            setattr(mod, attr, self._wrap(name, self.real[name]))
        return self

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return timed

    def __exit__(self, *exc):
        for name, (mod, attr) in PARTS.items():
            setattr(mod, attr, self.real[name])


def numbers(result) -> list:
    return [(r.weights, r.seed, r.val_acc, r.train_acc, r.history.val_acc, r.history.train_loss, r.confusion.tolist())
            for r in result.runs]


def close(a, b) -> bool:
    """The same numbers: accuracies, accuracy curves, training losses and confusion matrices identical; the
    validation losses are not compared (a pass of 200 images may take other kernels than seven of 32: sums
    that differ in the last bits)."""
    return numbers(a) == numbers(b)


def timed_run(cfg, share: bool, val_batch: int = finetuning.VAL_BATCH, layout: bool = True, fold: bool = True):
    reuse.REUSE = share
    finetuning.VAL_BATCH = val_batch
    finetuning.CHANNELS_LAST, finetuning.FOLD_BN = layout, fold
    with Timer() as t:
        start = time.perf_counter()
        result = finetune.run(cfg, device="cpu")
        seconds = time.perf_counter() - start
    t.scratch = sum(r.history.seconds for r in result.runs if r.weights == "scratch")
    return result, seconds, t


def fresh() -> None:
    reuse.FEATURES.clear()
    reuse.SCRATCH.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 px, 5 epochs, 2 seeds")
    parser.add_argument("--layout", action="store_true", help="only the memory-layout comparison (part 3)")
    args = parser.parse_args(argv)
    cfg = finetune.FinetuneConfig()
    if args.quick:
        cfg = replace(cfg, image_size=32, epochs=5, seeds=2)
    second = [replace(cfg, freeze="6"), replace(cfg, strategy="gradual")]
    print(f"lab run: {cfg.backbone}, {cfg.dataset}, {cfg.shots} shots, {cfg.epochs} epochs, {cfg.seeds} seeds, "
          f"{cfg.image_size} px, weights {cfg.weights}")

    if args.layout:
        return layout(cfg)
    new = finetuning.VAL_BATCH
    fresh()
    before, t_before, part_before = timed_run(cfg, share=True, val_batch=0)
    fresh()
    after, t_after, part_after = timed_run(cfg, share=True)
    finetuning.VAL_BATCH = new
    print(f"\n0. the default run, cold: validation in batches of {cfg.batch_size} {t_before:.1f} s (validation "
          f"{part_before.seconds['validation']:.1f} s), in one pass {t_after:.1f} s (validation "
          f"{part_after.seconds['validation']:.1f} s): {t_before / t_after:.2f}x; same numbers: "
          f"{close(before, after)}; verdict before: {before.verdict().text} | after: "
          f"{after.verdict().text}")

    fresh()
    today, t_today, parts = timed_run(cfg, share=False)
    fresh()
    shared, t_shared, _ = timed_run(cfg, share=True)
    assert numbers(today) == numbers(shared), "the shared path must give today's numbers"
    p = parts.seconds
    print(f"\n1. the default run, cold: today {t_today:.1f} s, shared {t_shared:.1f} s: {t_today / t_shared:.2f}x")
    print(f"   where today's {t_today:.1f} s went: scratch training {parts.scratch:.1f} s "
          f"({parts.scratch / t_today:.0%}; per-epoch validation of {cfg.val_per_class * 10} images inside all fits "
          f"{p['validation']:.1f} s), frozen features {p['frozen']:.1f} s, final predictions {p['predict']:.1f} s, "
          f"models {p['models']:.1f} s, data {p['data']:.1f} s")

    for variant in second:
        what = f"freeze {variant.freeze}" if variant.freeze != cfg.freeze else f"strategy {variant.strategy}"
        fresh()
        reuse.REUSE = True
        finetune.run(cfg, device="cpu")          # the class's first run, in this process
        b, t_b, _ = timed_run(variant, share=True)
        a, t_a, _ = timed_run(variant, share=False)
        assert numbers(a) == numbers(b), f"{what}: the shared path must give today's numbers"
        print(f"2. a second lab run ({what}) after the default one: today {t_a:.1f} s, shared {t_b:.1f} s: "
              f"{t_a / t_b:.1f}x")
    print("\nequal numbers: val accuracies, curves and confusion matrices identical on both paths")
    reuse.REUSE = True
    return layout(cfg)


def accuracies(result) -> str:
    return " ".join(f"{w} " + "/".join(f"{r.val_acc:.3f}" for r in result.by_weights(w)) for w in result.ran())


def layout(cfg) -> int:
    """Part 3: the default run cold, the path before (usual layout, BatchNorm as it is) against channels-last,
    folded BatchNorm and both, interleaved, twice each."""
    paths = {"before": (False, False), "channels-last": (True, False), "folded BatchNorm": (False, True),
             "both (today)": (True, True)}
    times = {name: [] for name in paths}
    results = {}
    for _ in range(2):
        for name, (on, fold) in paths.items():
            fresh()
            results[name], seconds, _ = timed_run(cfg, share=True, layout=on, fold=fold)
            times[name].append(seconds)
    finetuning.CHANNELS_LAST = finetuning.FOLD_BN = True
    before = min(times["before"])
    print("\n3. the default run, cold, best of two (all times in brackets):")
    for name in paths:
        best = min(times[name])
        print(f"   {name:<17} {best:5.1f} s ({', '.join(f'{t:.1f}' for t in times[name])}): {before / best:.2f}x")
    pretrained = {name: [n for n in numbers(r) if n[0] == "pretrained"] for name, r in results.items()}
    print(f"   pretrained condition's numbers identical on every path: "
          f"{all(p == pretrained['before'] for p in pretrained.values())}")
    for name in ("before", "both (today)"):
        print(f"   {name}: {accuracies(results[name])} | {results[name].verdict().text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
