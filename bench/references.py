"""The reference rates behind a first run's estimate (tl_core/serve/references.json): each experiment's default run,
timed once in this process from a cold start, as a student's first press of Train meets it (weights read, features
cached, the run itself), divided by its declared cost (`contract.Experiment.cost`).

    python bench/references.py                # measure every experiment without a reference of its own; print
    python bench/references.py --write        # ... and write tl_core/serve/references.json
    python bench/references.py text peft      # only these

The reference laptop is an idle 2-core machine: run it on one (other load swings seconds 2-10x). With --calibrate,
this machine's speed is measured first, in the same process, on the lab's run whose reference time is known
(`lab_cost.reference_seconds`: Lite0, scratch, 1 seed, 3 epochs), and every time is divided by it. Experiments
with their own model (the lab: `lab_cost`, per backbone) or that borrow a rate (`rate_of`) are left out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tl_core import contract, experiments, lab_cost, reuse  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402
from tl_core.serve import estimates  # noqa: E402


def measurable() -> list[str]:
    """Experiments that train, declare a cost, and have neither their own reference nor a lender."""
    names = []
    for name in experiments.EXPERIMENTS:
        exp = experiments.command(name)
        if exp.trains() and exp.cost is not None and exp.reference is None and not exp.rate_of:
            names.append(name)
    return names


def measure(name: str) -> tuple[float, float]:
    """(seconds, units) of the experiment's default run on the CPU."""
    exp = experiments.command(name)
    cfg = exp.config()
    start = time.perf_counter()
    exp.run(cfg, device="cpu")
    return time.perf_counter() - start, exp.cost(contract.record(cfg))


def speed() -> float:
    """This machine now against the reference laptop (2.0 = takes twice as long), on the lab's reference run."""
    cfg = finetune.FinetuneConfig(seeds=1, epochs=3, weights="scratch")
    for _ in range(2):   # the second: the first also reads the weights and decodes the images (a cold start)
        reuse.FEATURES.clear()
        reuse.SCRATCH.clear()
        start = time.perf_counter()
        finetune.run(cfg, device="cpu")
        seconds = time.perf_counter() - start
    return seconds / lab_cost.reference_seconds(contract.record(cfg))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--calibrate", action="store_true", help="divide by this machine's speed on the lab's reference "
                    "run (a busy machine; the lab's tiny run is mostly fixed costs, so prefer an idle one)")
    args = ap.parse_args()
    names = args.names or measurable()
    table = estimates.references()
    rate = speed() if args.calibrate else 1.0
    print(f"this machine now: {rate:.2f} x the reference laptop (the lab's reference run)\n")
    print(f"{'experiment':<14} {'seconds':>8} {'reference s':>11} {'units':>10} {'s per unit':>11}")
    for name in names:
        try:
            seconds, units = measure(name)
        except Exception as err:  # noqa: BLE001 - a missing package or weights: say so, measure the rest
            print(f"{name:<14} skipped: {str(err).splitlines()[0][:80]}", flush=True)
            continue
        table[name] = float(f"{seconds / rate / units:.4g}")
        print(f"{name:<14} {seconds:>8.1f} {seconds / rate:>11.1f} {units:>10.1f} {table[name]:>11.4g}", flush=True)
    if args.write:
        estimates.REFERENCES.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n", encoding="utf-8")
        print(f"written: {estimates.REFERENCES.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
