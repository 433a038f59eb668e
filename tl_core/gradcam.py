"""Where a model looks: Grad-CAM (torchcam's `GradCAM`) at a stage that outputs a map, the stage chosen by its map's
size, which validation images to show (correct and misclassified), and how alike two models' maps are.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tl_core import backbones

CAM_SIDE = 4          # auto: Grad-CAM at the deepest stage whose map is at least this many pixels a side
AUTO = "auto"


def spatial_sizes(model: backbones.StagedModel, size: int) -> list[tuple[int, int] | None]:
    """Every stage's map size (h, w) for a size×size input, None where the output is not a map."""
    x = torch.zeros(1, 3, size, size, device=next(model.parameters()).device)
    out = []
    model.eval()
    with torch.no_grad():
        for stage in model.stages:
            x = stage(x)
            out.append(tuple(x.shape[2:]) if x.dim() == 4 else None)
    return out


def cam_stage(model: backbones.StagedModel, size: int, name: str = AUTO) -> int | None:
    """The stage Grad-CAM reads: the named one, or the deepest whose map is at least CAM_SIDE a side (the deepest
    map at all when none is that large); None when no stage outputs a map."""
    sizes = spatial_sizes(model, size)
    if name != AUTO:
        k = model.names.index(name)
        if sizes[k] is None:
            raise ValueError(f"stage {name!r} outputs a vector, not a map: Grad-CAM needs a map")
        return k
    maps = [k for k, s in enumerate(sizes) if s is not None]
    large = [k for k in maps if min(sizes[k]) >= CAM_SIDE]
    return (large or maps or [None])[-1]


def gradcam(model: backbones.StagedModel, images: torch.Tensor, stage: int, classes=None,
            batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM (torchcam) at `stage` for each image's class in `classes` (default: the model's prediction):
    (maps (N, S, S) in [0, 1], upsampled bilinearly to the image's size, the classes used). The model's weights
    are left as they are (only the input asks for gradients)."""
    from torchcam.methods import GradCAM

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    size = images.shape[-2:]
    maps, used = [], []
    with GradCAM(model, target_layer=model.stages[stage]) as extractor:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(dev).clone().requires_grad_(True)
            scores = model(x)
            cls = (scores.argmax(1).tolist() if classes is None else [int(c) for c in classes[i:i + batch_size]])
            cam = extractor(class_idx=cls, scores=scores)[0].detach()      # (n, h, w), each scaled to [0, 1]
            up = F.interpolate(cam[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
            lo = up.flatten(1).amin(1)[:, None, None]
            hi = up.flatten(1).amax(1)[:, None, None]
            maps.append(((up - lo) / (hi - lo).clamp_min(1e-8)).cpu())
            used += cls
    model.train(was)
    return torch.cat(maps).numpy(), np.asarray(used)


def model_from_state(backbone: str, state: dict, num_classes: int) -> backbones.StagedModel:
    """A trained model rebuilt from its state_dict (built from scratch first: no weights file is read)."""
    model = backbones.create(backbone, "scratch", num_classes, 0)
    model.load_state_dict(state)
    return model.eval()


def cam_choice(truth: np.ndarray, preds: dict[str, np.ndarray], most: int) -> tuple[list[int], list[int]]:
    """(correct, misclassified) validation rows to show: up to half misclassified by at least one model (those the
    fine-tuned model got wrong first), the rest right for every model; classes taken in turn."""
    wrong_any = np.zeros(len(truth), bool)
    for p in preds.values():
        wrong_any |= p != truth
    wrong_tuned = preds.get("finetuned", np.zeros_like(truth)) != truth
    wrong = [i for i in np.flatnonzero(wrong_any & wrong_tuned)] + [i for i in np.flatnonzero(wrong_any & ~wrong_tuned)]
    wrong = wrong[:most // 2]

    def by_class(rows):
        groups = [[i for i in rows if truth[i] == c] for c in np.unique(truth)]
        out = []
        while any(groups):
            out += [g.pop(0) for g in groups if g]
        return out

    right = by_class([i for i in np.flatnonzero(~wrong_any)])[:most - len(wrong)]
    return [int(i) for i in right], [int(i) for i in by_class(wrong)]


def map_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Pearson correlation of two models' maps of the same images (1 = they look at the same places)."""
    vals = []
    for x, y in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        if x.std() > 1e-8 and y.std() > 1e-8:
            vals.append(float(np.corrcoef(x, y)[0, 1]))
    return float(np.mean(vals)) if vals else float("nan")
