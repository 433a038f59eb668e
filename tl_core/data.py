"""Built-in image datasets (real, offline) and the few-shot splits every experiment uses.

Every dataset comes from a package already installed (scikit-learn, scikit-image) or is drawn
here with numpy, so the app never needs the internet. `load` returns an `ImageSet`: float32 RGB
images in [0, 1], resized to size x size, with int64 labels. `few_shot_split` keeps one fixed,
class-balanced validation set per seed and draws nested training sets from the rest, so that
"accuracy vs shots" is measured on the same images for every number of shots.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIZE, MAX_SIZE = 16, 512
SHOTS: tuple = (1, 2, 5, 10, 20, None)  # None means "all the images left after validation"

DATASETS: dict[str, str] = {
    "digits": "Handwritten digits 0-9: 1,797 tiny 8×8 grayscale scans (scikit-learn)",
    "faces": "Face or not: 200 small 25×25 grayscale patches from Labeled Faces in the Wild (scikit-image)",
    "textures": "Brick, grass or gravel: 192 crops from three grayscale texture photos (scikit-image)",
    "microscopy": "Far from ImageNet: retina photo, cell microscopy or stained tissue, 192 crops (scikit-image)",
    "shapes": "Circle, square, triangle, cross, ring or star: 1,800 drawn images, Transfer Lab's own pretraining task",
}

CROPS_PER_CLASS = 64  # textures and microscopy: crops cut from one big photo per class
CROP = 96             # crop side in pixels: big enough to show the texture, small enough for many crops
SHAPES = ("circle", "square", "triangle", "cross", "ring", "star")
SHAPES_PER_CLASS = 300
SHAPE_PX = 32         # shapes are drawn at this size, then resized like every other dataset


@dataclass
class ImageSet:
    name: str
    images: torch.Tensor  # float32 (N, 3, S, S) in [0, 1], RGB
    labels: torch.Tensor  # int64 (N,), 0..len(classes)-1
    classes: list[str]

    def subset(self, idx) -> ImageSet:
        """The rows `idx` (a tensor or list of ints, or a boolean mask) with the same name and classes."""
        idx = torch.as_tensor(idx)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.long()
        return ImageSet(self.name, self.images[idx], self.labels[idx], list(self.classes))

    def counts(self) -> dict[str, int]:
        """Class name -> number of images (classes with none included, as 0)."""
        n = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, n))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# ---------------------------------------------------------------- raw datasets (cached)
# Each builder returns (images float32 (N, C, H, W) in [0, 1] with C = 1 or 3, labels int64 (N,),
# class names). They run once per process; `load` copies and resizes, so callers never share
# memory with the cache.

def _gray(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W) -> float32 (1, H, W) in [0, 1]."""
    return (img.astype(np.float32) / 255.0)[None]


def _rgb(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return img.astype(np.float32).transpose(2, 0, 1) / 255.0


def _crops(img: np.ndarray, n: int, rng: np.random.Generator, keep=None, max_tries: int = 10_000) -> np.ndarray:
    """`n` CROP x CROP crops of a (C, H, W) image at random positions; `keep(crop)` may reject some."""
    _, h, w = img.shape
    out = []
    for _ in range(max_tries):
        y, x = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
        crop = img[:, y:y + CROP, x:x + CROP]
        if keep is None or keep(crop):
            out.append(crop)
            if len(out) == n:
                return np.stack(out)
    raise RuntimeError(f"found only {len(out)} of {n} usable crops")  # a bug here, not a user error


def _labelled(groups: list[np.ndarray], classes: tuple[str, ...]):
    images = np.concatenate(groups).astype(np.float32)
    labels = np.concatenate([np.full(len(g), k, dtype=np.int64) for k, g in enumerate(groups)])
    return images, labels, classes


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[:, None]  # pixel values are 0..16
    return images, d.target.astype(np.int64), tuple(str(k) for k in range(10))


def _faces():
    from skimage import data

    images = data.lfw_subset().astype(np.float32)[:, None]  # already in [0, 1]
    labels = np.repeat(np.arange(2, dtype=np.int64), 100)  # the first 100 are faces, the rest not
    return images, labels, ("face", "not face")


def _textures():
    from skimage import data

    rng = np.random.default_rng(0)
    photos = [data.brick(), data.grass(), data.gravel()]
    groups = [_crops(_gray(p), CROPS_PER_CLASS, rng) for p in photos]
    return _labelled(groups, ("brick", "grass", "gravel"))


def _inside_fundus(crop: np.ndarray) -> bool:
    # The retina photo is a disc on black: keep crops where at most a quarter of the pixels are
    # border, so "retina" is learned from the fundus, not from black corners.
    return (crop.max(axis=0) < 0.1).mean() <= 0.25


def _microscopy():
    from skimage import data

    rng = np.random.default_rng(0)
    retina = _crops(_rgb(data.retina()), CROPS_PER_CLASS, rng, keep=_inside_fundus)
    cell = _crops(_gray(data.cell()), CROPS_PER_CLASS, rng).repeat(3, axis=1)  # grayscale -> RGB
    tissue = _crops(_rgb(data.immunohistochemistry()), CROPS_PER_CLASS, rng)
    return _labelled([retina, cell, tissue], ("retina", "cell", "tissue (IHC)"))


# ---------------------------------------------------------------- shapes, drawn with numpy
# Each shape is a signed distance (pixels, negative inside) over the pixel grid; coverage
# clip(0.5 - d, 0, 1) gives edges about one pixel wide, i.e. cheap anti-aliasing.

def _polygon_sdf(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance from points (px, py) to a closed polygon `verts` (V, 2)."""
    a, b = verts, np.roll(verts, -1, axis=0)
    e = b - a                                               # (V, 2) edges
    qx, qy = px[..., None] - a[:, 0], py[..., None] - a[:, 1]  # (..., V) point relative to edge start
    t = np.clip((qx * e[:, 0] + qy * e[:, 1]) / (e ** 2).sum(1), 0.0, 1.0)
    dist = np.sqrt((qx - t * e[:, 0]) ** 2 + (qy - t * e[:, 1]) ** 2).min(-1)
    # even-odd rule: a point is inside if a ray to the right crosses an odd number of edges
    crosses = (a[:, 1] > py[..., None]) != (b[:, 1] > py[..., None])
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[:, 0] + (py[..., None] - a[:, 1]) * e[:, 0] / e[:, 1]
    inside = (crosses & (px[..., None] < x_cross)).sum(-1) % 2 == 1
    return np.where(inside, -dist, dist)


def _regular(n: int, radii: list[float]) -> np.ndarray:
    """Vertices of a regular n-gon (or a star, alternating radii) pointing up, radius 1."""
    k = np.arange(n * len(radii))
    angle = -np.pi / 2 + k * 2 * np.pi / len(k)
    r = np.array(radii)[k % len(radii)]
    return np.stack([r * np.cos(angle), r * np.sin(angle)], 1)


_W = 0.33  # half-width of a cross's bars, relative to its radius
_OUTLINES = {  # unit-radius outlines; sizes chosen so every shape looks about as big
    "square": _regular(4, [1.0]),
    "triangle": _regular(3, [1.1]),
    "star": _regular(5, [1.15, 0.47]),
    "cross": np.array([(_W, -1), (_W, -_W), (1, -_W), (1, _W), (_W, _W), (_W, 1),
                       (-_W, 1), (-_W, _W), (-1, _W), (-1, -_W), (-_W, -_W), (-_W, -1)], float),
}


def _draw(shape: str, rng: np.random.Generator) -> np.ndarray:
    """One SHAPE_PX x SHAPE_PX grey image of `shape`, float32 in [0, 1]."""
    r = rng.uniform(6.0, 12.0)                                    # radius in pixels
    cx, cy = rng.uniform(r + 1, SHAPE_PX - r - 1, size=2)         # keep the whole shape inside
    theta = rng.uniform(0, 2 * np.pi)                             # drawn always: same stream per shape
    y, x = np.mgrid[0:SHAPE_PX, 0:SHAPE_PX] + 0.5                 # pixel centres
    x, y = x - cx, y - cy
    if shape == "circle":
        d = np.hypot(x, y) - r
    elif shape == "ring":
        d = np.abs(np.hypot(x, y) - 0.75 * r) - 0.25 * r           # a band from 0.5 r to r
    else:  # rotate the outline (rotating a circle or ring would change nothing)
        c, s = np.cos(theta), np.sin(theta)
        d = _polygon_sdf(x, y, (_OUTLINES[shape] * r) @ np.array([[c, s], [-s, c]]))
    cover = np.clip(0.5 - d, 0.0, 1.0)
    bg = rng.uniform(0.0, 1.0)
    fg = rng.uniform(0.0, 1.0)
    while abs(fg - bg) < 0.3:  # keep the shape visible against its background
        fg = rng.uniform(0.0, 1.0)
    img = bg + (fg - bg) * cover + rng.normal(0.0, 0.04, size=cover.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _shapes():
    rng = np.random.default_rng(0)
    groups = [np.stack([_draw(s, rng) for _ in range(SHAPES_PER_CLASS)])[:, None] for s in SHAPES]
    return _labelled(groups, SHAPES)


_BUILDERS = {"digits": _digits, "faces": _faces, "textures": _textures,
             "microscopy": _microscopy, "shapes": _shapes}
assert _BUILDERS.keys() == DATASETS.keys()


@functools.lru_cache(maxsize=None)
def _raw(name: str):
    images, labels, classes = _BUILDERS[name]()
    images.setflags(write=False)  # shared by every later load: make accidental edits fail loudly
    labels.setflags(write=False)
    return images, labels, classes


# ---------------------------------------------------------------- public API

def class_names(name: str) -> list[str]:
    """The classes of built-in dataset `name`, without resizing its images (a page lists them on every run)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return list(_raw(name)[2])


def load(name: str, size: int = 64, classes: tuple[str, ...] | None = None) -> ImageSet:
    """Dataset `name` resized to size x size, optionally only `classes` (in that order, relabelled 0..k-1)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be a whole number of pixels between {MIN_SIZE} and {MAX_SIZE}, got {size!r}")
    images, labels, all_classes = _raw(name)

    if classes is None:
        chosen = list(all_classes)
    else:
        if isinstance(classes, str):
            raise ValueError(f"classes must be a list of class names, e.g. {all_classes[:2]!r}, not one string")
        chosen = list(classes)
        for c in chosen:
            if c not in all_classes:
                raise ValueError(f"unknown class {c!r} in dataset {name!r}: choose from {', '.join(all_classes)}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"each class may be chosen once, got {', '.join(chosen)}")
    if len(chosen) < 2:
        raise ValueError(f"choose at least 2 classes of dataset {name!r} to classify, got {len(chosen)}")

    # Relabel: old label -> position in `chosen` (-1 = dropped); keeps the dataset's image order.
    remap = np.full(len(all_classes), -1, dtype=np.int64)
    remap[[all_classes.index(c) for c in chosen]] = np.arange(len(chosen))
    new_labels = remap[labels]
    keep = new_labels >= 0

    x = torch.from_numpy(images[keep])  # boolean indexing copies, so x is not the cache's memory
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.clamp_(0.0, 1.0)  # bilinear weights are positive, this only trims rounding error
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)  # grayscale -> RGB, a real copy so every tensor can be edited safely
    return ImageSet(name, x.contiguous(), torch.from_numpy(new_labels[keep]), chosen)


def _left_per_class(ds: ImageSet, val_per_class: int) -> dict[str, int]:
    """Images per class left for training after validation; raises if a class is too small."""
    if isinstance(val_per_class, bool) or not isinstance(val_per_class, (int, np.integer)) or val_per_class < 1:
        raise ValueError(f"val_per_class must be a whole number of at least 1, got {val_per_class!r}")
    counts = ds.counts()
    for c, n in counts.items():
        if n < val_per_class + 1:
            raise ValueError(f"class {c!r} has only {n} images: it needs at least {val_per_class + 1} "
                             f"({val_per_class} for validation and 1 for training)")
    return {c: n - val_per_class for c, n in counts.items()}


def max_shots(ds: ImageSet, val_per_class: int = 20) -> int:
    """The largest `shots` that `few_shot_split` accepts: what the smallest class has left after validation."""
    return min(_left_per_class(ds, val_per_class).values())


def class_split(labels: torch.Tensor, n_classes: int, seed: int, val: Callable[[int], int],
                shots: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """THE class-balanced splitter: (train, val) row indices, sorted. For each class one permutation, drawn
    from `seed` alone, is cut into [validation | training pool]: `val(n)` rows of a class of n validate,
    and the first `shots` of the rest train (None = all of them). So for one seed the validation set is
    the same whatever `shots`, and training sets are nested (1 ⊂ 5 ⊂ 20)."""
    rng = np.random.default_rng(seed)
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    train, held = [], []
    for k in range(n_classes):
        perm = rng.permutation(np.flatnonzero(labels == k))
        v = val(len(perm))
        held.append(perm[:v])
        train.append(perm[v:] if shots is None else perm[v:v + shots])
    # sorted: the dataset's own order, independent of how the permutation happened to fall
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(held)).astype(np.int64)


def few_shot_split(ds: ImageSet, shots: int | None, seed: int = 0,
                   val_per_class: int = 20) -> tuple[ImageSet, ImageSet]:
    """(train, val): `shots` training images per class (None = all left) and `val_per_class` validation
    images per class (see `class_split`)."""
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1):
        raise ValueError(f"shots must be a whole number of at least 1 (or None for all), got {shots!r}")
    left = _left_per_class(ds, val_per_class)
    if shots is not None:
        smallest = min(left, key=left.get)
        if shots > left[smallest]:
            raise ValueError(f"shots={shots} is more than class {smallest!r} has left after the "
                             f"{val_per_class} validation images ({left[smallest]}): choose at most {left[smallest]}")
    train, val = class_split(ds.labels, len(ds.classes), seed, lambda n: val_per_class, shots)
    return ds.subset(train.tolist()), ds.subset(val.tolist())


def val_count(n: int, fraction: float) -> int:
    """Validation images for a class of n: about `fraction` of it, at least 1 and leaving at least 1 to
    train (a class of 1 gets none)."""
    return 0 if n < 2 else min(n - 1, max(1, round(n * fraction)))


def fraction_split(ds: ImageSet, val_fraction: float, seed: int = 0,
                   shots: int | None = None) -> tuple[ImageSet, ImageSet]:
    """(train, val): a class-balanced validation share per class (see val_count), drawn from `seed`;
    `shots` caps the training images per class (None = all the rest). For the user's own images."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    train, val = class_split(ds.labels, len(ds.classes), seed, lambda n: val_count(n, val_fraction), shots)
    if len(val) == 0:
        raise ValueError("no class has 2 or more images, so there is nothing to validate on: add images")
    return ds.subset(train.tolist()), ds.subset(val.tolist())
