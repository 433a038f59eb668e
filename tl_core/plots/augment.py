"""Augmentation's figures: a preview grid of augmented training images (each row one image: as it is, then draws
as successive epochs would see it), and a lab run's curves with and without augmentation, from the two runs' JSON."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tl_core import augment
from tl_core.augment import words
from tl_core.i18n import tr
from tl_core.plots.base import BAND, band_traces, color, curves_of, image_grid, percent_axis, seeds_text, style
from tl_core.plots.finetune import weights_name


def preview(images, augmented, titles: list[str], names) -> go.Figure:
    """images (n, 3, H, W) and augmented (n, variants, 3, H, W): one row per image, the original first."""
    n, variants = augmented.shape[:2]
    grid, captions = [], []
    for i in range(n):
        grid += [images[i], *augmented[i]]
        captions += [tr("{image} (as is)", image=titles[i]), *(tr("epoch {n}", n=e + 1) for e in range(variants))]
    return image_grid(grid, captions, tr("Training images with {augmentation}, a new draw every epoch",
                                         augmentation=words(names)),
                      columns=variants + 1)


def preview_of(train, names, seed: int = 0, most: int = 4, variants: int = 5) -> go.Figure:
    """The preview of an ImageSet's first image of each class (up to `most` classes), `variants` draws each."""
    rows = [int((train.labels == c).nonzero()[0, 0]) for c in range(len(train.classes)) if (train.labels == c).any()]
    rows = rows[:most]
    images, titles = train.images[rows], [train.classes[train.labels[i]] for i in rows]
    return preview(images, augment.preview(images, names, variants, seed), titles, names)


def compare(plain: dict, augmented: dict) -> go.Figure:
    """Training and validation accuracy per epoch of two lab runs alike but for augmentation: one colour per
    weights condition, solid without augmentation, dotted with; line: mean over seeds, band over seeds."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(tr("training accuracy (on the images trained on)"),
                                                        tr("validation accuracy (images as they are)")))
    names = augmented.get("config", {}).get("augment", [])
    for out, dash, what in ((plain, None, tr("no augmentation")), (augmented, "dot", words(names))):
        for condition, summary in out.get("conditions", {}).items():
            for col, key in ((1, "train_acc"), (2, "val_acc")):
                values = curves_of(summary.get("histories", []), key)
                if values is None:
                    continue
                fig.add_traces(band_traces(list(range(1, len(values) + 1)), values,
                                           f"{weights_name(condition)} · {what}", color(condition), dash=dash,
                                           showlegend=col == 2), rows=1, cols=col)
    fig.update_xaxes(title_text=tr("epoch"))
    for col in (1, 2):
        percent_axis(fig, tr("accuracy"), row=1, col=col)
    seeds = plain.get("config", {}).get("seeds", 1)
    return style(fig, tr("With and without augmentation (line: mean of {seeds}; {band})", seeds=seeds_text(seeds),
                         band=tr(BAND)))
