"""A widget group, not a page: open one cell of a lab run's confusion matrix and see its images with where the model
looked (Grad-CAM for the predicted class). `show(result, key)` takes a lab FinetuneResult: its first run's
validation predictions (`runs[0].val_pred`), validation images (`val`), trained weights (`model_state`), config."""
from __future__ import annotations

from collections import Counter

import numpy as np
import streamlit as st

from app_pages import ui
from tl_core import i18n
from tl_core.gradcam import cam_stage, gradcam, model_from_state, spatial_sizes
from tl_core.i18n import tr
from tl_core.plots import inside as figures

MOST = 12   # images of one cell drawn


def cells(true: np.ndarray, pred: np.ndarray) -> list[tuple[int, int, int]]:
    """(true, predicted, count) of every non-empty cell: the misclassified ones first, most images first."""
    counts = Counter(zip(true.tolist(), pred.tolist()))
    return sorted(((t, p, n) for (t, p), n in counts.items()), key=lambda c: (c[0] == c[1], -c[2], c[0], c[1]))


def maps_of(result, rows: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, str, tuple]:
    """Grad-CAM of the result's model on its validation rows: computed once for every session shown that result
    (a class sharing one run opens the same first cell)."""
    def make():
        model = model_from_state(result.config.backbone, result.model_state, len(result.classes))
        size = result.val.images.shape[-1]
        k = cam_stage(model, size)
        images = result.val.images[list(rows)]
        maps, _ = gradcam(model, images, k, [int(result.runs[0].val_pred[i]) for i in rows])
        return images.numpy(), maps, model.names[k], spatial_sizes(model, size)[k]

    return ui.once(result, f"cam {rows}", make)


def _cell(c: tuple[int, int, int], classes: list[str]) -> str:
    """A cell as the selectbox reads it: "circle → star: 3 images (wrong)"."""
    true, pred, n = classes[c[0]], classes[c[1]], c[2]
    if c[0] == c[1]:
        return (tr("{true} → {predicted}: {n} image", true=true, predicted=pred, n=n) if n == 1 else
                tr("{true} → {predicted}: {n} images", true=true, predicted=pred, n=n))
    return (tr("{true} → {predicted}: {n} image (wrong)", true=true, predicted=pred, n=n) if n == 1 else
            tr("{true} → {predicted}: {n} images (wrong)", true=true, predicted=pred, n=n))


def show(result, key: str = "cam", where=st) -> None:
    """A selectbox of (true, predicted) cells with their counts, then that cell's images with their Grad-CAM maps."""
    if result is None or not result.runs or result.model_state is None or result.val is None:
        return
    run, classes = result.runs[0], result.classes
    true = np.asarray(run.val_true if run.val_true is not None else result.val.labels.numpy())
    pred = np.asarray(run.val_pred)
    where.subheader(tr("Open a cell of the confusion matrix: its images, and where the model looked"))
    options = cells(true, pred)
    pick = where.selectbox(tr("Cell (true → predicted)"), options, key=f"{key}_cell",
                           format_func=lambda c: _cell(c, classes),
                           help=tr("{weights}, seed {seed}: the run whose confusion matrix is drawn above",
                                   weights=run.weights, seed=run.seed))
    if pick is None:
        return
    rows = tuple(int(i) for i in np.flatnonzero((true == pick[0]) & (pred == pick[1]))[:MOST])
    images, maps, stage, side = maps_of(result, rows)
    fig = ui.once(result, f"cam figure {rows} {i18n.language()}",   # its words: once per language
                  lambda: figures.cam_cell(images, maps, classes[pick[0]], classes[pick[1]], stage, side))
    ui.chart(fig, f"{key}_fig", where)
    if pick[2] > MOST:
        where.caption(tr("The first {most} of {n} images.", most=MOST, n=pick[2]))
