"""Guided Transfer Learning's machinery (Nikolić, Andrić, Nikolić 2023, arXiv 2303.16154): scouts fine-tuned from a
base network, the raw guide (how far each weight moved in the scouts), its focus per tensor and reshaping (a
temperature, or binary freezing), and the guided update that lets each weight move only as far as its guide says
(0 = frozen, 1 = free). The experiment that compares it with freezing is `tl_core.experiments.gtl`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from tl_core.contract import Stop
from tl_core.stacked import Stacked
from tl_core.train import FitConfig, fit

CHANGES = {"squared": "mean over scouts of (w − w_base)²", "abs": "mean over scouts of |w − w_base|"}
FOCUS = {
    "minmax": "min-max to [0, 1] per tensor (default)",
    "subtract_min": "subtract the tensor's minimum",
    "divide_max": "divide by the tensor's maximum",
    "raw": "raw values (tiny: nearly frozen)",
}


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def raw_guide(base: dict[str, torch.Tensor], scouts: list[dict[str, torch.Tensor]],
              change: str = "squared") -> dict[str, torch.Tensor]:
    """Per parameter: the mean over scouts of (w_scout - w_base)^2, or of |w_scout - w_base|."""
    if change not in CHANGES:
        raise ValueError(f"change must be one of {', '.join(CHANGES)}, got {change!r}")
    if not scouts:
        raise ValueError("the guide needs at least one scout")
    out = {}
    for name, w in base.items():
        diffs = torch.stack([s[name] - w for s in scouts])
        out[name] = (diffs ** 2 if change == "squared" else diffs.abs()).mean(0)
    return out


def focus(g: torch.Tensor, mode: str = "minmax") -> torch.Tensor:
    """Normalise one tensor's raw guide. A constant tensor under min-max becomes 1 where it moved, else 0."""
    if mode == "raw":
        return g.clone()
    lo, hi = g.min(), g.max()
    if mode == "subtract_min":
        return g - lo
    if mode == "divide_max":
        return g / hi if hi > 0 else torch.zeros_like(g)
    if mode == "minmax":
        return (g - lo) / (hi - lo) if hi > lo else (g > 0).to(g.dtype)
    raise ValueError(f"focus must be one of {', '.join(FOCUS)}, got {mode!r}")


def reshape(guide: dict[str, torch.Tensor], temperature: float = 1.0,
            free_fraction: float = 0.0) -> dict[str, torch.Tensor]:
    """Guides in [0, 1] whatever comes in (0 = frozen, 1 = free). Temperature: g ** (1 / T), so warm (T > 1)
    lifts every guide toward free and cold (T < 1) pushes the low ones toward frozen, while 0 and 1 stay
    put. free_fraction > 0 instead makes the guide binary per tensor: its top fraction -> 1, the rest -> 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be more than 0, got {temperature}")
    out = {}
    for n, g in guide.items():
        g = g.clamp(0, 1)
        if free_fraction > 0:
            k = max(1, round(free_fraction * g.numel()))
            out[n] = (g >= g.flatten().topk(k).values.min()).to(g.dtype)
        else:
            out[n] = g ** (1 / temperature) if temperature != 1 else g.clone()
    return out


class GuidedUpdate:
    """fit's after_step hook: new = old + guide * (stepped - old) for every guided parameter.

    torch.lerp computes exactly `old` at guide 0 and exactly `stepped` at guide 1 (it switches formula
    at 0.5), so a frozen weight stays bit-identical whatever Adam's momentum or weight decay did, and
    a guide of ones reproduces plain training bit for bit."""

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]):
        self.pairs = [(p, g.to(p.device, p.dtype)) for p, g in pairs]
        self.old = [p.detach().clone() for p, _ in self.pairs]

    @torch.no_grad()
    def __call__(self) -> None:
        for (p, g), old in zip(self.pairs, self.old):
            p.copy_(torch.lerp(old, p, g))
            old.copy_(p)


def guided_hook(model: nn.Module, guide: dict[str, torch.Tensor]) -> GuidedUpdate:
    """The hook for `model`, guiding the parameters named in `guide` (others, e.g. a new head, are free)."""
    named = dict(model.named_parameters())
    missing = [n for n in guide if n not in named]
    if missing:
        raise ValueError(f"the guide names parameters the model does not have: {', '.join(missing)}")
    for n, g in guide.items():
        if g.shape != named[n].shape:
            raise ValueError(f"guide {n!r} has shape {tuple(g.shape)}, the parameter {tuple(named[n].shape)}")
    return GuidedUpdate([(named[n], g) for n, g in guide.items()])


def guide_file(guide: dict[str, torch.Tensor], path) -> None:
    """Save the guide as a .pt state dict: parameter name -> guide tensor (same shape as the parameter)."""
    torch.save({n: g.detach().cpu().clone() for n, g in guide.items()}, path)


# ---- scouts -------------------------------------------------------------------------------------------

@dataclass
class ScoutTask:
    classes: list[str]       # the source classes of this sub-problem
    x: torch.Tensor          # (n, 1, 8, 8) digits or (n, GENES) expression
    y: torch.Tensor          # (n,) labels in the base model's source numbering


def train_scouts(base: nn.Module, tasks: list[ScoutTask], fit_cfg: FitConfig, batched: bool = True,
                 dev: torch.device | None = None, should_stop: Stop | None = None) -> list[dict[str, torch.Tensor]]:
    """Fine-tune one copy of `base` per task; return each scout's final parameters (on the CPU).
    batched: all at once as a `Stacked` model (same batches, same result as one after another)."""
    dev = dev or torch.device("cpu")
    start = params_of(base)
    if batched:
        model = Stacked(copy.deepcopy(base).to(dev), [start] * len(tasks), sample_dims=tasks[0].x.dim() - 1).to(dev)
        x = torch.stack([t.x for t in tasks]).to(dev)
        y = torch.stack([t.y for t in tasks]).to(dev)
        fit(model, (x, y), None, fit_cfg, should_stop=should_stop)
        return [{n: p.cpu() for n, p in model.member(k).items()} for k in range(len(tasks))]
    finals = []
    for t in tasks:
        scout = copy.deepcopy(base).to(dev)
        fit(scout, (t.x.to(dev), t.y.to(dev)), None, fit_cfg, should_stop=should_stop)
        finals.append({n: p.cpu() for n, p in params_of(scout).items()})
    return finals
