"""Training-image augmentation for the lab and your own images (torchvision.transforms.v2), off by default.

    aug = Augmenter(("flip", "crop", "color"), seed=0)   # a callable: a batch of images → a new batch
    x_aug = aug(train_images)                            # every image its own random draw, fresh every call
    grid = preview(images, ("crop",), variants=5)        # (len(images), variants, 3, H, W) for the page

- flip: mirror left-right, each image with probability 1/2 (wrong for classes a mirror changes, e.g. some digits);
- crop: a random crop of 70-100 % of the image's area, aspect ratio 3/4 to 4/3, resized back to its size
  (what `v2.RandomResizedCrop(scale=(0.7, 1))` draws);
- color: brightness, contrast and saturation each scaled by a factor drawn from [0.7, 1.3] (`v2.ColorJitter(0.3,
  0.3, 0.3)`; no hue jitter: on a CPU it costs ~100x the rest, per image).

Each image gets its own parameters, drawn from the Augmenter's own generator (seeded by the run's seed, so a run is
reproducible and the global random stream is untouched, also with runs in threads), then applied with
`torchvision.transforms.v2.functional`. Images are RGB in [0, 1] (N, 3, H, W); the model normalises them itself.

Augmentation applies to the training images only (the one training loop, `train.fit(transform=...)`), every epoch a
new draw; validation and prediction see the images as they are. Because an augmented image is a new image every
epoch, its frozen-prefix features cannot be cached: an augmented run runs the frozen stages on every training batch
of every epoch (`finetuning.Trainer`), which is what makes it slower (`lab_cost.augment_cost` says how much).
Whether it helped: `augment_verdict` compares two lab runs alike but for it, by the claims rule.
"""
from __future__ import annotations

import math
import time

import torch
from torchvision.transforms.v2 import functional as F

from tl_core import claims
from tl_core.contract import Verdict

CHOICES = {"flip": "mirror left-right (half the images)",
           "crop": "a random crop of 70-100% of the area, resized back",
           "color": "brightness, contrast and saturation jitter (x0.7-1.3)"}
SCALE = (0.7, 1.0)
RATIO = (3 / 4, 4 / 3)
JITTER = 0.3
STREAM = 0x5EED   # the augmentation stream is seeded apart from the shuffling order (seed + STREAM)


def canonical(names) -> tuple[str, ...]:
    """The augmentations in CHOICES order, each once: 'color,flip,flip' and 'flip,color' are one setting."""
    return tuple(n for n in CHOICES if n in set(names))


def words(names) -> str:
    """'flips, crops and colour jitter' (or 'none')."""
    said = {"flip": "flips", "crop": "crops", "color": "colour jitter"}
    parts = [said[n] for n in canonical(names)]
    return "none" if not parts else parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _crop_box(h: int, w: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) as v2.RandomResizedCrop draws it (10 tries, else the whole image)."""
    area = h * w
    lo, hi = math.log(RATIO[0]), math.log(RATIO[1])
    for _ in range(10):
        u = torch.rand(3, generator=gen).tolist()
        target = area * (SCALE[0] + (SCALE[1] - SCALE[0]) * u[0])
        ratio = math.exp(lo + (hi - lo) * u[1])
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            return top, left, ch, cw
    return 0, 0, h, w


def apply(images: torch.Tensor, names, gen: torch.Generator) -> torch.Tensor:
    """A new (N, C, H, W) batch: each image flipped / cropped / colour-jittered with its own parameters from gen."""
    names = canonical(names)
    if not names or len(images) == 0:
        return images
    h, w = images.shape[-2:]
    out = []
    for image in images:
        if "flip" in names and bool(torch.rand(1, generator=gen) < 0.5):
            image = F.horizontal_flip(image)
        if "crop" in names:
            top, left, ch, cw = _crop_box(h, w, gen)
            image = F.resized_crop(image, top, left, ch, cw, [h, w], antialias=True)
        if "color" in names:
            b, c, s = (1 + JITTER * (2 * torch.rand(3, generator=gen) - 1)).tolist()
            image = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(image, b), c), s)
        out.append(image)
    return torch.stack(out).clamp_(0, 1)


class Augmenter:
    """A batch → a freshly augmented batch, each call a new draw from its own generator (seeded: a run with the same
    seed sees the same augmented images in the same epochs)."""

    def __init__(self, names, seed: int = 0):
        self.names = canonical(names)
        self.gen = torch.Generator().manual_seed(int(seed) + STREAM)
        self.seconds = 0.0   # spent augmenting

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = apply(images, self.names, self.gen)
        self.seconds += time.perf_counter() - start
        return out


def preview(images: torch.Tensor, names, variants: int = 5, seed: int = 0) -> torch.Tensor:
    """`variants` augmented draws of each image, as training would see them in successive epochs:
    (len(images), variants, C, H, W)."""
    if variants < 1:
        raise ValueError(f"variants must be at least 1, got {variants}")
    aug = Augmenter(names, seed)
    return torch.stack([aug(images) for _ in range(variants)], 1)


_MS: dict[tuple[tuple[str, ...], int], float] = {}


def ms_per_image(names, size: int, n: int = 16, fresh: bool = False) -> float:
    """CPU milliseconds to augment one image of `size` px (the fastest of 3 batches of n; measured once per
    process and setting, or again when `fresh`)."""
    key = (canonical(names), int(size))
    if not key[0]:
        return 0.0
    if key not in _MS or fresh:
        x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
        aug = Augmenter(key[0])
        times = []
        for _ in range(3):
            start = time.perf_counter()
            aug(x)
            times.append(time.perf_counter() - start)
        _MS[key] = 1000 * min(times) / n
    return _MS[key]


def augment_verdict(plain: dict, augmented: dict) -> Verdict:
    """Two lab runs' JSON alike but for augmentation: per weights condition both ran, the augmented run against the
    plain one by the claims rule, paired over their seeds (validation accuracy, images as they are)."""
    names = words(augmented.get("config", {}).get("augment", ()))
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
