"""Freezing by stage, and the fine-tuning strategies the slides name.

A StagedModel's stages are the freeze slider's positions: `freeze_to(model, k)` freezes the first k
stages and leaves the rest trainable. BatchNorm inside frozen stages stays in eval mode while training
(train.set_train_mode does it), so its running statistics are not overwritten by a few images.

    feature extraction  = freeze_to(n - 1)       (only the new head trains)
    partial             = freeze_to(k)
    full fine-tuning    = freeze_to(0)
    gradual unfreezing  = start at n - 1, unfreeze one more stage every few epochs (ULMFiT)
    discriminative LRs  = everything trainable, learning rate shrinking toward the early stages
"""
from __future__ import annotations

from tl_core.backbones import StagedModel

STRATEGIES = {
    "fixed": "freeze the first k stages for the whole run (all = feature extraction, none = full fine-tuning)",
    "gradual": "gradual unfreezing: start with only the head, unfreeze one more stage every few epochs "
               "(down to the frozen depth, or to the stem when everything but the head is frozen)",
    "discriminative": "discriminative learning rates: stages after the frozen ones (all, when everything but "
                      "the head is frozen) train, earlier ones slower",
}


def parse_freeze(freeze: str | int, n_stages: int) -> int:
    """'all' (every stage but the head), 'none', or a stage count → the number of frozen stages."""
    if freeze == "all":
        return n_stages - 1
    if freeze == "none":
        return 0
    try:
        k = int(freeze)
    except (TypeError, ValueError):
        raise ValueError(f"freeze must be 'all', 'none' or a stage count 0-{n_stages - 1}, got {freeze!r}") from None
    if not 0 <= k <= n_stages - 1:
        raise ValueError(f"freeze must be between 0 and {n_stages - 1} stages for this backbone, got {k}")
    return k


def freeze_to(model: StagedModel, k: int) -> None:
    for i, stage in enumerate(model.stages):
        for p in stage.parameters():
            p.requires_grad_(i >= k)


def frozen_stages(model: StagedModel) -> int:
    """How many leading stages have no trainable parameter."""
    k = 0
    for stage in model.stages:
        params = list(stage.parameters())
        if params and any(p.requires_grad for p in params):
            break
        k += 1
    return k


def discriminative_groups(model: StagedModel, lr: float, first: int = 0, factor: float = 2.6) -> list[dict]:
    """One parameter group per trainable stage; each stage's lr is the next one's divided by `factor`
    (ULMFiT's 2.6), so the head gets `lr` and the earliest trainable stage the smallest."""
    n = len(model.stages)
    return [{"params": list(stage.parameters()), "lr": lr / factor ** (n - 1 - i)}
            for i, stage in enumerate(model.stages) if i >= first and list(stage.parameters())]


def gradual_schedule(n_stages: int, epochs: int, every: int, floor: int = 0) -> list[tuple[int, int]]:
    """(frozen stages, epochs) phases: first only the head trains, then one more stage every `every`
    epochs, never unfreezing below `floor` stages."""
    phases, k, left = [], n_stages - 1, epochs
    while left > 0:
        span = left if k <= floor else min(every, left)
        phases.append((k, span))
        left -= span
        k = max(floor, k - 1)
    return phases
