"""Names as people read them: a condition, a layer (a parameter tensor), a measure. The one formatter every page,
chart and sentence uses to show what the code calls `last_k`, `body.fc1.weight` or `cka`.

Only what is shown changes: JSON keys, recorded configs, URLs and CLI flags keep the code's names.
    condition("last_k") → "fine-tune the last layers"    condition("lora_r4") → "LoRA r=4"
    layer("body.fc1.weight") → "fc1 weights"              measure("cka") → "CKA"
"""
from __future__ import annotations

import re

from tl_core.i18n import N_, tr

CONDITIONS = {
    # the lab, the toy, the strategy grid, self-supervised pretraining
    "pretrained": N_("pretrained"), "scratch": N_("from scratch"), "both": N_("pretrained and from scratch"),
    "feature_extraction": N_("feature extraction"), "partial": N_("partial fine-tuning (last stages)"),
    "full": N_("full fine-tuning"), "gradual": N_("gradual unfreezing"),
    "discriminative": N_("discriminative learning rates"),
    "ssl_frozen": N_("SSL encoder, frozen"), "ssl_finetuned": N_("SSL encoder, fine-tuned"),
    # text
    "feature": N_("feature extraction (frozen encoder)"), "last_k": N_("fine-tune the last layers"),
    # language models
    "prompt": N_("prompting (no training)"),
    # parameter-efficient fine-tuning
    "head": N_("head only"), "bitfit": N_("BitFit"), "lora": N_("LoRA"),
    # guided transfer learning
    "guided": N_("guided fine-tuning"), "plain": N_("plain fine-tuning"),
    "freeze_head_only": N_("freezing all but the head"),
    "related": N_("related source"), "unrelated": N_("unrelated source"),
}

# pieces of a parameter's dotted name (timm, the lab's own models, BERT)
PARTS = {"weight": N_("weights"), "bias": N_("biases"), "conv_pw": N_("1×1 expansion conv"),
         "conv_pwl": N_("1×1 projection conv"), "conv_dw": N_("depthwise conv"), "conv_stem": N_("stem conv"),
         "conv_head": N_("head conv"), "bn1": N_("BatchNorm 1"), "bn2": N_("BatchNorm 2"), "bn3": N_("BatchNorm 3"),
         "fc": N_("linear layer"), "classifier": N_("classifier"), "query": N_("query"), "key": N_("key"),
         "value": N_("value"), "running_mean": N_("running means"), "running_var": N_("running variances")}
WRAPPERS = {"body", "model", "module", "base_model", "encoder", "self"}   # say nothing a reader needs

MEASURES = {"cka": N_("CKA"), "agreement": N_("top-1 agreement"), "cosine": N_("cosine similarity"),
            "val_acc": N_("validation accuracy"), "train_acc": N_("training accuracy"),
            "val_loss": N_("validation loss"), "train_loss": N_("training loss")}


def condition(name: str, **fill) -> str:
    """A condition, strategy or mode in words (unknown names: underscores as spaces). `fill`: values for a
    template ("last_k" with k=2 → "fine-tune the last 2 layers")."""
    name = str(name)
    if m := re.fullmatch(r"lora_r(\d+)", name):
        return f"LoRA r={m[1]}"
    if name == "last_k" and "k" in fill:
        return tr("fine-tune the last {k} layers", k=fill["k"])
    return tr(CONDITIONS[name]) if name in CONDITIONS else name.replace("_", " ")


def shown(label: str, templates: dict | None = None, key: str = "", **fill) -> str:
    """A condition's label as a run's JSON keeps it (English: a recorded run is the same in every language), in the
    reader's words: from its template when the experiment keeps one (`templates[key]`, with `fill`: a language
    model's "last {k} layers trained"), else through the catalogue (a label it lacks, e.g. "LoRA r=4", as it is)."""
    if templates and key in templates:
        return tr(templates[key], **fill)
    return tr(str(label))


def conditions(names, **fill) -> str:
    return ", ".join(condition(n, **fill) for n in names)


def layer(name: str, sep: str = " ") -> str:
    """A parameter tensor's dotted name in words: "body.fc1.weight" → "fc1 weights", "blocks.6.0.conv_pwl.weight"
    → "block 6.0 1×1 projection conv weights". sep: between the layer and what of it (a chart's "<br>")."""
    parts = [p for p in str(name).split(".") if p not in WRAPPERS] or [str(name)]
    *where, what = parts
    words, i = [], 0
    while i < len(where):
        p = where[i]
        if p in ("blocks", "layer", "layers") and i + 1 < len(where) and where[i + 1].isdigit():
            nums = [where[i + 1]] + ([where[i + 2]] if i + 2 < len(where) and where[i + 2].isdigit() else [])
            words.append(tr("block {n}", n=".".join(nums)) if p == "blocks" else tr("layer {n}", n=".".join(nums)))
            i += 1 + len(nums)
            continue
        words.append(tr(PARTS[p]) if p in PARTS else p)
        i += 1
    where, what = " ".join(words), tr(PARTS[what]) if what in PARTS else what
    return tr("{where}{sep}{what}", where=where, sep=sep, what=what) if where else what


def measure(key: str) -> str:
    """A measure's key in words: "cka" → "CKA"."""
    return tr(MEASURES[key]) if key in MEASURES else key.replace("_", " ")
