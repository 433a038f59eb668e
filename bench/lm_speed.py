"""Benchmark: the language-model page's speeds against the issue's budgets on a 2-core CPU.

    load from the cache  < 5 s      (the converted SmolLM2-135M: weights, config, tokenizer; converted first if needed)
    a next-word answer   < 2 s      (one prompt, the top 10 tokens)
    the default `lm`     < 3 min    (every method over 3 seeds)
    the default `lm-pretrain` < 3 min

Each in a fresh state of this process (the load first, before anything has read the model). Prints one line each,
with the budget and whether it held; --quick skips the two whole runs.

    python bench/lm_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tl_core import causal_lm  # noqa: E402


def timed(what: str, budget: float, fn) -> float:
    start = time.perf_counter()
    fn()
    took = time.perf_counter() - start
    print(f"{what:<28} {took:8.1f} s   budget {budget:5.0f} s   {'ok' if took < budget else 'OVER'}", flush=True)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the load and the next-word answer")
    args = parser.parse_args()
    causal_lm.ready()   # converting once is not what the budget is about
    timed("load from the cache", 5, lambda: (causal_lm.tokenizer(), causal_lm.shared(True)))
    timed("next-word answer", 2, lambda: causal_lm.next_words(causal_lm.shared(True), "The capital of France is"))
    if not args.quick:
        from tl_core.experiments import lm, lm_pretrain

        timed("default lm run", 180, lambda: lm.run(lm.LMConfig()))
        timed("default lm-pretrain run", 180, lambda: lm_pretrain.run(lm_pretrain.PretrainConfig()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
