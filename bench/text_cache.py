"""Feature extraction on text: the frozen encoder's sentence embeddings computed once (cached) against
running the frozen encoder again every epoch. Prints the ratio, measured in one process, and whether both
give the same validation accuracy.

    .venv/bin/python bench/text_cache.py
"""
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tl_core.experiments import text as exp  # noqa: E402

CFG = exp.TextConfig(conditions=("feature",), shots=8, seeds=2, epochs=10)


def timed(cfg) -> tuple[float, list[float]]:
    start = time.perf_counter()
    result = exp.run(cfg, device="cpu")
    return time.perf_counter() - start, [r.val_acc for r in result.runs]


if __name__ == "__main__":
    torch.set_num_threads(1)
    exp.run(replace(CFG, epochs=1, seeds=1, cache=False), device="cpu")   # load the encoder and tokenizer first
    exp.SHARED.clear()   # the cached run computes its embeddings inside the timing
    cached, acc_cached = timed(CFG)
    direct, acc_direct = timed(replace(CFG, cache=False))
    same = all(abs(a - b) < 1e-6 for a, b in zip(acc_cached, acc_direct))
    print(f"feature extraction, {CFG.shots} sentences per topic, {CFG.seeds} seeds x {CFG.epochs} epochs: "
          f"embeddings cached {cached:.1f} s, encoder re-run every epoch {direct:.1f} s: "
          f"{direct / cached:.1f}x faster cached; same accuracy: {same}")
