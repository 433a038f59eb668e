"""The state_dict workshop: how weights travel in PyTorch.

A state_dict is an ordered dict of named tensors. This module reads one safely from a file, inspects
it (keys, shapes, dtypes, elements per module, total size), exports a lab model's weights whole,
encoder only (every stage but the head) or head only, and loads a state_dict into a chosen
architecture with a report of **missing**, **unexpected** and **shape-mismatched** keys instead of
PyTorch's traceback. Then the loaded model can go on fine-tuning through `train.fit`.

Safety: `.pt`/`.pth` files are read with `torch.load(weights_only=True)`, which refuses any pickled
code (a `__reduce__` that calls os.system) and any pickled class (a whole saved nn.Module); the
refusal becomes one clear message. `.safetensors` files hold raw tensors only.

Architectures are a dict name → factory: every backbone of the registry is one, built as the
original model (torchvision / timm / ShapesCNN key names, so real-world checkpoints line up).
Register another with one line, e.g. `ARCHITECTURES["ssl_encoder"] = lambda weights, num_classes: Encoder()`.
"""
from __future__ import annotations

import copy
import functools
import io
import pickle
import pickletools
import re
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from tl_core import backbones, data, device as devices
from tl_core.train import FitConfig, History, fit

MAX_MB = 200            # the upload limit (Streamlit's server.maxUploadSize says the same)
PARTS = ("full", "encoder", "head")
FORMATS = ("pt", "safetensors")
# checkpoints often wrap the state_dict: {"state_dict": ..., "epoch": 3, "optimizer": ...}
WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params", "module")

Factory = Callable[[str, "int | None"], nn.Module]   # (weights "pretrained"/"scratch", num_classes) → model


# ---- architectures ---------------------------------------------------------------------------------

def _replace_module(root: nn.Module, target: nn.Module, new: nn.Module) -> None:
    """Put `new` where `target` sits inside `root` (found by identity)."""
    for name, module in root.named_modules():
        if module is target:
            parent_name, _, attr = name.rpartition(".")
            setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)
            return
    raise ValueError("the head layer is not inside the model")


def _backbone(name: str, weights: str = "scratch", num_classes: int | None = None) -> nn.Module:
    """A registry backbone as its original module (key names as torchvision / timm write them)."""
    e = backbones.entry(name)
    if weights not in backbones.WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(backbones.WEIGHTS)}, got {weights!r}")
    torch.manual_seed(0)
    model = e.build(weights == "pretrained")
    if num_classes is not None:
        head = e.split(model)[-1][1]
        linear = head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        _replace_module(model, linear, nn.Linear(linear.in_features, num_classes))
    return model


ARCHITECTURES: dict[str, Factory] = {name: functools.partial(_backbone, name) for name in backbones.REGISTRY}


def _ssl(data_name: str, downstream: bool, weights: str, num_classes: int | None) -> nn.Module:
    """The self-supervised page's Encoder (as saved by its download button), or the DownstreamModel
    that reuses it: load an encoder file into the latter to see why the prefix `encoder.` matters."""
    from tl_core import ssl

    cfg = ssl.SSLConfig(data=data_name)
    features, classes = (ssl.GENES, ssl.CELL_TYPES) if data_name == "expression" else (ssl.DIGIT_SIDE ** 2, 10)
    encoder = ssl.Encoder(features, cfg.hidden, cfg.latent)
    return ssl.DownstreamModel(encoder, nn.Linear(cfg.latent, num_classes or classes)) if downstream else encoder


for _data in ("expression", "digits"):
    ARCHITECTURES[f"ssl_encoder_{_data}"] = functools.partial(_ssl, _data, False)
    ARCHITECTURES[f"ssl_downstream_{_data}"] = functools.partial(_ssl, _data, True)


def build(arch: str, weights: str = "scratch", num_classes: int | None = None) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    if num_classes is not None and not 1 <= num_classes <= 100_000:
        raise ValueError(f"num-classes must be between 1 and 100000, got {num_classes}")
    return ARCHITECTURES[arch](weights, num_classes)


def key_groups(arch: str, model: nn.Module) -> dict[str, str]:
    """state_dict key → the module it belongs to, in order, the head last. Registry backbones use their
    freezable stages (the lab's vocabulary); other architectures their top-level children."""
    tensors = model.state_dict(keep_vars=True)
    owner: dict[int, str] = {}
    if arch in backbones.REGISTRY:
        for stage_name, stage in backbones.entry(arch).split(model):
            for t in stage.state_dict(keep_vars=True).values():
                owner.setdefault(id(t), stage_name)
    else:
        for child_name, child in model.named_children():
            for t in child.state_dict(keep_vars=True).values():
                owner.setdefault(id(t), child_name)
    return {k: owner.get(id(t), "other") for k, t in tensors.items()}


def head_keys(arch: str, model: nn.Module) -> list[str]:
    groups = key_groups(arch, model)
    last = [g for g in groups.values() if g != "other"][-1]
    return [k for k, g in groups.items() if g == last]


def parts(arch: str, weights: str = "pretrained") -> dict[str, dict[str, torch.Tensor]]:
    """A lab model's state_dict three ways: full, encoder only (every stage but the head), head only."""
    model = build(arch, weights)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    head = set(head_keys(arch, model))
    return {"full": state, "encoder": {k: v for k, v in state.items() if k not in head},
            "head": {k: v for k, v in state.items() if k in head}}


def export(arch: str, weights: str = "pretrained", part: str = "full") -> dict[str, torch.Tensor]:
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    return {k: v.clone() for k, v in parts(arch, weights)[part].items()}


def to_bytes(state: dict[str, torch.Tensor], fmt: str = "pt") -> bytes:
    if fmt == "safetensors":
        from safetensors.torch import save

        return save({k: v.detach().clone().contiguous() for k, v in state.items()})  # no shared storage
    if fmt != "pt":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


# ---- safe reading -----------------------------------------------------------------------------------

@dataclass
class StateFile:
    name: str
    state: dict[str, torch.Tensor]
    format: str                       # "pt" or "safetensors"
    notes: list[str] = field(default_factory=list)   # what was unwrapped or ignored, in plain words


def _pickle_globals(raw: bytes) -> list[str]:
    """The module.name references in a plain pickle, read statically (pickletools runs nothing)."""
    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(raw)):
            if op.name == "GLOBAL":
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a truncated or non-pickle stream: whatever was found so far
        pass
    return [g for g in found if not g.startswith(("torch.", "collections.OrderedDict", "_codecs."))]


def _unpickle_refusal(name: str, err: Exception, raw: bytes) -> ValueError:
    found = _pickle_globals(raw) or re.findall(r"GLOBAL ([\w.]+)", str(err))
    if not found:
        return ValueError(f"{name}: not a PyTorch file, or a corrupt one (torch.load could not read it)")
    what = found[0]
    if what.split(".")[0] in ("torch", "torchvision", "timm") or "." in what and what.rsplit(".", 1)[1][:1].isupper():
        hint = "It looks like a whole saved model (torch.save(model)): save model.state_dict() instead."
    else:
        hint = "That is code, not weights: never load this file with weights_only=False."
    return ValueError(f"{name}: refused — the file asks to import or run {what} when unpickled, and Transfer "
                      f"Lab loads only tensors (torch.load with weights_only=True). {hint}")


def _as_state_dict(obj, name: str, notes: list[str]) -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        raise ValueError(f"{name}: the file holds one tensor of shape {tuple(obj.shape)}, not a state_dict "
                         f"(a dict of named tensors)")
    for _ in range(3):  # unwrap nested checkpoints such as {"model": {"state_dict": {...}}}
        if not isinstance(obj, dict):
            raise ValueError(f"{name}: the file holds a {type(obj).__name__}, not a state_dict (a dict of named tensors)")
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((w for w in WRAPPERS if isinstance(obj.get(w), dict)), None)
        if inner is None:
            dicts = [k for k, v in obj.items() if isinstance(v, dict)]
            inner = dicts[0] if len(dicts) == 1 else None
        if inner is None:
            shown = ", ".join(map(str, list(obj)[:6])) or "nothing"
            raise ValueError(f"{name}: a dict without tensors (keys: {shown}), not a state_dict")
        others = [str(k) for k in obj if k != inner]
        notes.append(f"unwrapped checkpoint[{inner!r}]" + (f" (also in the file: {', '.join(others[:6])})" if others else ""))
        obj = obj[inner]
    bad = [k for k in obj if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{name}: keys must be names (strings), found {bad[0]!r}: not a state_dict")
    dropped = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if dropped:
        notes.append(f"ignored {len(dropped)} entries that are not tensors: {', '.join(dropped[:6])}")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{name}: no tensors in the file, not a state_dict")
    return state


def read(raw: bytes, name: str = "file") -> StateFile:
    """A state_dict from a file's bytes, safely; ValueError with a clear message for anything else."""
    if len(raw) == 0:
        raise ValueError(f"{name}: the file is empty (0 bytes)")
    if len(raw) > MAX_MB * 2**20:
        raise ValueError(f"{name}: {len(raw) / 2**20:.0f} MB is over the {MAX_MB} MB limit")
    notes: list[str] = []
    # safetensors: 8 bytes of header length, then a JSON header; trust the content over the extension
    if name.lower().endswith(".safetensors") or (len(raw) > 9 and raw[8:9] == b"{"
                                                 and int.from_bytes(raw[:8], "little") < len(raw)):
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError:
            raise ValueError(f"{name}: .safetensors files need the safetensors package, which is not "
                             f"installed here; save a .pt file instead") from None
        try:
            return StateFile(name, dict(load_safetensors(raw)), "safetensors", notes)
        except Exception as err:  # the library raises its own error types for corrupt headers
            raise ValueError(f"{name}: not a valid safetensors file ({str(err).splitlines()[0][:120]})") from None
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols; the refusal says enough
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unpickle_refusal(name, err, raw) from None
    except Exception:  # truncated zip, random bytes, EOF: all mean "not a file we can read"
        raise ValueError(f"{name}: not a PyTorch file, or a corrupt or truncated one (torch.load could not "
                         f"read it)") from None
    return StateFile(name, _as_state_dict(obj, name, notes), "pt", notes)


def read_path(path: str | Path) -> StateFile:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if path.stat().st_size > MAX_MB * 2**20:
        raise ValueError(f"{path.name}: {path.stat().st_size / 2**20:.0f} MB is over the {MAX_MB} MB limit")
    return read(path.read_bytes(), path.name)


# ---- inspection ------------------------------------------------------------------------------------

def file_groups(keys) -> dict[str, str]:
    """key → module for a file without an architecture: its first name below a prefix every key shares
    (module., encoder.), split by block number when it holds three or more numbered blocks (blocks.3)."""
    keys = list(keys)
    split = [k.split(".") for k in keys]
    depth = 0
    while len(keys) > 1 and all(len(s) > depth + 1 for s in split) and len({s[depth] for s in split}) == 1:
        depth += 1
    numbered: dict[str, set] = {}
    for s in split:
        if len(s) > depth + 2 and s[depth + 1].isdigit():
            numbered.setdefault(".".join(s[:depth + 1]), set()).add(s[depth + 1])
    out = {}
    for k, s in zip(keys, split):
        top = ".".join(s[:depth + 1])
        out[k] = f"{top}.{s[depth + 1]}" if len(numbered.get(top, ())) >= 3 else top
    return out


@dataclass
class Inspection:
    name: str
    rows: list[dict]               # key, shape, dtype, elements, bytes, module
    groups: list[dict]             # module, keys, elements, bytes (in order of first appearance)
    notes: list[str]
    seconds: float = 0.0

    @property
    def total_elements(self) -> int:
        return sum(r["elements"] for r in self.rows)

    @property
    def total_bytes(self) -> int:
        return sum(r["bytes"] for r in self.rows)

    def to_json(self) -> dict:
        return {"experiment": "inspect", "config": {"name": self.name}, "status": "finished", "device": "cpu",
                "seconds": round(self.seconds, 3), "n_keys": len(self.rows), "total_elements": self.total_elements,
                "total_bytes": self.total_bytes, "total_mb": round(self.total_bytes / 2**20, 3),
                "notes": self.notes, "groups": self.groups, "keys": self.rows}


def inspect(state: dict[str, torch.Tensor], name: str = "state_dict", groups: dict[str, str] | None = None,
            notes: list[str] | None = None) -> Inspection:
    start = time.perf_counter()
    groups = groups or file_groups(state)
    rows = [{"key": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
             "elements": v.numel(), "bytes": v.numel() * v.element_size(), "module": groups.get(k, "other")}
            for k, v in state.items()]
    per: dict[str, dict] = {}
    for r in rows:
        g = per.setdefault(r["module"], {"module": r["module"], "keys": 0, "elements": 0, "bytes": 0})
        g["keys"] += 1
        g["elements"] += r["elements"]
        g["bytes"] += r["bytes"]
    return Inspection(name, rows, list(per.values()), list(notes or []), time.perf_counter() - start)


@functools.lru_cache(maxsize=None)
def lab_groups(arch: str) -> dict[str, str]:
    """key → stage for a lab architecture (built once per process, from scratch)."""
    return key_groups(arch, build(arch, "scratch"))


def inspect_lab(arch: str, weights: str = "pretrained", part: str = "full") -> Inspection:
    """Inspect a lab model's export, its keys grouped by the backbone's stages."""
    return inspect(export(arch, weights, part), f"{arch} ({weights}, {part})", lab_groups(arch))


# ---- loading into an architecture ----------------------------------------------------------------

def rename(state: dict[str, torch.Tensor], strip: str = "", add: str = "") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip a prefix from the keys that have it, then add one to every key; notes say what changed."""
    notes = []
    if strip:
        hit = sum(k.startswith(strip) for k in state)
        state = {(k[len(strip):] if k.startswith(strip) else k): v for k, v in state.items()}
        notes.append(f"stripped {strip!r} from {hit} of {len(state)} keys")
    if add:
        state = {add + k: v for k, v in state.items()}
        notes.append(f"added {add!r} to every key")
    return state, notes


@dataclass(frozen=True)
class LoadConfig:
    arch: str = "shapes_cnn"          # an ARCHITECTURES name
    num_classes: int | None = None    # replace the head for this many classes; None = the architecture's own
    strict: bool = True               # strict: every key must match in name and shape, or nothing loads
    strip_prefix: str = ""            # e.g. "module." (DataParallel) or "encoder."
    add_prefix: str = ""
    init: str = "scratch"             # the weights the model starts from, before the file's are loaded


@dataclass
class LoadReport:
    config: LoadConfig
    file: str
    missing: list[str]                # in the model, not in the file: they keep their initial values
    unexpected: list[str]             # in the file, not in the model: ignored
    mismatched: list[dict]            # key, file_shape, model_shape
    loaded: list[str]                 # copied into the model
    outcome: str                      # "loaded" (all matched), "partial" (strict off), "refused" (strict)
    notes: list[str]
    hints: list[str]
    model: nn.Module | None = None    # the model, with what loaded (None when refused)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome != "refused"

    def message(self) -> str:
        counts = (f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                  f"{len(self.mismatched)} shape-mismatched")
        if self.outcome == "loaded":
            return f"Loaded all {len(self.loaded)} tensors into {self.config.arch}: names and shapes match."
        if self.outcome == "partial":
            return (f"strict off: loaded {len(self.loaded)} matching tensors into {self.config.arch}; the rest "
                    f"did not load ({counts}). Missing keys keep their {self.config.init} values.")
        return (f"Strict loading into {self.config.arch} failed: {counts}. Nothing was loaded: the architecture "
                f"must be the same.")

    def to_json(self) -> dict:
        return {"experiment": "load", "config": asdict(self.config), "file": self.file, "status": "finished",
                "outcome": self.outcome, "ok": self.ok, "message": self.message(), "device": "cpu",
                "seconds": round(self.seconds, 3), "n_loaded": len(self.loaded), "n_missing": len(self.missing),
                "n_unexpected": len(self.unexpected), "n_mismatched": len(self.mismatched),
                "missing": self.missing, "unexpected": self.unexpected, "mismatched": self.mismatched,
                "notes": self.notes, "hints": self.hints}


def _hints(state: dict, target: dict, mismatched: list[dict], arch: str, model: nn.Module) -> list[str]:
    """What would fix it: a prefix to strip or add, or a head for another number of classes."""
    hints = []
    file_keys, model_keys = set(state), set(target)
    if not file_keys & model_keys:
        firsts = Counter(k.split(".")[0] + "." for k in file_keys if "." in k)
        for prefix, _ in firsts.most_common(3):
            if sum(k[len(prefix):] in model_keys for k in file_keys if k.startswith(prefix)) >= len(model_keys) // 2:
                hints.append(f"strip the prefix {prefix!r}: then {sum(k[len(prefix):] in model_keys for k in file_keys)} "
                             f"keys match")
                break
        model_firsts = Counter(k.split(".")[0] + "." for k in model_keys if "." in k)
        for prefix, _ in model_firsts.most_common(3):
            if sum(prefix + k in model_keys for k in file_keys) >= len(file_keys) // 2:
                hints.append(f"add the prefix {prefix!r}: then {sum(prefix + k in model_keys for k in file_keys)} keys match")
                break
    head = set(head_keys(arch, model)) if arch in ARCHITECTURES else set()
    if mismatched and all(m["key"] in head for m in mismatched):
        classes = {m["file_shape"][0] for m in mismatched if m["file_shape"]}
        if len(classes) == 1:
            hints.append(f"only the head differs: the file's head has {classes.pop()} outputs; give the architecture a "
                         f"head of that size, or load with strict off and train a new head")
    return hints


def load_into(state: dict[str, torch.Tensor], cfg: LoadConfig, name: str = "file",
              notes: list[str] | None = None) -> LoadReport:
    """Load `state` into a fresh `cfg.arch` and report what matched. Never raises for a mismatch: strict
    refuses and reports; strict off loads what matches (name and shape) and reports the rest. (PyTorch's
    own strict=False still raises on a shape mismatch: that is the traceback this report replaces.)"""
    start = time.perf_counter()
    if cfg.init not in backbones.WEIGHTS:
        raise ValueError(f"init must be one of {', '.join(backbones.WEIGHTS)}, got {cfg.init!r}")
    state, renamed = rename(state, cfg.strip_prefix, cfg.add_prefix)
    model = build(cfg.arch, cfg.init, cfg.num_classes)
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [{"key": k, "file_shape": list(v.shape), "model_shape": list(target[k].shape)}
                  for k, v in state.items() if k in target and v.shape != target[k].shape]
    bad = {m["key"] for m in mismatched}
    matching = {k: v for k, v in state.items() if k in target and k not in bad}
    clean = not (missing or unexpected or mismatched)
    outcome = "loaded" if clean else ("refused" if cfg.strict else "partial")
    if outcome != "refused":
        model.load_state_dict(matching, strict=clean)
    report = LoadReport(cfg, name, missing, unexpected, mismatched, list(matching) if outcome != "refused" else [],
                        outcome, list(notes or []) + renamed, _hints(state, target, mismatched, cfg.arch, model),
                        model if outcome != "refused" else None)
    report.seconds = time.perf_counter() - start
    return report


# ---- continue fine-tuning ------------------------------------------------------------------------

@dataclass(frozen=True)
class ContinueConfig:
    dataset: str = "textures"    # a data.DATASETS name
    image_size: int = 32
    shots: int = 10              # training images per class
    epochs: int = 4
    lr: float = 1e-3             # Adam, every stage trains (the loaded weights are the starting point)
    batch_size: int = 32
    seeds: int = 2               # data splits and head inits, for a band
    val_per_class: int = 20


@dataclass
class ContinueResult:
    config: ContinueConfig
    arch: str
    classes: list[str]
    histories: list[History]
    new_head: bool               # the head was replaced because the class count differs
    device: str
    seconds: float = 0.0
    status: str = "finished"

    @property
    def val_acc(self) -> list[float]:
        return [h.val_acc[-1] for h in self.histories if h.val_acc]

    def to_json(self) -> dict:
        curves = {k: [getattr(h, k) for h in self.histories] for k in ("train_loss", "val_loss", "train_acc", "val_acc")}
        return {"experiment": "continue", "config": dict(asdict(self.config), arch=self.arch), "classes": self.classes,
                "new_head": self.new_head, "val_acc_seeds": self.val_acc, "curves": curves, "status": self.status,
                "device": self.device, "seconds": round(self.seconds, 3)}


def continue_finetune(model: nn.Module, arch: str, cfg: ContinueConfig = ContinueConfig(),
                      progress: Callable[[float, str], None] | None = None, device: str = "auto") -> ContinueResult:
    """Go on training a loaded backbone on a small built-in dataset, every stage trainable, one run per
    seed from the same loaded weights (the model passed in is not changed)."""
    if arch not in backbones.REGISTRY:
        raise ValueError(f"continue fine-tuning needs an image backbone of the registry, not {arch!r}")
    backbones.check_size(arch, cfg.image_size)
    start = time.perf_counter()
    dev = devices.pick(device)
    ds = data.load(cfg.dataset, cfg.image_size)
    e = backbones.entry(arch)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)]
    new_head = not head or head[-1].out_features != len(ds.classes)
    result = ContinueResult(cfg, arch, list(ds.classes), [], new_head, devices.describe(dev))
    for s in range(cfg.seeds):
        train, val = data.few_shot_split(ds, cfg.shots, s, cfg.val_per_class)
        net = copy.deepcopy(model)
        if new_head:
            torch.manual_seed(s)
            last = backbones.entry(arch).split(net)[-1][1]
            linear = last if isinstance(last, nn.Linear) else [m for m in last.modules() if isinstance(m, nn.Linear)][-1]
            _replace_module(net, linear, nn.Linear(linear.in_features, len(ds.classes)))
        net = nn.Sequential(backbones.Normalize(e.mean, e.std), net).to(dev)  # the lab feeds images in [0, 1]
        on_epoch = (lambda ep, h, s=s: progress((s + (ep + 1) / cfg.epochs) / cfg.seeds,
                                                f"seed {s}: epoch {ep + 1} of {cfg.epochs}")) if progress else None
        hist = fit(net, (train.images, train.labels), (val.images, val.labels),
                   FitConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=s), on_epoch=on_epoch)
        result.histories.append(hist)
        if hist.status != "finished":
            result.status = hist.status
            break
    result.seconds = time.perf_counter() - start
    return result
