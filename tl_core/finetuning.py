"""The one fine-tuning trainer, its settings and the one frozen-feature cache: every experiment that fine-tunes a
staged backbone (the lab, your own images, layers, inside, domains, lr-find, text, parameter-efficient fine-tuning)
trains through these, and through `train.fit` beneath them.

    cfg = FinetuneConfig(backbone=..., dataset=..., freeze="all", ...)  # the lab's settings, shared by experiments
    model = model_for(cfg, "pretrained", num_classes, seed)             # the model one run starts from
    cache = FrozenCache(lambda: backbones.create(name, "pretrained"))   # or FrozenCache(model)
    trainer = Trainer(model, cfg, device, cache)     # cfg: freeze, strategy, epochs, lr, batch_size, seed, ...
    run = trainer.fit_and_score("pretrained", seed, train, val, hooks)  # trains, then History + accuracies + confusion

What a lab run reuses from the runs before it in the process is `tl_core.reuse`; what it costs, `tl_core.lab_cost`.

A frozen prefix never changes while it is frozen, so its outputs are computed once per input row and reused
by every epoch, every shots value and (when the cache is shared) every seed and condition frozen to that
depth: on a laptop this is the main speed lever.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import confusion_matrix
from torch import nn

from tl_core import augment, backbones, data, freeze
from tl_core.augment import Augmenter
from tl_core.contract import Stop, setting
from tl_core.train import FitConfig, History, concat_histories, fit, frozen_features, predict

# ---- the lab's settings, the model a run starts from, its split ------------------------------------------

WEIGHT_CHOICES = {"both": "pretrained and scratch side by side", "pretrained": "the registry's pretrained weights",
                  "scratch": "random weights, every stage trained"}
STRATEGIES = freeze.STRATEGIES  # (the config's field `freeze` shadows the module inside its class body)
OWN = "own: "   # the dataset name of the user's own images: "own: NAME.zip"


def _dataset_problem(name: str) -> str:
    if name in data.DATASETS or name.startswith(OWN):
        return ""
    return f"unknown dataset {name!r}: choose one of {', '.join(data.DATASETS)}"


def freeze_problem(value: str) -> str:
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
    freeze: str = setting("all", "frozen stages: all (all but the head), none, or a count", check=freeze_problem)
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


def weights_note(cfg: FinetuneConfig) -> str:
    """Where a run's weights come from, in a line; WeightsUnavailable when the pretrained ones it needs are not
    on this machine."""
    if "pretrained" not in cfg.conditions():
        return "scratch: random initial weights"
    ok, message = backbones.weights_status(cfg.backbone)
    if not ok:
        raise backbones.WeightsUnavailable(f"{cfg.backbone}: {message}")
    return message


def splitter(cfg: FinetuneConfig, dataset: data.ImageSet | None):
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
    return splitter(cfg, dataset)[1](cfg.seed)


def model_for(cfg: FinetuneConfig, weights: str, num_classes: int, seed: int,
              init: nn.Module | None = None) -> backbones.StagedModel:
    """The model one run starts from: the registry's weights, or `init` (weights loaded elsewhere, e.g. in
    the workshop) in place of the pretrained ones; a new head when the class count differs."""
    if init is not None and weights == "pretrained":
        return backbones.create(cfg.backbone, num_classes=num_classes, seed=seed, module=copy.deepcopy(init))
    return backbones.create(cfg.backbone, weights, num_classes, seed)


def relative_change(before: dict, after: dict, model: backbones.StagedModel) -> list[float]:
    """‖w − w₀‖ / ‖w₀‖ of each stage's parameters (all of a stage's parameters as one vector)."""
    out = []
    for k, stage in enumerate(model.stages):
        names = [f"stages.{k}.{n}" for n, _ in stage.named_parameters()]
        w0 = torch.cat([before[n].flatten() for n in names])
        w1 = torch.cat([after[n].flatten() for n in names])
        out.append(float((w1 - w0).norm() / w0.norm().clamp_min(1e-12)))
    return out


# Validation and the final predictions of a network trained whole on the CPU (CHANNELS_LAST) run on an eval-only
# copy with every BatchNorm that directly follows a convolution folded into it (`Folded`): the same function
# (eval-mode BatchNorm is a fixed affine map per channel) in one pass less per convolution: a validation pass of
# Lite0 1.4x faster, refolding included (bench/lab_run.py). False: the path before it.
FOLD_BN = True


class Folded:
    """An eval-only copy of `model` in which each BatchNorm2d that directly follows a Conv2d (consecutive children
    of one module; the copy is checked once to compute what the model computes) is folded into that convolution:
    w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β, its activation (timm's BatchNormAct2d) kept. `current()` folds
    the model's weights as they are now (a few ms for Lite0) and returns the copy, or the model itself when
    nothing folds or the check fails. `pass_size`: the images per pass of validation and prediction (`passes`),
    measured at the check."""

    def __init__(self, model: nn.Module):
        self.model, self.pairs, self.checked, self.pass_size = model, [], False, VAL_BATCH
        self.copy = copy.deepcopy(model).eval()
        for src_parent, dst_parent in list(zip(model.modules(), self.copy.modules())):   # before any change
            names = list(dst_parent._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = src_parent._modules[a], src_parent._modules[b]
                if not (type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
                        and bn.num_features == conv.out_channels and _plain_batchnorm(bn)):
                    continue
                folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                   conv.dilation, conv.groups, True, conv.padding_mode).to(conv.weight.device)
                folded.weight.data = folded.weight.data.contiguous(memory_format=_layout(conv.weight))
                mine = dst_parent._modules[b]
                dst_parent._modules[a] = folded
                dst_parent._modules[b] = nn.Sequential(mine.drop, mine.act) if hasattr(mine, "act") else nn.Identity()
                self.pairs.append((conv, bn, folded))
        folded_ids = {id(t) for _, _, f in self.pairs for t in (f.weight, f.bias)}
        mine = dict(self.copy.named_parameters()) | dict(self.copy.named_buffers())
        theirs = dict(model.named_parameters()) | dict(model.named_buffers())
        self.rest = [(mine[n], theirs[n]) for n in mine if id(mine[n]) not in folded_ids and n in theirs]

    @torch.no_grad()
    def current(self, probe: torch.Tensor | None = None) -> nn.Module:
        if not self.pairs:
            return self.model
        for conv, bn, folded in self.pairs:
            scale = (bn.running_var + bn.eps).rsqrt()
            shift = -bn.running_mean * scale
            if bn.affine:
                scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
            folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            folded.bias.copy_((conv.bias * scale if conv.bias is not None else 0) + shift)
        for mine, theirs in self.rest:
            mine.copy_(theirs)
        if not self.checked and probe is not None:   # once: the copy computes what the model computes
            was = self.model.training
            self.model.eval()
            want, (got, widest) = self.model(probe), widest_activation(self.copy, probe)
            self.model.train(was)
            self.pass_size = passes(widest)
            if not torch.allclose(want, got, rtol=1e-3, atol=1e-4 * float(want.abs().max().clamp_min(1))):
                self.pairs = []
                return self.model
            self.checked = True
        return self.copy


# A pass of validation or prediction on the CPU holds at most PASS_BYTES of its widest activation: about what the
# reference machine's 32 MB L3 cache keeps for one run. Lite0 at 64 px (96 channels at 32x32, 384 KB an image)
# then validates its 200 images in passes of 53, 1.2-1.4x faster than one pass of 200 whose activations spill to
# memory (bench/lab_run.py); the same outputs bit for bit.
PASS_BYTES = 20 * 2**20


def widest_activation(model: nn.Module, probe: torch.Tensor) -> tuple[torch.Tensor, int]:
    """model(probe), and the bytes per image of the largest output of any of its leaf modules."""
    sizes = [0]
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() * out.element_size())
                                     if isinstance(out, torch.Tensor) else None)
             for m in model.modules() if not any(True for _ in m.children())]
    try:
        out = model(probe)
    finally:
        for h in hooks:
            h.remove()
    return out, max(sizes) // max(len(probe), 1)


def passes(per_image: int) -> int:
    """Images per pass for a network whose widest activation takes `per_image` bytes: as many as PASS_BYTES hold
    (at least 48: fewer leave a wide network's convolutions short of work), up to VAL_BATCH; VAL_BATCH = 0 (the
    training batch size) stays 0."""
    return VAL_BATCH and min(VAL_BATCH, max(48, PASS_BYTES // max(per_image, 1)))


def _plain_batchnorm(bn: nn.BatchNorm2d) -> bool:
    """torch's BatchNorm2d, or timm's with its activation after it (nothing else in between)."""
    return type(bn) is nn.BatchNorm2d or (type(bn).__name__ == "BatchNormAct2d" and hasattr(bn, "act"))


def _layout(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


# ---- the frozen-feature cache, the trainer ---------------------------------------------------------------

# Validation and the final predictions run in passes of up to VAL_BATCH images (eval mode: a validation image's
# prediction does not depend on the batch it is in). On a CPU one pass of 200 images costs about a third of seven
# passes of 32 (bench/lab_run.py); VAL_BATCH = 0 validates in the training batch size, the path before it.
VAL_BATCH = 256

# A network trained whole on the CPU (scratch, full fine-tuning: no frozen prefix whose features are cached) runs
# in channels-last memory layout while it trains and is scored (oneDNN's convolutions, depthwise ones above all,
# are faster on it): the lab's default run 1.7-1.8x faster (bench/lab_run.py). The same arithmetic in another
# order: such a run's numbers differ from the contiguous layout's in the last bits, which a scratch run's 15
# epochs amplify into other accuracies of the same spread; docs/benchmarks.md gives the verdicts on held-out seeds.
# The model is handed back in the usual layout. False: the path before it.
CHANNELS_LAST = True


def image_network_on_cpu(model: nn.Module, dev: torch.device) -> bool:
    """An image network (it has 2-D convolutions) on the CPU: where channels-last and folded BatchNorm pay."""
    return torch.device(dev).type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())


def trained_whole(cfg, n_stages: int) -> bool:
    """Whether a run of cfg (freeze, cache) trains its network of `n_stages` stages whole: no cached frozen prefix."""
    return freeze.parse_freeze(cfg.freeze, n_stages) == 0 or not cfg.cache


def fast_layout(model: nn.Module, dev: torch.device) -> bool:
    """Whether `model` trains in channels-last layout on `dev`: an image network on the CPU, while CHANNELS_LAST
    is on."""
    return CHANNELS_LAST and image_network_on_cpu(model, dev)


class FrozenCache:
    """Outputs of the first `depth` stages of one fixed set of weights, per input tensor and depth, each row
    computed the first time a run asks for it. `source` is the model whose prefix is frozen, or a function
    that builds it when first needed (e.g. the pretrained encoder, shared by every seed of a run)."""

    def __init__(self, source: nn.Module | Callable[[], nn.Module], batch_size: int = 64, device=None):
        self._source, self.batch_size, self.device = source, batch_size, device
        self._model: nn.Module | None = source if isinstance(source, nn.Module) else None
        # (depth, id(inputs)) → (inputs, features, done per row): holding the inputs keeps their id from reuse
        self._by: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = {}
        self.seconds = 0.0       # spent computing features

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            self._model = self._source()
            if self.device is not None:
                self._model = self._model.to(self.device)
        return self._model

    def has(self, depth: int, inputs: torch.Tensor) -> bool:
        hit = self._by.get((depth, id(inputs)))
        return hit is not None and hit[0] is inputs and bool(hit[2].all())

    def at(self, depth: int, inputs: torch.Tensor, rows: torch.Tensor | None = None,
           should_stop: Stop | None = None) -> torch.Tensor:
        """Features of inputs[rows] (every row when None) after the first `depth` stages. should_stop() is
        checked between batches; a True raises contract.Stopped."""
        key = (depth, id(inputs))
        hit = self._by.get(key)
        if hit is None or hit[0] is not inputs:
            hit = (inputs, None, torch.zeros(len(inputs), dtype=torch.bool))
        _, feats, done = hit
        want = torch.arange(len(inputs)) if rows is None else torch.as_tensor(rows).long().cpu()
        missing = want[~done[want]].unique()
        if len(missing):
            start = time.perf_counter()
            new = self._compute(depth, inputs[missing.to(inputs.device)], should_stop)
            if feats is None:
                feats = new.new_zeros((len(inputs), *new.shape[1:]))
            feats[missing.to(feats.device)] = new
            done[missing] = True
            self._by[key] = (inputs, feats, done)
            self.seconds += time.perf_counter() - start
        return feats if rows is None else feats[want.to(feats.device)]

    def _compute(self, depth: int, x: torch.Tensor, should_stop: Stop | None) -> torch.Tensor:
        return frozen_features(self.model.prefix(depth), x, self.batch_size, should_stop)


class SharedFrozenCache(FrozenCache):
    """A FrozenCache shared by every seed of a run and, kept by the caller, by every run with the same frozen
    weights (the lab keeps one per backbone: the registry's pretrained prefix). It computes exactly the batches
    a per-run cache computes (the same images in the same batches of `batch_size`), and keeps each batch's
    features by what the batch *is* (a hash of its pixels): a batch met again (the same split, the validation
    images of another seed or run) is not computed again. Sharing by batch, not by image, keeps a run's numbers
    bit for bit those of a per-run cache: a conv's result for an image can depend on the batch it is in (on
    this CPU, batches under 16 images take another kernel). Past `budget` bytes of features it starts afresh."""

    def __init__(self, source, batch_size: int = 64, device=None, budget: int = 512 * 2**20):
        super().__init__(source, batch_size, device)
        import threading

        self.budget, self.bytes = budget, 0
        self._batches: dict[tuple[int, bytes], torch.Tensor] = {}   # (depth, hash of a batch) → its features
        self._lock = threading.RLock()

    @staticmethod
    def _digest(batch: torch.Tensor) -> bytes:
        import hashlib

        raw = batch.detach().cpu().contiguous()
        return hashlib.blake2b(raw.numpy().tobytes(), digest_size=16).digest() + bytes(str(tuple(raw.shape)), "ascii")

    def has(self, depth: int, inputs: torch.Tensor) -> bool:
        with self._lock:
            return super().has(depth, inputs) or all(
                (depth, self._digest(inputs[i:i + self.batch_size])) in self._batches
                for i in range(0, len(inputs), self.batch_size))

    def _compute(self, depth: int, x: torch.Tensor, should_stop: Stop | None) -> torch.Tensor:
        out = []
        for i in range(0, len(x), self.batch_size):   # the batches frozen_features makes of x
            batch = x[i:i + self.batch_size]
            key = (depth, self._digest(batch))
            if key not in self._batches:   # kept in host memory: on a GPU, the device holds no cache between runs
                self._batches[key] = frozen_features(self.model.prefix(depth), batch, self.batch_size,
                                                     should_stop).cpu()
                self.bytes += self._batches[key].element_size() * self._batches[key].numel()
            out.append(self._batches[key])
        return torch.cat(out)

    def release_model(self) -> None:
        """Let go of the frozen network this cache built (on a GPU, its memory); the next run that needs
        features not kept builds it again. The features kept stay."""
        with self._lock:
            if not isinstance(self._source, nn.Module):
                self._model = None

    def at(self, depth: int, inputs: torch.Tensor, rows: torch.Tensor | None = None,
           should_stop: Stop | None = None) -> torch.Tensor:
        with self._lock:
            if self.bytes > self.budget:   # start afresh, before this call needs any of it
                self._batches, self._by, self.bytes = {}, {}, 0
            while len(self._by) > 32:      # the tensors of runs long gone
                self._by.pop(next(iter(self._by)))
            return super().at(depth, inputs, rows, should_stop)


@dataclass
class FinetuneRun:
    """One fine-tuned model, one seed: its curves, accuracies and validation predictions."""
    weights: str
    seed: int
    history: History
    val_acc: float
    train_acc: float
    confusion: np.ndarray        # (classes, classes): rows true, columns predicted, on the val set
    val_pred: np.ndarray         # predicted class of every val image
    val_true: np.ndarray | None = None   # its true class

    @property
    def per_class_recall(self) -> np.ndarray:
        """Validation accuracy of each class (NaN for a class with no validation image); sklearn's recall_score
        with zero_division=NaN, counted directly (it is read per seed for every summary a page draws)."""
        k = len(self.confusion)
        true, pred = np.asarray(self.val_true), np.asarray(self.val_pred)
        total = np.bincount(true, minlength=k)[:k].astype(float)
        hit = np.bincount(true[true == pred], minlength=k)[:k].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, hit / np.where(total > 0, total, 1), np.nan)


class Trainer:
    """Trains one staged model under a strategy (fixed depth, discriminative learning rates, gradual
    unfreezing), on the frozen prefix's cached features where the cache is on. `cfg` has freeze, strategy,
    epochs, lr, batch_size, seed, unfreeze_every and cache (the lab's config has them all), and may have
    augment (training-image augmentation, `tl_core.augment`: the frozen prefix then runs on every augmented
    training batch; validation and prediction see the images as they are)."""

    def __init__(self, model: backbones.StagedModel, cfg, dev: torch.device, cache: FrozenCache | None = None):
        self.model, self.cfg, self.dev = model, cfg, dev
        self.n = len(model.stages)
        self.k = freeze.parse_freeze(cfg.freeze, self.n)
        # gradual unfreezing and discriminative LRs reach down to stage `floor`: to the stem when the
        # freeze depth is the deepest (all but the head), else to the chosen depth
        self.floor = 0 if self.k == self.n - 1 else self.k
        # augmentation (cfg.augment, when the config has it): training images are new every epoch, so their
        # frozen-prefix features are never cached, and an augmented run never reads or fills a cache shared
        # with other runs; only the (unaugmented) validation images' features are kept, in a cache of its own
        self.augment = tuple(getattr(cfg, "augment", ()) or ())
        if cache is None or (self.augment and isinstance(cache, SharedFrozenCache)):
            cache = FrozenCache(model, cfg.batch_size)
        self.cache = cache
        self.folded: Folded | None = None   # while a network trained whole is trained and scored (FOLD_BN)

    def features(self, k: int, images: torch.Tensor, should_stop=None) -> torch.Tensor:
        return self.cache.at(k, images, should_stop=should_stop)

    def _fit_at(self, k: int, epochs: int, train, val, params=None, augmenter: Augmenter | None = None,
                **hooks) -> History:
        """Train with the first k stages frozen; on cached features when allowed. With an augmenter, every
        training batch is augmented afresh and the frozen prefix runs on it (no cache for training images)."""
        freeze.freeze_to(self.model, k)
        fit_cfg = FitConfig(epochs=epochs, lr=self.cfg.lr, batch_size=self.cfg.batch_size, seed=self.cfg.seed,
                            eval_batch_size=VAL_BATCH)
        stop = hooks.get("should_stop")
        if self.cfg.cache and k > 0 and params is None:
            if augmenter is None:
                xs, xv = self.features(k, train.images, stop), self.features(k, val.images, stop)
                return fit(self.model.suffix(k), (xs, train.labels), (xv, val.labels), fit_cfg, **hooks)
            xv, prefix, size = self.features(k, val.images, stop), self.model.prefix(k), self.cfg.batch_size
            return fit(self.model.suffix(k), (train.images, train.labels), (xv, val.labels), fit_cfg,
                       transform=lambda xb: frozen_features(prefix, augmenter(xb), size), **hooks)
        if self.folded is not None:   # validation on the folded copy (FOLD_BN)
            probe = val.images[:4]
            hooks["eval_model"] = lambda: (self.folded.current(probe), self.folded.pass_size)
        return fit(self.model, (train.images, train.labels), (val.images, val.labels), fit_cfg, params=params,
                   transform=augmenter, **hooks)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities; from the cached features of the frozen prefix when it has them."""
        k = freeze.frozen_stages(self.model)
        size = VAL_BATCH or self.cfg.batch_size
        if self.cfg.cache and k > 0 and self.cache.has(k, images):
            return predict(self.model.suffix(k), self.cache.at(k, images), size)
        if self.folded is None:
            return predict(self.model, images, size)
        return predict(self.folded.current(images[:4]), images, self.folded.pass_size or size)

    def train(self, train, val, **hooks) -> History:
        cfg = self.cfg
        # one augmentation stream per run (every phase of gradual unfreezing continues it), seeded by the run
        hooks["augmenter"] = Augmenter(self.augment, cfg.seed) if self.augment else None
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

    def fit_and_score(self, weights: str, seed: int, train, val, hooks: dict | None = None) -> FinetuneRun:
        """Train on `train`, then score: validation and train accuracy, the confusion matrix. A network trained
        whole on the CPU does both in channels-last layout (CHANNELS_LAST), is validated and scored on a copy with
        its BatchNorm folded (FOLD_BN), and is handed back as it came."""
        whole = trained_whole(self.cfg, self.n)
        layout = whole and fast_layout(self.model, self.dev)
        if layout:
            self.model.to(memory_format=torch.channels_last)
        if whole and FOLD_BN and image_network_on_cpu(self.model, self.dev):
            self.folded = Folded(self.model)
        try:
            hist = self.train(train, val, **(hooks or {}))
            probs_val, probs_train = self.predict(val.images), self.predict(train.images)
        finally:
            self.folded = None
            if layout:
                self.model.to(memory_format=torch.contiguous_format)
        pred = probs_val.argmax(1).numpy()
        confusion = confusion_matrix(val.labels.numpy(), pred, labels=range(len(val.classes)))
        return FinetuneRun(weights=weights, seed=seed, history=hist, val_acc=accuracy(probs_val, val.labels),
                           train_acc=accuracy(probs_train, train.labels), confusion=confusion, val_pred=pred,
                           val_true=val.labels.numpy())


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(1).cpu() == labels.cpu()).float().mean())
