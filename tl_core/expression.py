"""One synthetic gene-expression generator (standing in for RNA-seq), for every experiment that needs cells:
Guided Transfer Learning's atlas and the self-supervised page's unlabelled pool.

Genes come in blocks: programme p switches on genes p·programme_genes … (p + 1)·programme_genes − 1 (so a heat
map's columns line up with the programmes), then the nuisance programmes (cell cycle, stress, batch: anyone may have
them), then background genes. A cell type is marked by its programmes (`type_programmes`); every cell also has a
little of every programme. Counts are Poisson of a log-normal mean: gene baseline + programme activities + library
size + biological noise; the generator returns log1p(counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Atlas:
    genes: int                         # genes per cell
    programme_genes: int               # genes per programme
    type_programmes: tuple             # per cell type, the programmes that mark it, e.g. ((0, 1), (2, 3), ...)
    nuisance: int                      # programmes that vary independently of the cell type
    cells_per_type: int = 0            # > 0: this many cells of each type; 0: `cells` cells of random types
    cells: int = 0
    background: float = 0.1            # gamma(0.5, background): every programme's activity in every cell
    mark: tuple = (0.5, 1.0)           # uniform range added to a cell's own programmes
    nuisance_scale: float = 0.6        # gamma(1, nuisance_scale): the nuisance programmes' activity
    noise: float = 0.6                 # biological noise per gene and cell (log scale)

    @property
    def programmes(self) -> int:
        return 1 + max(p for pair in self.type_programmes for p in pair)

    @property
    def types(self) -> int:
        return len(self.type_programmes)


def simulate(atlas: Atlas, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): log1p counts (cells, genes) as float32 and each cell's type (cells,), drawn from `seed` alone."""
    a, rng = atlas, np.random.default_rng(seed)
    n_prog, pg = a.programmes + a.nuisance, a.programme_genes
    loadings = np.zeros((n_prog, a.genes))
    for p in range(n_prog):
        loadings[p, p * pg:(p + 1) * pg] = rng.uniform(0.6, 1.4, pg)
    y = (np.repeat(np.arange(a.types), a.cells_per_type) if a.cells_per_type else rng.integers(0, a.types, a.cells))
    n = len(y)
    activity = rng.gamma(0.5, a.background, (n, n_prog))                  # every programme: a little, at random
    marks = np.array(a.type_programmes)[y]                                # (n, k): the type's own programmes
    for k in range(marks.shape[1]):
        activity[np.arange(n), marks[:, k]] += rng.uniform(*a.mark, n)
    activity[:, a.programmes:] = rng.gamma(1.0, a.nuisance_scale, (n, a.nuisance))
    log_mean = (rng.normal(1.0, 0.7, a.genes) + activity @ loadings + rng.normal(0.0, 0.3, (n, 1))
                + rng.normal(0.0, a.noise, (n, a.genes)))
    return np.log1p(rng.poisson(np.exp(log_mean))).astype(np.float32), y.astype(np.int64)
