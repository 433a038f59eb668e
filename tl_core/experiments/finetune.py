"""The fine-tuning lab: a pretrained backbone (or the same one from scratch), a freeze depth, a
strategy, a small few-shot dataset → per-epoch curves, accuracy, confusion matrix; over several seeds.

`run` trains one config (both weights side by side if asked), on a built-in dataset, on the user's own
images (`dataset=`), or from weights loaded in the workshop (`init=`: "continue fine-tuning" is this
same run). `sweep` trains a shots × freeze-depth grid. Both cache the frozen prefix: its features are
computed once per model and reused by every epoch, every shots value of a sweep, and every phase of
gradual unfreezing at that depth.
"""
from __future__ import annotations

import collections
import copy
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from torch import nn

from tl_core import augment, backbones, budget, claims, contract, data, freeze, serve, store
from tl_core import device as devices
from tl_core import engine as engines
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.finetuning import Run, SharedFrozenCache, Trainer

WEIGHT_CHOICES = {"both": "pretrained and scratch side by side", "pretrained": "the registry's pretrained weights",
                  "scratch": "random weights, every stage trained"}
STRATEGIES = freeze.STRATEGIES  # (the config's field `freeze` shadows the module inside its class body)
OWN = "own: "   # the dataset name of the user's own images: "own: NAME.zip"


def _dataset_problem(name: str) -> str:
    if name in data.DATASETS or name.startswith(OWN):
        return ""
    return f"unknown dataset {name!r}: choose one of {', '.join(data.DATASETS)}"


def _freeze_problem(value: str) -> str:
    if value in ("all", "none") or value.isdigit():
        return ""
    return f"freeze must be 'all', 'none' or a stage count, got {value!r}"


@dataclass(frozen=True)
class FinetuneConfig:
    backbone: str = setting("efficientnet_lite0", "the backbone", choices=backbones.IMAGE, title="Backbone")
    weights: str = setting("both", "which weights to start from", choices=WEIGHT_CHOICES, title="Weights")
    dataset: str = setting("digits", f"a built-in dataset: {', '.join(data.DATASETS)}", check=_dataset_problem)
    classes: tuple[str, ...] = setting((), "a subset of the dataset's classes, comma-separated (default: all)",
                                       title="Classes (none chosen = all)")
    shots: int | None = setting(5, "training images per class, or all", lo=1, hi=100_000,
                                title="Training images per class", steps=(1, 2, 5, 10, 20, None))
    freeze: str = setting("all", "frozen stages: all (all but the head), none, or a count", check=_freeze_problem)
    strategy: str = setting("fixed", "how the frozen depth is used", choices=STRATEGIES, title="Strategy")
    epochs: int = setting(15, "passes over the training images", lo=1, hi=1000, title="Epochs", span=(1, 100))
    lr: float = setting(3e-3, "Adam learning rate (the head's, under discriminative LRs)", lo=1e-7, hi=10,
                        title="Learning rate (Adam)", steps=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2))
    batch_size: int = setting(32, "images per step", lo=1, hi=4096, label="batch size")
    image_size: int = setting(64, "pixels; small is fast on a CPU", lo=data.MIN_SIZE, hi=data.MAX_SIZE,
                              title="Image size (px)", steps=(32, 48, 64, 96, 128, 224))
    seeds: int = setting(3, "runs per weights condition, for bands", lo=1, hi=20, title="Seeds (for the band)",
                         span=(1, 5))
    seed: int = setting(0, "first seed: split, head init, scratch init", lo=0)
    val_per_class: int = setting(20, "fixed, class-balanced validation images per class", lo=1, hi=500,
                                 title="Validation images per class", span=(2, 50))
    unfreeze_every: int = setting(2, "gradual unfreezing: epochs per phase", lo=1, hi=1000)
    cache: bool = setting(True, "cache the frozen prefix's features (--no-cache: re-run them every epoch)")
    val_fraction: float = setting(0.15, "own images: class-balanced validation share", lo=0.05, hi=0.5,
                                  label="validation fraction")
    augment: tuple[str, ...] = setting((), "augment the training images, comma-separated (default: none); every "
                                           "epoch a new draw, validation untouched; the frozen stages then run "
                                           "on every epoch's images (no cache for them): slower",
                                       choices=augment.CHOICES, title="Augmentation (training images only)")

    def check(self) -> None:
        backbones.check_size(self.backbone, self.image_size)
        freeze.parse_freeze(self.freeze, len(backbones.stage_names(self.backbone)))

    def resolve(self) -> "FinetuneConfig":
        """Freeze depth as a stage count, however it was spelt: 'all' on the CLI and 9 on the page are one; the
        augmentations in one order, each once."""
        return replace(self, freeze=str(freeze.parse_freeze(self.freeze, len(backbones.stage_names(self.backbone)))),
                       augment=augment.canonical(self.augment))

    def for_weights(self, weights: str) -> "FinetuneConfig":
        """Scratch means from random weights with every stage trained (freezing random features would
        be a different experiment); the freeze depth and strategy apply to the pretrained model."""
        return replace(self, freeze="0", strategy="fixed") if weights == "scratch" else self

    def conditions(self) -> list[str]:
        return ["pretrained", "scratch"] if self.weights == "both" else [self.weights]


CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")


@dataclass
class FinetuneResult(contract.ConditionsResult):
    config: FinetuneConfig
    classes: list[str]
    stage_names: list[str]
    frozen: int                   # frozen stages at the start
    runs: list[Run]
    val: data.ImageSet            # the first run's validation set (its confusion matrix, misclassified images)
    weights_note: str
    # the first run's trained weights (pretrained when it ran), on the CPU: for predict and export
    model_state: dict | None = field(default=None, repr=False)
    kind = "finetune"
    headline = "val_acc"

    def by_weights(self, weights: str) -> list[Run]:
        return [r for r in self.runs if r.weights == weights]

    runs_of = by_weights

    def ran(self) -> list[str]:
        return [w for w in self.config.conditions() if self.by_weights(w)]

    def summary(self, weights: str) -> dict:
        runs = self.by_weights(weights)
        first = runs[0].history
        done = [r for r in runs if r.history.status == "finished"]   # a run cut short says nothing of its accuracy
        acc = contract.seed_stats([r.val_acc for r in done])
        return {
            "val_acc": acc["mean"], "val_acc_std": acc["std"], "val_acc_seeds": acc["seeds"],
            "seeds": [r.seed for r in done],
            "train_acc": contract.seed_stats([r.train_acc for r in done])["mean"],
            "per_class": [[None if np.isnan(v) else float(v) for v in r.per_class_recall] for r in done],
            "history": {k: getattr(first, k) for k in CURVES},
            "histories": [{k: getattr(r.history, k) for k in CURVES} for r in runs],
            "status": first.status,
        }

    def body(self) -> dict:
        conditions = self.ran()
        out = self.summary(conditions[0]) if conditions else {}   # the first condition's numbers at the top level
        out.update({
            "conditions": {w: self.summary(w) for w in conditions},
            "classes": self.classes, "stages": self.stage_names, "frozen_stages": self.frozen,
            "claim": c.to_json() if (c := self.claim()) else None, "weights_note": self.weights_note,
        })
        if self.runs:
            first = self.runs[0]
            out["confusion"] = {"weights": first.weights, "seed": first.seed, "matrix": first.confusion.tolist()}
        return out

    def claim(self) -> claims.Claim | None:
        """Pretrained against scratch, paired over seeds (None when only one of them ran)."""
        ran = self.ran()
        if len(ran) < 2:
            return None
        values = {w: claims.by_seed(*(self.summary(w)[k] for k in ("seeds", "val_acc_seeds"))) for w in ran}
        return claims.compare("pretrained", values, ["scratch"])

    def verdict(self) -> Verdict:
        return verdict(self)


def _weights_note(cfg: FinetuneConfig) -> str:
    if "pretrained" not in cfg.conditions():
        return "scratch: random initial weights"
    ok, message = backbones.weights_status(cfg.backbone)
    if not ok:
        raise backbones.WeightsUnavailable(f"{cfg.backbone}: {message}")
    return message


def _splitter(cfg: FinetuneConfig, dataset: data.ImageSet | None):
    """(images, seed → (train, val)): a built-in dataset with a fixed validation count per class, or the
    user's own images with a class-balanced validation share."""
    if dataset is None:
        ds = data.load(cfg.dataset, cfg.image_size, cfg.classes or None)
        return ds, lambda seed: data.few_shot_split(ds, cfg.shots, seed, cfg.val_per_class)
    if tuple(dataset.images.shape[-2:]) != (cfg.image_size, cfg.image_size):
        raise ValueError(f"images are {tuple(dataset.images.shape[-2:])} px, the config says {cfg.image_size}")
    return dataset, lambda seed: data.fraction_split(dataset, cfg.val_fraction, seed, cfg.shots)


def first_split(cfg: FinetuneConfig, dataset: data.ImageSet | None = None) -> tuple[data.ImageSet, data.ImageSet]:
    """(train, val) of cfg's first seed: the images its first run trains and validates on."""
    return _splitter(cfg, dataset)[1](cfg.seed)


def model_for(cfg: FinetuneConfig, weights: str, num_classes: int, seed: int,
              init: nn.Module | None = None) -> backbones.StagedModel:
    """The model one run starts from: the registry's weights, or `init` (weights loaded elsewhere, e.g. in
    the workshop) in place of the pretrained ones; a new head when the class count differs."""
    if init is not None and weights == "pretrained":
        return backbones.create(cfg.backbone, num_classes=num_classes, seed=seed, module=copy.deepcopy(init))
    return backbones.create(cfg.backbone, weights, num_classes, seed)


# What a lab run shares with the runs before it in this process, number for number (bench/lab_run.py measures it;
# False: every run alone, as before): the frozen features of the registry's pretrained prefix, by image (every
# seed, shots value and run on the same images), and scratch runs by their settings (scratch does not depend on
# the freeze depth or the strategy, so a second lab run that changes only those trains no scratch network).
REUSE = True
# Both within a budget in bytes (a server shared by a class keeps them for every session): TL_FEATURES_MB (default
# 1024) over at most two backbones' features, TL_SCRATCH_MB (default 256) of scratch runs' weights and curves.
FEATURES_MB, SCRATCH_MB = "TL_FEATURES_MB", "TL_SCRATCH_MB"
_FEATURES: collections.OrderedDict = collections.OrderedDict()   # (backbone, device) → SharedFrozenCache
_SCRATCH = budget.ByteLRU(budget.env_mb(SCRATCH_MB, 256) * budget.MB, most=12)   # settings, seed, data → (Run, …)


def _frozen_cache(cfg: FinetuneConfig, num_classes: int, dev, init: nn.Module | None):
    """The frozen-feature cache a pretrained cell uses: one per backbone in this process for the registry's
    weights, one per run for weights loaded elsewhere (`init`), None when REUSE is off (a cache per cell) or the
    run augments its training images (their features are new every epoch; the trainer keeps its own cache of the
    validation images' features)."""
    if not REUSE or cfg.augment:
        return None

    def pristine():  # the frozen weights, built without drawing from the run's random stream
        with torch.random.fork_rng():
            return model_for(cfg, "pretrained", num_classes, cfg.seed, init).to(dev).eval()

    if init is not None:
        return SharedFrozenCache(pristine, cfg.batch_size)
    key = (cfg.backbone, str(dev))
    if key not in _FEATURES:   # each starts afresh past its half of the budget; the oldest backbone's goes first
        half = budget.env_mb(FEATURES_MB, 1024) * budget.MB // 2
        _FEATURES[key] = SharedFrozenCache(pristine, cfg.batch_size, budget=half)
        while len(_FEATURES) > 2:
            _FEATURES.popitem(last=False)
    return _FEATURES[key]


def _data_key(cfg: FinetuneConfig, dataset: data.ImageSet | None) -> str:
    """The images a run trains on, beyond what its config names: a hash of the user's own images."""
    if dataset is None:
        return ""
    h = hashlib.blake2b(digest_size=16)
    for t in (dataset.images, dataset.labels):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest() + json.dumps(list(dataset.classes))


def _scratch_key(cfg: FinetuneConfig, seed: int, data_key: str) -> str:
    """What a scratch run depends on: every setting but the freeze depth, the strategy, the weights asked and
    the number of seeds (plus its own seed and the images)."""
    sub = replace(cfg.for_weights("scratch"), weights="scratch", seeds=1, unfreeze_every=1, cache=True)
    return json.dumps([contract.record(sub), seed, data_key], sort_keys=True, default=str)


def _cell_cost(cfg: FinetuneConfig, condition: str, n_train: int, n_val: int, reused: bool,
               augment_share: float = 0.0) -> float:
    """A cell's share of a run's time (in passes of one image through the whole network), for a progress bar
    that moves with time and for the cost of augmentation: an epoch of a network costs about 3 passes over the
    training images (forward and backward) and one over the validation images; cached frozen stages cost one
    pass, once; a scratch run reused costs nothing. Augmented (cfg.augment), the frozen stages run on the training
    images every epoch (once on the validation images), and augmenting an image costs `augment_share` of a pass."""
    epoch = 3 * n_train + n_val
    augmenting = cfg.epochs * n_train * augment_share if cfg.augment else 0.0
    if condition == "scratch":
        return 0.01 * epoch if reused else cfg.epochs * epoch + augmenting
    n = len(backbones.stage_names(cfg.backbone))
    k = freeze.parse_freeze(cfg.freeze, n)
    trained = 0.02 if (cfg.strategy == "fixed" and k == n - 1) else (n - k) / n if cfg.strategy == "fixed" else 1.0
    if not cfg.augment:
        return (n_train + n_val) + cfg.epochs * epoch * trained
    frozen = (1 - trained) if cfg.strategy == "fixed" and cfg.cache and k > 0 else 0.0   # the prefix, not cached
    return n_val * frozen + cfg.epochs * (n_train * frozen + epoch * trained) + augmenting


_FLOPS: dict[tuple[str, int, int], list[float]] = {}


def _stage_shares(backbone: str, size: int, classes: int) -> list[float]:
    """Each stage's share of one image's multiply-adds at `size` px with a head for `classes` classes (once per
    process and backbone, size, classes)."""
    key = (backbone, size, classes)
    if key not in _FLOPS:
        with torch.random.fork_rng():
            flops = backbones.stage_flops(backbones.create(backbone, "scratch", classes), size)
        _FLOPS[key] = [f / (sum(flops) or 1.0) for f in flops]
    return _FLOPS[key]


def augment_cost(cfg: FinetuneConfig, dataset: data.ImageSet | None = None, ms_per_image: float | None = None) -> dict:
    """How much slower augmentation (cfg.augment; all of them when it is empty) makes cfg's run: `ratio`, the
    run's time with it over the same run without, by a cost model in this machine's measured milliseconds.
    F = the backbone's CPU ms per image (its model card, measured here; or `ms_per_image`), split into the
    frozen prefix P and the trained rest S by the stages' multiply-adds; A = ms to augment one image
    (`augment.ms_per_image`, measured here); E epochs, N training and V validation images. A pretrained cell at a
    fixed, cached depth: plain (N + V)·P + E·(3N + V)·S + (N + V)·S (features once, epochs, final predictions);
    augmented V·P + E·(N·(P + A) + (3N + V)·S) + N·F + V·S (the prefix on every epoch's training images). A cell
    whose frozen stages run every epoch anyway (scratch, full fine-tuning, discriminative or gradual, no cache)
    only adds E·N·A. bench/augment_cost.py measures the ratio for the lab's feature extraction."""
    from tl_core import card

    cfg = cfg.resolve()
    names = cfg.augment or tuple(augment.CHOICES)
    train, val = first_split(cfg, dataset)
    n, v = len(train), len(val)
    f = card.card(cfg.backbone, cfg.image_size).ms_per_image if ms_per_image is None else ms_per_image
    a, e = augment.ms_per_image(names, cfg.image_size), cfg.epochs
    shares = _stage_shares(cfg.backbone, cfg.image_size, len(train.classes))
    plain = augmented = 0.0
    for condition in cfg.conditions():
        c = cfg.for_weights(condition)
        # the depth its trainer trains from: the freeze depth, or the floor discriminative / gradual reach down to
        depth = int(c.freeze) if c.strategy == "fixed" else (0 if int(c.freeze) == len(shares) - 1 else int(c.freeze))
        p = f * sum(shares[:depth])
        s = f - p
        if c.strategy == "fixed" and c.cache and depth > 0:
            base = (n + v) * p + e * (3 * n + v) * s + (n + v) * s
            plain += base
            augmented += v * p + e * (n * (p + a) + (3 * n + v) * s) + n * f + v * s
        else:
            base = e * (n * (p + 3 * s) + v * f) + (n + v) * f
            plain += base
            augmented += base + e * n * a
    return {"ratio": augmented / plain, "augment": list(names), "ms_per_image": f, "augment_ms_per_image": a,
            "n_train": n, "n_val": v, "epochs": e, "plain_ms": plain, "augmented_ms": augmented}


def run(cfg: FinetuneConfig = FinetuneConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto", dataset: data.ImageSet | None = None, init: nn.Module | None = None,
        init_note: str = "") -> FinetuneResult:
    """Train every (weights, seed) of cfg and return curves, accuracies and confusion matrices.

    `dataset` (the user's own images, at cfg.image_size) replaces the named dataset; its validation set
    is then a class-balanced `cfg.val_fraction` of each class, not a count. `init` (a registry
    backbone's module with loaded weights; `init_note` says where they came from) replaces the
    pretrained weights: continuing to fine-tune loaded weights is this same run."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    start = time.perf_counter()
    note = init_note if init is not None else _weights_note(cfg)
    dev = devices.pick(device)
    ds, split = _splitter(cfg, dataset)
    first: dict = {}
    data_key = _data_key(cfg, dataset) if REUSE and "scratch" in cfg.conditions() else ""

    def train_one(cell, on_epoch, should_stop) -> Run:
        train, val = split(cell.seed)
        reuse = _scratch_key(cfg, cell.seed, data_key) if REUSE and cell.condition == "scratch" else None
        hit = _SCRATCH.get(reuse) if reuse else None
        if hit is not None and (first or hit[2] is not None):   # trained before with these scratch settings
            r, names, state = hit
            on_epoch(len(r.history.train_loss) - 1, r.history)
            if not first:
                first.update(val=val, names=names, state=state)
            return r
        model = model_for(cfg, cell.condition, len(ds.classes), cell.seed, init).to(dev)
        cache = _frozen_cache(cfg, len(ds.classes), dev, init) if cell.condition == "pretrained" else None
        trainer = Trainer(model, cfg.for_weights(cell.condition), dev, cache)
        r = trainer.evaluate(cell.condition, cell.seed, train, val, {"on_epoch": on_epoch, "should_stop": should_stop})
        state = None
        if not first or (reuse and cell.seed == cfg.seed):
            state = {key: t.detach().cpu().clone() for key, t in model.state_dict().items()}
        if not first:
            first.update(val=val, names=model.names, state=state)
        if reuse and r.history.status == "finished":
            _SCRATCH[reuse] = (r, model.names, state)   # the oldest go past the byte budget or 12 runs
        return r

    cells = contract.plan(cfg.conditions(), cfg.seeds, cfg.seed)
    n_train, n_val = map(len, split(cfg.seed))
    costs = [_cell_cost(cfg, c.condition, n_train, n_val,
                        c.condition == "scratch" and REUSE and _scratch_key(cfg, c.seed, data_key) in _SCRATCH)
             for c in cells]
    out = contract.run_cells(cells, train_one, serve.by_cost(progress, costs), should_stop, epochs=cfg.epochs)
    frozen = freeze.parse_freeze(cfg.freeze, len(backbones.stage_names(cfg.backbone))) \
        if "pretrained" in cfg.conditions() else 0
    result = FinetuneResult(config=cfg, classes=list(ds.classes), stage_names=first.get("names", []), frozen=frozen,
                            runs=out.results, val=first.get("val"), device=devices.describe(dev), weights_note=note,
                            status=out.status, message=out.message, model_state=first.get("state"),
                            seconds=time.perf_counter() - start)
    result.kind = "own" if dataset is not None else "continue" if init is not None else "finetune"
    return result


# ---- the shots × freeze-depth sweep --------------------------------------------------------------------

def _freezes_problem(values: tuple) -> str:
    return next((p for p in map(_freeze_problem, values) if p), "" if values else "give at least one freeze depth")


@dataclass(frozen=True)
class SweepConfig(FinetuneConfig):
    """The lab's settings, with a list of shots and a list of freeze depths in place of one of each."""
    freeze: str = setting("all", "(the sweep's depths are `freezes`)", record=False, cli=False)
    val_fraction: float = setting(0.15, "(own images only)", lo=0.05, hi=0.5, record=False, cli=False)
    shots: tuple[int | None, ...] = setting((1, 5, 20), "training images per class, comma-separated (all = every "
                                                        "image left)", lo=1, hi=100_000,
                                            check=lambda v: "" if v else "give at least one shots value")
    freezes: tuple[str, ...] = setting(("all", "none"), "freeze depths, comma-separated: all, none or a count",
                                       check=_freezes_problem)
    engine: str = engines.engine_setting()
    address: str = engines.address_setting()

    def check(self) -> None:
        super().check()
        n = len(backbones.stage_names(self.backbone))
        for fr in self.freezes:
            freeze.parse_freeze(fr, n)

    def resolve(self) -> "SweepConfig":
        """Depths as stage counts, each once, deepest first; shots each once, in the order given."""
        n = len(backbones.stage_names(self.backbone))
        depths = sorted({freeze.parse_freeze(fr, n) for fr in self.freezes}, reverse=True)
        return replace(super().resolve(), freezes=tuple(map(str, depths)), shots=tuple(dict.fromkeys(self.shots)))

    def lab(self, shots: int | None = None, freeze_depth: str = "0") -> FinetuneConfig:
        base = {f.name: getattr(self, f.name) for f in fields(FinetuneConfig)}
        return FinetuneConfig(**{**base, "shots": shots, "freeze": freeze_depth})


@dataclass
class SweepResult(contract.Result):
    config: SweepConfig
    records: list[dict] = field(default_factory=list)   # weights, seed, shots, freeze, val_acc, train_acc
    kind = "sweep"
    headline = ""

    @property
    def shots(self) -> list:
        return list(self.config.shots)

    @property
    def freezes(self) -> list[str]:
        return list(self.config.freezes)

    def rows(self, weights: str) -> list[str]:
        """The grid's rows: the freeze depths (scratch: its one row, every stage trained)."""
        return self.freezes if weights == "pretrained" else ["0"]

    def grid(self, weights: str) -> np.ndarray:
        """Mean val accuracy, rows = freeze depths, columns = shots."""
        rows = self.rows(weights)
        g = np.full((len(rows), len(self.shots)), np.nan)
        for i, fr in enumerate(rows):
            for j, sh in enumerate(self.shots):
                accs = [r["val_acc"] for r in self.records
                        if r["weights"] == weights and r["freeze"] == fr and r["shots"] == sh]
                if accs:
                    g[i, j] = float(np.mean(accs))
        return g

    def body(self) -> dict:
        return {"shots": self.shots, "freezes": self.freezes,
                "stages": list(backbones.stage_names(self.config.backbone)),
                "grid": {w: self.grid(w).tolist() for w in self.config.conditions()}, "records": self.records,
                "claims": self.claims()}

    def values(self, shots) -> dict[str, dict[int, float]]:
        """At one shots value: each freeze depth's (and scratch's) validation accuracy by seed."""
        out: dict[str, dict[int, float]] = {}
        for r in self.records:
            if r["shots"] == shots and r.get("status", "finished") == "finished":
                name = "scratch" if r["weights"] == "scratch" else f"pretrained ({r['freeze']} frozen)"
                out.setdefault(name, {})[r["seed"]] = r["val_acc"]
        return out

    def claims(self) -> list[dict]:
        """Per shots value: the best pretrained freeze depth against scratch (against the other depths when
        scratch did not run), by the claims rule."""
        out = []
        for sh in self.shots:
            values = self.values(sh)
            depths = [f"pretrained ({fr} frozen)" for fr in self.freezes if f"pretrained ({fr} frozen)" in values]
            if not depths:
                continue
            best = claims.best_of(values, depths)
            against = ["scratch"] if "scratch" in values else [d for d in depths if d != best]
            if against:
                out.append({**claims.compare(best, values, against).to_json(), "shots": sh})
        return out

    def verdict(self) -> Verdict:
        """One claim per shots value, in words; the kind is theirs when they agree, else "mixed"."""
        if self.status != "finished":
            return self.ended_early()
        found = self.claims()
        if not found:
            return Verdict("single", "Choose two freeze depths, or weights 'both', to compare.")
        stages = len(backbones.stage_names(self.config.backbone))
        parts = []
        for c in found:
            claim = claims.Claim.from_json(c)
            name = lambda key: key if key == "scratch" else _depth_words(int(key.split("(")[1].split()[0]), stages)  # noqa: E731
            parts.append(f"{contract.ALL if c['shots'] is None else c['shots']} shots: "
                         + claim.sentence(name(c["subject"]), name(c["against"])))
        kinds = {c["kind"] for c in found}
        return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", " ".join(parts))

    def metrics(self) -> dict[str, float]:
        """One metric per grid cell: grid.<weights>.freeze <depth>.shots <n>."""
        return {f"grid.{w}.freeze {fr}.shots {contract.ALL if sh is None else sh}": self.grid(w)[i, j]
                for w in self.config.conditions() for i, fr in enumerate(self.rows(w))
                for j, sh in enumerate(self.shots)}


def sweep(cfg: SweepConfig = SweepConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
          device: str = "auto") -> SweepResult:
    """Val accuracy over a shots × freeze-depth grid, for every weights condition and seed. The frozen
    prefix's features are computed once per (weights, seed, depth) and reused for every shots value."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    _weights_note(cfg)
    start = time.perf_counter()
    dev = devices.pick(device)
    ds = data.load(cfg.dataset, cfg.image_size, cfg.classes or None)
    most = None if None in cfg.shots else max(cfg.shots)
    data.few_shot_split(ds, most, cfg.seed, cfg.val_per_class)  # fails early if a shots value is too large
    out = SweepResult(config=cfg, device=devices.describe(dev))
    # one cell per (weights, seed, depth); scratch trains every stage, so it has one depth
    cells = [contract.Cell(w, cfg.seed + s, (("freeze", fr),)) for w in cfg.conditions() for s in range(cfg.seeds)
             for fr in (cfg.freezes if w == "pretrained" else ("0",))]

    def train_one(cell, on_epoch, should_stop):  # self-contained: on engine "ray" it runs in another process
        model = backbones.create(cfg.backbone, cell.condition, len(ds.classes), cell.seed).to(dev)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        cache = _frozen_cache(cfg, len(ds.classes), dev, None) if cell.condition == "pretrained" else None
        trainer = Trainer(model, cfg.lab(None, cell["freeze"]).for_weights(cell.condition), dev, cache)
        # the same validation set for every shots value, and the same object, so its features are computed once
        _, val = data.few_shot_split(ds, 1, cell.seed, cfg.val_per_class)
        status, records = "finished", []
        for sh in cfg.shots:
            if should_stop is not None and should_stop():
                status = "stopped"
                break
            train, _ = data.few_shot_split(ds, sh, cell.seed, cfg.val_per_class)
            model.load_state_dict(initial)       # every shots value starts from the same weights
            r = trainer.evaluate(cell.condition, cell.seed, train, val, {"should_stop": should_stop})
            records.append({"weights": cell.condition, "seed": cell.seed, "freeze": cell["freeze"], "shots": sh,
                            "val_acc": r.val_acc, "train_acc": r.train_acc, "status": r.history.status})
            status = r.history.status
            if status != "finished":
                break
        return contract.Outcome(results=records, status=status)

    def on_cell(cell, done):  # each finished cell goes into the run history as it arrives
        out.records.extend(done.results)
        out.seconds = time.perf_counter() - start
        store.checkpoint(out)

    done = contract.run_cells(cells, train_one, progress, should_stop, engine=cfg.engine, address=cfg.address,
                              on_cell=on_cell)
    out.records = [rec for cell in done.results for rec in cell.results]   # in plan order, whichever engine
    out.status, out.message = done.status, done.message
    out.seconds = time.perf_counter() - start
    return out


def _depth_words(depth: int, stages: int) -> str:
    """A freeze depth in a sentence: 'pretrained, 9 of 10 stages frozen (feature extraction)'."""
    what = " (feature extraction)" if depth == stages - 1 else " (full fine-tuning)" if depth == 0 else ""
    return f"pretrained, {depth} of {stages} stages frozen{what}"


def verdict(result: FinetuneResult) -> Verdict:
    """Pretrained against scratch by the claims rule; the conditions side by side when only one ran."""
    if result.status != "finished":
        return result.ended_early()
    claim = result.claim()
    if claim is None:
        s = result.summary(result.ran()[0])
        return Verdict("single", f"{result.config.weights}: validation accuracy {s['val_acc']:.1%} ± "
                                 f"{s['val_acc_std']:.1%} over {len(s['val_acc_seeds'])} seed(s). Choose weights "
                                 f"'both' to compare with scratch.")
    lead = {"helped": "Pretraining helped: ", "hurt": "Negative transfer: ", "tie": "", "single": ""}[claim.kind]
    loaded = result.kind == "continue"
    return Verdict(claim.kind, lead + claim.sentence("loaded weights" if loaded else "pretrained", "scratch"))


def augment_verdict(plain: dict, augmented: dict) -> Verdict:
    """Two lab runs' JSON alike but for augmentation: per weights condition both ran, the augmented run against the
    plain one by the claims rule, paired over their seeds (validation accuracy, images as they are)."""
    names = augment.words(augmented.get("config", {}).get("augment", ()))
    parts, kinds = [], set()
    for condition in augmented.get("conditions", {}):
        if condition not in plain.get("conditions", {}):
            continue
        values = {name: claims.by_seed(*(out["conditions"][condition][k] for k in ("seeds", "val_acc_seeds")))
                  for name, out in (("augmented", augmented), ("plain", plain))}
        claim = claims.compare("augmented", values, ["plain"])
        kinds.add(claim.kind)
        parts.append(claim.sentence(f"{condition} with {names}", f"{condition} without augmentation"))
    if not parts:
        return Verdict("single", "The two runs share no weights condition to compare.")
    return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", " ".join(parts))


# ---- the command line: finetune (built-in data or --data-zip), sweep, predict ---------------------------

def _prepare(args, cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict]:
    """`--data-zip`: the user's own images in place of a built-in dataset (all images unless --shots)."""
    if args.data_zip is None:
        if args.export:
            raise ValueError("--export saves a model trained on your own images: add --data-zip")
        return cfg, {}
    from tl_core import userdata

    images = userdata.read_zip(args.data_zip)
    if cfg.classes:
        unknown = [c for c in cfg.classes if c not in images.classes]
        if unknown:
            raise ValueError(f"class {unknown[0]!r} is not in {args.data_zip}: it has {', '.join(images.classes)}")
        images = images.edited(drop=[c for c in images.classes if c not in cfg.classes])
    shots = cfg.shots if "shots" in contract.given(args, FinetuneConfig) else None
    cfg = replace(cfg, dataset=f"{OWN}{images.source}", classes=(), shots=shots)   # as the page names it
    contract.validate(cfg)
    dataset = images.to_imageset(cfg.image_size)  # raises, saying what is needed, before any warning prints
    for line in [*(f"skipped {s.name}: {s.reason}" for s in images.skipped), *images.warnings(cfg.val_fraction)]:
        sys.stderr.write(f"warning: {line}\n")
    args.images = images
    return cfg, {"dataset": dataset}


def _after(args, result: FinetuneResult) -> dict:
    if args.data_zip is None:
        return {}
    from tl_core import export

    extras = {"skipped": [{"file": s.name, "reason": s.reason} for s in args.images.skipped],
              "counts": args.images.counts()}
    if args.export and result.runs:
        clf = export.from_result(result)
        extras["export"] = export.save(clf, args.export)
        extras["model_path"] = extras["export"]["model.pt"]
        extras.update(onnx_path=extras["export"]["model.onnx"], onnx_max_abs_diff=clf.meta["onnx"]["max_abs_diff"])
        sys.stderr.write(export.parity_line(clf) + "\n")
    return extras


def _text(result: FinetuneResult, out: dict) -> str:
    cfg = result.config
    counts = ", ".join(f"{c}: {n}" for c, n in out["counts"].items()) if "counts" in out else ""
    data_text = cfg.dataset + (f" ({counts})" if counts else "")
    lines = [f"{cfg.backbone}, {data_text}, {cfg.shots or 'all'} shots/class, {result.frozen} of "
             f"{len(result.stage_names)} stages frozen, {cfg.strategy}, augmentation: {augment.words(cfg.augment)}, "
             f"on {result.device} in {result.seconds:.1f} s"]
    lines += [f"  {w:<10} val acc {s['val_acc']:.3f} ± {s['val_acc_std']:.3f}   train acc {s['train_acc']:.3f}"
              for w, s in out["conditions"].items()]
    if "export" in out:
        lines.append(f"  saved {', '.join(out['export'].values())}")
    return "\n".join(lines + [result.verdict().text])


def _sweep_text(result: SweepResult, out: dict) -> str:
    lines = []
    for weights, grid in out["grid"].items():
        lines.append(f"{weights}: val accuracy, rows: frozen stages {result.rows(weights)}, columns: shots "
                     f"{[contract.ALL if s is None else s for s in result.shots]}")
        lines += [f"  {fr:>5}  " + "  ".join(f"{v:.3f}" for v in row) for fr, row in zip(result.rows(weights), grid)]
    return "\n".join(lines + [result.verdict().text])


def _predict(args) -> int:
    from pathlib import Path

    from tl_core import export, userdata

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    clf = export.load(args.model, onnx=args.onnx)
    predictions = []
    for path in args.images:
        try:
            top = clf.topk(Path(path).read_bytes(), args.top_k)
        except userdata.BadImage as err:
            raise ValueError(f"{path}: {err}") from None
        predictions.append({"image": path, "top": [{"class": c, "probability": p} for c, p in top]})
    if args.json:
        print(json.dumps({"model": str(args.model), "backbone": clf.meta["backbone"], "classes": clf.classes,
                          "image_size": clf.image_size, "runtime": clf.runtime, "predictions": predictions}))
    else:
        for pred in predictions:
            print(pred["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in pred["top"]))
    return 0


def _onnx_flag() -> contract.Option:
    from tl_core import export

    return export.ONNX_FLAG   # predict --onnx: run model.onnx with onnxruntime


EXPERIMENTS = (
    contract.Experiment(
        "finetune", "fine-tune a backbone on a few-shot dataset, or on your own images (--data-zip)",
        FinetuneConfig, run, prepare=_prepare, after=_after, text=_text, options=(
            contract.Option("--data-zip", "a zip of class folders of your own images (instead of --dataset)"),
            contract.Option("--export", "with --data-zip: save the trained model there: model.pt (state_dict), "
                                        "model.json, predict.py"))),
    contract.Experiment("sweep", "val accuracy over a shots x freeze-depth grid", SweepConfig, sweep,
                        text=_sweep_text),
    contract.Experiment(
        "predict", "top-k classes of images with a model exported by finetune --export", main=_predict,
        recorded=False, device=False, options=(
            contract.Option("images", "image files (jpg, png, webp, bmp, gif, tiff)", nargs="+"),
            contract.Option("--model", "the exported model.pt (model.json beside it), its folder or zip",
                            required=True),
            contract.Option("--top-k", "classes to list per image", default=3, type=int), _onnx_flag())),
)
