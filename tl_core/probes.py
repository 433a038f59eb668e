"""What a model's stages represent: every probed stage's pooled features in one forward pass, linear probes on them
(logistic regression on standardised features, Yosinski et al. 2014 style), and 2-D maps of them (PCA, or UMAP
from umap-learn). The "Inside the model" experiment and the text page's map use them.
"""
from __future__ import annotations

import numpy as np
import torch

from tl_core import backbones
from tl_core.contract import Stop, Stopped

EMBEDDINGS = {"pca": "PCA: the two directions of largest variance (linear, instant)",
              "umap": "UMAP (umap-learn): keeps each point's neighbours (non-linear; about 20 s the first time)"}


def pooled(out: torch.Tensor) -> torch.Tensor:
    """A stage's output as one vector per input: the spatial mean of a map (N, C, H, W), the token mean of a
    sequence (N, T, C), a vector as it is."""
    if out.dim() == 4:
        return out.mean((2, 3))
    if out.dim() == 3:
        return out.mean(1)
    return out.flatten(1)


@torch.no_grad()
def stage_features(model: backbones.StagedModel, images: torch.Tensor, stages: list[int], batch_size: int = 64,
                   should_stop: Stop | None = None) -> dict[int, torch.Tensor]:
    """The pooled features of every stage in `stages` for `images`: one forward pass, in eval mode; float32, CPU.
    should_stop() is checked between batches (a True raises contract.Stopped)."""
    model.eval()
    dev = next(model.parameters()).device
    last = max(stages)
    outs: dict[int, list] = {k: [] for k in stages}
    for i in range(0, len(images), batch_size):
        if should_stop is not None and should_stop():
            raise Stopped("stopped by the user while computing features")
        x = images[i:i + batch_size].to(dev)
        for k, stage in enumerate(model.stages[:last + 1]):
            x = stage(x)
            if k in outs:
                outs[k].append(pooled(x).float().cpu())
    return {k: torch.cat(v) for k, v in outs.items()}


def _standard(fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = fit.mean(0), fit.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return [(a - mean) / std for a in (fit, *others)]


def probe(x_fit, y_fit, x_test, y_test) -> float:
    """A linear probe's accuracy: logistic regression on standardised features, fitted on (x_fit, y_fit), scored on
    the held-out (x_test, y_test)."""
    from sklearn.linear_model import LogisticRegression

    x_fit, x_test = (np.asarray(a, dtype=np.float64) for a in (x_fit, x_test))
    y_fit, y_test = np.asarray(y_fit), np.asarray(y_test)
    if len(np.unique(y_fit)) < 2:
        raise ValueError("a probe needs at least 2 classes among its fitting rows")
    x_fit, x_test = _standard(x_fit, x_test)
    clf = LogisticRegression(max_iter=2000).fit(x_fit, y_fit)
    return float((clf.predict(x_test) == y_test).mean())


def project(x, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, d) features → (n, 2): PCA of the standardised features, or UMAP (umap-learn) of them."""
    x = np.asarray(x, dtype=np.float64)
    if method not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {method!r}")
    (z,) = _standard(x)
    if method == "umap":
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "n_jobs overridden by random_state": one thread, reproducible
            return umap.UMAP(n_neighbors=max(2, min(15, len(z) - 1)), random_state=seed,
                             n_jobs=1).fit_transform(z).astype(float)
    from sklearn.decomposition import PCA

    out = PCA(n_components=min(2, *z.shape), random_state=seed).fit_transform(z)
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))   # a 1-D input still gets a second (zero) axis
