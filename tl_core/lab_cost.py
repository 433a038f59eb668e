"""What a lab run costs, by a cost model: each cell's share of the run's time (`cell_cost`, in passes of one image
through the whole network: the lab's progress bar moves with time), and how much slower augmenting the training
images makes a run (`augment_cost`, in this machine's measured milliseconds; bench/augment_cost.py checks it).
"""
from __future__ import annotations

import torch

from tl_core import augment, backbones, data, finetuning, freeze
from tl_core.finetuning import FinetuneConfig, first_split


def cell_cost(cfg: FinetuneConfig, condition: str, n_train: int, n_val: int, reused: bool,
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


# ---- the estimate before a lab run: reference seconds -------------------------------------------------------

# The reference machine is an idle 2-core CPU, torch with 2 threads; every figure below is in its milliseconds or
# seconds, at REFERENCE_SIZE px (ViT: its 224), in cell_cost's unit (a pass of one image through the whole network).
# REFERENCE_MS: a pass of a network trained whole (scratch, full fine-tuning, no cache), which on a CPU trains in
# channels-last layout (finetuning.CHANNELS_LAST); FEATURE_MS: a pass of a cell whose frozen prefix is cached (the
# pretrained condition's default: its features once in the usual layout, then the head on them), which channels-last
# does not speed up, so the two differ per backbone (Lite0's depthwise convolutions gain most). CELL_S: the fixed
# seconds of a cell (building the model, the split, the final predictions); AUGMENT_MS: augmenting one image with
# flip, crop and colour inside a run: augment.ms_per_image's best case is 0.13 ms, an augmented scratch run of the
# lab's defaults took 0.2-0.3 ms an image more than a plain one, and a pretrained one more again (the frozen prefix
# on every batch of every epoch has fixed costs cell_cost does not count): 0.3 ms.
# Measured by `python bench/estimates.py --measure` (twice, 2 and 3 rounds interleaved in one process, the fastest
# of each kept, the mean of the two calls here): a scratch cell of the lab's default images (10 digits x 5 shots,
# 200 validation images) at 4 epochs, its median epoch over its 350 passes, the rest of the cell's time the cell's;
# a pretrained cell, less a cell, over its passes; all relative to Lite0 (robust to the other work on a loaded
# machine), then scaled so that the lab's default run (Lite0, both, 3 seeds, 15 epochs) takes 13.8 s: the 27.0 s
# measured on the reference machine before channels-last (issue #36) over the 1.95x that bench/lab_run.py --layout
# measured for today's path (channels-last, folded BatchNorm, cache-sized validation passes). vit_b_16 was not
# measured (224 px, minutes a cell): its figures are guessed from its 11,270 M multiply-adds.
# The first run of a kind is estimated with them; later runs scale them by this machine's measured rate.
REFERENCE_SIZE = 64
REFERENCE_MS = {"efficientnet_lite0": 0.77, "shapes_cnn": 0.42, "resnet18": 1.19, "resnet50": 2.91,
                "vgg11_bn": 7.5, "mobilenet_v3_small": 0.22, "efficientnet_b0": 0.85, "vit_b_16": 110.0}
FEATURE_MS = {"efficientnet_lite0": 0.41, "shapes_cnn": 0.20, "resnet18": 0.12, "resnet50": 0.30,
              "vgg11_bn": 0.81, "mobilenet_v3_small": 0.062, "efficientnet_b0": 0.12, "vit_b_16": 110.0}
CELL_S = {"efficientnet_lite0": 0.22, "shapes_cnn": 0.17, "resnet18": 0.45, "resnet50": 1.13, "vgg11_bn": 3.0,
          "mobilenet_v3_small": 0.24, "efficientnet_b0": 0.44}
# LATER_SEED_S: the fixed seconds of each seed after the first of a cell on cached features, which shares the first
# seed's frozen network and cache (tl_core.reuse): its model, split, head and final predictions only. Measured by
# bench/estimates.py --measure as a pretrained cell run again at once (its features kept), relative to the scratch
# cell's fixed seconds in the same call (the mean of two calls), times CELL_S.
LATER_SEED_S = {"efficientnet_lite0": 0.094, "shapes_cnn": 0.045, "resnet18": 0.095, "resnet50": 0.163,
                "vgg11_bn": 0.96, "mobilenet_v3_small": 0.065, "efficientnet_b0": 0.078}
DEFAULT_CELL_S = 0.4
AUGMENT_MS = 0.3
# images per class of the built-in datasets, and their classes (what an estimate needs without loading them)
DATASET_SIZES = {"digits": (10, 179), "faces": (2, 100), "textures": (3, 64), "microscopy": (3, 64), "shapes": (6, 300)}


def _counts(record: dict, shots) -> tuple[int, int]:
    """(training, validation) images of a run with this recorded config, without loading its data."""
    classes, per_class = DATASET_SIZES.get(str(record.get("dataset", "")), (4, 40))   # own images: a guess
    if record.get("classes"):
        classes = len(record["classes"])
    if str(record.get("dataset", "")) in DATASET_SIZES:
        val = int(record.get("val_per_class") or 20)
    else:
        val = data.val_count(per_class, float(record.get("val_fraction") or 0.15))
    train = shots if isinstance(shots, int) and not isinstance(shots, bool) else max(per_class - val, 1)
    return classes * train, classes * val


_RECORDED = object()   # reference_seconds: the record's own shots


def trained_whole(cfg: FinetuneConfig, condition: str) -> bool:
    """Whether `condition`'s cell trains the whole network (no cached frozen prefix): channels-last on a CPU
    (finetuning.Trainer.fit_and_score), at REFERENCE_MS a pass; else at FEATURE_MS."""
    c = cfg.for_weights(condition)
    return finetuning.trained_whole(c, len(backbones.stage_names(c.backbone)))


def pass_ms(cfg: FinetuneConfig, condition: str) -> float:
    """The reference machine's ms per pass (cell_cost's unit) of `condition`'s cell of cfg: REFERENCE_MS for a
    network trained whole, FEATURE_MS on a cached frozen prefix; at cfg's image size."""
    table = REFERENCE_MS if trained_whole(cfg, condition) else FEATURE_MS
    pixels = (cfg.image_size / (224 if cfg.backbone == "vit_b_16" else REFERENCE_SIZE)) ** 2
    return table.get(cfg.backbone, table["efficientnet_lite0"]) * pixels


def timed_cost(cfg: FinetuneConfig, condition: str, n_train: int, n_val: int, reused: bool) -> float:
    """A cell's share of a run's time for a progress bar that moves with time: its passes (`cell_cost`) at its own
    rate (`pass_ms`: trained whole, channels-last, or on cached features)."""
    return cell_cost(cfg, condition, n_train, n_val, reused) * pass_ms(cfg, condition)


def reference_seconds(record: dict, shots=_RECORDED, freeze_depth: str | None = None) -> float:
    """Seconds a lab run (finetune, own, continue; a sweep's cell with `shots` and `freeze_depth`) takes on the
    reference machine: every cell's passes (`cell_cost`) x the backbone's ms per pass (a network trained whole,
    REFERENCE_MS, or on a cached frozen prefix, FEATURE_MS), scaled by pixels, plus a fixed time per cell and seed
    (CELL_S; LATER_SEED_S for the seeds after the first of a cell on cached features, which share its frozen
    network)."""
    base = {f: record[f] for f in ("backbone", "weights", "strategy", "epochs", "image_size", "seeds", "augment",
                                   "cache", "unfreeze_every") if f in record}
    base["augment"] = tuple(base.get("augment") or ())
    depth = str(record.get("freeze", "all") if freeze_depth is None else freeze_depth)
    if depth.isdigit():   # a depth recorded for another backbone: at most all but the head
        depth = str(min(int(depth), len(backbones.stage_names(base.get("backbone", "efficientnet_lite0"))) - 1))
    cfg = FinetuneConfig(**base, freeze=depth)
    shots = record.get("shots") if shots is _RECORDED else shots
    n_train, n_val = _counts(record, shots)
    augment_ms = AUGMENT_MS * (cfg.image_size / REFERENCE_SIZE) ** 2
    total = 0.0
    for condition in cfg.conditions():
        ms = pass_ms(cfg, condition)
        passes = cell_cost(cfg, condition, n_train, n_val, False, augment_ms / ms)
        first = CELL_S.get(cfg.backbone, DEFAULT_CELL_S)
        later = LATER_SEED_S.get(cfg.backbone, first) if not trained_whole(cfg, condition) and not cfg.augment \
            else first
        total += cfg.seeds * passes * ms / 1000 + first + (cfg.seeds - 1) * later
    return total
