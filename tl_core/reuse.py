"""What a lab run (`tl_core.experiments.finetune`) shares with the runs before it in this process, number for
number: the frozen features of the registry's pretrained prefix (one `finetuning.SharedFrozenCache` per backbone,
`FEATURES`) and scratch runs by their settings (`SCRATCH`, keyed by `scratch_key`). Switched off by `REUSE = False`
(bench/lab_run.py compares the two); both caches stay within a byte budget.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
from dataclasses import replace

import torch
from torch import nn

from tl_core import budget, contract, data
from tl_core import device as devices
from tl_core.finetuning import FinetuneConfig, SharedFrozenCache, model_for

# What a lab run shares with the runs before it in this process, number for number (bench/lab_run.py measures it;
# False: every run alone, as before): the frozen features of the registry's pretrained prefix, by image (every
# seed, shots value and run on the same images), and scratch runs by their settings (scratch does not depend on
# the freeze depth or the strategy, so a second lab run that changes only those trains no scratch network).
REUSE = True
# Both within a budget in bytes (a server shared by a class keeps them for every session): TL_FEATURES_MB (default
# 1024) over at most two backbones' features, TL_SCRATCH_MB (default 256) of scratch runs' weights and curves.
FEATURES_MB, SCRATCH_MB = "TL_FEATURES_MB", "TL_SCRATCH_MB"
FEATURES: collections.OrderedDict = collections.OrderedDict()   # (backbone, device) → SharedFrozenCache
SCRATCH = budget.ByteLRU(budget.env_mb(SCRATCH_MB, 256) * budget.MB, most=12)   # settings, seed, data → (Run, …)


def frozen_cache(cfg: FinetuneConfig, num_classes: int, dev, init: nn.Module | None):
    """The frozen-feature cache a pretrained cell uses: one per backbone in this process for the registry's
    weights, one per run for weights loaded elsewhere (`init`), None when REUSE is off (a cache per cell) or the
    run augments its training images (their features are new every epoch; the trainer keeps its own cache of the
    validation images' features)."""
    if not REUSE or cfg.augment:
        return None

    def pristine():  # the frozen weights, built without drawing from the run's random stream
        with torch.random.fork_rng():
            return model_for(cfg, "pretrained", num_classes, cfg.seed, init).to(dev).eval()

    if init is not None:
        return SharedFrozenCache(pristine, cfg.batch_size)
    key = (cfg.backbone, str(dev))
    if key not in FEATURES:   # each starts afresh past its half of the budget; the oldest backbone's goes first
        half = budget.env_mb(FEATURES_MB, 1024) * budget.MB // 2
        FEATURES[key] = SharedFrozenCache(pristine, cfg.batch_size, budget=half)
        while len(FEATURES) > 2:
            FEATURES.popitem(last=False)
    return FEATURES[key]


def data_key(cfg: FinetuneConfig, dataset: data.ImageSet | None) -> str:
    """The images a run trains on, beyond what its config names: a hash of the user's own images."""
    if dataset is None:
        return ""
    h = hashlib.blake2b(digest_size=16)
    for t in (dataset.images, dataset.labels):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest() + json.dumps(list(dataset.classes))


def scratch_key(cfg: FinetuneConfig, seed: int, data_key: str) -> str:
    """What a scratch run depends on: every setting but the freeze depth, the strategy, the weights asked and
    the number of seeds (plus its own seed and the images)."""
    sub = replace(cfg.for_weights("scratch"), weights="scratch", seeds=1, unfreeze_every=1, cache=True)
    return json.dumps([contract.record(sub), seed, data_key], sort_keys=True, default=str)


def release(dev) -> None:
    """After a run on a GPU: the shared caches keep their features in host memory (`SharedFrozenCache`), the frozen
    networks they built on that GPU are let go (built again when a later run needs features not kept), and the
    memory the run no longer uses goes back to the device. On the CPU, nothing: the next run reuses it all."""
    if torch.device(dev).type == "cpu":
        return
    for (_, where), cache in FEATURES.items():
        if where == str(torch.device(dev)):
            cache.release_model()
    devices.release(dev)


@contextlib.contextmanager
def released(dev):
    """`release(dev)` when the block ends, however it ends (a run's cells, on any device)."""
    try:
        yield
    finally:
        release(dev)
