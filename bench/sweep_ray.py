"""Benchmark: the lab's sweep on the local engine (cells one after another in this process) and on Ray
(every cell a Ray task), the same grid and seeds, in one process. Prints Ray's start-up time and memory,
the ratio local / Ray (cold: the first grid, workers importing torch; warm: the next one), whether both
give the same cells, and the ideal ratio for the cores available: min(cores, cells) if a cell gains
nothing from more than one thread (the local engine's torch threads do help somewhat, so the real ideal
lies between 1 and that). The local engine is also timed on one thread, the per-cell baseline Ray
parallelises.

    python bench/sweep_ray.py [--backbone shapes_cnn] [--epochs 5] [--seeds 2] [--address HOST:6379]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from tl_core import engine  # noqa: E402
from tl_core.experiments import finetune  # noqa: E402


def ray_memory_mb() -> float:
    """Resident memory of Ray's own processes on this machine (raylet, GCS, workers, ...), in MB."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit():
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if (b"ray::" in cmd or b"/ray/" in cmd) and int(proc.name) != os.getpid():
                rss = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("VmRSS"))
                total += int(rss.split()[1])
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def timed(cfg: finetune.SweepConfig) -> tuple[float, list]:
    start = time.perf_counter()
    result = finetune.sweep(cfg, device="cpu")
    assert result.status == "finished", result.message
    return time.perf_counter() - start, result.records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="shapes_cnn")
    parser.add_argument("--dataset", default="textures")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--shots", default="1,5,20")
    parser.add_argument("--freezes", default="all,2,none")
    parser.add_argument("--address", default="", help="a Ray cluster to join (default: a local Ray on this machine)")
    args = parser.parse_args()
    cfg = finetune.SweepConfig(backbone=args.backbone, dataset=args.dataset, image_size=args.size, epochs=args.epochs,
                               seeds=args.seeds, shots=tuple(int(s) for s in args.shots.split(",")),
                               freezes=tuple(args.freezes.split(",")))
    cells = args.seeds * (len(cfg.resolve().freezes) + 1)
    cores = os.cpu_count() or 1
    print(f"{args.backbone} at {args.size} px, {args.dataset}, shots {args.shots}, freezes {args.freezes}, "
          f"{args.epochs} epochs, {args.seeds} seeds, weights both: {cells} cells; {cores} cores here")

    timed(replace(cfg, epochs=1, seeds=1, shots=(1,)))      # warm-up: the dataset loaded, torch's first calls
    local, local_records = timed(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    local_1, _ = timed(cfg)
    torch.set_num_threads(threads)

    started = time.perf_counter()
    engine.connect(args.address)
    start_s = time.perf_counter() - started
    import ray
    ray_cpus = int(ray.cluster_resources().get("CPU", 0))
    on_ray = replace(cfg, engine="ray", address=args.address)
    cold, ray_records = timed(on_ray)
    warm, warm_records = timed(on_ray)
    memory = ray_memory_mb()
    engine.shutdown()

    ideal = min(ray_cpus or cores, cells)
    same = local_records == ray_records == warm_records
    print(f"Ray start-up {start_s:.1f} s, {ray_cpus} CPUs in the cluster, Ray's processes {memory:.0f} MB resident")
    print(f"local ({threads} threads) {local:.1f} s, local (1 thread) {local_1:.1f} s, "
          f"Ray cold {cold:.1f} s, Ray warm {warm:.1f} s")
    print(f"ratio local / Ray: cold {local / cold:.2f}x, warm {local / warm:.2f}x; "
          f"local 1 thread / Ray warm {local_1 / warm:.2f}x; ideal {ideal}x (min(CPUs, cells)); "
          f"same cells: {same}")


if __name__ == "__main__":
    main()
