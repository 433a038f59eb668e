"""THE training loop of Transfer Lab.

Every experiment trains through `fit`: the toy's stacked seeds, the fine-tuning lab's backbones,
the self-supervised encoders. It trains only parameters with `requires_grad`, records train and
validation loss (and accuracy for classification) per epoch, reports progress through a callback,
stops when asked, and stops with status "diverged" the moment the loss stops being a finite number,
keeping the curve up to that point.

A model may be an *ensemble*: if it has an integer attribute `members` > 0 its output carries a
leading member dimension and every loss and accuracy is reported per member (one list entry each).
Members share one dataset (x: (N, ...), y: (N,)), or for classification each has its own of the same
size (x: (M, N, ...), y: (M, N)): mini-batches then take the same positions from every member's data.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tl_core.contract import Stopped
from tl_core.device import to_device

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class FitConfig:
    epochs: int = 10          # passes over the training set
    lr: float = 1e-3          # learning rate (parameter groups may carry their own)
    optimizer: str = "adam"   # "adam" or "sgd" (momentum 0.9)
    weight_decay: float = 0.0
    batch_size: int = 0       # 0 = the whole training set in one step per epoch
    seed: int = 0             # shuffling order of mini-batches
    # validation images per forward pass (0: batch_size). Larger is faster on a CPU (fewer, fuller ops) and, in
    # eval mode, gives the same predictions: the lab validates its 200 images in one pass
    eval_batch_size: int = 0

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.batch_size < 0 or self.eval_batch_size < 0:
            raise ValueError(f"batch size must be 0 (full batch) or positive, got {self.batch_size}")


@dataclass
class History:
    """Per-epoch curves. Each entry is a float, or a list of floats for an ensemble (one per member)."""
    task: str
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    status: str = "running"   # then "finished", "stopped" (cancel flag) or "diverged" (NaN/inf loss)
    message: str = ""
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["epochs_run"] = self.epochs_run
        return d


# ---- losses: a scalar for a single model, a vector (one per member) for an ensemble -------------

def mse(pred: torch.Tensor, target: torch.Tensor, per_member: bool) -> torch.Tensor:
    err = (pred - target) ** 2
    return err.flatten(1).mean(1) if per_member else err.mean()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, per_member: bool) -> torch.Tensor:
    if not per_member:
        return F.cross_entropy(logits, target)
    members, n, classes = logits.shape
    target = target.reshape(-1) if target.dim() == 2 else target.repeat(members)  # own labels or shared
    losses = F.cross_entropy(logits.reshape(-1, classes), target, reduction="none")
    return losses.view(members, n).mean(1)


LOSSES = {"regression": mse, "classification": cross_entropy}
OPTIMIZERS = ("adam", "sgd")


def make_optimizer(params, cfg: FitConfig) -> torch.optim.Optimizer:
    """Build the optimizer from trainable parameters only (or from explicit parameter groups)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = [dict(g, params=[p for p in g["params"] if p.requires_grad]) for g in params]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [p for p in params if p.requires_grad]
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


@contextmanager
def caught_optimizer(first: torch.Tensor):
    """The optimizer `fit` builds for parameters that include `first`, caught at its first step (a global step
    hook, removed on leaving), so its state tensors can be measured after training (`optimizer_state_bytes`):

        with caught_optimizer(params[0]) as caught:
            fit(model, train, val, cfg, params=params)
        optimizer_state_bytes(caught.get("opt"))"""
    found: dict = {}

    def hook(opt, args, kwargs):
        if "opt" not in found and any(p is first for g in opt.param_groups for p in g["params"]):
            found["opt"] = opt

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield found
    finally:
        handle.remove()


def optimizer_state_bytes(opt: torch.optim.Optimizer | None) -> int:
    """Bytes of an optimizer's state tensors (Adam: exp_avg, exp_avg_sq and step per parameter)."""
    if opt is None:
        return 0
    return int(sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                   if isinstance(t, torch.Tensor)))


def set_train_mode(model: nn.Module) -> None:
    """model.train(), except that every sub-module whose parameters are all frozen stays in eval mode:
    a frozen stage is a fixed feature extractor, so its BatchNorm keeps the running statistics learnt in
    pretraining (not a few images' statistics) and its dropout / stochastic depth stay off."""
    model.train()

    def visit(module: nn.Module) -> None:
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
            return
        for child in module.children():
            visit(child)

    visit(model)


def _member_data(model: nn.Module, data: Batch, task: str) -> bool:
    """True when every ensemble member has its own classification data: y of shape (members, N)."""
    return getattr(model, "members", 0) > 0 and task == "classification" and data[1].dim() == 2


def _batches(data: Batch, batch_size: int, gen: torch.Generator, dim: int = 0) -> Iterator[Batch]:
    """Mini-batches along `dim` (1 when each member has its own data), reshuffled per call."""
    x, y = data
    n = y.shape[dim]
    if batch_size <= 0 or batch_size >= n:
        yield x, y
        return
    order = torch.randperm(n, generator=gen)
    starts = list(range(0, n, batch_size))
    if n - starts[-1] == 1:  # a last batch of one image: BatchNorm cannot train on it, so merge it
        starts.pop()
    for i, start in enumerate(starts):
        idx = order[start:starts[i + 1] if i + 1 < len(starts) else n]
        yield (x[:, idx], y[:, idx]) if dim == 1 else (x[idx], y[idx])


def _accuracy(logits: torch.Tensor, target: torch.Tensor, per_member: bool) -> torch.Tensor:
    hit = (logits.argmax(-1) == target).float()
    return hit.mean(-1) if per_member else hit.mean()


@torch.inference_mode()   # no autograd bookkeeping at all: validation's outputs never reach a backward pass
def evaluate(model: nn.Module, data: Batch, task: str, batch_size: int = 0,
             loss_fn: Callable | None = None) -> tuple[object, object]:
    """Loss and accuracy (None for regression) on `data`, in eval mode; floats or per-member lists.
    loss_fn(out, target, per_member) replaces the task's own loss when given."""
    loss_fn = loss_fn or LOSSES[task]
    was_training = model.training
    model.eval()
    per_member = getattr(model, "members", 0) > 0
    dev = _device_of(model)
    dim = 1 if _member_data(model, data, task) else 0
    loss_sum = acc_sum = 0
    n_total = 0
    for xb, yb in _batches(data, batch_size, torch.Generator(), dim):
        xb, yb = to_device(xb, dev), to_device(yb, dev)
        out = model(xb)
        loss_sum = loss_sum + loss_fn(out, yb, per_member) * yb.shape[dim]
        if task == "classification":
            acc_sum = acc_sum + _accuracy(out, yb, per_member) * yb.shape[dim]
        n_total += yb.shape[dim]
    model.train(was_training)
    loss = (loss_sum / n_total).tolist()
    acc = (acc_sum / n_total).tolist() if task == "classification" else None
    return loss, acc


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities for x, in eval mode, batch by batch, on the CPU: what a confusion matrix, a
    top-k prediction or an exported model reads."""
    model.eval()
    dev = _device_of(model)
    return torch.cat([model(to_device(x[i:i + batch_size], dev)).softmax(-1).cpu()
                      for i in range(0, len(x), batch_size)])


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _finite(value) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(math.isfinite(v) for v in values)


def fit(
    model: nn.Module,
    train: Batch,
    val: Batch | None = None,
    cfg: FitConfig | None = None,
    *,
    task: str = "classification",
    params=None,
    on_epoch: Callable[[int, History], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eval_model: Callable[[], tuple[nn.Module, int]] | None = None,
) -> History:
    """Train `model` on `train` (x, y) for cfg.epochs epochs and return its History.

    params: parameter groups (e.g. discriminative learning rates); default: the model's
    trainable parameters. on_epoch(epoch, history) runs after every epoch; should_stop() is
    checked before every optimizer step and a True ends the run with status "stopped", keeping the
    epochs finished before it (an epoch cut short is not counted). loss_fn(out, target,
    per_member) replaces the task's loss (MSE / cross-entropy) in training and validation, e.g. the
    self-supervised masked reconstruction loss; accuracy is still reported for classification.
    after_step() runs right after every optimizer step (Guided Transfer Learning rescales each
    update there). transform(xb) replaces every training mini-batch's inputs before the forward pass, a new
    call per batch and epoch (augmentation: `tl_core.augment`, then the frozen stages when they are not
    cached); validation data are never transformed. eval_model() gives the module validation runs on, when given,
    and its images per pass (0: the config's): an eval-only view computing what the model computes, faster
    (`finetuning.Folded`).
    """
    cfg = cfg or FitConfig()
    cfg.validate()
    if task not in LOSSES:
        raise ValueError(f"task must be one of {', '.join(LOSSES)}, got {task!r}")
    loss_fn = loss_fn or LOSSES[task]
    per_member = getattr(model, "members", 0) > 0
    dim = 1 if _member_data(model, train, task) else 0
    dev = _device_of(model)
    opt = make_optimizer(params if params is not None else model.parameters(), cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist = History(task=task)
    start = time.perf_counter()

    stopped = (lambda: False) if should_stop is None else should_stop
    for epoch in range(cfg.epochs):
        set_train_mode(model)
        loss_sum = acc_sum = 0
        n_seen = 0
        cut = False
        for xb, yb in _batches(train, cfg.batch_size, gen, dim):
            if stopped():
                cut = True
                break
            if transform is not None:
                xb = transform(xb)
            xb, yb = to_device(xb, dev), to_device(yb, dev)
            # forward
            out = model(xb)
            loss = loss_fn(out, yb, per_member)
            # backward and update (members are independent: the sum's gradient is each member's own)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            if after_step is not None:
                after_step()
            loss_sum = loss_sum + loss.detach() * yb.shape[dim]
            if task == "classification":
                acc_sum = acc_sum + _accuracy(out.detach(), yb, per_member) * yb.shape[dim]
            n_seen += yb.shape[dim]
        if cut:  # before this epoch's first step or between two: the epochs before it are kept
            hist.status, hist.message = "stopped", f"stopped by the user after {epoch} epochs"
            break
        train_loss = (loss_sum / n_seen).tolist()
        if not _finite(train_loss):
            hist.status = "diverged"
            hist.message = (f"diverged: the training loss became NaN/inf in epoch {epoch + 1}; "
                            f"the curve so far is kept. Try a smaller learning rate.")
            break
        hist.train_loss.append(train_loss)
        if task == "classification":
            hist.train_acc.append((acc_sum / n_seen).tolist())
        # validation, in eval mode
        if val is not None:
            judged, size = (model, 0) if eval_model is None else eval_model()
            val_loss, val_acc = evaluate(judged, val, task, size or cfg.eval_batch_size or cfg.batch_size, loss_fn)
            if not _finite(val_loss):
                hist.status = "diverged"
                hist.message = (f"diverged: the validation loss became NaN/inf in epoch {epoch + 1}; "
                                f"the curve so far is kept. Try a smaller learning rate.")
                hist.train_loss.pop()
                if hist.train_acc:
                    hist.train_acc.pop()
                break
            hist.val_loss.append(val_loss)
            if val_acc is not None:
                hist.val_acc.append(val_acc)
        if on_epoch is not None:
            on_epoch(epoch, hist)
    else:
        hist.status = "finished"
    hist.seconds = time.perf_counter() - start
    return hist


@torch.no_grad()
def frozen_features(prefix: nn.Module, x: torch.Tensor, batch_size: int = 64,
                    should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """Run the frozen prefix once over x, in eval mode, batch by batch. Training then costs only the
    trainable rest: the main speed lever on a laptop. (Features of augmented images cannot be cached: an
    augmented run calls this on every training batch, `finetuning.Trainer`.)
    should_stop() is checked before every batch; a True raises Stopped."""
    prefix.eval()
    dev = _device_of(prefix)
    if len(prefix) == 0:
        return to_device(x, dev)
    out = []
    for i in range(0, len(x), batch_size):
        if should_stop is not None and should_stop():
            raise Stopped("stopped by the user while computing the frozen stages' features")
        out.append(prefix(to_device(x[i:i + batch_size], dev)))
    return torch.cat(out)


def concat_histories(histories: list[History]) -> History:
    """Phases of one run (e.g. gradual unfreezing) as one history."""
    out = History(task=histories[0].task)
    for h in histories:
        out.train_loss += h.train_loss
        out.val_loss += h.val_loss
        out.train_acc += h.train_acc
        out.val_acc += h.val_acc
        out.seconds += h.seconds
        out.status, out.message = h.status, h.message
        if h.status != "finished":
            break
    return out
