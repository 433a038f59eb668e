"""The learning-rate range test (Leslie Smith's, made known by fastai's `lr_find`): train the lab's model for
a few dozen mini-batches while the learning rate grows exponentially from `start_lr` to `end_lr`, record the
training loss of every mini-batch, and suggest the rate where the smoothed loss falls fastest.

It trains through THE loop, `train.fit`, on the lab's model, data split and freeze depth (the frozen prefix's
features cached, as the lab caches them). `fit` builds its optimizer itself, so the rate reaches it through a
parameter group whose "lr" is a 0-d tensor: the optimizer keeps that very tensor, and fit's `after_step` hook
sets it for the next mini-batch (Adam and SGD read a tensor learning rate at every step). fit's `loss_fn` hook
records each mini-batch's loss; its `should_stop` hook ends the sweep after `steps` mini-batches, or as soon
as the smoothed loss passes `stop_factor` × its lowest (it has diverged: larger rates say nothing more).

The suggestion: the steepest descent of the smoothed loss against log10(learning rate), looked for between the
first tenth of the sweep (the smoothing's warm-up) and the smoothed loss's minimum. Where the loss never
falls before its minimum, the rule falls back to the other classic one, the minimum's rate / 10. Both are in
the JSON (`suggested_lr` with `rule`, `min_lr`, `min_lr_over_10`).

    python -m tl_core lr-find --backbone shapes_cnn --dataset digits --json
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tl_core import backbones, contract, data, freeze, train
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.finetuning import FinetuneConfig, FrozenCache, model_for
from tl_core.i18n import tr
from tl_core.serve.estimates import units

_LAB = {f.name: f for f in dataclasses.fields(FinetuneConfig)}


def _lab(name: str):
    """The lab's own declaration of a setting (default, help, range, checks): one spelling for both."""
    f = _LAB[name]
    return field(default=f.default, metadata=f.metadata)


def _range_problem(value: float) -> str:
    return "" if value > 0 else f"learning rates must be positive, got {value:g}"


@dataclass(frozen=True)
class LrFindConfig:
    backbone: str = _lab("backbone")
    weights: str = setting("pretrained", "which weights to start from", choices=("pretrained", "scratch"),
                           title="Weights")
    dataset: str = _lab("dataset")
    classes: tuple[str, ...] = _lab("classes")
    shots: int | None = _lab("shots")
    freeze: str = _lab("freeze")
    batch_size: int = _lab("batch_size")
    image_size: int = _lab("image_size")
    seed: int = _lab("seed")
    val_per_class: int = _lab("val_per_class")
    cache: bool = _lab("cache")
    start_lr: float = setting(1e-6, "the sweep's first learning rate", lo=1e-8, hi=1.0, label="start lr",
                              check=_range_problem)
    end_lr: float = setting(10.0, "the sweep's last learning rate", lo=1e-6, hi=100.0, label="end lr",
                            check=_range_problem)
    steps: int = setting(100, "mini-batches in the sweep (one learning rate each)", lo=5, hi=2000)
    smoothing: float = setting(0.9, "exponential moving average of the loss (0: none)", lo=0.0, hi=0.999)
    stop_factor: float = setting(4.0, "stop once the smoothed loss passes this many times its lowest", lo=1.5,
                                 hi=100.0, label="stop factor")

    def check(self) -> None:
        if self.end_lr <= self.start_lr:
            raise ValueError(f"end lr ({self.end_lr:g}) must be larger than start lr ({self.start_lr:g})")
        backbones.check_size(self.backbone, self.image_size)
        freeze.parse_freeze(self.freeze, len(backbones.stage_names(self.backbone)))

    def resolve(self) -> "LrFindConfig":
        return replace(self, freeze=str(freeze.parse_freeze(self.freeze, len(backbones.stage_names(self.backbone)))))

    def lab(self) -> FinetuneConfig:
        """The lab's config of the same model, data and freeze depth (a fixed-depth strategy)."""
        shared = {k: getattr(self, k) for k in _LAB if hasattr(self, k)}
        return FinetuneConfig(**{**shared, "strategy": "fixed", "seeds": 1})

    @classmethod
    def from_lab(cls, cfg: FinetuneConfig, **overrides) -> "LrFindConfig":
        """The range test of a lab config: its backbone, data, freeze depth; pretrained weights when it trains them."""
        names = [f.name for f in dataclasses.fields(cls) if f.name in _LAB and f.name != "weights"]
        shared = {name: getattr(cfg, name) for name in names}
        weights = "pretrained" if "pretrained" in cfg.conditions() else "scratch"
        return cls(**{**shared, "weights": weights, **overrides})

    def lr_at(self, step: int) -> float:
        """The rate of mini-batch `step` (0 … steps-1): exponential from start_lr to end_lr."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (step / max(self.steps - 1, 1))


def smooth(losses, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average (fastai's): the first values are not pulled towards 0."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)) if beta > 0 else loss)
    return np.array(out, dtype=float)


def suggest(lrs, smoothed) -> tuple[float, str]:
    """(rate, rule): the steepest descent of the smoothed loss against log10(rate) before its minimum, past
    the first tenth of the sweep; else the minimum's rate / 10."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    lowest = int(np.nanargmin(smoothed))
    skip = max(1, len(lrs) // 10)
    if lowest - skip >= 2:
        slope = np.gradient(smoothed, np.log10(lrs))
        i = skip + int(np.argmin(slope[skip:lowest + 1]))
        if slope[i] < 0:
            return float(lrs[i]), "steepest descent of the smoothed loss"
    return float(max(lrs[lowest] / 10, lrs[0])), "minimum of the smoothed loss / 10"


@dataclass
class _Sweep:
    lrs: list
    losses: list
    status: str
    message: str
    ended: str


@dataclass
class LrFindResult(contract.Result):
    config: LrFindConfig
    lrs: list = field(default_factory=list)        # the rate of each mini-batch's step
    losses: list = field(default_factory=list)     # its training loss (before that step)
    smoothed: list = field(default_factory=list)
    suggested_lr: float = float("nan")
    rule: str = ""
    min_lr: float = float("nan")
    ended: str = ""                                # why the sweep ended: all steps, or the loss diverged
    kind = "lr-find"
    headline = "suggested_lr"

    def body(self) -> dict:
        return {"lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed, "suggested_lr": self.suggested_lr,
                "rule": self.rule, "min_lr": self.min_lr, "min_lr_over_10": self.min_lr / 10, "ended": self.ended,
                "steps_run": len(self.lrs), "swept": [self.config.start_lr, self.config.end_lr]}

    def metrics(self) -> dict[str, float]:
        return {"suggested_lr": self.suggested_lr, "min_lr": self.min_lr}

    def curves(self) -> dict[str, list]:
        return {"losses": self.losses, "lrs": self.lrs}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        return Verdict("single", tr("Suggested learning rate {lr} ({rule}), over {n} mini-batches from {start} to "
                                    "{end}; the loss was lowest at {lowest}. {ended}", lr=f"{self.suggested_lr:.1e}",
                                    rule=self.rule, n=len(self.lrs), start=f"{self.config.start_lr:.0e}",
                                    end=f"{self.lrs[-1]:.1e}", lowest=f"{self.min_lr:.1e}", ended=self.ended))


def run(cfg: LrFindConfig = LrFindConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> LrFindResult:
    """Sweep the learning rate over cfg.steps mini-batches of the lab's model and data; see the module."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    start = time.perf_counter()
    dev = devices.pick(device)
    lab = cfg.lab()
    ds = data.load(cfg.dataset, cfg.image_size, cfg.classes or None)
    k = int(cfg.freeze)

    def train_one(cell, on_epoch, user_stop) -> _Sweep:
        tr, _ = data.few_shot_split(ds, cfg.shots, cell.seed, cfg.val_per_class)
        model = model_for(lab, cell.condition, len(ds.classes), cell.seed).to(dev)
        freeze.freeze_to(model, k)
        net, x = model, tr.images
        if cfg.cache and k > 0:   # the frozen prefix's features, once (as the lab trains on them)
            net, x = model.suffix(k), FrozenCache(model, cfg.batch_size).at(k, tr.images, should_stop=user_stop)
        lr = torch.tensor(cfg.lr_at(0), dtype=torch.float64)   # the optimizer's own rate: after_step sets it
        lrs, losses, state = [], [], {"best": math.inf, "avg": 0.0, "ended": ""}

        def loss_fn(out, target, per_member):
            loss = train.cross_entropy(out, target, per_member)
            lrs.append(float(lr))
            losses.append(float(loss.detach()))
            return loss

        def after_step():
            n = len(losses)
            state["avg"] = cfg.smoothing * state["avg"] + (1 - cfg.smoothing) * losses[-1]
            avg = state["avg"] / (1 - cfg.smoothing ** n) if cfg.smoothing > 0 else losses[-1]
            state["best"] = min(state["best"], avg)
            if not math.isfinite(avg) or (n > 5 and avg > cfg.stop_factor * state["best"]):
                state["ended"] = (f"The sweep stopped at {lrs[-1]:.1e}, where the loss diverged (past "
                                  f"{cfg.stop_factor:g}× its lowest).")
            elif n >= cfg.steps:
                state["ended"] = f"All {cfg.steps} mini-batches ran."
            lr.fill_(cfg.lr_at(n))
            if progress is not None and (n % 5 == 0 or state["ended"]):
                progress(min(n / cfg.steps, 1.0), f"learning rate {lrs[-1]:.1e}: loss {losses[-1]:.3f}")

        def stop() -> bool:
            return bool(state["ended"]) or (user_stop is not None and user_stop())

        epochs = cfg.steps   # an upper bound (every epoch takes one mini-batch or more): `stop` ends it
        fit_cfg = train.FitConfig(epochs=epochs, lr=cfg.start_lr, batch_size=cfg.batch_size, seed=cell.seed)
        params = [{"params": [p for p in net.parameters() if p.requires_grad], "lr": lr}]
        hist = train.fit(net, (x, tr.labels), None, fit_cfg, params=params, loss_fn=loss_fn, after_step=after_step,
                         should_stop=stop)
        if state["ended"] or hist.status == "diverged":
            return _Sweep(lrs, losses, "finished", "", state["ended"] or "The sweep stopped: the loss became NaN/inf.")
        return _Sweep(lrs, losses, hist.status, hist.message or "stopped by the user", "")

    out = contract.run_cells(contract.plan([cfg.weights], 1, cfg.seed), train_one, progress, should_stop)
    sweep = out.results[0] if out.results else _Sweep([], [], out.status, out.message, "")
    result = LrFindResult(config=cfg, lrs=sweep.lrs, losses=sweep.losses, ended=sweep.ended, status=out.status,
                          message=out.message or sweep.message, device=devices.describe(dev))
    if len(sweep.losses) >= 5 and out.status == "finished":
        sm = smooth(sweep.losses, cfg.smoothing)
        finite = np.isfinite(sm)
        result.smoothed = [float(v) if f else None for v, f in zip(sm, finite)]
        lrs_f, sm_f = np.array(sweep.lrs)[finite], sm[finite]
        result.suggested_lr, result.rule = suggest(lrs_f, sm_f)
        result.min_lr = float(lrs_f[int(np.argmin(sm_f))])
    elif out.status == "finished":
        result.status, result.message = "failed", "fewer than 5 mini-batches ran: nothing to suggest from"
    result.seconds = time.perf_counter() - start
    return result


def nearest_step(lr: float, steps) -> float:
    """The value of `steps` (e.g. the lab's learning-rate slider) nearest to lr on a log scale."""
    return min((s for s in steps if s is not None), key=lambda s: abs(math.log10(s) - math.log10(lr)))


def _text(result: LrFindResult, out: dict) -> str:
    cfg = result.config
    return (f"{cfg.backbone} ({cfg.weights}), {cfg.dataset}, {cfg.shots or 'all'} shots/class, {cfg.freeze} stages "
            f"frozen, batch {cfg.batch_size}, on {result.device} in {result.seconds:.1f} s\n" + result.verdict().text)


EXPERIMENTS = (
    contract.Experiment("lr-find", "the learning-rate range test: loss against an exponentially growing rate, and "
                                   "a suggested rate", LrFindConfig, run, text=_text,
        page="finetune", plots="lr_find",
        cost=lambda c: units(1, 1, 1, c["shots"], c["image_size"])),
)
