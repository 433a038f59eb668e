"""The data Guided Transfer Learning is shown on, and its small networks: scikit-learn's 8×8 digits, and a synthetic
RNA-seq-like expression atlas (`tl_core.expression`) whose cell types are marked by shared gene programmes. Class ids
0-9 name digits or cell types; the GTL experiment (`tl_core.experiments.gtl`) splits them into source and target
classes.
"""
from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tl_core import data, expression, stacked

DIGITS = tuple(str(k) for k in range(10))   # class ids of both data sets: digits, or cell types 0-9


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
    source "unrelated" shuffles the features (see `tl_core.experiments.gtl.SOURCES`)."""
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
