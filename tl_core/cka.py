"""Linear CKA (centred kernel alignment, Kornblith et al. 2019): how similar two sets of features of the same
inputs are, whatever their widths, rotations and overall scales.

    x: (n, d1), y: (n, d2), one row per input;  X, Y = x, y with each column's mean removed
    CKA(x, y) = ||Yᵀ X||²_F / (||Xᵀ X||_F · ||Yᵀ Y||_F)          in [0, 1]

1 means the same representation up to an orthogonal transform and a scale (CKA(x, xQ) = 1 for an orthogonal
Q, CKA(x, 3x) = 1); independent features give a small value (it grows with d/n: keep n well above the widths
for a meaningful floor). Computed in float64 through the n×n Gram matrices when n is smaller than the widths.
Machinery for any experiment that compares representations (parameter-efficient fine-tuning's forgetting,
what layers learn).
"""
from __future__ import annotations

import torch
from torch import Tensor


def _centred(x: Tensor, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"{what} must be a matrix (n inputs, d features), got shape {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float64)
    return x - x.mean(0, keepdim=True)


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA between features x (n, d1) and y (n, d2) of the same n inputs: a float in [0, 1]
    (NaN when either has no variance at all, e.g. a constant feature map)."""
    x, y = _centred(x, "x"), _centred(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must describe the same inputs: {x.shape[0]} rows vs {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError("CKA needs at least 2 inputs")
    n = x.shape[0]
    if n < x.shape[1] + y.shape[1]:     # n×n Gram matrices are smaller: ⟨K, L⟩ = ||Yᵀ X||²
        k, l_ = x @ x.T, y @ y.T
        cross, xx, yy = (k * l_).sum(), k.norm(), l_.norm()
    else:
        cross, xx, yy = (y.T @ x).norm() ** 2, (x.T @ x).norm(), (y.T @ y).norm()
    denom = xx * yy
    if float(denom) <= 0.0:
        return float("nan")
    return float((cross / denom).clamp(0.0, 1.0))
