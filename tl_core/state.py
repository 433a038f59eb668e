"""The state_dict workshop's machinery: how weights travel in PyTorch.

A state_dict is an ordered dict of named tensors. This module reads one safely from a file, inspects
it (keys, shapes, dtypes, elements per module, total size), exports a lab model's weights whole,
encoder only (every stage but the head) or head only, and loads a state_dict into an architecture of
the registry with a report of **missing**, **unexpected** and **shape-mismatched** keys instead of
PyTorch's traceback. Continuing to fine-tune the loaded model is the fine-tuning lab's own run from
those weights (`experiments.finetune.run(..., init=report.model)`); the CLI twins `inspect` and `load`
live in `experiments.workshop`.

Safety: `.pt`/`.pth` files are read with `torch.load(weights_only=True)`, which refuses any pickled
code (a `__reduce__` that calls os.system) and any pickled class (a whole saved nn.Module); the
refusal becomes one clear message. Before that, `safeio.torch_zip` checks the file's records: stored (torch.save
never compresses one), their sizes inside the file, so a .pt never unpacks to more tensor bytes than were
uploaded. `.safetensors` files hold raw tensors only. A file read is named by its content hash (`digest`), and
the workshop keeps its uploads within KEPT_MB (`keep_within`: the oldest dropped first).

Architectures are `backbones.REGISTRY`'s entries (the lab's image backbones and the SSL encoder and
downstream models), built as their original modules (torchvision / timm / Transfer Lab key names, so
real-world checkpoints line up); their stages (`entry(name).split`) group the keys.
"""
from __future__ import annotations

import functools
import io
import pickle
import pickletools
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from tl_core import backbones, contract, safeio
from tl_core.contract import setting
from tl_core.i18n import N_, fmt, tr

MAX_MB = 200            # the upload limit (Streamlit's server.maxUploadSize says the same)
KEPT_MB = 256           # the uploaded state_dicts one session keeps (the newest always, the oldest dropped first)
PARTS = ("full", "encoder", "head")
FORMATS = ("pt", "safetensors")
# checkpoints often wrap the state_dict: {"state_dict": ..., "epoch": 3, "optimizer": ...}
WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params", "module")


# ---- architectures: the registry's, as their original modules ------------------------------------

def build(arch: str, weights: str = "scratch", num_classes: int | None = None) -> nn.Module:
    """A registry entry (image backbone or SSL model) as its original module, the key names torchvision /
    timm / Transfer Lab write, with a new head for num_classes when given: what files are loaded into."""
    return backbones.original(arch, weights, num_classes)


def key_groups(arch: str, model: nn.Module) -> dict[str, str]:
    """state_dict key → the stage it belongs to (the registry entry's split: the lab's vocabulary), in
    order, the head last."""
    tensors = model.state_dict(keep_vars=True)
    owner: dict[int, str] = {}
    for stage_name, stage in backbones.entry(arch).split(model):
        for t in stage.state_dict(keep_vars=True).values():
            owner.setdefault(id(t), stage_name)
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
        raise ValueError(tr("part must be one of {choices}, got {value}", choices=", ".join(PARTS), value=repr(part)))
    return {k: v.clone() for k, v in parts(arch, weights)[part].items()}


def to_bytes(state: dict[str, torch.Tensor], fmt: str = "pt") -> bytes:
    if fmt == "safetensors":
        from safetensors.torch import save

        return save({k: v.detach().clone().contiguous() for k, v in state.items()})  # no shared storage
    if fmt != "pt":
        raise ValueError(tr("format must be one of {choices}, got {value}", choices=", ".join(FORMATS),
                            value=repr(fmt)))
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
    digest: str = ""                  # the sha256 of the file's bytes: its identity (two uploads of one name and
    size: int = 0                     # size with other weights are two files); the file's size in bytes

    @property
    def nbytes(self) -> int:
        """The bytes its tensors hold (each storage once)."""
        seen, total = set(), 0
        for t in self.state.values():
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
        return total


def keep_within(files: dict, budget: int) -> list[str]:
    """Drop the oldest StateFiles of `files` (insertion order) until their tensors fit in `budget` bytes; the newest
    is always kept. Returns the names dropped, oldest first."""
    dropped = []
    while len(files) > 1 and sum(f.nbytes for f in files.values()) > budget:
        dropped.append(files.pop(next(iter(files))).name)
    return dropped


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
        return ValueError(tr("{name}: not a PyTorch file, or a corrupt one (torch.load could not read it)", name=name))
    what = found[0]
    if what.split(".")[0] in ("torch", "torchvision", "timm") or "." in what and what.rsplit(".", 1)[1][:1].isupper():
        hint = tr("It looks like a whole saved model (torch.save(model)): save model.state_dict() instead.")
    else:
        hint = tr("That is code, not weights: never load this file with weights_only=False.")
    return ValueError(tr("{name}: refused — the file asks to import or run {what} when unpickled, and Transfer Lab "
                         "loads only tensors (torch.load with weights_only=True). {hint}", name=name, what=what,
                         hint=hint))


def _as_state_dict(obj, name: str, notes: list[str]) -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        raise ValueError(tr("{name}: the file holds one tensor of shape {shape}, not a state_dict (a dict of named "
                            "tensors)", name=name, shape=tuple(obj.shape)))
    for _ in range(3):  # unwrap nested checkpoints such as {"model": {"state_dict": {...}}}
        if not isinstance(obj, dict):
            raise ValueError(tr("{name}: the file holds a {type}, not a state_dict (a dict of named tensors)",
                                name=name, type=type(obj).__name__))
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((w for w in WRAPPERS if isinstance(obj.get(w), dict)), None)
        if inner is None:
            dicts = [k for k, v in obj.items() if isinstance(v, dict)]
            inner = dicts[0] if len(dicts) == 1 else None
        if inner is None:
            shown = ", ".join(map(str, list(obj)[:6])) or tr("nothing")
            raise ValueError(tr("{name}: a dict without tensors (keys: {keys}), not a state_dict", name=name,
                                keys=shown))
        others = [str(k) for k in obj if k != inner]
        notes.append(tr("unwrapped checkpoint[{key}] (also in the file: {others})", key=repr(inner),
                        others=", ".join(others[:6])) if others else
                     tr("unwrapped checkpoint[{key}]", key=repr(inner)))
        obj = obj[inner]
    bad = [k for k in obj if not isinstance(k, str)]
    if bad:
        raise ValueError(tr("{name}: keys must be names (strings), found {key}: not a state_dict", name=name,
                            key=repr(bad[0])))
    dropped = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if dropped:
        notes.append(tr("ignored {n} entries that are not tensors: {keys}", n=len(dropped),
                        keys=", ".join(dropped[:6])))
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(tr("{name}: no tensors in the file, not a state_dict", name=name))
    return state


def read(raw: bytes, name: str = "file") -> StateFile:
    """A state_dict from a file's bytes, safely; ValueError with a clear message for anything else."""
    if len(raw) == 0:
        raise ValueError(tr("{name}: the file is empty (0 bytes)", name=name))
    if len(raw) > MAX_MB * 2**20:
        raise ValueError(over_limit(name, len(raw)))
    notes: list[str] = []
    digest = safeio.content_hash(raw)
    # safetensors: 8 bytes of header length, then a JSON header; trust the content over the extension
    if name.lower().endswith(".safetensors") or (len(raw) > 9 and raw[8:9] == b"{"
                                                 and int.from_bytes(raw[:8], "little") < len(raw)):
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError:
            raise ValueError(tr("{name}: .safetensors files need the safetensors package, which is not installed "
                                "here; save a .pt file instead", name=name)) from None
        try:
            tensors = dict(load_safetensors(raw))
            return StateFile(name, tensors, "safetensors", notes + adapter_notes(tensors, raw), digest, len(raw))
        except Exception as err:  # the library raises its own error types for corrupt headers
            raise ValueError(tr("{name}: not a valid safetensors file ({error})", name=name,
                                error=str(err).splitlines()[0][:120])) from None
    safeio.torch_zip(raw, name, int(MAX_MB * 2**20))   # stored records inside the file, before torch.load
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols; the refusal says enough
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unpickle_refusal(name, err, raw) from None
    except Exception:  # truncated zip, random bytes, EOF: all mean "not a file we can read"
        raise ValueError(tr("{name}: not a PyTorch file, or a corrupt or truncated one (torch.load could not read it)",
                            name=name)) from None
    return StateFile(name, _as_state_dict(obj, name, notes), "pt", notes, digest, len(raw))


def over_limit(name: str, size: int) -> str:
    return tr("{name}: {mb} MB is over the {most} MB limit", name=name, mb=fmt(size / 2**20, ".0f"), most=MAX_MB)


def read_path(path: str | Path) -> StateFile:
    path = Path(path)
    if not path.is_file():
        raise ValueError(tr("no such file: {path}", path=path))
    if path.stat().st_size > MAX_MB * 2**20:
        raise ValueError(over_limit(path.name, path.stat().st_size))
    return read(path.read_bytes(), path.name)


# ---- inspection ------------------------------------------------------------------------------------

def adapter_notes(tensors: dict[str, torch.Tensor], raw: bytes = b"") -> list[str]:
    """What a LoRA adapter file (Hugging Face peft's keys: ….lora_A.weight, ….lora_B.weight) is, in words, with
    the file's safetensors metadata (rank, targets, ...) when it has any; [] for any other state_dict."""
    adapted = sorted({k.split(".lora_A.")[0] for k in tensors if ".lora_A." in k})
    if not adapted:
        return []
    ranks = sorted({int(v.shape[0]) for k, v in tensors.items() if ".lora_A." in k})
    rest = [k for k in tensors if ".lora_" not in k]
    fill = dict(n=len(adapted), ranks=", ".join(map(str, ranks)))
    notes = [tr("a LoRA adapter (Hugging Face peft): {n} adapted layers at rank {ranks} (lora_A: rank × inputs, "
                "lora_B: outputs × rank), and {others} other tensors ({keys}); it is loaded with peft onto its base "
                "model, not with load_state_dict", others=len(rest), keys=", ".join(rest[:4]), **fill) if rest else
             tr("a LoRA adapter (Hugging Face peft): {n} adapted layers at rank {ranks} (lora_A: rank × inputs, "
                "lora_B: outputs × rank); it is loaded with peft onto its base model, not with load_state_dict",
                **fill)]
    try:
        import json

        size = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + size]).get("__metadata__") or {} if raw else {}
    except (ValueError, UnicodeDecodeError):
        meta = {}
    shown = {k: v for k, v in meta.items() if k != "format"}
    if shown:
        text = ", ".join(f"{k}={v}" for k, v in shown.items())
        notes.append(tr("metadata: {values}", values=f"{text[:300]}{'…' if len(text) > 300 else ''}"))
    return notes


PEFT_PREFIX = "base_model.model."   # peft's keys: the base model's own names below it


def file_groups(keys) -> dict[str, str]:
    """key → module for a file without an architecture: its first name below a prefix every key shares
    (module., encoder.), split by block number when it holds three or more numbered blocks (blocks.3)."""
    keys = list(keys)
    split = [k.removeprefix(PEFT_PREFIX).split(".") for k in keys]
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

    def table(self) -> list[dict]:
        """One row per tensor: key, shape (as "3 × 4"), dtype, elements, module."""
        return [{"key": r["key"], "shape": " × ".join(map(str, r["shape"])) or "scalar", "dtype": r["dtype"],
                 "elements": r["elements"], "module": r["module"]} for r in self.rows]

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
        notes.append(tr("stripped {prefix} from {n} of {total} keys", prefix=repr(strip), n=hit, total=len(state)))
    if add:
        state = {add + k: v for k, v in state.items()}
        notes.append(tr("added {prefix} to every key", prefix=repr(add)))
    return state, notes


@dataclass(frozen=True)
class LoadConfig:
    """How a state_dict is loaded: the same settings on the page and on the command line (`load`)."""
    arch: str = setting("shapes_cnn", "the architecture to load into (required on the command line)", flag="--into",
                        label="architecture", choices={name: e.title for name, e in backbones.REGISTRY.items()})
    num_classes: int | None = setting(None, "give the architecture a head for this many classes (all: its own head)",
                                      lo=1, hi=100_000)
    strict: bool = setting(True, "strict: every key must match in name and shape, or nothing loads; --no-strict: "
                                 "load what matches, report the rest")
    strip_prefix: str = setting("", "remove this prefix from the keys that have it, e.g. module. (DataParallel)")
    add_prefix: str = setting("", "add this prefix to every key, e.g. encoder.")
    init: str = setting("scratch", "the weights the model starts from, before the file's (what missing keys keep)",
                        choices={"pretrained": "the registry's pretrained weights",
                                 "scratch": "random initial weights"})


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

    def lists(self) -> list[tuple[str, str, list[dict]]]:
        """(title, what it means, rows) of the three ways a key can fail to load, for a table each."""
        return [(N_("Missing"), N_("in the model, not in the file"), [{"key": k} for k in self.missing]),
                (N_("Unexpected"), N_("in the file, not in the model"), [{"key": k} for k in self.unexpected]),
                (N_("Shape-mismatched"), N_("same name, another shape"),
                 [{k: str(v) for k, v in m.items()} for m in self.mismatched])]

    def message(self) -> str:
        """The outcome in one sentence, in the language of the context that shows it (worded when called)."""
        counts = tr("{missing} missing, {unexpected} unexpected, {mismatched} shape-mismatched",
                    missing=len(self.missing), unexpected=len(self.unexpected), mismatched=len(self.mismatched))
        arch, n = self.config.arch, len(self.loaded)
        if self.outcome == "loaded":
            return tr("Loaded all {n} tensors into {arch}: names and shapes match.", n=n, arch=arch)
        if self.outcome == "partial":
            init = {"pretrained": tr("pretrained"), "scratch": tr("scratch")}.get(self.config.init, self.config.init)
            return tr("strict off: loaded {n} matching tensors into {arch}; the rest did not load ({counts}). Missing "
                      "keys keep their {init} values.", n=n, arch=arch, counts=counts, init=init)
        if self.missing and not self.unexpected and not self.mismatched:   # the same architecture, a part of it
            more = len(self.missing) - 3
            shown = (tr("{keys} and {n} more", keys=", ".join(self.missing[:3]), n=more) if more > 0 else
                     ", ".join(self.missing[:3]))
            return tr("Strict loading into {arch} refused the file: every tensor in it matches the model, but {n} of "
                      "the model's keys are not in it ({shown}), and strict asks for all of them. Nothing was loaded; "
                      "with strict off the matching tensors load.", arch=arch, n=len(self.missing), shown=shown)
        return tr("Strict loading into {arch} failed: {counts}. Nothing was loaded: strict loading needs the same "
                  "names and shapes, as the same architecture has.", arch=arch, counts=counts)

    def to_json(self) -> dict:
        return {"experiment": "load", "config": contract.record(self.config), "file": self.file, "status": "finished",
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
                hints.append(tr("strip the prefix {prefix}: then {n} keys match", prefix=repr(prefix),
                                n=sum(k[len(prefix):] in model_keys for k in file_keys)))
                break
        model_firsts = Counter(k.split(".")[0] + "." for k in model_keys if "." in k)
        for prefix, _ in model_firsts.most_common(3):
            if sum(prefix + k in model_keys for k in file_keys) >= len(file_keys) // 2:
                hints.append(tr("add the prefix {prefix}: then {n} keys match", prefix=repr(prefix),
                                n=sum(prefix + k in model_keys for k in file_keys)))
                break
    head = set(head_keys(arch, model))
    if mismatched and all(m["key"] in head for m in mismatched):
        classes = {m["file_shape"][0] for m in mismatched if m["file_shape"]}
        if len(classes) == 1:
            hints.append(tr("only the head differs: the file's head has {n} outputs; give the architecture a head of "
                            "that size, or load with strict off and train a new head", n=classes.pop()))
    return hints


def load_into(state: dict[str, torch.Tensor], cfg: LoadConfig, name: str = "file",
              notes: list[str] | None = None) -> LoadReport:
    """Load `state` into a fresh `cfg.arch` and report what matched. Never raises for a mismatch: strict
    refuses and reports; strict off loads what matches (name and shape) and reports the rest. (PyTorch's
    own strict=False still raises on a shape mismatch: that is the traceback this report replaces.)"""
    start = time.perf_counter()
    contract.validate(cfg)
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
