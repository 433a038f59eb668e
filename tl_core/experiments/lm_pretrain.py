"""Pretraining you can watch: a GPT of 0.8 M parameters (`tl_core.tiny_gpt`) learns to predict the next character
of an offline corpus (the Python Language Reference's pydoc topics and chatterbot-corpus conversation lines of the
topics the task does not use), with a loss curve and samples that improve as it trains. Then transfer: the
pretrained network and the same network from random weights learn the text page's topics from a few sentences each,
over seeds, and the claims rule says what next-word pretraining was worth.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch

from tl_core import claims, contract, text, tiny_gpt
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import N_, fmt, tr
from tl_core.serve.estimates import units
from tl_core.train import FitConfig, History, evaluate, fit

CONDITIONS = {"pretrained": "the GPT after next-character pretraining, fine-tuned with a new head",
              "scratch": "the same GPT from random weights, trained the same way"}
LABELS = {"pretrained": N_("pretrained on next characters"), "scratch": N_("same GPT from scratch")}
TUNE = {"full": "every weight trains (the body at body lr, the head at lr)",
        "frozen": "the body frozen: only the new head trains (scratch: its random body frozen too)"}
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")
PROMPT = "The "


def _classes_problem(classes: tuple) -> str:
    if len(classes) < 2:
        return "choose at least 2 topics"
    return "each topic once, please" if len(set(classes)) < len(classes) else ""


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = setting(300, "pretraining steps (each: 32 random windows of 96 characters)", lo=1, hi=20_000,
                         title="Pretraining steps", steps=(50, 100, 200, 300, 500, 1000))
    lr: float = setting(3e-3, "pretraining peak learning rate (AdamW, warm-up then cosine)", lo=1e-6, hi=1,
                        title="Pretraining learning rate", steps=(1e-3, 3e-3, 1e-2))
    log_every: int = setting(25, "steps between two points of the loss curve (and two samples)", lo=1, hi=1000,
                             label="log every")
    classes: tuple[str, ...] = setting(("money", "science", "sports", "emotion"), "the task's topics "
                                       "(left out of the pretraining corpus), comma-separated",
                                       check=_classes_problem, title="Task topics")
    shots: int = setting(4, "labelled sentences per topic for fine-tuning", lo=1, hi=32,
                         title="Sentences per topic", steps=(1, 2, 4, 8, 16, 32))
    tune: str = setting("full", "how the classifier trains", choices=TUNE, title="Fine-tuning")
    epochs: int = setting(20, "fine-tuning passes over the sentences", lo=1, hi=500, title="Fine-tuning epochs",
                          span=(1, 60))
    head_lr: float = setting(1e-2, "learning rate of the new head", lo=1e-6, hi=1, label="head lr")
    body_lr: float = setting(1e-3, "learning rate of the GPT body when it trains", lo=1e-7, hi=1, label="body lr")
    # 8 seeds and 30 validation sentences a topic: chosen on validation seeds (100, 200, 300, 0), where 5 seeds and
    # 12 sentences called a gap of +5 to +12 points a tie on most of them (docs/lm.md)
    seeds: int = setting(8, "fine-tuning runs per condition (each its own sentences)", lo=1, hi=20,
                         title="Seeds", span=(1, 10))
    seed: int = setting(0, "first seed: pretraining draws, split, head init, scratch init", lo=0)
    val_per_class: int = setting(30, "fixed validation sentences per topic", lo=1, hi=200,
                                 title="Validation sentences per topic", span=(2, 30))

    def check(self) -> None:
        unknown = [c for c in self.classes if c not in text.topics()]
        if unknown:
            raise ValueError(f"unknown topic {unknown[0]!r}: choose from {', '.join(text.topics())}")


@dataclass
class ClassifierRun:
    condition: str
    seed: int
    history: History
    val_acc: float
    train_acc: float


@dataclass
class PretrainResult(contract.ConditionsResult):
    config: PretrainConfig
    log: tiny_gpt.PretrainLog = field(default_factory=tiny_gpt.PretrainLog)
    runs: list = field(default_factory=list)
    parameters: int = 0
    corpus_chars: int = 0
    pretrain_seconds: float = 0.0
    kind = "lm-pretrain"
    headline = "val_acc"

    def runs_of(self, condition: str) -> list:
        return [r for r in self.runs if r.condition == condition]

    def ran(self) -> list[str]:
        return [c for c in CONDITIONS if self.runs_of(c)]

    def summary(self, condition: str) -> dict:
        runs = [r for r in self.runs_of(condition) if r.history.status == "finished"]
        acc = contract.seed_stats([r.val_acc for r in runs])
        return {"label": LABELS[condition], "val_acc": acc["mean"], "val_acc_std": acc["std"],
                "val_acc_seeds": acc["seeds"], "seeds": [r.seed for r in runs],
                "train_acc": contract.seed_stats([r.train_acc for r in runs])["mean"],
                "history": {k: getattr(self.runs_of(condition)[0].history, k) for k in CURVES},
                "histories": [{k: getattr(r.history, k) for k in CURVES} for r in self.runs_of(condition)]}

    def values(self) -> dict[str, dict[int, float]]:
        return {c: {r.seed: r.val_acc for r in self.runs_of(c) if r.history.status == "finished"} for c in self.ran()}

    def claim(self) -> claims.Claim | None:
        values = self.values()
        if not values.get("pretrained") or not values.get("scratch"):
            return None
        return claims.compare("pretrained", values, ["scratch"])

    def body(self) -> dict:
        c = self.claim()
        return {"loss": {"step": self.log.step, "train": self.log.train_loss, "val": self.log.val_loss},
                "samples": self.log.samples, "pretraining": {"status": self.log.status, "parameters": self.parameters,
                                                             "corpus_chars": self.corpus_chars,
                                                             "seconds": round(self.pretrain_seconds, 3)},
                "conditions": {k: self.summary(k) for k in self.ran()}, "claim": c.to_json() if c else None}

    def metrics(self) -> dict[str, float]:
        out = super().metrics()
        if self.log.val_loss:
            out.update({"pretrain.val_loss": self.log.val_loss[-1], "pretrain.first_val_loss": self.log.val_loss[0]})
        return out

    def curves(self) -> dict[str, list]:
        return {**super().curves(), "pretrain.train_loss": self.log.train_loss, "pretrain.val_loss": self.log.val_loss}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        return say(self.body())


def say(out: dict) -> Verdict:
    """What the run shows: the loss fell (or not), then the transfer claim by the rule."""
    loss = out["loss"]["val"]
    uniform = float(torch.log(torch.tensor(float(tiny_gpt.VOCAB))))
    first = tr("Next-character pretraining took the held-out loss from {start} to {end} nats (uniform guessing: "
               "{uniform}). ", start=fmt(loss[0], ".2f"), end=fmt(loss[-1], ".2f"),
               uniform=fmt(uniform, ".2f")) if len(loss) > 1 else ""
    c = out.get("claim")
    if c is None:
        return Verdict("single", first + tr("Fine-tuning did not run for both conditions."))
    claim = claims.Claim.from_json(c)
    lead = {"helped": tr("Transfer from next-word pretraining: "), "hurt": tr("Negative transfer: ")}.get(claim.kind,
                                                                                                       "")
    return Verdict(claim.kind, first + lead + claim.sentence(LABELS["pretrained"], LABELS["scratch"]))


def run(cfg: PretrainConfig = PretrainConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> PretrainResult:
    """Pretrain the GPT (live loss, samples), then fine-tune it and the same GPT from scratch over seeds."""
    start = time.perf_counter()
    contract.validate(cfg)
    dev = devices.pick(device)
    torch.manual_seed(cfg.seed)
    body = tiny_gpt.corpus(tuple(sorted(cfg.classes)))
    train_ids, val_ids = tiny_gpt.split_corpus(body)
    model = tiny_gpt.GPT().to(dev)
    result = PretrainResult(config=cfg, parameters=tiny_gpt.parameters(model), corpus_chars=len(body),
                            device=devices.describe(dev))
    epoch = getattr(progress, "epoch", None)

    def on_log(step: int, log: tiny_gpt.PretrainLog) -> None:
        if progress is not None:
            progress(0.6 * step / cfg.steps, f"pretraining: step {step}/{cfg.steps}, held-out loss "
                                             f"{log.val_loss[-1]:.2f}")
        if epoch is not None:
            epoch("next-character pretraining", len(log.step) - 1, log, "pretrained")

    result.log = tiny_gpt.pretrain(model, train_ids, val_ids, cfg.steps, lr=cfg.lr, log_every=cfg.log_every,
                                   seed=cfg.seed, prompt=PROMPT, on_log=on_log, should_stop=should_stop)
    result.pretrain_seconds = result.log.seconds
    if result.log.status != "finished":
        result.status, result.message = result.log.status, result.log.message
        result.seconds = time.perf_counter() - start
        return result
    pretrained = model.cpu()
    ds = text.load("topics", cfg.classes)
    x = tiny_gpt.encode_batch(ds.texts, pretrained.cfg.block_size)

    def train_one(cell, on_epoch, should_stop):
        def hook(i, hist):
            on_epoch(i, hist)
            if epoch is not None:
                epoch(cell.label, i, hist, cell.condition)

        return fine_tune(cfg, cell.condition, cell.seed, pretrained, ds, x, dev,
                         {"on_epoch": hook, "should_stop": should_stop})

    out = contract.run_cells(contract.plan(tuple(CONDITIONS), cfg.seeds, cfg.seed), train_one, progress, should_stop,
                             epochs=cfg.epochs, span=(0.6, 1.0))
    result.runs, result.status, result.message = out.results, out.status, out.message
    result.seconds = time.perf_counter() - start
    return result


def fine_tune(cfg: PretrainConfig, condition: str, seed: int, pretrained: tiny_gpt.GPT, ds: text.TextSet,
              x: torch.Tensor, dev: torch.device, hooks: dict) -> ClassifierRun:
    """One condition, one seed through `train.fit`: a new head on the mean of the characters' last states."""
    tr, va = (torch.as_tensor(i) for i in text.few_shot_split(ds, cfg.shots, seed, cfg.val_per_class))
    torch.manual_seed(seed)
    body = copy.deepcopy(pretrained) if condition == "pretrained" else tiny_gpt.GPT()
    clf = tiny_gpt.TextClassifier(body, len(ds.classes)).to(dev)
    for p in body.parameters():
        p.requires_grad_(cfg.tune == "full")
    groups = [{"params": list(clf.head.parameters()), "lr": cfg.head_lr},
              {"params": [p for p in body.parameters() if p.requires_grad], "lr": cfg.body_lr}]
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.head_lr, batch_size=16, seed=seed)
    hist = fit(clf, (x[tr], ds.labels[tr]), (x[va], ds.labels[va]), fit_cfg, params=groups, **hooks)
    _, train_acc = evaluate(clf, (x[tr], ds.labels[tr]), "classification", 16)
    return ClassifierRun(condition, seed, hist, float(hist.val_acc[-1]) if hist.val_acc else float("nan"),
                         float(train_acc))


def _text(result: PretrainResult, out: dict) -> str:
    loss = out["loss"]
    lines = [f"GPT of {result.parameters:,} parameters, {result.corpus_chars:,} characters of corpus, "
             f"{len(loss['step']) and loss['step'][-1]} steps in {result.pretrain_seconds:.1f} s"]
    lines += [f"  step {s['step']:>5}: {s['text']!r}" for s in out["samples"]]
    lines += [f"  {c['label']:<32} val acc {c['val_acc']:.3f} ± {c['val_acc_std']:.3f}"
              for c in out["conditions"].values()]
    return "\n".join(lines + [out["verdict"]])


EXPERIMENTS = (
    contract.Experiment("lm-pretrain", "pretrain a 0.8 M-parameter GPT on next characters (live loss, samples), then "
                                       "fine-tune it on topics at a few shots against the same GPT from scratch",
                        PretrainConfig, run, text=_text, page="lm", plots="lm", live=True,
                        cost=lambda c: units(1, c["steps"] / 10) + units(c["seeds"], c["epochs"], 2, c["shots"])),
)
