"""The Guided Transfer Learning lab that both GTL experiments run (`tl_core.experiments.gtl`, one comparison, and
`tl_core.experiments.gtl_sweep`, a grid of them): its settings (`GTLConfig`), the base network pretrained on the
source classes and its scouts (once per scout setting, cached), the guide a config asks for, and one condition
(scratch, plain, guided, or freezing all but the head) trained on one few-shot target split.

The guide's machinery is `tl_core.guidance`; the data and the networks, `tl_core.gtl_data`.
"""
from __future__ import annotations

import copy
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from tl_core import contract, data, guidance
from tl_core import device as devices
from tl_core.contract import Progress, Stop, setting
from tl_core.gtl_data import DIGITS, GTLNet, inputs_of, load_classes, make_net
from tl_core.i18n import N_
from tl_core.train import FitConfig, History, evaluate, fit

DATA = {
    "expression": "a synthetic RNA-seq-like atlas: 400 genes, 10 cell types, each marked by two of 8 shared gene "
                  "programmes (few samples, many features)",
    "digits": "scikit-learn's 8×8 handwritten digits",
}
SOURCES = {
    "related": "the other classes of the same data",
    "unrelated": "the same source data with its features (genes, pixels) shuffled by one fixed permutation: "
                 "what the base learns does not line up with the target's features",
}
ARCHS = {
    "mlp": "MLP: inputs → 64 → 32 → classes (linear layers as heat-map matrices)",
    "cnn": "Small CNN on 8×8 digits: two 3×3 conv layers (8, 16 filters), 32-unit dense layer, head",
}
CONDITIONS = ("guided", "freeze_head_only", "plain", "scratch")   # the claim's order: guided against freezing first
BASELINES = ("freeze_head_only", "plain")   # what "does guidance help?" is asked against: the stronger of the two
NAMES = {"scratch": N_("scratch"), "plain": N_("plain fine-tuning"), "guided": N_("guided fine-tuning"),
         "freeze_head_only": N_("freezing all but the head")}


def _positive(label: str):
    """A setting's check: more than 0 (its range, lo=0, allows 0)."""
    return lambda value: "" if value > 0 else f"{label} must be more than 0, got {value:g}"


@dataclass(frozen=True)
class GTLConfig:
    data: str = setting("expression", "the data: source and target classes come from it", choices=DATA, title="Data")
    source: str = setting("related", "what the base and the scouts learn from", choices=SOURCES, title="Source")
    arch: str = setting("mlp", "base network", choices=ARCHS, label="model", title="Base network")
    target_classes: tuple[str, ...] = setting(("7", "8", "9"), "classes (0-9: digits or cell types) held out of "
                                              "pretraining and scouts: the few-shot target task, comma-separated",
                                              label="target classes", title="Target classes (held out of pretraining)",
                                              steps=DIGITS)
    pretrain_epochs: int = setting(15, "epochs of the base model on the source classes", lo=1, hi=500,
                                   label="pretrain epochs", title="Pretraining epochs of the base", span=(1, 50))
    scouts: int = setting(16, "K scouts, trained at once", lo=1, hi=256, title="Scouts", span=(2, 64))
    scout_classes: int = setting(3, "source classes in each scout's sub-problem", lo=2, hi=8,
                                 label="classes per scout", title="Classes per scout sub-problem")
    scout_images: int = setting(60, "training images per class in a scout's sub-problem", lo=1, hi=150,
                                label="scout images per class")
    scout_epochs: int = setting(5, "epochs of every scout", lo=1, hi=500, label="scout epochs", title="Scout epochs",
                                span=(1, 30))
    scout_lr: float = setting(1e-3, "the scouts' Adam learning rate", lo=0, hi=1,
                              check=_positive("scout learning rate"), label="scout learning rate")
    change: str = setting("squared", "raw guide: squared or absolute change", choices=guidance.CHANGES)
    focus: str = setting("minmax", "per-tensor normalisation of the raw guide", choices=guidance.FOCUS,
                         title="Focus (per-tensor normalisation)")
    temperature: float = setting(0.25, "guide ** (1 / T): 1 = as is; > 1 warmer (every weight freer, 1 stays 1); "
                                 "< 1 colder (the low ones toward frozen)", lo=0.1, hi=10, label="temperature",
                                 title="Temperature (below 1 colder: more frozen; above 1 warmer: freer)",
                                 steps=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0))
    free_fraction: float = setting(0.0, "0 = off; else a binary guide: in each tensor its top fraction free, the "
                                   "rest frozen", lo=0, hi=1, label="free fraction",
                                   title="Binary: free top fraction of each tensor (0 = off)",
                                   steps=(0.0, 0.05, 0.1, 0.25, 0.5))
    shots: int = setting(1, "target training images per class", lo=1, hi=100, title="Target samples per class (shots)",
                         steps=(1, 2, 5, 10, 20))
    seeds: int = setting(5, "few-shot splits (and head inits) per condition, for bands", lo=1, hi=50,
                         title="Seeds (for the band)", span=(2, 10))
    epochs: int = setting(60, "target fine-tuning epochs (full batch: one step each)", lo=1, hi=2000,
                          title="Fine-tuning epochs", span=(10, 200, 10))
    lr: float = setting(1e-2, "target Adam learning rate, every condition", lo=0, hi=1,
                        check=_positive("learning rate"), label="learning rate")
    seed: int = setting(0, "base, scouts and the first split", lo=0)
    val_per_class: int = setting(50, "fixed target validation images per class, per seed", lo=5, hi=100,
                                 label="val per class", title="Validation samples per class", span=(5, 100))

    def source_classes(self) -> tuple[str, ...]:
        return tuple(c for c in DIGITS if c not in self.target_classes)

    def scout_key(self) -> tuple:
        """What the base model and the scouts depend on: change nothing else and they are reused."""
        return (self.data, self.source, self.arch, tuple(sorted(self.target_classes)), self.pretrain_epochs,
                self.scouts, self.scout_classes, self.scout_images, self.scout_epochs, self.scout_lr, self.seed)

    def resolve(self) -> "GTLConfig":
        """Target digits in order: '9,8,7' on the CLI and the page's 7, 8, 9 are one config."""
        return replace(self, target_classes=tuple(sorted(self.target_classes)))

    def check(self) -> None:
        """The rules across settings (each setting's own range is checked by `contract.validate`)."""
        bad = [c for c in self.target_classes if c not in DIGITS]
        if bad:
            raise ValueError(f"target classes must be class ids 0-9, got {', '.join(map(repr, bad))}")
        if self.arch == "cnn" and self.data != "digits":
            raise ValueError("the CNN needs images: choose data digits, or the MLP")
        if len(set(self.target_classes)) != len(self.target_classes):
            raise ValueError("each target class may be chosen once")
        if not 2 <= len(self.target_classes) <= 8:
            raise ValueError(f"choose 2 to 8 target classes, got {len(self.target_classes)}")
        n_source = 10 - len(self.target_classes)
        if not 2 <= self.scout_classes <= n_source:
            raise ValueError(f"classes per scout must be between 2 and the {n_source} source classes, "
                             f"got {self.scout_classes}")


def make_guide(raw: dict[str, torch.Tensor], cfg: GTLConfig) -> dict[str, torch.Tensor]:
    """The guide `cfg` asks for: each tensor's raw guide focused (`cfg.focus`), then reshaped (temperature, or
    binary freezing)."""
    focused = {n: guidance.focus(g, cfg.focus) for n, g in raw.items()}
    return guidance.reshape(focused, cfg.temperature, cfg.free_fraction)


# ---- the base model and its scouts, pretrained once per scout setting ---------------------------------

def scout_tasks(source_train: data.ImageSet, cfg: GTLConfig) -> list[guidance.ScoutTask]:
    """K sub-problems: each a random `scout_classes` of the source classes, `scout_images` images per class
    (the same count for every scout, so that their batches stack)."""
    rng = np.random.default_rng(cfg.seed + 7919)
    labels = source_train.labels.numpy()
    per_class = min(cfg.scout_images, int(np.bincount(labels).min()))
    tasks = []
    for _ in range(cfg.scouts):
        chosen = np.sort(rng.choice(len(source_train.classes), cfg.scout_classes, replace=False))
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in chosen])
        tasks.append(guidance.ScoutTask([source_train.classes[c] for c in chosen], source_train.images[idx],
                                        source_train.labels[idx]))
    return tasks


def scout_fit(cfg: GTLConfig) -> FitConfig:
    return FitConfig(epochs=cfg.scout_epochs, lr=cfg.scout_lr, batch_size=32, seed=cfg.seed)


@dataclass
class Scouted:
    """The pretrained base and its scouts: everything the guide needs, cached per `cfg.scout_key()`."""
    base: GTLNet                                    # on the CPU
    scouts: list[dict[str, torch.Tensor]]           # final parameters of each scout
    tasks: list[list[str]]                          # each scout's classes
    source_classes: list[str]
    source_val_acc: float                           # the base on held-out source images
    pretrain_seconds: float
    scout_seconds: float

    def raw(self, change: str) -> dict[str, torch.Tensor]:
        """The raw guide of the body: the head is replaced for the target classes, so it has none."""
        base = {n: p for n, p in guidance.params_of(self.base).items() if not n.startswith("head.")}
        return guidance.raw_guide(base, self.scouts, change)


_SCOUTED: OrderedDict[tuple, Scouted] = OrderedDict()
_CACHE_SIZE = 6


def pretrain_and_scout(cfg: GTLConfig, dev: torch.device, progress: Progress | None = None,
                       should_stop: Stop | None = None) -> tuple[Scouted, bool]:
    """(Scouted, cached?): the base pretrained on the source classes and its K scouts, from the cache
    when only target-side settings (shots, focus, seeds, ...) changed. A Stop ends either training at
    its next epoch; what was stopped is not cached."""
    key = cfg.scout_key() + (str(dev),)
    if key in _SCOUTED:
        _SCOUTED.move_to_end(key)
        return _SCOUTED[key], True
    source = load_classes(cfg.data, cfg.source_classes(), cfg.source)
    train, val = data.few_shot_split(source, None, cfg.seed, val_per_class=20)
    t0 = time.perf_counter()
    base = make_net(cfg.arch, len(source.classes), cfg.seed, inputs_of(cfg.data)).to(dev)
    if progress:
        progress(0.02, f"pretraining the base on {cfg.data} classes {', '.join(source.classes)}")
    fit(base, (train.images.to(dev), train.labels.to(dev)), None,
        FitConfig(epochs=cfg.pretrain_epochs, lr=3e-3, batch_size=64, seed=cfg.seed), should_stop=should_stop)
    _, acc = evaluate(base, (val.images.to(dev), val.labels.to(dev)), "classification")
    t1 = time.perf_counter()
    if progress:
        progress(0.1, f"training {cfg.scouts} scouts at once")
    tasks = scout_tasks(train, cfg)
    finals = guidance.train_scouts(base, tasks, scout_fit(cfg), batched=True, dev=dev, should_stop=should_stop)
    scouted = Scouted(base=base.cpu(), scouts=finals, tasks=[t.classes for t in tasks],
                      source_classes=list(source.classes), source_val_acc=float(acc),
                      pretrain_seconds=t1 - t0, scout_seconds=time.perf_counter() - t1)
    if should_stop is not None and should_stop():
        return scouted, False
    _SCOUTED[key] = scouted
    while len(_SCOUTED) > _CACHE_SIZE:
        _SCOUTED.popitem(last=False)
    return scouted, False


# ---- one condition on one target split -------------------------------------------------------------

@dataclass
class GTLRun:
    condition: str
    seed: int
    history: History
    val_acc: float


def _target_model(cfg: GTLConfig, condition: str, base: GTLNet, n_classes: int, seed: int) -> nn.Module:
    """Scratch: a fresh network from `seed`. Otherwise the base body with a new head from `seed` (the
    same head for plain, guided and head-only, so they differ only in how the body may move)."""
    fresh = make_net(cfg.arch, n_classes, seed, inputs_of(cfg.data))
    if condition == "scratch":
        return fresh
    model = copy.deepcopy(base)
    model.head = fresh.head
    if condition == "freeze_head_only":
        for p in model.body.parameters():
            p.requires_grad_(False)
    return model


def train_target(cfg: GTLConfig, condition: str, seed: int, target: data.ImageSet, base: GTLNet,
                 guide: dict[str, torch.Tensor], dev: torch.device, on_epoch=None, should_stop: Stop | None = None
                 ) -> GTLRun:
    """One condition on the few-shot split of `seed` (cfg.shots per class; the same split, validation set
    and head for every condition of a seed). Everything it needs comes in as arguments, so a grid's cell
    that calls it can run in another process."""
    train, val = data.few_shot_split(target, cfg.shots, seed, cfg.val_per_class)
    model = _target_model(cfg, condition, base, len(target.classes), seed).to(dev)
    hook = guidance.guided_hook(model, guide) if condition == "guided" else None
    hist = fit(model, (train.images.to(dev), train.labels.to(dev)), (val.images.to(dev), val.labels.to(dev)),
               FitConfig(epochs=cfg.epochs, lr=cfg.lr, seed=seed), after_step=hook, on_epoch=on_epoch,
               should_stop=should_stop)
    return GTLRun(condition, seed, hist, hist.val_acc[-1] if hist.val_acc else float("nan"))


def on_one_thread(inner, cfg, progress, should_stop, device: str):
    """Validate and resolve `cfg`, then `inner(cfg, dev, progress, should_stop)` on one CPU thread (tiny
    models: GTL and its sweep); the result names its device afterwards (inside, the CPU reads "1 thread")."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    dev = devices.pick(device)
    with devices.one_cpu_thread(dev):
        result = inner(cfg, dev, progress, should_stop)
    result.device = devices.describe(dev)
    return result
