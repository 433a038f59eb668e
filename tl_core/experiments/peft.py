"""Parameter-efficient fine-tuning: LoRA and BitFit beside head-only, partial and full fine-tuning, and what each
one costs (weights trained, bytes saved, optimizer state, seconds) and forgets.

Methods, each over seeds, on EfficientNet-Lite0 (real ImageNet weights) over the image datasets or on
all-MiniLM-L6-v2 over the text topics (their settings, building and training: `tl_core.peft_methods`):

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
with safetensors) against the full state_dict; the Adam state's bytes after training (its tensors, measured:
`train.optimizer_state_bytes`); seconds per epoch; what it forgets (`tl_core.forgetting`: images, top-1 agreement
with the original model under its ImageNet head and linear CKA, on images no method trained on; text, the cosine
similarity of sentence embeddings before and after, on topics no method trained on).

The adapters themselves (LoRA's layers and files, BitFit's frozen statistics) are `tl_core.adapters`. LoRA merged
into the weights (`merge_and_unload`, a plain timm / BERT model) predicts as the adapter does
(`merge_max_abs_diff`), and the adapter saved alone (`adapter_bytes`, a .safetensors file) loads back into a
fresh backbone with the same predictions (`reload_max_abs_diff`). Stages that a method leaves frozen and that
no adapter touches run once over the data (the frozen-prefix cache, `finetuning.FrozenCache`); everything
trains through `train.fit`. The claim: the best PEFT method (BitFit or a LoRA rank, by mean validation accuracy)
against full fine-tuning, by the claims rule, with what it trains and forgets beside it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tl_core import adapters, claims, contract, forgetting, names, narration, text
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict
from tl_core.i18n import N_, fmt, tr
from tl_core.peft_methods import (
    PEFT,
    PeftConfig,
    PeftInputs,
    Tuned,
    fine_tune,
    lora_config,
    method_of,
    prepare,
    trained_tensors,
)
from tl_core.serve.estimates import units
from tl_core.train import History, predict

# a small config for the lecture step "Fine-tuning at scale: train 1% of the weights" (12-15 s on the busy 2-core
# machine): head only, LoRA r=4 and full fine-tuning on textures, 2 seeds. 48 px, not 32: at 32 px Lite0's features
# tell the textures apart barely better than chance; batches of 4, so 15 images make 4 steps per epoch
LECTURE = PeftConfig(methods=("head", "lora", "full"), ranks=(4,), shots=5, epochs=6, batch_size=4, image_size=48,
                     probe_size=48, seeds=2, val_per_class=10)


def label(condition: str) -> str:
    method, rank = method_of(condition)
    return {"head": N_("head only"), "bitfit": "BitFit", "lora": f"LoRA r={rank}",
            "partial": N_("partial (last stages)"), "full": N_("full fine-tuning"), "scratch": N_("scratch")}[method]


# ---- one cell, measured -----------------------------------------------------------------------------------------

@dataclass
class PeftRun:
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


def measure(cfg: PeftConfig, tuned: Tuned, prep: PeftInputs, full_bytes: dict, keep_adapter: bool) -> PeftRun:
    """Everything the JSON says about one trained method: accuracy, counts, bytes, forgetting, merge and reload."""
    model = tuned.model
    method, rank = method_of(tuned.condition)
    hist = tuned.history
    val_acc = float(hist.val_acc[-1]) if hist.val_acc else float("nan")
    trainable = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    plain = int(sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name))
    adapter = None
    if method == "lora":
        adapter = adapters.adapter_file(model, tuned.peft_model, lora_config(cfg, rank), cfg.modality, prep.classes,
                                        cfg.scope)
    saved = len(adapter) if adapter is not None else len(adapters.to_safetensors(trained_tensors(cfg, tuned)))
    if "bytes" not in full_bytes:
        whole = adapters.plain_state(model, tuned.base, tuned.peft_model, cfg.modality)
        full_bytes["bytes"] = len(adapters.to_safetensors(whole))
    merge = reload = None
    if method == "lora":
        _, va = prep.split(cfg, tuned.seed)
        x_va = prep.inputs[va.to(prep.inputs.device)]
        probs = predict(model, x_va)
        merge = float((predict(adapters.merged(model, tuned.peft_model, cfg.modality), x_va) - probs).abs().max())
        if keep_adapter:
            reload = float((predict(adapters.load_adapter(adapter, prep.inputs.device), x_va) - probs).abs().max())
    return PeftRun(tuned.condition, tuned.seed, hist, val_acc, trainable, plain, saved, full_bytes["bytes"],
                   tuned.optimizer_bytes, tuned.fit_seconds / max(hist.epochs_run, 1),
                   forgetting.measure(model, prep.reference, prep.cache, prep.probe, tuned.depth, prep.modality),
                   tuned.depth, merge, reload, adapter if keep_adapter else None)


# ---- the result ---------------------------------------------------------------------------------------------------

def _num(v):
    return float(v) if v is not None and isinstance(v, (int, float)) and math.isfinite(v) else None


@dataclass
class PeftResult(contract.Result):
    config: PeftConfig
    classes: list[str] = field(default_factory=list)
    stage_names: list[str] = field(default_factory=list)
    runs: list[PeftRun] = field(default_factory=list)
    cached_seconds: float = 0.0
    kind = "peft"
    headline = "val_acc"

    def by_condition(self, condition: str) -> list[PeftRun]:
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

    def claim_vs_strongest(self) -> claims.Claim | None:
        """The best PEFT method against the strongest other condition of the run, whatever it is (another rank,
        head only, full, scratch): what the claims rule leads with."""
        subject = self.subject()
        values = self.values()
        return claims.compare(subject, values) if subject and any(values[c] for c in values if c != subject) else None

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
                "claim_vs_strongest": strongest.to_json() if (strongest := self.claim_vs_strongest()) else None,
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
            numbers = "; ".join(f"{r['label']} {fmt(r['val_acc_mean'], '.0%')}" for r in rows.values())
            return Verdict("single", tr("{numbers} (validation accuracy). Add a PEFT method (bitfit, lora) and full "
                                        "fine-tuning to the methods for a claim.", numbers=numbers))
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
        answer = f"{claim.sentence(label(claim.subject), label(claim.against))} {cost}{forgets}."
        lead = self.claim_vs_strongest()
        if lead is None or lead.against == claim.against:
            return Verdict(claim.kind, answer)
        # the rule's claim is against the strongest other condition; then the page's question, vs full fine-tuning
        return Verdict(lead.kind, f"{lead.sentence(label(lead.subject), label(lead.against))} Against "
                                  f"{label(claim.against)} (the question here): {answer}")


def _pct(f: float) -> str:
    return f"{f:.1%}" if f >= 0.01 else f"{f:.2%}"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


def targets_text(cfg: PeftConfig) -> str:
    """LoRA's target layers in words."""
    if cfg.modality == "image":
        where = "every block (1-7)" if cfg.scope == "all" else "block 7"
        return (f"the 1×1 convolutions (expansion and projection) of {where} and the head convolution; the "
                f"depthwise convolutions left alone")
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
                     "forgetting": ", ".join(f"{names.measure(k)} {v:.2f}" for k, v in f.items()),
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
                        PeftConfig, run, text=_text,
        page="peft", plots="peft", live=True,
        cost=lambda c: units(c["seeds"], c["epochs"], len(c["methods"]), c["shots"], c["image_size"]),
        narrate=narration.say_peft),
)
