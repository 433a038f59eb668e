"""How right the estimate before a lab run is (tl_core/lab_cost.py reference_seconds, scaled by this machine's
rate), per backbone, with and without augmentation, in this process; and the reference rates it is built from.

    python bench/estimates.py                 # every backbone, scratch and pretrained, plain and augmented
    python bench/estimates.py --measure       # the reference rates, relative to Lite0, anchored on its default run

Other work on a shared machine swings seconds 2-10x, so everything here is measured in one process, interleaved
(every round times each configuration once) and the fastest of the rounds is kept: the ratios are what to read.

Check (the default): this machine's rate is Lite0's (a scratch cell, the lab's images, 1 seed; the fastest of the
rounds over its reference seconds), and every other run is estimated with it, as the history-based estimate does
after runs of another backbone: estimate / measured within 0.7-1.3 is the goal.

Measure: per backbone, a scratch cell at 4 epochs (its median epoch over the epoch's passes is the ms per pass of a
network trained whole, channels-last on a CPU; the rest of the cell's time the seconds per cell) and a pretrained
cell (features once, the head trained on them; its passes in the usual layout: FEATURE_MS) and the same cell again
at once, its frozen network and features kept (what a later seed of it costs beside its passes, over the scratch
cell's fixed seconds: LATER_SEED_S / CELL_S), plus augment.ms_per_image; all relative to Lite0, then scaled so
that the lab's default run (Lite0, both, 3 seeds, 15 epochs) takes DEFAULT_RUN_S on the reference machine.

Backbones whose pretrained weights are not on this machine are timed with random weights in their place (the time
of a pass does not depend on the weights' values); vit_b_16 (224 px only, minutes a cell) is left out by default.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tl_core import augment, backbones, contract, lab_cost, reuse  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402

AUGMENT = ("color", "crop", "flip")
# the lab's default run on the reference machine (an idle 2-core laptop): 27.0 s before channels-last (issue #36),
# 1.95x faster with channels-last, folded BatchNorm and cache-sized validation passes (bench/lab_run.py --layout)
DEFAULT_RUN_S = 27.0 / 1.95


def any_weights() -> None:
    """Time the pretrained condition of backbones whose weights are not here with random weights in their place."""
    real_create, real_status = backbones.create, backbones.weights_status

    def create(name, weights="pretrained", *args, **kwargs):
        if weights == "pretrained" and not real_status(name)[0]:
            weights = "scratch"
        return real_create(name, weights, *args, **kwargs)

    backbones.create = create
    backbones.weights_status = lambda name: (True, real_status(name)[1] if real_status(name)[0] else "random")


def measured(cfg, epochs: list | None = None) -> float:
    """Seconds of a cold lab run (no features or scratch runs kept from before); `epochs` gets each epoch's seconds
    (a run of one cell: the time between its progress reports)."""
    reuse.FEATURES.clear()
    reuse.SCRATCH.clear()
    stamps = []
    start = time.perf_counter()
    finetune.run(cfg, progress=lambda fraction, message="": stamps.append(time.perf_counter()), device="cpu")
    took = time.perf_counter() - start
    if epochs is not None:
        epochs.extend(b - a for a, b in zip(stamps[:-2], stamps[1:-1]))   # the last report: the cell is done
    return took


def size_of(backbone: str) -> int:
    return 224 if backbones.entry(backbone).fixed_size else 64


def fastest(configs: dict, rounds: int) -> dict:
    """The fastest of `rounds` timings of each configuration, interleaved (every round times each once)."""
    best = dict.fromkeys(configs, float("inf"))
    for r in range(rounds):
        for key, cfg in configs.items():
            best[key] = min(best[key], measured(cfg))
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return best


def augment_ms(times: int = 5) -> float:
    """ms to augment one 64 px image with every augmentation (augment.ms_per_image, the fastest of `times`)."""
    out = []
    for _ in range(times):
        out.append(augment.ms_per_image(AUGMENT, 64, fresh=True))
    return min(out)


def measure_rates(names, rounds: int, epochs: int = 4) -> None:
    """Each backbone's ms per pass of a network trained whole (the median epoch of its fastest scratch cell over
    its passes), its seconds per cell (the rest of that cell's time), ms per pass of a pretrained cell (features
    once, the head trained on them), relative to Lite0, then scaled to the reference machine by the default run."""
    names = ["efficientnet_lite0"] + [n for n in names if n != "efficientnet_lite0"]
    n_train, n_val = 50, 200   # the lab's defaults: 10 digits x 5 shots, 20 validation images a class
    epoch_passes = 3 * n_train + n_val
    aug_ms = augment_ms()
    runs = {name: (float("inf"), 0.0) for name in names}   # the fastest scratch cell: (seconds, its epoch's)
    pretrained = {name: float("inf") for name in names}
    later = {name: float("inf") for name in names}   # a pretrained cell again at once, its features kept: a later seed
    for r in range(rounds):
        for name in names:
            cfg = finetune.FinetuneConfig(backbone=name, weights="scratch", seeds=1, image_size=size_of(name))
            times: list = []
            took = measured(replace(cfg, epochs=epochs), times)
            if took < runs[name][0]:   # its epoch and the rest of it from the same run: under the same load
                runs[name] = (took, sorted(times)[len(times) // 2])
            pretrained[name] = min(pretrained[name], measured(replace(cfg, weights="pretrained")))
            start = time.perf_counter()
            finetune.run(replace(cfg, weights="pretrained"), device="cpu")   # the frozen network and features kept
            later[name] = min(later[name], time.perf_counter() - start)
        print(f"  round {r + 1}/{rounds} done", flush=True)
    total = {name: t for name, (t, _) in runs.items()}
    epoch = {name: e for name, (_, e) in runs.items()}
    aug_ms = min(aug_ms, augment_ms())
    rates = {}
    pp = lab_cost.cell_cost(finetune.FinetuneConfig(), "pretrained", n_train, n_val, False)
    for name in names:
        ms = 1000 * epoch[name] / epoch_passes
        cell = max(total[name] - epochs * epoch[name], 0.0)
        feature = 1000 * max(pretrained[name] - cell, 0.1 * pretrained[name]) / pp
        rates[name] = (ms, cell, feature)
    # this machine's seconds for the default run by these rates, against the reference machine's DEFAULT_RUN_S
    ms, cell, feature = rates["efficientnet_lite0"]
    default = finetune.FinetuneConfig()
    here = 3 * (lab_cost.cell_cost(default, "scratch", n_train, n_val, False) * ms / 1000 + pp * feature / 1000
                + cell) + cell + 2 * later["efficientnet_lite0"]   # a pretrained cell: a whole one, 2 later seeds
    scale = DEFAULT_RUN_S / here
    print(f"\nthis machine: the default run would take {here:.1f} s; the reference machine {DEFAULT_RUN_S:.1f} s "
          f"(x{scale:.3f})\naugmenting one 64 px image: {aug_ms:.3f} ms here, {aug_ms * scale:.3f} ms reference\n")
    print(f"{'backbone':<20} {'whole ms':>9} {'x Lite0':>8} {'feature ms':>10} {'x Lite0':>8} {'cell s':>7} "
          f"{'later/cell':>10}  (reference machine; fastest of {rounds}: scratch cell of {epochs} epochs, its epoch, "
          f"pretrained cell, again at once)")
    lite = rates["efficientnet_lite0"]
    for name, (ms, cell, feature) in rates.items():
        print(f"{name:<20} {ms * scale:>9.3f} {ms / lite[0]:>8.2f} {feature * scale:>10.3f} {feature / lite[2]:>8.2f} "
              f"{cell * scale:>7.2f} {later[name] / max(cell, 1e-9):>10.2f}  ({total[name]:.1f} s, "
              f"{epoch[name]:.2f} s, {pretrained[name]:.1f} s, {later[name]:.2f} s here)", flush=True)


def cost_model_at(rev: str):
    """tl_core/lab_cost.py as it was at git revision `rev`, as a module (to print its ratios beside today's)."""
    import subprocess
    import types

    source = subprocess.run(["git", "show", f"{rev}:tl_core/lab_cost.py"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    module = types.ModuleType(f"lab_cost_{rev}")
    exec(compile(source, f"lab_cost.py@{rev}", "exec"), module.__dict__)
    return module


def check(names, rounds: int, seeds: int, epochs: int, before: str = "") -> None:
    base = finetune.FinetuneConfig(seeds=1, epochs=3, weights="scratch")
    configs = {"base": base}
    for name in names:
        for weights in ("scratch", "pretrained"):
            for aug in ((), AUGMENT):
                configs[(name, weights, aug)] = replace(base, backbone=name, image_size=size_of(name), weights=weights,
                                                        augment=aug, seeds=seeds, epochs=epochs)
    best = fastest(configs, rounds)
    models = {"": lab_cost} | ({before: cost_model_at(before)} if before else {})
    rates = {k: best["base"] / m.reference_seconds(contract.record(base)) for k, m in models.items()}
    print(f"\nthis machine's rate: {rates['']:.2f} x the reference machine (Lite0, scratch, 1 seed, 3 epochs; "
          f"fastest of {rounds}){f'; by the cost model at {before}: {rates[before]:.2f}' if before else ''}\n")
    print(f"{'backbone':<20} {'weights':<11} {'augment':<8} {'estimate':>9} {'measured':>9} {'ratio':>6}"
          + (f" {'at ' + before:>10}" if before else ""))
    for key, cfg in configs.items():
        if key == "base":
            continue
        name, weights, aug = key
        est = {k: rates[k] * m.reference_seconds(contract.record(cfg)) for k, m in models.items()}
        print(f"{name:<20} {weights:<11} {'yes' if aug else 'no':<8} {est['']:>8.1f}s {best[key]:>8.1f}s "
              f"{est[''] / best[key]:>6.2f}" + (f" {est[before] / best[key]:>10.2f}" if before else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help="measure the reference rates instead")
    parser.add_argument("--backbones", default="", help="comma-separated (default: all but vit_b_16)")
    parser.add_argument("--rounds", type=int, default=2, help="timings of each configuration (the fastest is kept)")
    parser.add_argument("--seeds", type=int, default=1, help="check: seeds per run")
    parser.add_argument("--epochs", type=int, default=3, help="check: epochs per run")
    parser.add_argument("--before", default="", help="check: also the ratios by lab_cost.py at this git revision")
    args = parser.parse_args(argv)
    names = args.backbones.split(",") if args.backbones else [b for b in backbones.IMAGE if b != "vit_b_16"]
    any_weights()
    if args.measure:
        measure_rates(names, args.rounds)
    else:
        check(names, args.rounds, args.seeds, args.epochs, args.before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
