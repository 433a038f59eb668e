"""What a run reports while it trains: its progress, and each epoch's curves for the live chart.

Nothing here imports torch or Streamlit: experiments report through it, the server and worker processes read it.
"""
from __future__ import annotations

import itertools
import sys
from typing import Callable


class Progress:
    """The `progress(fraction, message)` a run is given, plus `epoch(label, epoch, history, condition="")` for
    the live curve: the protocol's backwards-compatible extension (a runner that has an epoch's History calls
    it). Until the runner does, a call from inside a training loop's epoch callback finds that History (a
    local `hist`, with the runner's `cell`) in the callers' frames."""

    def __init__(self, emit: Callable[..., None]):
        self.emit = emit
        self.explicit = False

    def __call__(self, fraction: float, message: str = "") -> None:
        self.emit("progress", float(fraction), str(message))
        if not self.explicit:
            found = _history_in_callers()
            if found is not None:
                self._live(*found)

    def epoch(self, label: str, epoch: int, hist, condition: str = "") -> None:
        self.explicit = True
        self._live(label, condition, hist)

    def _live(self, label: str, condition: str, hist) -> None:
        curves = {k: [_mean(v) for v in getattr(hist, k, [])] for k in ("val_acc", "val_loss", "train_loss")}
        self.emit("live", str(label), str(condition), {k: v for k, v in curves.items() if v})


def _mean(v) -> float:
    return float(sum(v) / len(v)) if isinstance(v, (list, tuple)) and v else float(v)


def _history_in_callers(depth: int = 6):
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        hist = frame.f_locals.get("hist")
        if hist is not None and hasattr(hist, "val_loss") and hasattr(hist, "train_loss"):
            cell = frame.f_locals.get("cell")
            if cell is not None and hasattr(cell, "label"):
                return cell.label, getattr(cell, "condition", ""), hist
            return "pretraining", "", hist
        frame = frame.f_back
    return None


def by_cost(progress, costs: list[float]):
    """`progress` for a plan whose cells cost unequal time: `contract.run_cells` reports (i + done) / n for
    cell i; this reports the cost done instead, so the bar moves as time passes, not as cells are counted."""
    total = float(sum(costs))
    if progress is None or total <= 0 or not costs:
        return progress
    n = len(costs)
    before = list(itertools.accumulate([0.0, *costs]))

    def mapped(fraction, message=""):
        x = min(max(float(fraction), 0.0), 1.0) * n
        i = min(int(x), n - 1)
        progress((before[i] + costs[i] * (x - i)) / total, message)

    if hasattr(progress, "epoch"):
        mapped.epoch = progress.epoch
    return mapped
