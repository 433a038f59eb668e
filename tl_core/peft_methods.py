"""The parameter-efficient fine-tuning methods as the peft experiment (`tl_core.experiments.peft`) trains them:
its settings (`PeftConfig`), the data every cell of a run shares (`PeftInputs`: inputs, probe inputs, the pretrained
reference and its frozen-prefix cache), a method built with exactly its parameters trainable (`build`), trained
through THE training loop (`fine_tune`), and what it must save (`trained_tensors`).

    head     feature extraction: only a new linear head trains
    bitfit   the biases of the adapted stages (`scope`) and the head (BatchNorm statistics kept as pretrained)
    lora     LoRA at each rank r beside the adapted stages' target weights (`tl_core.adapters`), and the head
    partial  the last stages train whole;  full  every stage, from the pretrained weights
    scratch  every stage, from random weights
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from tl_core import adapters, backbones, data, finetuning, forgetting, freeze, text
from tl_core.contract import setting
from tl_core.train import FitConfig, History, caught_optimizer, fit, optimizer_state_bytes

# ---- the settings -----------------------------------------------------------------------------------------

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
        return adapters.BACKBONES[self.modality]

    def conditions(self) -> list[str]:
        """Every method as a condition: lora once per rank (lora_r4)."""
        return [c for m in self.methods for c in ([f"lora_r{r}" for r in self.ranks] if m == "lora" else [m])]


def method_of(condition: str) -> tuple[str, int | None]:
    """'lora_r4' → ('lora', 4); 'full' → ('full', None)."""
    if condition.startswith("lora_r"):
        return "lora", int(condition[len("lora_r"):])
    return condition, None


# ---- the data, the probe inputs (`tl_core.forgetting`), the pretrained reference ---------------------------

@dataclass
class PeftInputs:
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
SHARED: dict[tuple, PeftInputs] = {}


def prepare(cfg: PeftConfig, dev: torch.device) -> PeftInputs:
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
        probe = forgetting.probe_images(cfg.probe_size, cfg.dataset)
        reference = adapters.staged("image", copy.deepcopy(adapters.template("image")), None, 0)   # ImageNet head
    else:
        ds = text.load(cfg.dataset, cfg.topics)
        inputs, labels, classes = text.encode(ds.texts, cfg.max_length), ds.labels, list(ds.classes)
        probe = text.encode(forgetting.held_out_sentences(cfg.topics), cfg.max_length)
        reference = adapters.staged("text", copy.deepcopy(adapters.template("text")), 2, 0)
    reference = reference.to(dev).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    prep = PeftInputs(cfg.modality, inputs.to(dev), labels.to(dev), classes, probe.to(dev), reference,
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
    """peft's LoraConfig for one rank of cfg (`adapters.lora_config`: targets by modality and scope)."""
    return adapters.lora_config(cfg.modality, rank, cfg.lora_scale, cfg.scope, cfg.layers)


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


def build(cfg: PeftConfig, condition: str, n_classes: int, seed: int, dev: torch.device):
    """(staged model, original module, PeftModel or None) for a method, with exactly its parameters trainable."""
    method, rank = method_of(condition)
    base = adapters.base_module(cfg.modality, "scratch" if method == "scratch" else "pretrained", n_classes, seed)
    pm = None
    if method == "lora":
        pm = adapters.wrap(base, lora_config(cfg, rank))
        base = pm.base_model.model
    model = adapters.staged(cfg.modality, base, n_classes, seed).to(dev)
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


def fine_tune(cfg: PeftConfig, condition: str, seed: int, prep: PeftInputs, dev: torch.device,
              hooks: dict | None = None) -> Tuned:
    """Train one method on one seed through THE training loop (`train.fit`): the leading stages the method leaves
    frozen and untouched come from the cache; the head at `lr`, adapters and biases at `adapter_lr`, pretrained
    weights at `full_lr` (images) or `encoder_lr` (text)."""
    hooks = dict(hooks or {})
    method, _ = method_of(condition)
    tr, va = prep.split(cfg, seed)
    model, base, pm = build(cfg, condition, len(prep.classes), seed, dev)
    depth = untouched(model)
    stop = hooks.get("should_stop")
    if cfg.cache and depth > 0:
        net = model.suffix(depth)
        x_tr, x_va = prep.cache.at(depth, prep.inputs, tr, stop), prep.cache.at(depth, prep.inputs, va, stop)
    else:
        net, x_tr, x_va = model, prep.inputs[tr.to(prep.inputs.device)], prep.inputs[va.to(prep.inputs.device)]
    if method == "bitfit" and cfg.modality == "image":
        net = adapters.KeepStats(net)
    head = list(model.head.parameters())
    ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    body_lr = cfg.adapter_lr if method in PEFT else cfg.full_lr if cfg.modality == "image" else cfg.encoder_lr
    groups = [{"params": head, "lr": cfg.lr}] + ([{"params": body, "lr": body_lr}] if body else [])
    torch.manual_seed(seed)   # dropout in what trains draws from torch's stream: seeded per run
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
    with caught_optimizer(head[0]) as caught:
        hist = fit(net, (x_tr, prep.labels[tr]), (x_va, prep.labels[va]), fit_cfg, params=groups, **hooks)
    return Tuned(condition, seed, model, base, pm, depth, hist, optimizer_state_bytes(caught.get("opt")),
                 hist.seconds)


def untouched(model: backbones.StagedModel) -> int:
    """Leading stages with no trainable parameter, the head never among them (LoRA's adapters are trainable, so an
    adapted stage counts as touched): their outputs are the pretrained prefix's, the same for every method and
    seed."""
    return min(freeze.frozen_stages(model), len(model.stages) - 1)


# ---- what is saved: the adapter, or the trained tensors alone -------------------------------------------------

def trained_tensors(cfg: PeftConfig, tuned: Tuned) -> dict[str, torch.Tensor]:
    """What must be saved to reproduce the fine-tuned model from the pretrained one: LoRA's adapter tensors (peft's
    keys) and the head; BitFit's biases and the head; the head alone; partial: every tensor of the stages that
    trained (BatchNorm's running statistics too); full and scratch: the whole state_dict."""
    method, _ = method_of(tuned.condition)
    model = tuned.model
    if method == "lora":
        return adapters.adapter_tensors(model, tuned.peft_model)
    names = adapters.tensor_names(model, tuned.base)
    if method in ("head", "bitfit"):
        keep = [p for p in model.parameters() if p.requires_grad]
        return {names[id(p)]: p.detach().cpu() for p in keep}
    if method in ("full", "scratch"):
        return adapters.plain_state(model, tuned.base, tuned.peft_model, cfg.modality)
    first = len(model.stages) - (PARTIAL_STAGES if cfg.modality == "image" else 1 + cfg.layers)
    out = {}
    for stage in model.stages[first:]:
        for t in stage.state_dict(keep_vars=True).values():
            out[names[id(t)]] = t.detach().cpu()
    return out
