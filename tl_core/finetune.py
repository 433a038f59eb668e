"""The fine-tuning lab: a pretrained backbone (or the same one from scratch), a freeze depth, a
strategy, a small few-shot dataset → per-epoch curves, accuracy, confusion matrix; over several seeds.

`run` trains one config (both weights side by side if asked); `sweep` trains a shots × freeze-depth
grid. Both cache the frozen prefix: its features are computed once per model and reused by every epoch,
every shots value of a sweep, and every phase of gradual unfreezing at that depth.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from tl_core import backbones, data, device as devices, freeze
from tl_core.train import FitConfig, History, concat_histories, fit, frozen_features

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class FinetuneConfig:
    backbone: str = "efficientnet_lite0"  # a backbones.REGISTRY name
    weights: str = "pretrained"           # pretrained | scratch | both (side by side)
    dataset: str = "digits"               # a data.DATASETS name
    classes: tuple[str, ...] | None = None  # a subset of the dataset's classes; None = all
    shots: int | None = 5                 # training images per class; None = all that are left
    freeze: str = "all"                   # frozen stages: "all" (all but the head), "none", or a count
    strategy: str = "fixed"               # fixed | gradual | discriminative (freeze.STRATEGIES)
    epochs: int = 10
    lr: float = 1e-3                      # Adam; the head's lr under discriminative LRs
    batch_size: int = 32
    image_size: int = 64                  # small images keep CPU runs fast
    seeds: int = 1                        # runs per weights condition, for bands
    seed: int = 0                         # first seed: split, head init, scratch init
    val_per_class: int = 20               # fixed, class-balanced validation set
    unfreeze_every: int = 2               # gradual unfreezing: epochs per phase
    cache: bool = True                    # cache the frozen prefix's features
    val_fraction: float = 0.15            # own images (run(dataset=...)): class-balanced validation share

    def for_weights(self, weights: str) -> "FinetuneConfig":
        """Scratch means from random weights with every stage trained (freezing random features would
        be a different experiment); the freeze depth and strategy apply to the pretrained model."""
        return replace(self, freeze="none", strategy="fixed") if weights == "scratch" else self

    def conditions(self) -> list[str]:
        return ["pretrained", "scratch"] if self.weights == "both" else [self.weights]

    def validate(self, own_data: bool = False) -> None:
        backbones.entry(self.backbone)
        backbones.check_size(self.backbone, self.image_size)
        if not own_data and self.dataset not in data.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {', '.join(data.DATASETS)}")
        checks = [
            (self.weights in ("pretrained", "scratch", "both"), f"weights must be pretrained, scratch or both, got {self.weights!r}"),
            (self.strategy in freeze.STRATEGIES, f"strategy must be one of {', '.join(freeze.STRATEGIES)}, got {self.strategy!r}"),
            (1 <= self.epochs <= 1000, f"epochs must be between 1 and 1000, got {self.epochs}"),
            (math.isfinite(self.lr) and 0 < self.lr <= 10, f"lr must be a number in (0, 10], got {self.lr}"),
            (1 <= self.batch_size <= 4096, f"batch size must be between 1 and 4096, got {self.batch_size}"),
            (1 <= self.seeds <= 20, f"seeds must be between 1 and 20, got {self.seeds}"),
            (self.seed >= 0, f"seed must be 0 or more, got {self.seed}"),
            (1 <= self.val_per_class <= 500, f"val-per-class must be between 1 and 500, got {self.val_per_class}"),
            (1 <= self.unfreeze_every <= 1000, f"unfreeze-every must be at least 1, got {self.unfreeze_every}"),
            (0.05 <= self.val_fraction <= 0.5, f"validation fraction must be between 0.05 and 0.5, got {self.val_fraction}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class Run:
    """One weights condition, one seed."""
    weights: str
    seed: int
    history: History
    val_acc: float
    train_acc: float
    confusion: np.ndarray        # (classes, classes): rows true, columns predicted, on the val set
    val_pred: np.ndarray         # predicted class of every val image


@dataclass
class FinetuneResult:
    config: FinetuneConfig
    classes: list[str]
    stage_names: list[str]
    frozen: int                   # frozen stages at the start
    runs: list[Run]
    val: data.ImageSet            # the first run's validation set (its confusion matrix, misclassified images)
    device: str
    weights_note: str
    seconds: float = 0.0
    status: str = "finished"
    message: str = ""
    # the first run's trained weights (pretrained when it ran), on the CPU: for predict and export
    model_state: dict | None = field(default=None, repr=False)

    def by_weights(self, weights: str) -> list[Run]:
        return [r for r in self.runs if r.weights == weights]

    def summary(self, weights: str) -> dict:
        runs = self.by_weights(weights)
        first = runs[0].history
        return {
            "val_acc": float(np.mean([r.val_acc for r in runs])),
            "val_acc_std": float(np.std([r.val_acc for r in runs])),
            "train_acc": float(np.mean([r.train_acc for r in runs])),
            "val_acc_seeds": [r.val_acc for r in runs],
            "history": {k: getattr(first, k) for k in ("train_loss", "val_loss", "train_acc", "val_acc")},
            "histories": [{k: getattr(r.history, k) for k in ("train_loss", "val_loss", "train_acc", "val_acc")}
                          for r in runs],
            "status": first.status,
        }

    def to_json(self) -> dict:
        conditions = [w for w in self.config.conditions() if self.by_weights(w)]
        out = {"experiment": "finetune", "config": asdict(self.config)}
        if conditions:
            out.update(self.summary(conditions[0]))  # the first condition's numbers at the top level
        out.update({
            "conditions": {w: self.summary(w) for w in conditions},
            "classes": self.classes, "stages": self.stage_names, "frozen_stages": self.frozen,
            "status": self.status, "message": self.message, "device": self.device,
            "weights_note": self.weights_note, "seconds": round(self.seconds, 3),
        })
        return out


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1).cpu() == labels).float().mean())


@torch.no_grad()
def predict(model, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities for images in [0, 1], in eval mode."""
    model.eval()
    dev = next(model.parameters()).device
    out = [model(images[i:i + batch_size].to(dev)).softmax(1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)


class _Trainer:
    """Trains one model under a strategy; reuses the frozen prefix's features across calls."""

    def __init__(self, model: backbones.StagedModel, cfg: FinetuneConfig, dev: torch.device):
        self.model, self.cfg, self.dev = model, cfg, dev
        self.n = len(model.stages)
        self.k = freeze.parse_freeze(cfg.freeze, self.n)
        # gradual unfreezing and discriminative LRs reach down to stage `floor`: to the stem when the
        # freeze depth is the deepest (all but the head), else to the chosen depth
        self.floor = 0 if self.k == self.n - 1 else self.k
        # (depth, id(images)) → (images, features): holding the images keeps their id from being reused
        self._features: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _cached(self, k: int, images: torch.Tensor) -> torch.Tensor | None:
        hit = self._features.get((k, id(images)))
        return hit[1] if hit is not None and hit[0] is images else None

    def features(self, k: int, images: torch.Tensor) -> torch.Tensor:
        feats = self._cached(k, images)
        if feats is None:
            feats = frozen_features(self.model.prefix(k), images, self.cfg.batch_size)
            self._features[(k, id(images))] = (images, feats)
        return feats

    def _fit_at(self, k: int, epochs: int, train, val, params=None, **hooks) -> History:
        """Train with the first k stages frozen; on cached features when allowed."""
        freeze.freeze_to(self.model, k)
        fit_cfg = FitConfig(epochs=epochs, lr=self.cfg.lr, batch_size=self.cfg.batch_size, seed=self.cfg.seed)
        if self.cfg.cache and k > 0 and params is None:
            xs, xv = self.features(k, train.images), self.features(k, val.images)
            return fit(self.model.suffix(k), (xs, train.labels), (xv, val.labels), fit_cfg, **hooks)
        return fit(self.model, (train.images, train.labels), (val.images, val.labels), fit_cfg, params=params,
                   **hooks)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities; from the cached features of the frozen prefix when it has them."""
        k = freeze.frozen_stages(self.model)
        feats = self._cached(k, images) if self.cfg.cache else None
        if feats is not None:
            return predict(self.model.suffix(k), feats, self.cfg.batch_size)
        return predict(self.model, images, self.cfg.batch_size)

    def train(self, train, val, **hooks) -> History:
        cfg = self.cfg
        if cfg.strategy == "fixed":
            return self._fit_at(self.k, cfg.epochs, train, val, **hooks)
        if cfg.strategy == "discriminative":
            freeze.freeze_to(self.model, self.floor)
            return self._fit_at(self.floor, cfg.epochs, train, val,
                                params=freeze.discriminative_groups(self.model, cfg.lr, first=self.floor), **hooks)
        # gradual unfreezing: phases of decreasing frozen depth, optimizer rebuilt in each
        phases, done = [], 0
        on_epoch = hooks.pop("on_epoch", None)
        for k, span in freeze.gradual_schedule(self.n, cfg.epochs, cfg.unfreeze_every, floor=self.floor):
            shifted = (lambda e, h, base=done: on_epoch(base + e, h)) if on_epoch else None
            phases.append(self._fit_at(k, span, train, val, on_epoch=shifted, **hooks))
            done += span
            if phases[-1].status != "finished":
                break
        return concat_histories(phases)


def _run_one(trainer: _Trainer, weights: str, seed: int, train, val, hooks) -> Run:
    hist = trainer.train(train, val, **hooks)
    probs_val = trainer.predict(val.images)
    probs_train = trainer.predict(train.images)
    pred = probs_val.argmax(1).numpy()
    n = len(val.classes)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (val.labels.numpy(), pred), 1)
    return Run(weights=weights, seed=seed, history=hist, val_acc=_accuracy(probs_val, val.labels),
               train_acc=_accuracy(probs_train, train.labels), confusion=confusion, val_pred=pred)


def _weights_note(cfg: FinetuneConfig) -> str:
    if "pretrained" not in cfg.conditions():
        return "scratch: random initial weights"
    ok, message = backbones.weights_status(cfg.backbone)
    if not ok:
        raise backbones.WeightsUnavailable(f"{cfg.backbone}: {message}")
    return message


def run(cfg: FinetuneConfig = FinetuneConfig(), progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None, device: str = "auto",
        dataset: data.ImageSet | None = None) -> FinetuneResult:
    """Train every (weights, seed) of cfg and return curves, accuracies and confusion matrices.

    `dataset` (the user's own images, at cfg.image_size) replaces the named dataset; its validation set
    is then a class-balanced `cfg.val_fraction` of each class (userdata.fraction_split), not a count."""
    cfg.validate(own_data=dataset is not None)
    start = time.perf_counter()
    note = _weights_note(cfg)
    dev = devices.pick(device)
    if dataset is None:
        ds = data.load(cfg.dataset, cfg.image_size, cfg.classes)
        split = lambda seed: data.few_shot_split(ds, cfg.shots, seed, cfg.val_per_class)  # noqa: E731
    else:
        from tl_core import userdata

        if tuple(dataset.images.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(f"images are {tuple(dataset.images.shape[-2:])} px, the config says {cfg.image_size}")
        ds = dataset
        split = lambda seed: userdata.fraction_split(ds, cfg.val_fraction, seed, cfg.shots)  # noqa: E731
    plan = [(w, cfg.seed + s) for w in cfg.conditions() for s in range(cfg.seeds)]
    runs, status, message, first_val, names, k, kept = [], "finished", "", None, [], 0, None
    for i, (weights, seed) in enumerate(plan):
        train, val = split(seed)
        if first_val is None:
            first_val = val
        model = backbones.create(cfg.backbone, weights, len(ds.classes), seed).to(dev)
        trainer = _Trainer(model, cfg.for_weights(weights), dev)
        names = model.names
        k = trainer.k if weights == "pretrained" or not names else k

        def on_epoch(epoch, hist, i=i, weights=weights, seed=seed):
            if progress:
                progress((i + (epoch + 1) / cfg.epochs) / len(plan),
                         f"{weights}, seed {seed}: epoch {epoch + 1}/{cfg.epochs}")

        r = _run_one(trainer, weights, seed, train, val, {"on_epoch": on_epoch, "should_stop": should_stop})
        runs.append(r)
        if i == 0:
            kept = {key: t.detach().cpu().clone() for key, t in model.state_dict().items()}
        if r.history.status != "finished":
            status, message = r.history.status, r.history.message
            break
    result = FinetuneResult(config=cfg, classes=list(ds.classes), stage_names=names, frozen=k, runs=runs,
                            val=first_val, device=devices.describe(dev), weights_note=note, status=status,
                            message=message, model_state=kept)
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class SweepResult:
    config: FinetuneConfig
    shots: list[int | None]
    freezes: list[str]
    records: list[dict] = field(default_factory=list)   # weights, seed, shots, freeze, val_acc, train_acc
    seconds: float = 0.0
    device: str = ""
    status: str = "finished"

    def grid(self, weights: str) -> np.ndarray:
        """Mean val accuracy, rows = freeze depths, columns = shots (scratch: its one row, 'none')."""
        freezes = self.freezes if weights == "pretrained" else ["none"]
        g = np.full((len(freezes), len(self.shots)), np.nan)
        for i, fr in enumerate(freezes):
            for j, sh in enumerate(self.shots):
                accs = [r["val_acc"] for r in self.records
                        if r["weights"] == weights and r["freeze"] == fr and r["shots"] == sh]
                if accs:
                    g[i, j] = float(np.mean(accs))
        return g

    def to_json(self) -> dict:
        return {"experiment": "sweep", "config": asdict(self.config), "shots": self.shots, "freezes": self.freezes,
                "grid": {w: self.grid(w).tolist() for w in self.config.conditions()},
                "records": self.records, "status": self.status, "device": self.device,
                "seconds": round(self.seconds, 3)}


def sweep(cfg: FinetuneConfig, shots: list[int | None], freezes: list[str], progress: Progress | None = None,
          should_stop: Callable[[], bool] | None = None, device: str = "auto") -> SweepResult:
    """Val accuracy over a shots × freeze-depth grid, for every weights condition and seed. The frozen
    prefix's features are computed once per (weights, seed, depth) and reused for every shots value."""
    cfg.validate()
    _weights_note(cfg)
    for fr in freezes:
        freeze.parse_freeze(fr, len(backbones.create(cfg.backbone, "scratch").stages))
    start = time.perf_counter()
    dev = devices.pick(device)
    ds = data.load(cfg.dataset, cfg.image_size, cfg.classes)
    most = max((s for s in shots if s is not None), default=None) if None not in shots else None
    data.few_shot_split(ds, most, cfg.seed, cfg.val_per_class)  # fails early if a shots value is too large
    out = SweepResult(config=cfg, shots=list(shots), freezes=list(freezes), device=devices.describe(dev))
    plan = [(w, cfg.seed + s, fr) for w in cfg.conditions() for s in range(cfg.seeds)
            for fr in (freezes if w == "pretrained" else ["none"])]   # scratch trains every stage
    for i, (weights, seed, fr) in enumerate(plan):
        model = backbones.create(cfg.backbone, weights, len(ds.classes), seed).to(dev)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = _Trainer(model, replace(cfg.for_weights(weights), freeze=fr, shots=None), dev)
        _, val = data.few_shot_split(ds, 1, seed, cfg.val_per_class)  # the same for every shots value,
        # and the same object each time, so its frozen features are computed once
        for j, sh in enumerate(shots):
            if should_stop is not None and should_stop():
                out.status = "stopped"
                break
            train, _ = data.few_shot_split(ds, sh, seed, cfg.val_per_class)
            model.load_state_dict(initial)       # every shots value starts from the same weights
            r = _run_one(trainer, weights, seed, train, val, {})
            out.records.append({"weights": weights, "seed": seed, "freeze": fr, "shots": sh,
                                "val_acc": r.val_acc, "train_acc": r.train_acc, "status": r.history.status})
            if progress:
                progress((i + (j + 1) / len(shots)) / len(plan), f"{weights}, seed {seed}, freeze {fr}: "
                                                                 f"{sh or 'all'} shots")
        if out.status == "stopped":
            break
    out.seconds = time.perf_counter() - start
    return out


def verdict(result: FinetuneResult) -> tuple[str, str]:
    """(kind, sentence) comparing pretrained with scratch over seeds: "helped", "hurt", "neutral", or
    "single" when only one condition ran. 'Clear' means the gap exceeds the seeds' spread."""
    if result.status != "finished":
        return "stopped", result.message or f"The run ended early ({result.status})."
    if len(result.config.conditions()) < 2:
        s = result.summary(result.config.conditions()[0])
        return "single", (f"{result.config.weights}: validation accuracy {s['val_acc']:.1%} ± {s['val_acc_std']:.1%} "
                          f"over {result.config.seeds} seed(s). Choose weights 'both' to compare with scratch.")
    p, s = result.summary("pretrained"), result.summary("scratch")
    gap = p["val_acc"] - s["val_acc"]
    spread = max(p["val_acc_std"], s["val_acc_std"], 0.01)
    wins = sum(a > b for a, b in zip(p["val_acc_seeds"], s["val_acc_seeds"]))
    n = len(p["val_acc_seeds"])
    numbers = (f"validation accuracy {p['val_acc']:.1%} pretrained vs {s['val_acc']:.1%} from scratch "
               f"(mean of {n} seed{'s' * (n > 1)}; pretrained ahead in {wins} of {n})")
    if n < 2:
        numbers += ". One seed says little: raise 'seeds' for a band"
    if gap > 2 * spread and wins == n:
        return "helped", f"Pretraining helped by {gap * 100:.0f} points: {numbers}."
    if gap < -2 * spread and wins == 0:
        return "hurt", f"Negative transfer: pretraining hurt by {-gap * 100:.0f} points: {numbers}."
    return "neutral", f"No clear difference between pretrained and scratch here: {numbers}."
