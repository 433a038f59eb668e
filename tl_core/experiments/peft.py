"""Parameter-efficient fine-tuning: LoRA and BitFit beside head-only, partial and full fine-tuning, and what each
one costs (weights trained, bytes saved, optimizer state, seconds) and forgets.

Methods, each over seeds, on EfficientNet-Lite0 (real ImageNet weights) over the image datasets or on
all-MiniLM-L6-v2 over the text topics:

    head     feature extraction: only a new linear head trains
    bitfit   BitFit: the biases of the adapted stages (`scope`) and the head train, every weight matrix stays
             as pretrained. Lite0's convolutions have no bias, so its biases are BatchNorm's shifts (β); its
             BatchNorm layers stay in eval mode (running statistics as pretrained), so only biases change
    lora     LoRA (Hugging Face `peft`) at each rank r: W x + (α/r)·B A x beside every frozen target weight,
             B starting at 0; adapters and the head train. Targets by stage (`scope`):
               images  the 1×1 convolutions (conv_pw: expansion, conv_pwl: projection) of the adapted blocks and
                       conv_head (groups=1 convs only; the depthwise 3×3/5×5 convs are left alone)
               text    attention query and value of the adapted transformer layers
             scope "last": the stages `partial` trains (Lite0: block 7 and the head conv; text: the last
             `layers` layers); "all": every block / layer
    partial  the last stages train whole (Lite0: block 7, the head conv, the head; text: the last k layers)
    full     every stage trains, from the pretrained weights
    scratch  every stage trains, from random weights: the reference that says what pretraining is worth

Measured for each: validation accuracy; trainable parameters (count, and fraction of the plain model); the bytes
of what must be saved to reproduce the fine-tuned model (the adapter, or the trained tensors alone, serialised
with safetensors) against the full state_dict; the Adam state's bytes after training (its tensors, measured);
seconds per epoch. Forgetting: images: the fine-tuned body under the *original* ImageNet head against the
original model, top-1 agreement on images no method trained on (scikit-image's photos, crops of them, another
dataset's images) and linear CKA of the pooled features (`tl_core.cka`); text: the cosine similarity of sentence
embeddings before and after, on sentences of topics no method trained on.

LoRA merged into the weights (`merge_and_unload`, a plain timm / BERT model) predicts as the adapter does
(`merge_max_abs_diff`), and the adapter saved alone (`adapter_bytes`, a .safetensors file) loads back into a
fresh backbone with the same predictions (`reload_max_abs_diff`). Stages that a method leaves frozen and that
no adapter touches run once over the data (the frozen-prefix cache, `finetuning.FrozenCache`); everything
trains through `train.fit`. The claim: the best PEFT method (BitFit or a LoRA rank, by mean validation accuracy)
against full fine-tuning, by the claims rule, with what it trains and forgets beside it.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from tl_core import backbones, claims, contract, data, finetuning, text
from tl_core import device as devices
from tl_core.cka import linear_cka
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.train import FitConfig, History, fit, predict

BACKBONES = {"image": "efficientnet_lite0", "text": "minilm_l6"}
MODALITIES = {"image": "EfficientNet-Lite0 (ImageNet weights) on a built-in image dataset",
              "text": "all-MiniLM-L6-v2 (a BERT-family sentence encoder) on chatterbot-corpus topics"}
METHODS = {
    "head": "feature extraction: only a new linear head trains",
    "bitfit": "BitFit: the biases of the adapted stages and the head train; every weight matrix stays as pretrained",
    "lora": "LoRA adapters (Hugging Face peft) on the adapted stages' 1×1 convs (images) or attention query/value "
            "(text), one run per rank, plus the head",
    "partial": "the last stages train whole (Lite0: block 7, head conv, head; text: the last k layers and the head)",
    "full": "full fine-tuning: every stage trains from the pretrained weights",
    "scratch": "the same network from random weights, every stage trained (the reference)",
}
PEFT = ("bitfit", "lora")                 # the parameter-efficient methods a claim is about
SCOPES = {"last": "the stages partial trains (Lite0: block 7 and the head conv; text: the last k layers)",
          "all": "every block (Lite0) or transformer layer (text)"}
PARTIAL_STAGES = 3                        # images: block 7, the head conv and the classifier train under partial
IMAGE_DATASETS = tuple(d for d in data.DATASETS)
DEFAULT_DATASET = {"image": "textures", "text": "topics"}
# the photos that ship with scikit-image and that no built-in dataset is cut from: images no method trained on
PROBE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field", "moon", "clock",
                "page", "text", "colorwheel")
PROBE_CROPS = 4                           # random crops per photo (fixed positions)
PROBE_OTHER = 32                          # images of another built-in dataset
HELD_OUT_PER_TOPIC, HELD_OUT_MAX = 8, 96  # text: sentences of topics no method trained on


def _dataset_problem(name: str) -> str:
    known = (*IMAGE_DATASETS, *text.DATASETS)
    return "" if name == "" or name in known else f"unknown dataset {name!r}: choose one of {', '.join(known)}"


def _unique(what: str):
    def problem(values: tuple) -> str:
        if not values:
            return f"give at least one {what}"
        return f"each {what} once, please" if len(set(values)) < len(values) else ""
    return problem


@dataclass(frozen=True)
class PeftConfig:
    modality: str = setting("image", "what is fine-tuned", choices=MODALITIES, title="Modality")
    dataset: str = setting("", f"images: {', '.join(IMAGE_DATASETS)}; text: {', '.join(text.DATASETS)} "
                               f"(default: textures for images, topics for text)", check=_dataset_problem,
                           title="Dataset")
    methods: tuple[str, ...] = setting(tuple(METHODS), "methods to compare, comma-separated", choices=METHODS,
                                       check=_unique("method"), title="Methods")
    ranks: tuple[int, ...] = setting((1, 4, 16), "LoRA ranks, comma-separated (one run of lora per rank)", lo=1,
                                     hi=256, label="ranks", check=_unique("rank"), title="LoRA ranks",
                                     steps=(1, 2, 4, 8, 16, 32, 64))
    scope: str = setting("last", "the stages LoRA and BitFit adapt", choices=SCOPES, title="Adapted stages")
    lora_scale: float = setting(2.0, "LoRA's α / r: how strongly the adapter's update B·A is scaled", lo=0.01, hi=100,
                                label="lora scale", title="LoRA scale α / r", steps=(0.5, 1.0, 2.0, 4.0, 8.0))
    shots: int = setting(10, "training examples per class", lo=1, hi=10_000, title="Training examples per class",
                         steps=(2, 5, 10, 20, 40))
    epochs: int = setting(8, "passes over the training examples", lo=1, hi=500, title="Epochs", span=(1, 30))
    lr: float = setting(1e-2, "Adam learning rate of the new head", lo=1e-7, hi=10, title="Head learning rate",
                        steps=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1))
    adapter_lr: float = setting(1e-3, "Adam learning rate of LoRA's adapters and BitFit's biases", lo=1e-7, hi=10,
                                label="adapter lr", title="Adapter / bias learning rate",
                                steps=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2))
    full_lr: float = setting(1e-3, "images: Adam learning rate of pretrained weights that train (partial, full, "
                                   "scratch)", lo=1e-8, hi=1, label="full lr",
                             title="Learning rate of pretrained weights (images)", steps=(1e-4, 3e-4, 1e-3, 3e-3))
    encoder_lr: float = setting(3e-5, "text: Adam learning rate of the encoder weights that train (partial, full, "
                                      "scratch)", lo=1e-8, hi=1, label="encoder lr",
                                title="Learning rate of encoder weights (text)", steps=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3))
    batch_size: int = setting(16, "examples per step", lo=1, hi=4096, label="batch size", title="Batch size",
                              steps=(2, 4, 8, 16, 32, 64))
    image_size: int = setting(48, "images: pixels; small is fast on a CPU", lo=32, hi=data.MAX_SIZE,
                              label="image size", title="Image size (px)", steps=(32, 48, 64, 96))
    probe_size: int = setting(64, "images: pixels of the probe images forgetting is measured on", lo=32,
                              hi=data.MAX_SIZE, label="probe size",
                              title="Probe image size (px)", steps=(32, 48, 64, 96, 128))
    topics: tuple[str, ...] = setting(text.DEFAULT_CLASSES, "text: topics to tell apart, comma-separated",
                                      check=lambda v: "choose at least 2 topics" if len(v) < 2 else
                                      _unique("topic")(v), title="Topics")
    layers: int = setting(2, "text: the last transformer layers partial trains (and scope last adapts)", lo=1,
                          hi=text.LAYERS - 1, title="k: last layers (text)")
    max_length: int = setting(24, "text: tokens per sentence (longer ones are cut)", lo=4, hi=text.MAX_TOKENS,
                              label="max length", title="Tokens per sentence (text)", steps=(8, 16, 24, 32, 64))
    seeds: int = setting(3, "runs per method, for bands", lo=1, hi=20, title="Seeds (for the bands)", span=(1, 5))
    seed: int = setting(0, "first seed: split, head init, scratch init", lo=0)
    val_per_class: int = setting(20, "fixed validation examples per class", lo=1, hi=1000, label="val per class",
                                 title="Validation examples per class", span=(2, 40))
    cache: bool = setting(True, "run the frozen stages no adapter touches once (--no-cache: every epoch)")

    def check(self) -> None:
        ds = self.dataset or DEFAULT_DATASET[self.modality]
        if self.modality == "image":
            if ds not in IMAGE_DATASETS:
                raise ValueError(f"dataset {ds} is a text dataset: with --modality image choose one of "
                                 f"{', '.join(IMAGE_DATASETS)}")
            most = data.max_shots(data.load(ds, data.MIN_SIZE), self.val_per_class)
        else:
            if ds not in text.DATASETS:
                raise ValueError(f"dataset {ds} is an image dataset: with --modality text choose one of "
                                 f"{', '.join(text.DATASETS)}")
            counts = text.load(ds, self.topics).counts()
            most = min(counts.values()) - self.val_per_class
        if self.shots > most:
            raise ValueError(f"shots {self.shots} is more than {ds} has per class after {self.val_per_class} "
                             f"validation examples: at most {max(most, 0)}")
        if "lora" in self.methods and not self.ranks:
            raise ValueError("lora needs at least one rank")

    def resolve(self) -> "PeftConfig":
        """The dataset named (the modality's default when left empty); methods in their fixed order."""
        return replace(self, dataset=self.dataset or DEFAULT_DATASET[self.modality],
                       methods=tuple(m for m in METHODS if m in self.methods))

    @property
    def backbone(self) -> str:
        return BACKBONES[self.modality]

    def conditions(self) -> list[str]:
        """Every method as a condition: lora once per rank (lora_r4)."""
        return [c for m in self.methods for c in ([f"lora_r{r}" for r in self.ranks] if m == "lora" else [m])]


# a small config for the lecture step "Fine-tuning at scale: train 1% of the weights" (12-15 s on the busy 2-core
# machine): head only, LoRA r=4 and full fine-tuning on textures, 2 seeds. 48 px, not 32: at 32 px Lite0's features
# tell the textures apart barely better than chance; batches of 4, so 15 images make 4 steps per epoch
LECTURE = PeftConfig(methods=("head", "lora", "full"), ranks=(4,), shots=5, epochs=6, batch_size=4, image_size=48,
                     probe_size=48, seeds=2, val_per_class=10)


def method_of(condition: str) -> tuple[str, int | None]:
    """'lora_r4' → ('lora', 4); 'full' → ('full', None)."""
    if condition.startswith("lora_r"):
        return "lora", int(condition[len("lora_r"):])
    return condition, None


def label(condition: str) -> str:
    method, rank = method_of(condition)
    return {"head": "head only", "bitfit": "BitFit", "lora": f"LoRA r={rank}", "partial": "partial (last stages)",
            "full": "full fine-tuning", "scratch": "scratch"}[method]


# ---- the data, the probe inputs, the pretrained reference -------------------------------------------------

def _photo(name: str) -> np.ndarray:
    """A scikit-image photo as float32 RGB (3, H, W) in [0, 1]."""
    from skimage import data as skdata

    img = np.asarray(getattr(skdata, name)())
    img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else max(float(img.max()), 1.0))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].transpose(2, 0, 1))


def other_dataset(dataset: str) -> str:
    """The built-in dataset whose images join the probe: one no method trained on."""
    return "faces" if dataset != "faces" else "textures"


@functools.lru_cache(maxsize=4)
def probe_images(size: int, dataset: str) -> torch.Tensor:
    """Images no method trained on, (N, 3, size, size): scikit-image's photos whole (a centred square), PROBE_CROPS
    crops of each at fixed random positions, and PROBE_OTHER images of another built-in dataset."""
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    pieces = []
    for name in PROBE_PHOTOS:
        img = _photo(name)
        _, h, w = img.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        pieces.append(img[:, top:top + side, left:left + side])
        half = side // 2
        for _ in range(PROBE_CROPS):
            y, x = rng.integers(0, h - half + 1), rng.integers(0, w - half + 1)
            pieces.append(img[:, y:y + half, x:x + half])
    out = [F.interpolate(torch.from_numpy(np.ascontiguousarray(p))[None], size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False)[0] for p in pieces]
    other = data.load(other_dataset(dataset), size)
    pick = np.linspace(0, len(other) - 1, PROBE_OTHER).round().astype(int)
    return torch.cat([torch.stack(out).clamp(0, 1), other.images[pick]]).contiguous()


def held_out_sentences(topics: tuple[str, ...]) -> list[str]:
    """Sentences of corpus topics not among `topics`: what no method trained on."""
    out = []
    for t in sorted(text.topics()):
        if t not in topics:
            out += list(text.sentences(t)[:HELD_OUT_PER_TOPIC])
    return out[:HELD_OUT_MAX]


@functools.lru_cache(maxsize=2)
def _template(modality: str) -> nn.Module:
    """The pretrained original module (timm's EfficientNet with its ImageNet head; the BERT encoder), built once per
    process: every run starts from a deep copy of it."""
    if modality == "image":
        return backbones.original(BACKBONES["image"], "pretrained").eval()
    return text.build_encoder(True).eval()


def base_module(modality: str, weights: str, n_classes: int, seed: int) -> nn.Module:
    """A fresh original module: pretrained (a copy of the template) or from scratch (seeded); images get a new
    head for n_classes (seeded), text's head is the staged model's own."""
    torch.manual_seed(seed)
    if modality == "text":
        return copy.deepcopy(_template("text")) if weights == "pretrained" else text.build_encoder(False)
    name = BACKBONES["image"]
    if weights == "scratch":
        return backbones.original(name, "scratch", n_classes, seed)
    model = copy.deepcopy(_template("image"))
    backbones.replace_head(model, backbones.entry(name).split(model)[-1][1], n_classes, seed)
    return model


def staged(modality: str, module: nn.Module, n_classes: int, seed: int) -> backbones.StagedModel:
    """The original module as the registry's staged model (sharing its modules); a new head when needed."""
    return backbones.create(BACKBONES[modality], module=module, num_classes=n_classes, seed=seed)


@dataclass
class Prepared:
    """What every cell of a run shares: the inputs (one tensor, so the cache recognises it), labels, the probe
    inputs forgetting is measured on, and the pretrained reference with its frozen-prefix cache."""
    modality: str
    inputs: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    probe: torch.Tensor
    reference: backbones.StagedModel          # images: with the original ImageNet head
    cache: finetuning.FrozenCache
    splits: dict = field(default_factory=dict)

    def split(self, cfg: PeftConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val) row indices of one seed, through THE class-balanced splitter (nested training sets, a
        validation set fixed per seed)."""
        key = (seed, cfg.shots, cfg.val_per_class)
        if key not in self.splits:
            tr, va = data.class_split(self.labels, len(self.classes), seed, lambda n: cfg.val_per_class, cfg.shots)
            self.splits[key] = (torch.as_tensor(tr), torch.as_tensor(va))
        return self.splits[key]


# per (modality, dataset, sizes or topics, device): a few MB each, the two latest kept: later runs (the page's
# reruns, the lecture) reuse the pretrained prefix's features, which never change
SHARED: dict[tuple, Prepared] = {}


def prepare(cfg: PeftConfig, dev: torch.device) -> Prepared:
    cfg = cfg.resolve()
    if cfg.modality == "image":
        key = ("image", cfg.dataset, cfg.image_size, cfg.probe_size, str(dev))
    else:
        key = ("text", cfg.dataset, cfg.topics, cfg.max_length, str(dev))
    if key in SHARED:
        return SHARED[key]
    while len(SHARED) >= 2:
        SHARED.pop(next(iter(SHARED)))
    if cfg.modality == "image":
        ds = data.load(cfg.dataset, cfg.image_size)
        inputs, labels, classes = ds.images, ds.labels, list(ds.classes)
        probe = probe_images(cfg.probe_size, cfg.dataset)
        reference = staged("image", copy.deepcopy(_template("image")), None, 0)   # the ImageNet head kept
    else:
        ds = text.load(cfg.dataset, cfg.topics)
        inputs, labels, classes = text.encode(ds.texts, cfg.max_length), ds.labels, list(ds.classes)
        probe = text.encode(held_out_sentences(cfg.topics), cfg.max_length)
        reference = staged("text", copy.deepcopy(_template("text")), 2, 0)
    reference = reference.to(dev).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    prep = Prepared(cfg.modality, inputs.to(dev), labels.to(dev), classes, probe.to(dev), reference,
                    finetuning.FrozenCache(reference, cfg.batch_size * 4, dev))
    SHARED[key] = prep
    return prep


# ---- building and training one method ----------------------------------------------------------------------

def adapted_stages(cfg: PeftConfig, n: int) -> range:
    """The stages LoRA and BitFit adapt (the head, stage n - 1, is not among them: it always trains)."""
    if cfg.scope == "all":
        return range(0, n - 1)
    first = n - PARTIAL_STAGES if cfg.modality == "image" else n - 1 - cfg.layers
    return range(first, n - 1)


def lora_config(cfg: PeftConfig, rank: int):
    """peft's LoraConfig for one rank: images: the 1×1 convs (conv_pw, conv_pwl) of the adapted blocks and conv_head
    (timm's names; groups=1 only); text: attention query and value of the adapted layers."""
    from peft import LoraConfig

    common = dict(r=rank, lora_alpha=cfg.lora_scale * rank, lora_dropout=0.0, bias="none")
    if cfg.modality == "image":
        blocks = r"\d+" if cfg.scope == "all" else "6"      # Lite0's block 7 is timm's blocks.6
        return LoraConfig(target_modules=rf"blocks\.{blocks}\.\d+\.(conv_pw|conv_pwl)|conv_head", **common)
    layers = None if cfg.scope == "all" else list(range(text.LAYERS - cfg.layers, text.LAYERS))
    return LoraConfig(target_modules=["query", "value"], layers_to_transform=layers, **common)


def wrap(base: nn.Module, config) -> nn.Module:
    """peft's PeftModel around `base` (its target layers replaced by LoRA layers in place; everything else frozen).
    transformers' deprecation warning for a method peft calls on BERT is not the user's to act on."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(base, config)


class KeepStats(nn.Module):
    """A module whose BatchNorm layers stay in eval mode when it trains: BitFit changes biases only, so the running
    statistics stay as pretrained (train.set_train_mode calls .train() on the model it is given: this one)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


def _head_linear(model: backbones.StagedModel) -> nn.Linear:
    return [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]


@dataclass
class Tuned:
    """One method trained on one seed: the models (staged, and the peft wrapper for LoRA) and what was measured."""
    condition: str
    seed: int
    model: backbones.StagedModel
    base: nn.Module                       # the original module (timm / BERT) the staged model shares
    peft_model: nn.Module | None          # LoRA's PeftModel
    depth: int                            # leading stages frozen and untouched: run once, from the cache
    history: History
    optimizer_bytes: int
    fit_seconds: float


@contextmanager
def _optimizer_of(first: torch.Tensor):
    """The optimizer train.fit builds for parameters that include `first`, caught at its first step (a global
    step hook, removed on leaving), so its state tensors can be measured after training."""
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


def state_bytes(opt: torch.optim.Optimizer | None) -> int:
    """Bytes of an optimizer's state tensors (Adam: exp_avg, exp_avg_sq and step per parameter)."""
    if opt is None:
        return 0
    return int(sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                   if isinstance(t, torch.Tensor)))


def build(cfg: PeftConfig, condition: str, n_classes: int, seed: int, dev: torch.device):
    """(staged model, original module, PeftModel or None) for a method, with exactly its parameters trainable."""
    method, rank = method_of(condition)
    base = base_module(cfg.modality, "scratch" if method == "scratch" else "pretrained", n_classes, seed)
    pm = None
    if method == "lora":
        pm = wrap(base, lora_config(cfg, rank))
        base = pm.base_model.model
    model = staged(cfg.modality, base, n_classes, seed).to(dev)
    n = len(model.stages)
    for p in model.parameters():
        p.requires_grad_(False)
    if method in ("full", "scratch"):
        for p in model.parameters():
            p.requires_grad_(True)
    elif method == "partial":
        first = n - PARTIAL_STAGES if cfg.modality == "image" else n - 1 - cfg.layers
        for stage in model.stages[first:]:
            for p in stage.parameters():
                p.requires_grad_(True)
    elif method == "bitfit":
        for i in adapted_stages(cfg, n):
            for name, p in model.stages[i].named_parameters():
                if name.endswith("bias"):
                    p.requires_grad_(True)
    elif method == "lora":
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return model, base, pm


def fine_tune(cfg: PeftConfig, condition: str, seed: int, prep: Prepared, dev: torch.device,
              hooks: dict | None = None) -> Tuned:
    """Train one method on one seed through THE training loop (`train.fit`): the leading stages the method leaves
    frozen and untouched come from the cache; the head at `lr`, adapters and biases at `adapter_lr`, pretrained
    weights at `full_lr` (images) or `encoder_lr` (text)."""
    hooks = dict(hooks or {})
    method, _ = method_of(condition)
    tr, va = prep.split(cfg, seed)
    model, base, pm = build(cfg, condition, len(prep.classes), seed, dev)
    depth = _untouched(model)
    stop = hooks.get("should_stop")
    if cfg.cache and depth > 0:
        net = model.suffix(depth)
        x_tr, x_va = prep.cache.at(depth, prep.inputs, tr, stop), prep.cache.at(depth, prep.inputs, va, stop)
    else:
        net, x_tr, x_va = model, prep.inputs[tr.to(prep.inputs.device)], prep.inputs[va.to(prep.inputs.device)]
    if method == "bitfit" and cfg.modality == "image":
        net = KeepStats(net)
    head = list(model.head.parameters())
    ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    body_lr = cfg.adapter_lr if method in PEFT else cfg.full_lr if cfg.modality == "image" else cfg.encoder_lr
    groups = [{"params": head, "lr": cfg.lr}] + ([{"params": body, "lr": body_lr}] if body else [])
    torch.manual_seed(seed)   # dropout in what trains draws from torch's stream: seeded per run
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
    with _optimizer_of(head[0]) as caught:
        hist = fit(net, (x_tr, prep.labels[tr]), (x_va, prep.labels[va]), fit_cfg, params=groups, **hooks)
    return Tuned(condition, seed, model, base, pm, depth, hist, state_bytes(caught.get("opt")), hist.seconds)


def _untouched(model: backbones.StagedModel) -> int:
    """Leading stages with no trainable parameter (LoRA's adapters are trainable, so an adapted stage counts as
    touched): their outputs are the pretrained prefix's, the same for every method and seed."""
    k = 0
    for stage in model.stages:
        if any(p.requires_grad for p in stage.parameters()):
            break
        k += 1
    return min(k, len(model.stages) - 1)


# ---- what is saved: the adapter, or the trained tensors alone -------------------------------------------------

def _names(model: backbones.StagedModel, base: nn.Module) -> dict[int, str]:
    """id(tensor) → its name in the original module (timm's / BERT's keys); text's head (not inside the BERT
    module) as head.weight, head.bias."""
    out = {id(t): k for k, t in base.state_dict(keep_vars=True).items()}
    for k, t in model.head.state_dict(keep_vars=True).items():
        out.setdefault(id(t), f"head.{k}")
    return out


def head_tensors(model: backbones.StagedModel) -> dict[str, torch.Tensor]:
    lin = _head_linear(model)
    return {"head.weight": lin.weight.detach().cpu(), "head.bias": lin.bias.detach().cpu()}


def trained_tensors(cfg: PeftConfig, tuned: Tuned) -> dict[str, torch.Tensor]:
    """What must be saved to reproduce the fine-tuned model from the pretrained one: LoRA's adapter tensors (peft's
    keys) and the head; BitFit's biases and the head; the head alone; partial: every tensor of the stages that
    trained (BatchNorm's running statistics too); full and scratch: the whole state_dict."""
    method, _ = method_of(tuned.condition)
    model = tuned.model
    if method == "lora":
        from peft import get_peft_model_state_dict

        out = {k: v.detach().cpu() for k, v in get_peft_model_state_dict(tuned.peft_model).items()}
        return {**out, **head_tensors(model)}
    names = _names(model, tuned.base)
    if method in ("head", "bitfit"):
        keep = [p for p in model.parameters() if p.requires_grad]
        return {names[id(p)]: p.detach().cpu() for p in keep}
    if method in ("full", "scratch"):
        return full_state(cfg, tuned)
    first = len(model.stages) - (PARTIAL_STAGES if cfg.modality == "image" else 1 + cfg.layers)
    out = {}
    for stage in model.stages[first:]:
        for t in stage.state_dict(keep_vars=True).values():
            out[names[id(t)]] = t.detach().cpu()
    return out


def full_state(cfg: PeftConfig, tuned: Tuned) -> dict[str, torch.Tensor]:
    """The whole fine-tuned model's state_dict, as a plain model (LoRA merged into its weights)."""
    base = tuned.base if tuned.peft_model is None else copy.deepcopy(tuned.peft_model).merge_and_unload()
    state = {k: v.detach().cpu() for k, v in base.state_dict().items()}
    if cfg.modality == "text":
        state.update(head_tensors(tuned.model))     # the head is outside the BERT module
    return state


def to_safetensors(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    """Serialised with safetensors (each tensor its own contiguous copy); metadata as strings."""
    from safetensors.torch import save

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=meta or None)


def adapter_file(cfg: PeftConfig, tuned: Tuned, classes: list[str]) -> bytes:
    """LoRA's adapter and the head as one .safetensors file, with what rebuilds it in its metadata."""
    _, rank = method_of(tuned.condition)
    lc = lora_config(cfg, rank)
    targets = lc.target_modules if isinstance(lc.target_modules, str) else sorted(lc.target_modules)
    meta = {"format": "pt", "transfer_lab": "peft adapter", "peft_type": "LORA", "modality": cfg.modality,
            "backbone": cfg.backbone, "rank": rank, "lora_alpha": lc.lora_alpha, "target_modules": targets,
            "layers_to_transform": lc.layers_to_transform, "classes": classes, "scope": cfg.scope}
    return to_safetensors(trained_tensors(cfg, tuned), meta)


def read_metadata(raw: bytes) -> dict:
    """A .safetensors file's metadata (its JSON header's __metadata__), values decoded where they are JSON."""
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8:8 + n]).get("__metadata__") or {}
    out = {}
    for k, v in meta.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def load_adapter(raw: bytes, dev: torch.device | str = "cpu") -> backbones.StagedModel:
    """A LoRA adapter file (as `adapter_file` writes it) loaded into a fresh pretrained backbone: the registry's
    pretrained weights, peft's LoRA layers filled from the file, the file's head."""
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load

    meta = read_metadata(raw)
    if meta.get("peft_type") != "LORA":
        raise ValueError("not a LoRA adapter file written by Transfer Lab (its metadata has no peft_type LORA)")
    tensors = load(raw)
    modality, classes = meta["modality"], meta["classes"]
    base = base_module(modality, "pretrained", len(classes), seed=12345)   # another head init: the file's replaces it
    pm = wrap(base, LoraConfig(r=int(meta["rank"]), lora_alpha=float(meta["lora_alpha"]),
                                         target_modules=meta["target_modules"], lora_dropout=0.0,
                                         layers_to_transform=meta.get("layers_to_transform")))
    result = set_peft_model_state_dict(pm, {k: v for k, v in tensors.items() if "lora_" in k})
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"the adapter has keys this backbone lacks: {result.unexpected_keys[:3]}")
    model = staged(modality, pm.base_model.model, len(classes), 0)
    lin = _head_linear(model)
    with torch.no_grad():
        lin.weight.copy_(tensors["head.weight"])
        lin.bias.copy_(tensors["head.bias"])
    return model.to(dev).eval()


def merged_model(cfg: PeftConfig, tuned: Tuned) -> backbones.StagedModel:
    """LoRA merged into the weights (`merge_and_unload`: a plain timm / BERT module), staged, with the head."""
    plain = copy.deepcopy(tuned.peft_model).merge_and_unload()
    model = staged(cfg.modality, plain, len(_head_linear(tuned.model).bias), 0)
    lin = _head_linear(model)
    with torch.no_grad():
        lin.weight.copy_(_head_linear(tuned.model).weight)
        lin.bias.copy_(_head_linear(tuned.model).bias)
    return model.to(next(tuned.model.parameters()).device).eval()


# ---- forgetting ----------------------------------------------------------------------------------------------

@torch.no_grad()
def _body(model: backbones.StagedModel, prep: Prepared, depth: int) -> torch.Tensor:
    """The model's pooled features (every stage but the head) of the probe inputs; the untouched prefix from the
    cache."""
    n = len(model.stages)
    d = min(depth, n - 1)
    x = prep.cache.at(d, prep.probe) if d > 0 else prep.probe
    rest = nn.Sequential(*model.stages[d:n - 1]).eval()
    return torch.cat([rest(x[i:i + 64]) for i in range(0, len(x), 64)]) if len(rest) else x


@torch.no_grad()
def forgetting(model: backbones.StagedModel, prep: Prepared, depth: int) -> dict[str, float]:
    """images: top-1 agreement of the fine-tuned body under the original ImageNet head with the original model,
    and linear CKA of their pooled features, on the probe images; text: the mean cosine similarity of sentence
    embeddings before and after, on the held-out sentences."""
    n = len(prep.reference.stages)
    ref = prep.cache.at(n - 1, prep.probe)
    mine = _body(model, prep, depth)
    if prep.modality == "text":
        return {"cosine": float(nn.functional.cosine_similarity(mine, ref, dim=-1).mean())}
    head = prep.reference.head.eval()
    agree = (head(mine).argmax(1) == head(ref).argmax(1)).float().mean()
    return {"agreement": float(agree), "cka": linear_cka(mine, ref)}


# ---- one cell, measured -----------------------------------------------------------------------------------------

@dataclass
class Run:
    """One method, one seed: what was measured."""
    condition: str
    seed: int
    history: History
    val_acc: float
    trainable_params: int
    plain_params: int
    adapter_bytes: int
    full_bytes: int
    optimizer_bytes: int
    seconds_per_epoch: float
    forgetting: dict
    depth: int = 0                        # leading stages run once, from the cache
    merge_max_abs_diff: float | None = None
    reload_max_abs_diff: float | None = None
    adapter: bytes | None = field(default=None, repr=False)   # LoRA's file, first seed of each rank


def measure(cfg: PeftConfig, tuned: Tuned, prep: Prepared, full_bytes: dict, keep_adapter: bool) -> Run:
    """Everything the JSON says about one trained method: accuracy, counts, bytes, forgetting, merge and reload."""
    model = tuned.model
    method, _ = method_of(tuned.condition)
    hist = tuned.history
    val_acc = float(hist.val_acc[-1]) if hist.val_acc else float("nan")
    trainable = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    plain = int(sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name))
    adapter = adapter_file(cfg, tuned, prep.classes) if method == "lora" else None
    saved = len(adapter) if adapter is not None else len(to_safetensors(trained_tensors(cfg, tuned)))
    if "bytes" not in full_bytes:
        full_bytes["bytes"] = len(to_safetensors(full_state(cfg, tuned)))
    merge = reload = None
    if method == "lora":
        _, va = prep.split(cfg, tuned.seed)
        x_va = prep.inputs[va.to(prep.inputs.device)]
        probs = predict(model, x_va)
        merge = float((predict(merged_model(cfg, tuned), x_va) - probs).abs().max())
        if keep_adapter:
            reload = float((predict(load_adapter(adapter, prep.inputs.device), x_va) - probs).abs().max())
    return Run(tuned.condition, tuned.seed, hist, val_acc, trainable, plain, saved, full_bytes["bytes"],
               tuned.optimizer_bytes, tuned.fit_seconds / max(hist.epochs_run, 1), forgetting(model, prep, tuned.depth),
               tuned.depth, merge, reload, adapter if keep_adapter else None)


# ---- the result ---------------------------------------------------------------------------------------------------

def _num(v):
    return float(v) if v is not None and isinstance(v, (int, float)) and math.isfinite(v) else None


@dataclass
class PeftResult(contract.Result):
    config: PeftConfig
    classes: list[str] = field(default_factory=list)
    stage_names: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    cached_seconds: float = 0.0
    kind = "peft"
    headline = "val_acc"

    def by_condition(self, condition: str) -> list[Run]:
        return [r for r in self.runs if r.condition == condition]

    def ran(self) -> list[str]:
        return [c for c in self.config.conditions() if self.by_condition(c)]

    def values(self, key: str = "val_acc") -> dict[str, dict[int, float]]:
        """condition → {seed: value} of finished runs: validation accuracy, or a forgetting measure."""
        out = {}
        for c in self.ran():
            done = [r for r in self.by_condition(c) if r.history.status == "finished"]
            out[c] = {r.seed: (r.val_acc if key == "val_acc" else r.forgetting.get(key, float("nan"))) for r in done}
        return out

    @property
    def forgetting_keys(self) -> tuple[str, ...]:
        return ("agreement", "cka") if self.config.modality == "image" else ("cosine",)

    def method_row(self, condition: str) -> dict:
        runs = ([r for r in self.by_condition(condition) if r.history.status == "finished"]
                or self.by_condition(condition))
        first = runs[0]
        method, rank = method_of(condition)
        acc = contract.seed_stats([r.val_acc for r in runs])
        forget = {k: contract.seed_stats([r.forgetting[k] for r in runs]) for k in self.forgetting_keys}
        return {"method": method, "rank": rank, "condition": condition, "label": label(condition),
                "trainable_params": first.trainable_params, "plain_params": first.plain_params,
                "trainable_fraction": first.trainable_params / first.plain_params,
                "adapter_bytes": first.adapter_bytes, "full_bytes": first.full_bytes,
                "optimizer_bytes": int(np.median([r.optimizer_bytes for r in runs])),
                "val_acc_mean": acc["mean"], "val_acc_std": acc["std"], "val_acc_seeds": acc["seeds"],
                "seeds": [r.seed for r in runs],
                "forgetting": {k: v["mean"] for k, v in forget.items()},
                "forgetting_std": {k: v["std"] for k, v in forget.items()},
                "forgetting_seeds": {k: v["seeds"] for k, v in forget.items()},
                "seconds_per_epoch": float(np.mean([r.seconds_per_epoch for r in runs])),
                "cached_stages": first.depth, "status": first.history.status,
                "history": {k: getattr(first.history, k) for k in ("train_loss", "val_loss", "train_acc", "val_acc")}}

    def methods(self) -> list[dict]:
        return [self.method_row(c) for c in self.ran()]

    def subject(self) -> str | None:
        """The best PEFT method (BitFit or a LoRA rank) by mean validation accuracy: what the claim is about."""
        values = self.values()
        peft = [c for c in values if method_of(c)[0] in PEFT and values[c]]
        return claims.best_of(values, peft) if peft else None

    def against(self) -> list[str]:
        """Full fine-tuning, what PEFT stands in for; without it, the strongest other pretrained method."""
        values = self.values()
        if values.get("full"):
            return ["full"]
        return [c for c in ("partial", "head") if values.get(c)]

    def claim(self) -> claims.Claim | None:
        subject, against = self.subject(), self.against()
        return claims.compare(subject, self.values(), against) if subject and against else None

    def claim_vs_best(self) -> claims.Claim | None:
        """The best PEFT method against the strongest non-PEFT pretrained method (head, partial, full)."""
        subject = self.subject()
        others = [c for c in ("head", "partial", "full") if self.values().get(c)]
        return claims.compare(subject, self.values(), others) if subject and others else None

    def forgetting_claim(self, against: str) -> claims.Claim | None:
        key = self.forgetting_keys[0]
        values = self.values(key)
        subject = self.subject()
        if not subject or not values.get(against):
            return None
        return claims.compare(subject, values, [against], metric=key if key in claims.METRICS else "agreement")

    def merge_max_abs_diff(self) -> float | None:
        vals = [r.merge_max_abs_diff for r in self.runs if r.merge_max_abs_diff is not None]
        return max(vals) if vals else None

    def reload_max_abs_diff(self) -> float | None:
        vals = [r.reload_max_abs_diff for r in self.runs if r.reload_max_abs_diff is not None]
        return max(vals) if vals else None

    def adapters(self) -> dict[str, bytes]:
        """condition → its adapter file (first seed), for download."""
        return {r.condition: r.adapter for r in self.runs if r.adapter is not None}

    def body(self) -> dict:
        claim, best = self.claim(), self.claim_vs_best()
        forget = self.forgetting_claim(claim.against) if claim else None
        return {"modality": self.config.modality, "backbone": self.config.backbone, "dataset": self.config.dataset,
                "classes": self.classes, "stages": self.stage_names, "methods": self.methods(),
                "merge_max_abs_diff": _num(self.merge_max_abs_diff()),
                "reload_max_abs_diff": _num(self.reload_max_abs_diff()),
                "claim": claim.to_json() if claim else None,
                "claim_vs_best": best.to_json() if best else None,
                "forgetting_claim": forget.to_json() if forget else None,
                "forgetting_measure": self.forgetting_keys[0], "lora_targets": targets_text(self.config),
                "cached_seconds": round(self.cached_seconds, 3)}

    def metrics(self) -> dict[str, float]:
        out = {}
        subject = self.subject()
        for row in self.methods():
            c = row["condition"]
            out[f"{c}.val_acc"] = row["val_acc_mean"]
            out[f"{c}.trainable_fraction"] = row["trainable_fraction"]
            out.update({f"{c}.forgetting.{k}": v for k, v in row["forgetting"].items()})
            if c == subject:
                out["val_acc"] = row["val_acc_mean"]
        return {k: v for k, v in out.items() if _num(v) is not None}

    def curves(self) -> dict[str, list]:
        return {f"conditions.{c}.history.{k}":
                    contract.mean_curve([getattr(r.history, k) for r in self.by_condition(c)])
                for c in self.ran() for k in ("val_acc", "train_loss")}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        claim = self.claim()
        rows = {r["condition"]: r for r in self.methods()}
        if claim is None:
            numbers = "; ".join(f"{r['label']} {r['val_acc_mean']:.0%}" for r in rows.values())
            return Verdict("single", f"{numbers} (validation accuracy). Add a PEFT method (bitfit, lora) and full "
                                     f"fine-tuning to the methods for a claim.")
        s, a = rows[claim.subject], rows[claim.against]
        cost = (f"{label(claim.subject)} trains {_pct(s['trainable_fraction'])} of the weights "
                f"({s['trainable_params']:,} vs {a['trainable_params']:,}) and saves {_size(s['adapter_bytes'])} "
                f"instead of {_size(a['adapter_bytes'])}")
        forget = self.forgetting_claim(claim.against)
        measure_ = self.forgetting_keys[0]
        what = ("top-1 agreement with the original ImageNet model on images no method trained on" if measure_ ==
                "agreement" else "cosine similarity of sentence embeddings before and after, on held-out sentences")
        if forget is None:
            forgets = ""
        else:
            words = {"helped": "it forgets less", "hurt": "it forgets more", "tie": "forgetting ties",
                     "single": "forgetting, one seed"}[forget.kind]
            forgets = (f"; {words}: {what} {forget.subject_mean:.2f} vs {forget.against_mean:.2f}"
                       + (f" (95% interval of the gap {forget.low:+.2f} to {forget.high:+.2f})"
                          if forget.seeds > 1 else ""))
        return Verdict(claim.kind, f"{claim.sentence(label(claim.subject), label(claim.against))} {cost}{forgets}.")


def _pct(f: float) -> str:
    return f"{f:.1%}" if f >= 0.01 else f"{f:.2%}"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


def targets_text(cfg: PeftConfig) -> str:
    """LoRA's target layers in words."""
    if cfg.modality == "image":
        where = "every block (1-7)" if cfg.scope == "all" else "block 7"
        return (f"the 1×1 convolutions (conv_pw expansion, conv_pwl projection) of {where} and conv_head; "
                f"depthwise convs left alone")
    where = "every layer (1-6)" if cfg.scope == "all" else (
        f"the last {cfg.layers} layers ({', '.join(str(i + 1) for i in range(text.LAYERS - cfg.layers, text.LAYERS))})")
    return f"attention query and value of {where}"


# ---- run -------------------------------------------------------------------------------------------------------------

def run(cfg: PeftConfig = PeftConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> PeftResult:
    """Every (method, seed) of cfg: accuracy, costs, forgetting; merge and reload checked on LoRA. On the CPU with
    one thread: at these sizes (48 px images, 24-token sentences) splitting each product over threads costs more
    than it saves, 2-5x on a busy 2-core machine (measured)."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    dev = devices.pick(device)
    with devices.one_cpu_thread(dev):
        return _run(cfg, progress, should_stop, dev)


def _run(cfg: PeftConfig, progress, should_stop, dev: torch.device) -> PeftResult:
    start = time.perf_counter()
    prep = prepare(cfg, dev)
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):   # a class too small fails before any training
        prep.split(cfg, seed)
    cached_before = prep.cache.seconds
    result = PeftResult(config=cfg, classes=list(prep.classes), stage_names=list(prep.reference.names),
                        device=devices.describe(dev))
    full_bytes: dict = {}
    kept: set = set()

    def train_one(cell, on_epoch, should_stop):
        tuned = fine_tune(cfg, cell.condition, cell.seed, prep, dev, {"on_epoch": on_epoch, "should_stop": should_stop})
        keep = tuned.condition.startswith("lora") and tuned.condition not in kept
        kept.add(tuned.condition)
        return measure(cfg, tuned, prep, full_bytes, keep)

    out = contract.run_cells(contract.plan(cfg.conditions(), cfg.seeds, cfg.seed), train_one, progress, should_stop,
                             epochs=cfg.epochs)
    result.runs, result.status, result.message = out.results, out.status, out.message
    result.cached_seconds = prep.cache.seconds - cached_before
    result.seconds = time.perf_counter() - start
    return result


# ---- the command line ----------------------------------------------------------------------------------------------

def table(out: dict) -> list[dict]:
    """One row per method as a table shows it (page and CLI)."""
    rows = []
    for m in out["methods"]:
        f = m["forgetting"]
        rows.append({"method": m["label"], "val acc": f"{m['val_acc_mean']:.1%} ± {m['val_acc_std']:.1%}",
                     "trainable": f"{m['trainable_params']:,} ({_pct(m['trainable_fraction'])})",
                     "saved": f"{_size(m['adapter_bytes'])} of {_size(m['full_bytes'])}",
                     "Adam state": _size(m["optimizer_bytes"]),
                     "forgetting": ", ".join(f"{k} {v:.2f}" for k, v in f.items()),
                     "s/epoch": f"{m['seconds_per_epoch']:.2f}"})
    return rows


def _text(result: PeftResult, out: dict) -> str:
    cfg = result.config
    rows = table(out)
    cols = list(rows[0]) if rows else []
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = [f"{cfg.backbone} on {cfg.dataset} ({len(result.classes)} classes), {cfg.shots} per class, "
             f"{cfg.seeds} seed(s), on {result.device} in {result.seconds:.1f} s; LoRA on {out['lora_targets']}",
             "  ".join(c.ljust(width[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(width[c]) for c in cols) for r in rows]
    if out["merge_max_abs_diff"] is not None:
        lines.append(f"LoRA merged vs adapter: largest probability difference {out['merge_max_abs_diff']:.2e}; "
                     f"adapter reloaded alone: {out['reload_max_abs_diff']:.2e}")
    return "\n".join(lines + [out["verdict"]])


EXPERIMENTS = (
    contract.Experiment("peft", "parameter-efficient fine-tuning: LoRA and BitFit beside head-only, partial and full "
                                "fine-tuning: accuracy, weights trained, bytes saved, optimizer state, forgetting",
                        PeftConfig, run, text=_text),
)
