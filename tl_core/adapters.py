"""Adapters on the registry's staged backbones: LoRA (Hugging Face `peft`) and BitFit, and their files. Beside
`tl_core.state` (whole state_dicts: read, inspect, load; the workshop describes an adapter file with
`state.adapter_notes`), this is what builds, saves, reloads and merges the small trained part.

    config = lora_config("image", rank=4, scale=2.0)                  # block 7's 1×1 convs and conv_head
    base = base_module("image", "pretrained", n_classes, seed)       # timm's Lite0 (ImageNet) / the BERT encoder
    pm = wrap(base, config)                                           # LoRA layers beside the frozen weights
    model = staged("image", pm.base_model.model, n_classes, seed)     # the registry's staged model, sharing them
    ...train the adapters and the head...
    raw = adapter_file(model, pm, config, "image", classes, "last")   # adapter + head, one .safetensors file
    again = load_adapter(raw)                                         # a fresh pretrained backbone + the file
    plain = merged(model, pm, "image")                                # LoRA merged into the weights: a plain model

Targets: images: the 1×1 convolutions (conv_pw: expansion, conv_pwl: projection) of the adapted blocks and
conv_head (groups=1 convs only; the depthwise convs are left alone); text: attention query and value of the adapted
layers. BitFit trains biases only, inside `KeepStats` so that BatchNorm's running statistics stay as pretrained.
"""
from __future__ import annotations

import copy
import functools
import json

import torch
from torch import nn

from tl_core import backbones, text

BACKBONES = {"image": "efficientnet_lite0", "text": "minilm_l6"}   # what is adapted, per modality


@functools.lru_cache(maxsize=2)
def template(modality: str) -> nn.Module:
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
        return copy.deepcopy(template("text")) if weights == "pretrained" else text.build_encoder(False)
    name = BACKBONES["image"]
    if weights == "scratch":
        return backbones.original(name, "scratch", n_classes, seed)
    model = copy.deepcopy(template("image"))
    backbones.replace_head(model, backbones.entry(name).split(model)[-1][1], n_classes, seed)
    return model


def staged(modality: str, module: nn.Module, n_classes: int, seed: int) -> backbones.StagedModel:
    """The original module as the registry's staged model (sharing its modules); a new head when needed."""
    return backbones.create(BACKBONES[modality], module=module, num_classes=n_classes, seed=seed)


def lora_config(modality: str, rank: int, scale: float, scope: str = "last", layers: int = 2):
    """peft's LoraConfig for one rank, lora_alpha = scale · rank: images: the 1×1 convs (conv_pw, conv_pwl) of the
    adapted blocks (scope "last": block 7; "all": every block) and conv_head (timm's names; groups=1 only); text:
    attention query and value of the adapted layers (scope "last": the last `layers`; "all": every layer)."""
    from peft import LoraConfig

    common = dict(r=rank, lora_alpha=scale * rank, lora_dropout=0.0, bias="none")
    if modality == "image":
        blocks = r"\d+" if scope == "all" else "6"      # Lite0's block 7 is timm's blocks.6
        return LoraConfig(target_modules=rf"blocks\.{blocks}\.\d+\.(conv_pw|conv_pwl)|conv_head", **common)
    which = None if scope == "all" else list(range(text.LAYERS - layers, text.LAYERS))
    return LoraConfig(target_modules=["query", "value"], layers_to_transform=which, **common)


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


def head_linear(model: backbones.StagedModel) -> nn.Linear:
    return [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]


def tensor_names(model: backbones.StagedModel, base: nn.Module) -> dict[int, str]:
    """id(tensor) → its name in the original module (timm's / BERT's keys); text's head (not inside the BERT
    module) as head.weight, head.bias."""
    out = {id(t): k for k, t in base.state_dict(keep_vars=True).items()}
    for k, t in model.head.state_dict(keep_vars=True).items():
        out.setdefault(id(t), f"head.{k}")
    return out


def head_tensors(model: backbones.StagedModel) -> dict[str, torch.Tensor]:
    lin = head_linear(model)
    return {"head.weight": lin.weight.detach().cpu(), "head.bias": lin.bias.detach().cpu()}


def adapter_tensors(model: backbones.StagedModel, peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """LoRA's adapter tensors (peft's keys) and the head: what reproduces the fine-tuned model from the pretrained
    one."""
    from peft import get_peft_model_state_dict

    out = {k: v.detach().cpu() for k, v in get_peft_model_state_dict(peft_model).items()}
    return {**out, **head_tensors(model)}


def plain_state(model: backbones.StagedModel, base: nn.Module, peft_model: nn.Module | None,
                modality: str) -> dict[str, torch.Tensor]:
    """The whole fine-tuned model's state_dict, as a plain model (LoRA merged into its weights)."""
    base = base if peft_model is None else copy.deepcopy(peft_model).merge_and_unload()
    state = {k: v.detach().cpu() for k, v in base.state_dict().items()}
    if modality == "text":
        state.update(head_tensors(model))     # the head is outside the BERT module
    return state


def to_safetensors(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    """Serialised with safetensors (each tensor its own contiguous copy); metadata as strings."""
    from safetensors.torch import save

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=meta or None)


def adapter_file(model: backbones.StagedModel, peft_model: nn.Module, config, modality: str, classes: list[str],
                 scope: str) -> bytes:
    """LoRA's adapter (`config`, its LoraConfig) and the head as one .safetensors file, with what rebuilds it in its
    metadata."""
    targets = config.target_modules if isinstance(config.target_modules, str) else sorted(config.target_modules)
    meta = {"format": "pt", "transfer_lab": "peft adapter", "peft_type": "LORA", "modality": modality,
            "backbone": BACKBONES[modality], "rank": config.r, "lora_alpha": config.lora_alpha,
            "target_modules": targets, "layers_to_transform": config.layers_to_transform, "classes": classes,
            "scope": scope}
    return to_safetensors(adapter_tensors(model, peft_model), meta)


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
    lin = head_linear(model)
    with torch.no_grad():
        lin.weight.copy_(tensors["head.weight"])
        lin.bias.copy_(tensors["head.bias"])
    return model.to(dev).eval()


def merged(model: backbones.StagedModel, peft_model: nn.Module, modality: str) -> backbones.StagedModel:
    """LoRA merged into the weights (`merge_and_unload`: a plain timm / BERT module), staged, with the head."""
    plain = copy.deepcopy(peft_model).merge_and_unload()
    out = staged(modality, plain, len(head_linear(model).bias), 0)
    lin = head_linear(out)
    with torch.no_grad():
        lin.weight.copy_(head_linear(model).weight)
        lin.bias.copy_(head_linear(model).bias)
    return out.to(next(model.parameters()).device).eval()
