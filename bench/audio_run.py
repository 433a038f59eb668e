"""Machine listening's default run (`audio`: Spanish digits, 5 clips a word, 3 seeds; frozen, last LSTM layer, scratch)
on the speed path (`experiments.audio.FAST`: one CPU thread, each epoch's validation in one pass) against the path
before it, measured in one process, with the same accuracies; then the frozen-feature cache (the encoder's frozen
layers computed once per clip, shared by every seed and condition) against running them every epoch.

    .venv/bin/python bench/audio_run.py [--seeds N]
"""
import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tl_core import audio  # noqa: E402
from tl_core.experiments import audio as exp  # noqa: E402


def timed(cfg, fast: bool) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, {condition: accuracies}) of one run, its frozen features computed inside it."""
    exp.FAST = fast
    exp.SHARED.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    result = exp.run(cfg, device="cpu")
    return (time.perf_counter() - wall, time.process_time() - cpu,
            {c: [round(r.val_acc, 4) for r in result.runs_of(c)] for c in result.ran()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=exp.AudioConfig().seeds)
    args = parser.parse_args()
    cfg = exp.AudioConfig(seeds=args.seeds)
    start = time.perf_counter()
    audio.spoken_words()      # decoded and featurised once per process: timed on its own
    words = time.perf_counter() - start
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads in this process; the built-in words "
          f"decoded and featurised in {words:.1f} s")
    new, new_cpu, acc_new = timed(cfg, True)
    old, old_cpu, acc_old = timed(cfg, False)
    same = all(abs(a - b) < 0.02 for c in acc_new for a, b in zip(acc_new[c], acc_old[c]))
    print(f"default run ({', '.join(cfg.conditions)}; {cfg.seeds} seeds x {cfg.epochs} epochs): speed path "
          f"{new:.1f} s (CPU {new_cpu:.1f} s), path before {old:.1f} s (CPU {old_cpu:.1f} s): {old / new:.1f}x "
          f"faster; accuracies {acc_new}; same as the path before (within a clip): {same}")
    small = replace(cfg, conditions=("frozen", "last_layer"), seeds=2)
    cached, _, acc_c = timed(small, True)
    direct, _, acc_d = timed(replace(small, cache=False), True)
    same = all(abs(a - b) < 1e-6 for c in acc_c for a, b in zip(acc_c[c], acc_d[c]))
    print(f"frozen-layer cache ({', '.join(small.conditions)}; {small.seeds} seeds): cached {cached:.1f} s, "
          f"frozen layers run every epoch {direct:.1f} s: {direct / cached:.1f}x faster cached; same accuracy: {same}")
