"""Guided Transfer Learning (Nikolić, Andrić, Nikolić 2023, arXiv 2303.16154), written from the paper's
description: pretraining learns the weights *and* how far each weight should move on a new task.

1. Pretrain a base network on the source task: the classes that are not target classes (cell types of a
   synthetic RNA-seq-like expression atlas, or handwritten digits).
2. Scouts: K copies of the base, each fine-tuned on an easier sub-problem (a few source classes).
   They are independent, so all K train at once as one stacked model (`tl_core.stacked.Stacked`).
3. Raw guide per parameter: the mean over scouts of (w_scout - w_base)^2 (or |w_scout - w_base|).
4. Focus per tensor (raw, subtract min, min-max to [0, 1], divide by max), clipped to [0, 1], then an
   optional temperature g ** (1 / T) (warm, T > 1: every guide rises toward free, 1 stays 1; cold, T < 1:
   the low ones sink toward frozen) or binary freezing (per tensor, its top fraction -> 1, the rest -> 0).
5. Guided fine-tuning on the target task: after every optimizer step each parameter's update is scaled
   by its guide, new = old + guide * (stepped - old), so guide 0 = frozen and 1 = free with any optimizer.

The comparison trains, for several seeds of the few-shot target split: scratch, plain fine-tuning,
guided fine-tuning, and "freeze all but the head". The target head is new (the target classes were never
seen), so it has no guide and trains freely in every condition.
"""
from __future__ import annotations

import copy
import functools
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tl_core import claims, contract, data, expression, stacked
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.stacked import Stacked
from tl_core.train import FitConfig, History, evaluate, fit

DIGITS = tuple(str(k) for k in range(10))   # class ids of both data sets: digits, or cell types 0-9
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
CHANGES = {"squared": "mean over scouts of (w − w_base)²", "abs": "mean over scouts of |w − w_base|"}
FOCUS = {
    "minmax": "min-max to [0, 1] per tensor (default)",
    "subtract_min": "subtract the tensor's minimum",
    "divide_max": "divide by the tensor's maximum",
    "raw": "raw values (tiny: nearly frozen)",
}
CONDITIONS = ("guided", "freeze_head_only", "plain", "scratch")   # the claim's order: guided against freezing first
BASELINES = ("freeze_head_only", "plain")   # what "does guidance help?" is asked against: the stronger of the two
# Searched on validation draws (seed 100 and 200, 5 seeds each; about 3,150 settings of the existing knobs): the
# one setting where guided beat the stronger baseline by the rule on both draws. Offered as a preset, not a default:
# on the reported seeds (0-4) it is a tie, and on digits it trails plain fine-tuning.
BEST_TRY = {"scout_classes": 2, "free_fraction": 0.05, "shots": 10}
BEST_TRY_NOTE = ("Scouts on 2-class sub-problems, only the top 5% of each tensor free, 10 shots: the one setting of "
                 "about 3,150 searched on validation seeds where guidance beat freezing the body by the rule on two "
                 "draws (+1.5 and +1.2 points). The freed weights are mostly the first layer's programme genes. On "
                 "seeds 0-4 it ties freezing (+1.2 points, interval -0.4 to +2.8): on this data guidance behaves "
                 "like freezing.")


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
    change: str = setting("squared", "raw guide: squared or absolute change", choices=CHANGES)
    focus: str = setting("minmax", "per-tensor normalisation of the raw guide", choices=FOCUS,
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


# ---- data and the network ----------------------------------------------------------------------

def load_digits(classes: tuple[str, ...]) -> data.ImageSet:
    """Digits as (N, 1, 8, 8) grey images in [0, 1], only `classes` (relabelled 0..k-1).

    data.load upsamples the 8×8 scans to at least 16 px; pooling back gives the scans' own grid, so
    an MLP sees 64 inputs and a step costs microseconds."""
    ds = data.load("digits", 16, classes)
    return data.ImageSet(ds.name, F.avg_pool2d(ds.images[:, :1], 2), ds.labels, ds.classes)


# The expression atlas: genes 0-127 are 8 programmes of 16 co-expressed genes (programme p = genes 16p to
# 16p + 15, so a guide heat map's columns line up with them), 128-175 three nuisance programmes (cell
# cycle, stress, batch: anyone may have them), 176-399 background. A cell type is marked by two programmes;
# every programme marks two or three types, so the source types teach detectors the target types reuse.
GENES, PROGRAMMES, PROGRAMME_GENES, NUISANCE = 400, 8, 16, 3
TYPE_PROGRAMMES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (3, 6))
CELLS_PER_TYPE = 300
BACKGROUND, MARK, NOISE = 0.1, (0.5, 1.0), 0.6   # programme activity: background scale, a marker's range; gene noise


ATLAS = expression.Atlas(GENES, PROGRAMME_GENES, TYPE_PROGRAMMES, NUISANCE, cells_per_type=CELLS_PER_TYPE,
                         background=BACKGROUND, mark=MARK, noise=NOISE)


@functools.lru_cache(maxsize=2)
def atlas(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): standardised log1p counts (N, GENES) and cell types (N,) of the atlas (`tl_core.expression`)."""
    x, y = expression.simulate(ATLAS, seed)
    x = (x - x.mean(0)) / x.std(0).clip(min=0.05)
    return torch.from_numpy(x), torch.from_numpy(y)


def _permuted(ds: data.ImageSet) -> data.ImageSet:
    """The unrelated source: every sample's features shuffled by one fixed permutation (seed 0)."""
    flat = ds.images.flatten(1)
    order = torch.from_numpy(np.random.default_rng(0).permutation(flat.shape[1]))
    return data.ImageSet(ds.name, flat[:, order].view_as(ds.images), ds.labels, ds.classes)


def load_classes(name: str, classes: tuple[str, ...], source: str = "related") -> data.ImageSet:
    """`classes` (ids 0-9) of data `name`, relabelled 0..k-1: digits (N, 1, 8, 8) or expression (N, GENES);
    source "unrelated" shuffles the features (see SOURCES)."""
    if name == "digits":
        ds = load_digits(classes)
    else:
        x, y = atlas()
        keep = torch.tensor([DIGITS.index(c) for c in classes])
        rows = torch.isin(y, keep)
        relabel = torch.full((len(DIGITS),), -1, dtype=torch.long)
        relabel[keep] = torch.arange(len(keep))
        ds = data.ImageSet("expression", x[rows].clone(), relabel[y[rows]], list(classes))
    return _permuted(ds) if source == "unrelated" else ds


def gene_groups() -> dict[str, list[int]]:
    """The atlas's genes by programme, for a guide map a projector can show: 'P5 (types 2, 7)' → its genes."""
    out = {}
    for p in range(PROGRAMMES):
        types = [str(k) for k, pair in enumerate(TYPE_PROGRAMMES) if p in pair]
        out[f"P{p} (types {', '.join(types)})"] = list(range(p * PROGRAMME_GENES, (p + 1) * PROGRAMME_GENES))
    for k, name in enumerate(("cycle", "stress", "batch")):
        start = (PROGRAMMES + k) * PROGRAMME_GENES
        out[name] = list(range(start, start + PROGRAMME_GENES))
    out["background"] = list(range((PROGRAMMES + NUISANCE) * PROGRAMME_GENES, GENES))
    return out


def class_name(data_name: str, c: str) -> str:
    """How the page and the text name class id `c`: 'digit 7' or 'cell type 7 (programmes 5, 7)'."""
    if data_name == "digits":
        return f"digit {c}"
    a, b = TYPE_PROGRAMMES[DIGITS.index(c)]
    return f"cell type {c} (programmes {a}, {b})"


class GTLNet(nn.Sequential):
    """A small body (named layers, so the guide's keys read well) and a linear head: `body.fc1.weight`,
    `head.weight`, ... A Sequential of Linear/Conv2d/ReLU/Flatten/MaxPool2d, so a `Stacked` of GTLNets
    (the scouts) takes the batched layer-by-layer path."""

    def __init__(self, arch: str, n_classes: int, inputs: int = 64):
        if arch == "mlp":
            body = nn.Sequential(OrderedDict(
                flatten=nn.Flatten(), fc1=nn.Linear(inputs, 64), relu1=nn.ReLU(), fc2=nn.Linear(64, 32),
                relu2=nn.ReLU()))
        else:
            body = nn.Sequential(OrderedDict(
                conv1=nn.Conv2d(1, 8, 3, padding=1), relu1=nn.ReLU(), conv2=nn.Conv2d(8, 16, 3, padding=1),
                relu2=nn.ReLU(), pool=nn.MaxPool2d(2), flatten=nn.Flatten(), fc=nn.Linear(16 * 4 * 4, 32),
                relu3=nn.ReLU()))
        super().__init__(OrderedDict(body=body, head=nn.Linear(32, n_classes)))


def make_net(arch: str, n_classes: int, seed: int, inputs: int = 64) -> GTLNet:
    """A network whose initial weights depend on `seed` only (the global random stream is left alone)."""
    return stacked.seeded(lambda: GTLNet(arch, n_classes, inputs), seed)


def inputs_of(data_name: str) -> int:
    return GENES if data_name == "expression" else 64


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ---- the guide ------------------------------------------------------------------------------------

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


def make_guide(raw: dict[str, torch.Tensor], cfg: GTLConfig) -> dict[str, torch.Tensor]:
    return reshape({n: focus(g, cfg.focus) for n, g in raw.items()}, cfg.temperature, cfg.free_fraction)


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


# ---- base model and scouts -------------------------------------------------------------------------

@dataclass
class ScoutTask:
    classes: list[str]       # the source classes of this sub-problem
    x: torch.Tensor          # (n, 1, 8, 8) digits or (n, GENES) expression
    y: torch.Tensor          # (n,) labels in the base model's source numbering


def scout_tasks(source_train: data.ImageSet, cfg: GTLConfig) -> list[ScoutTask]:
    """K sub-problems: each a random `scout_classes` of the source classes, `scout_images` images per class
    (the same count for every scout, so that their batches stack)."""
    rng = np.random.default_rng(cfg.seed + 7919)
    labels = source_train.labels.numpy()
    per_class = min(cfg.scout_images, int(np.bincount(labels).min()))
    tasks = []
    for _ in range(cfg.scouts):
        chosen = np.sort(rng.choice(len(source_train.classes), cfg.scout_classes, replace=False))
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in chosen])
        tasks.append(ScoutTask([source_train.classes[c] for c in chosen], source_train.images[idx],
                               source_train.labels[idx]))
    return tasks


def scout_fit(cfg: GTLConfig) -> FitConfig:
    return FitConfig(epochs=cfg.scout_epochs, lr=cfg.scout_lr, batch_size=32, seed=cfg.seed)


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
        base = {n: p for n, p in params_of(self.base).items() if not n.startswith("head.")}
        return raw_guide(base, self.scouts, change)


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
    finals = train_scouts(base, tasks, scout_fit(cfg), batched=True, dev=dev, should_stop=should_stop)
    scouted = Scouted(base=base.cpu(), scouts=finals, tasks=[t.classes for t in tasks],
                      source_classes=list(source.classes), source_val_acc=float(acc),
                      pretrain_seconds=t1 - t0, scout_seconds=time.perf_counter() - t1)
    if should_stop is not None and should_stop():
        return scouted, False
    _SCOUTED[key] = scouted
    while len(_SCOUTED) > _CACHE_SIZE:
        _SCOUTED.popitem(last=False)
    return scouted, False


# ---- the comparison ---------------------------------------------------------------------------------

@dataclass
class SeedRun:
    condition: str
    seed: int
    history: History
    val_acc: float


@dataclass
class GTLResult(contract.Result):
    config: GTLConfig
    guide: dict[str, torch.Tensor]       # the focused guide applied to the body (CPU tensors)
    raw: dict[str, torch.Tensor]         # the raw guide before focus
    scouted: Scouted
    runs: list[SeedRun]
    scouts_cached: bool = False
    kind = "gtl"
    headline = "guided.val_acc_mean"

    def by_condition(self, condition: str) -> list[SeedRun]:
        return [r for r in self.runs if r.condition == condition]

    def summary(self, condition: str) -> dict:
        runs = self.by_condition(condition)
        acc = contract.seed_stats([r.val_acc for r in runs if r.history.status == "finished"])  # not a stopped one
        return {
            "val_acc_mean": acc["mean"],
            "val_acc_std": acc["std"],
            "val_acc_seeds": acc["seeds"],
            "seeds": [r.seed for r in runs],
            "val_acc_curves": [r.history.val_acc for r in runs],
            "status": runs[0].history.status if runs else "not run",
        }

    def guide_summary(self) -> dict:
        values = torch.cat([g.flatten() for g in self.guide.values()])
        return {
            "mean": float(values.mean()),
            "per_layer": {n: float(g.mean()) for n, g in self.guide.items()},
            "fraction_frozen": float((values == 0).float().mean()),
            "fraction_free": float((values >= 1).float().mean()),
            "fraction_above_half": float((values > 0.5).float().mean()),
            "parameters": int(values.numel()),
        }

    def body(self) -> dict:
        s = self.scouted
        return {
            **{c: self.summary(c) for c in CONDITIONS},
            "guide": self.guide_summary(),
            "claim": c.to_json() if (c := self.claim()) else None,
            "base": {"source_classes": s.source_classes, "source_val_acc": s.source_val_acc,
                     "pretrain_seconds": round(s.pretrain_seconds, 3)},
            "scouts": {"count": len(s.scouts), "classes": s.tasks, "seconds": round(s.scout_seconds, 3),
                       "cached": self.scouts_cached},
        }

    def metrics(self) -> dict[str, float]:
        """<condition>.val_acc_mean / .val_acc_std over seeds, the guide's mean and frozen/free shares, and the
        base's accuracy on held-out source images."""
        out = {}
        for c in CONDITIONS:
            s = self.summary(c)
            out.update({f"{c}.val_acc_mean": s["val_acc_mean"], f"{c}.val_acc_std": s["val_acc_std"]})
        if self.guide:
            g = self.guide_summary()
            out.update({"guide.mean": g["mean"], "guide.fraction_frozen": g["fraction_frozen"],
                        "guide.fraction_free": g["fraction_free"]})
        if self.scouted is not None:
            out["base.source_val_acc"] = self.scouted.source_val_acc
        return out

    def curves(self) -> dict[str, list]:
        """<condition>.val_acc: the seeds' mean validation accuracy per fine-tuning epoch."""
        return {f"{c}.val_acc": contract.mean_curve([r.history.val_acc for r in self.by_condition(c)])
                for c in CONDITIONS if self.by_condition(c)}

    def claim(self) -> claims.Claim | None:
        """Guided against the stronger of freezing all but the head and plain fine-tuning, paired over seeds."""
        values = {c: {r.seed: r.val_acc for r in self.by_condition(c) if r.history.status == "finished"}
                  for c in CONDITIONS}
        if not values["guided"] or not any(values[c] for c in BASELINES):
            return None
        return claims.compare("guided", values, list(BASELINES))

    def verdict(self) -> Verdict:
        return verdict(self)


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


def run(cfg: GTLConfig = GTLConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> GTLResult:
    """Pretrain (or reuse) base and scouts, build the guide, and train every condition for every seed."""
    return on_one_thread(_run, cfg, progress, should_stop, device)


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


def _run(cfg: GTLConfig, dev: torch.device, progress: Progress | None, should_stop: Stop | None) -> GTLResult:
    start = time.perf_counter()
    target = load_classes(cfg.data, tuple(cfg.target_classes))
    data.few_shot_split(target, cfg.shots, cfg.seed, cfg.val_per_class)  # a clear error if shots is too big
    scouted, cached = pretrain_and_scout(cfg, dev, progress, should_stop)
    raw = scouted.raw(cfg.change)
    guide = make_guide(raw, cfg)
    if should_stop is not None and should_stop():
        return GTLResult(config=cfg, guide=guide, raw=raw, scouted=scouted, runs=[], device=str(dev),
                         status="stopped", message="stopped by the user while pretraining the base and its scouts",
                         seconds=time.perf_counter() - start)
    base = scouted.base

    def train_one(cell: contract.Cell, on_epoch, should_stop) -> SeedRun:
        return train_target(cfg, cell.condition, cell.seed, target, base, guide, dev, on_epoch, should_stop)

    # seeds outermost: a run stopped early still has every condition of the seeds it finished, paired
    cells = [contract.Cell(c, s) for s in range(cfg.seed, cfg.seed + cfg.seeds) for c in CONDITIONS]
    out = contract.run_cells(cells, train_one, progress, should_stop, epochs=cfg.epochs, span=(0.15, 1.0))
    return GTLResult(config=cfg, guide=guide, raw=raw, scouted=scouted, runs=out.results, device=str(dev),
                     scouts_cached=cached, status=out.status, message=out.message,
                     seconds=time.perf_counter() - start)


def train_target(cfg: GTLConfig, condition: str, seed: int, target: data.ImageSet, base: GTLNet,
                 guide: dict[str, torch.Tensor], dev: torch.device, on_epoch=None, should_stop: Stop | None = None
                 ) -> SeedRun:
    """One condition on the few-shot split of `seed` (cfg.shots per class; the same split, validation set
    and head for every condition of a seed). Everything it needs comes in as arguments, so a grid's cell
    that calls it can run in another process."""
    train, val = data.few_shot_split(target, cfg.shots, seed, cfg.val_per_class)
    model = _target_model(cfg, condition, base, len(target.classes), seed).to(dev)
    hook = guided_hook(model, guide) if condition == "guided" else None
    hist = fit(model, (train.images.to(dev), train.labels.to(dev)), (val.images.to(dev), val.labels.to(dev)),
               FitConfig(epochs=cfg.epochs, lr=cfg.lr, seed=seed), after_step=hook, on_epoch=on_epoch,
               should_stop=should_stop)
    return SeedRun(condition, seed, hist, hist.val_acc[-1] if hist.val_acc else float("nan"))


def guide_file(guide: dict[str, torch.Tensor], path) -> None:
    """Save the guide as a .pt state dict: parameter name -> guide tensor (same shape as the parameter)."""
    torch.save({n: g.detach().cpu().clone() for n, g in guide.items()}, path)


NAMES = {"scratch": "scratch", "plain": "plain fine-tuning", "guided": "guided fine-tuning",
         "freeze_head_only": "freezing all but the head"}


def freedom(guide: dict) -> str:
    """How much of the body the guide leaves free, in words: its mean and the share of weights above 0.5."""
    return (f"the guide leaves {guide['fraction_above_half']:.1%} of the body's weights more than half free (mean "
            f"guide {guide['mean']:.2f})")


def verdict(result: GTLResult) -> Verdict:
    """Does guidance beat simply freezing the body? Guided against the stronger of freezing all but the head and
    plain fine-tuning, by the claims rule, with how much of the body the guide leaves free."""
    if result.status != "finished":
        return result.ended_early()
    claim = result.claim()
    if claim is None:
        return Verdict("single", "Nothing to compare: guided or its baselines have no finished run.")
    guide = result.guide_summary()
    text = claim.sentence(NAMES["guided"], NAMES[claim.against]) + f" Here {freedom(guide)}"
    if guide["fraction_above_half"] < 0.05 and claim.against == "freeze_head_only":
        text += ", so guided fine-tuning is almost the same experiment as freezing the body"
    text += "."
    means = {c: result.summary(c)["val_acc_mean"] for c in CONDITIONS}
    if means["freeze_head_only"] < means["scratch"] - 0.05:
        text += (f" Freezing the source features (head only, {means['freeze_head_only']:.1%}) trails scratch "
                 f"({means['scratch']:.1%}): this source transfers poorly, so keeping weights near it, which is "
                 "what guidance does, has little to offer.")
    return Verdict(claim.kind, text)


# ---- the command line: python -m tl_core gtl ... --------------------------------------------------------

def _after(args, result: GTLResult) -> dict:
    """--guide-out: save the guide there (the history keeps the path as the run's model)."""
    if not args.guide_out:
        return {}
    guide_file(result.guide, args.guide_out)
    return {"model_path": str(args.guide_out)}


def _text(result: GTLResult, out: dict) -> str:
    cfg = result.config
    lines = [f"GTL: {cfg.data} ({cfg.source} source), {cfg.arch}, target classes {','.join(cfg.target_classes)}, "
             f"{cfg.shots} shot(s), {cfg.scouts} scouts on {cfg.scout_classes} classes, on {out['device']} in "
             f"{out['seconds']:.1f} s"]
    lines += [f"  {c:<17} val acc {out[c]['val_acc_mean']:.3f} ± {out[c]['val_acc_std']:.3f}" for c in CONDITIONS]
    lines.append(f"  mean guide {out['guide']['mean']:.3f}: " +
                 ", ".join(f"{n} {v:.2f}" for n, v in out["guide"]["per_layer"].items()))
    return "\n".join(lines + [out["verdict"]])


EXPERIMENTS = (
    contract.Experiment(
        "gtl", "Guided Transfer Learning: scouts, guide values, guided fine-tuning", GTLConfig, run,
        options=(contract.Option("--guide-out", "save the guide here as a .pt (parameter name -> tensor)"),),
        after=_after, text=_text),
)
