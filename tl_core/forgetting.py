"""What fine-tuning forgets: inputs no method trained on, and how far a fine-tuned model's outputs on them moved
from the original pretrained model's.

Images: scikit-image's photos (none of the built-in datasets is cut from them), fixed crops of them and another
built-in dataset's images (`probe_images`); measured by the top-1 agreement of the fine-tuned body under the
*original* ImageNet head with the original model, and the linear CKA of their pooled features (`tl_core.cka`).
Text: sentences of corpus topics no method trained on (`held_out_sentences`); measured by the mean cosine similarity
of sentence embeddings before and after. Stages a method left untouched come from the reference's frozen-prefix
cache (`finetuning.FrozenCache`).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from tl_core import backbones, data, text
from tl_core.cka import linear_cka
from tl_core.finetuning import FrozenCache

# the photos that ship with scikit-image and that no built-in dataset is cut from: images no method trained on
PROBE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field", "moon", "clock",
                "page", "text", "colorwheel")
PROBE_CROPS = 4                           # random crops per photo (fixed positions)
PROBE_OTHER = 32                          # images of another built-in dataset
HELD_OUT_PER_TOPIC, HELD_OUT_MAX = 8, 96  # text: sentences of topics no method trained on


def _photo(name: str) -> np.ndarray:
    """A scikit-image photo as float32 RGB (3, H, W) in [0, 1]."""
    from skimage import data as skdata

    img = np.asarray(getattr(skdata, name)())
    img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else max(float(img.max()), 1.0))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].transpose(2, 0, 1))


def other_dataset(dataset: str) -> str:
    """The built-in dataset whose images join the probe: one no method trained on."""
    return "faces" if dataset != "faces" else "textures"


@functools.lru_cache(maxsize=4)
def probe_images(size: int, dataset: str) -> torch.Tensor:
    """Images no method trained on, (N, 3, size, size): scikit-image's photos whole (a centred square), PROBE_CROPS
    crops of each at fixed random positions, and PROBE_OTHER images of another built-in dataset."""
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    pieces = []
    for name in PROBE_PHOTOS:
        img = _photo(name)
        _, h, w = img.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        pieces.append(img[:, top:top + side, left:left + side])
        half = side // 2
        for _ in range(PROBE_CROPS):
            y, x = rng.integers(0, h - half + 1), rng.integers(0, w - half + 1)
            pieces.append(img[:, y:y + half, x:x + half])
    out = [F.interpolate(torch.from_numpy(np.ascontiguousarray(p))[None], size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False)[0] for p in pieces]
    other = data.load(other_dataset(dataset), size)
    pick = np.linspace(0, len(other) - 1, PROBE_OTHER).round().astype(int)
    return torch.cat([torch.stack(out).clamp(0, 1), other.images[pick]]).contiguous()


def held_out_sentences(topics: tuple[str, ...]) -> list[str]:
    """Sentences of corpus topics not among `topics`: what no method trained on."""
    out = []
    for t in sorted(text.topics()):
        if t not in topics:
            out += list(text.sentences(t)[:HELD_OUT_PER_TOPIC])
    return out[:HELD_OUT_MAX]


@torch.no_grad()
def pooled(model: backbones.StagedModel, cache: FrozenCache, probe: torch.Tensor, depth: int) -> torch.Tensor:
    """The model's pooled features (every stage but the head) of the probe inputs; the untouched prefix (`depth`
    stages) from the reference's cache."""
    n = len(model.stages)
    d = min(depth, n - 1)
    x = cache.at(d, probe) if d > 0 else probe
    rest = nn.Sequential(*model.stages[d:n - 1]).eval()
    return torch.cat([rest(x[i:i + 64]) for i in range(0, len(x), 64)]) if len(rest) else x


@torch.no_grad()
def measure(model: backbones.StagedModel, reference: backbones.StagedModel, cache: FrozenCache, probe: torch.Tensor,
            depth: int, modality: str) -> dict[str, float]:
    """images: top-1 agreement of the fine-tuned body under the original ImageNet head (the reference's) with the
    original model, and linear CKA of their pooled features, on the probe images; text: the mean cosine similarity
    of sentence embeddings before and after, on the held-out sentences. `cache` holds the reference's prefix."""
    n = len(reference.stages)
    ref = cache.at(n - 1, probe)
    mine = pooled(model, cache, probe, depth)
    if modality == "text":
        return {"cosine": float(nn.functional.cosine_similarity(mine, ref, dim=-1).mean())}
    head = reference.head.eval()
    agree = (head(mine).argmax(1) == head(ref).argmax(1)).float().mean()
    return {"agreement": float(agree), "cka": linear_cka(mine, ref)}
