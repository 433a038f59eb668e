"""Scouts batched vs one after another: K=8 scouts of the GTL lab's base model, in one process.

Both paths train the same copies on the same sub-problems with the same batches (tests check they
end equal); batched runs all K as one `tl_core.stacked.Stacked` model (a GTLNet is an nn.Sequential,
so it takes the batched layer-by-layer path: one batched matmul or grouped convolution per layer), so
each step is one optimizer step for all scouts. Prints both times and the ratio (target >= 4x).

    .venv/bin/python bench/gtl_scouts.py [--arch mlp|cnn] [--scouts 8] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tl_core import data, gtl_data, gtl_lab, guidance, stacked  # noqa: E402
from tl_core import device as devices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mlp", choices=tuple(gtl_lab.ARCHS))
    ap.add_argument("--scouts", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5, help="best of this many timings per path")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both paths (the lab uses 1)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = devices.pick(args.device)
    cfg = gtl_lab.GTLConfig(arch=args.arch, scouts=args.scouts, scout_epochs=args.epochs)
    source = gtl_data.load_digits(cfg.source_classes())
    train, _ = data.few_shot_split(source, None, cfg.seed, val_per_class=20)
    base = gtl_data.make_net(cfg.arch, len(source.classes), cfg.seed)
    tasks = gtl_lab.scout_tasks(train, cfg)
    fit_cfg = gtl_lab.scout_fit(cfg)
    assert stacked.Stacked(base, [dict(base.named_parameters())])._plan is not None, "not the fast path"
    guidance.train_scouts(base, tasks[:2], fit_cfg, batched=True, dev=dev)   # warm up: lazy imports, first calls
    guidance.train_scouts(base, tasks[:2], fit_cfg, batched=False, dev=dev)

    def best(batched: bool) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            guidance.train_scouts(base, tasks, fit_cfg, batched=batched, dev=dev)  # returns CPU tensors: synced
            times.append(time.perf_counter() - t0)
        return min(times)

    seq, bat = best(False), best(True)
    steps = cfg.scout_epochs * -(-len(tasks[0].y) // fit_cfg.batch_size)
    where = devices.describe(dev) if dev.type != "cpu" else f"cpu, {args.threads} thread(s)"
    print(f"{args.scouts} scouts ({args.arch}, {len(tasks[0].y)} images each, {steps} Adam steps, "
          f"{where}), best of {args.repeats}:")
    print(f"  sequential {seq:.3f} s   batched {bat:.3f} s   ratio {seq / bat:.1f}x (target >= 4x)")


if __name__ == "__main__":
    main()
