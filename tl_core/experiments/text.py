"""Transfer for text: a pretrained BERT-family sentence encoder (all-MiniLM-L6-v2, offline) on a few
labelled sentences per topic, four ways over seeds:

    feature  feature extraction: the encoder frozen, only a new linear head trains, on sentence
             embeddings computed once (the same lever as the image lab's frozen-prefix cache)
    last_k   fine-tune the last k transformer layers and the head; the rest frozen (and cached)
    full     full fine-tuning: every stage trains
    scratch  the same architecture from random weights, every stage trained (the pretrained tokenizer's
             word pieces are kept: only the weights start from nothing)

The head learns at `lr`, encoder stages that train at `encoder_lr` (the small rate fine-tuning needs
so as not to wash out what pretraining learnt). `text` trains one shots value with curves; `text-sweep`
trains a list of shots values (nested training sets, one validation set per seed).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tl_core import backbones, claims, contract, finetuning, freeze, narration, text
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import N_, fmt, tr
from tl_core.serve.estimates import units
from tl_core.train import FitConfig, History, evaluate, fit

BACKBONE = "minilm_l6"
CONDITIONS = {
    "feature": ("feature extraction: the pretrained encoder frozen, a new linear head trained on its sentence "
                "embeddings"),
    "last_k": "fine-tune the last k layers of the pretrained encoder and the head; the layers below stay frozen",
    "full": "full fine-tuning: every stage of the pretrained encoder trains",
    "scratch": "the same architecture from random weights, every stage trained (the tokenizer is kept)",
}
LABELS = {"feature": N_("feature extraction (frozen encoder)"), "last_k": N_("fine-tune last {k} layers"),
          "full": N_("full fine-tuning"), "scratch": N_("same model from scratch")}
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")


def _classes_problem(classes: tuple) -> str:
    if len(classes) < 2:
        return "choose at least 2 topics"
    if len(set(classes)) < len(classes):
        return "each topic once, please"
    return ""


def _conditions_problem(conditions: tuple) -> str:
    if not conditions:
        return "choose at least one condition"
    return "each condition once, please" if len(set(conditions)) < len(conditions) else ""


@dataclass(frozen=True)
class TextConfig:
    dataset: str = setting("topics", "labelled sentences", choices=text.DATASETS)
    classes: tuple[str, ...] = setting(text.DEFAULT_CLASSES, "topics to tell apart, comma-separated",
                                       check=_classes_problem, title="Topics (classes)")
    conditions: tuple[str, ...] = setting(("feature", "last_k", "scratch"),
                                          "what to compare, comma-separated", choices=CONDITIONS,
                                          check=_conditions_problem, title="Conditions")
    layers: int = setting(2, "k: the last transformer layers that fine-tune under last_k", lo=1, hi=text.LAYERS - 1,
                          title="k: the last layers fine-tuned")
    shots: int = setting(8, "training sentences per topic", lo=1, hi=10_000, title="Training sentences per topic",
                         steps=(1, 2, 4, 8, 16, 32))
    epochs: int = setting(10, "passes over the training sentences", lo=1, hi=500, title="Epochs", span=(1, 50))
    lr: float = setting(1e-2, "Adam learning rate of the new head", lo=1e-7, hi=10, title="Head learning rate",
                        steps=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1))
    encoder_lr: float = setting(1e-4, "Adam learning rate of the encoder stages that train (fine-tuning, scratch)",
                                lo=1e-8, hi=1, label="encoder lr", title="Encoder learning rate",
                                steps=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3))
    batch_size: int = setting(16, "sentences per step", lo=1, hi=4096, label="batch size")
    max_length: int = setting(24, f"tokens per sentence; longer ones are cut (the model reads at most "
                                  f"{text.MAX_TOKENS})", lo=4, hi=text.MAX_TOKENS, label="max length",
                                  title="Tokens per sentence (max)", steps=(8, 16, 24, 32, 64, 128, 256))
    seeds: int = setting(3, "runs per condition, for bands", lo=1, hi=20, title="Seeds (for the band)", span=(1, 10))
    seed: int = setting(0, "first seed: split, head init, scratch init, dropout", lo=0)
    val_per_class: int = setting(12, "fixed validation sentences per topic", lo=1, hi=1000,
                                 title="Validation sentences per topic", span=(1, 50))
    cache: bool = setting(True, "compute the frozen stages once over the sentences (--no-cache: every epoch)")

    def frozen(self, condition: str) -> int:
        """Frozen stages of a condition: all but the head, all but the last k layers and the head, none."""
        n = len(backbones.stage_names(BACKBONE))
        return {"feature": n - 1, "last_k": n - 1 - self.layers}.get(condition, 0)

    def label(self, condition: str) -> str:
        return LABELS[condition].format(k=self.layers)


# a small config for a lecture slide (about 10 s on 2 cores): feature extraction vs scratch at 2 shots
QUICK = TextConfig(conditions=("feature", "scratch"), shots=2, seeds=3, epochs=8, val_per_class=8)


@dataclass
class TextRun:
    """One condition, one seed (one shots value)."""
    condition: str
    seed: int
    shots: int
    history: History
    val_acc: float
    train_acc: float


@dataclass
class TextResult(contract.ConditionsResult):
    config: TextConfig
    classes: list[str]
    stage_names: list[str]
    runs: list[TextRun]
    cached_seconds: float = 0.0     # computing the frozen stages' features (once for every seed)
    # the first seed's training sentences, and the first fine-tuned model's trained stages (CPU): what the
    # page's nearest-neighbour view compares before and after fine-tuning
    train_texts: list[str] = field(default_factory=list, repr=False)
    train_labels: list[str] = field(default_factory=list, repr=False)
    tuned: tuple[str, dict] | None = field(default=None, repr=False)
    kind = "text"
    headline = "val_acc"

    def by_condition(self, condition: str) -> list[TextRun]:
        return [r for r in self.runs if r.condition == condition]

    runs_of = by_condition

    def ran(self) -> list[str]:
        return [c for c in self.config.conditions if self.by_condition(c)]

    def summary(self, condition: str) -> dict:
        runs = self.by_condition(condition)
        done = [r for r in runs if r.history.status == "finished"]  # a run cut short says nothing of its accuracy
        acc = contract.seed_stats([r.val_acc for r in done])
        return {"label": self.config.label(condition), "frozen_stages": self.config.frozen(condition),
                "val_acc": acc["mean"], "val_acc_std": acc["std"], "val_acc_seeds": acc["seeds"],
                "seeds": [r.seed for r in done],
                "train_acc": contract.seed_stats([r.train_acc for r in done])["mean"],
                "history": {k: getattr(runs[0].history, k) for k in CURVES},
                "histories": [{k: getattr(r.history, k) for k in CURVES} for r in runs],
                "status": runs[0].history.status}

    def body(self) -> dict:
        conditions = self.ran()
        out = self.summary(conditions[0]) if conditions else {}   # the first condition's numbers at the top level
        out.update({"conditions": {c: self.summary(c) for c in conditions}, "classes": self.classes,
                    "stages": self.stage_names, "encoder": BACKBONE,
                    "claim": c.to_json() if (c := claim_of(self.values())) else None,
                    "cached_seconds": round(self.cached_seconds, 3)})
        return out

    def histories(self) -> dict[str, list[History]]:
        """Condition label → its seeds' histories: what the overfitting plot draws."""
        return {self.config.label(c): [r.history for r in self.by_condition(c)] for c in self.ran()}

    def values(self) -> dict[str, dict[int, float]]:
        return {c: {r.seed: r.val_acc for r in self.by_condition(c) if r.history.status == "finished"}
                for c in self.ran()}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        return compare(self.values(), self.config, tr("{n} sentences per topic", n=self.config.shots))

    def tuned_model(self) -> backbones.StagedModel | None:
        """The first fine-tuned model (first seed), rebuilt from the pretrained encoder and its trained stages."""
        if self.tuned is None:
            return None
        model = backbones.create(BACKBONE, "pretrained", len(self.classes))
        model.load_state_dict(self.tuned[1], strict=False)
        return model


def claim_of(values: dict[str, dict[int, float]]) -> claims.Claim | None:
    """The best pretrained condition against scratch (None without scratch or a pretrained condition)."""
    transfer = [c for c in values if c != "scratch" and values[c]]
    if not values.get("scratch") or not transfer:
        return None
    return claims.compare(claims.best_of(values, transfer), values, ["scratch"])


def compare(values: dict[str, dict[int, float]], cfg: TextConfig, where: str) -> Verdict:
    """Transfer (the best pretrained condition) against scratch by the claims rule; without scratch, the
    conditions side by side."""
    claim = claim_of(values)
    if claim is None:
        stats = {c: contract.seed_stats(list(v.values())) for c, v in values.items() if v}
        numbers = "; ".join(f"{cfg.label(c)} {fmt(s['mean'], '.0%')} ± {fmt(s['std'], '.0%')}"
                            for c, s in stats.items())
        return Verdict("single", tr("{numbers} (validation accuracy at {where}). Add 'scratch' to the conditions to "
                                    "see what pretraining is worth.", numbers=numbers, where=where))
    lead = {"helped": tr("Pretraining helped: "), "hurt": tr("Negative transfer: ")}.get(claim.kind, "")
    return Verdict(claim.kind, tr("{lead}at {where}, {claim}", lead=lead, where=where,
                                  claim=claim.clause(cfg.label(claim.subject), cfg.label("scratch"))))


# ---- training one condition ----------------------------------------------------------------------------

# per (dataset, topics, max length, device): the sentences' tokens and the frozen encoder's features over them
# (a few MB each, the two latest kept), shared by every seed, shots value and condition, and by later runs:
# the pretrained weights never change
SHARED: dict[tuple, tuple[torch.Tensor, finetuning.FrozenCache]] = {}


def shared_tokens(key: tuple, texts: list[str], max_length: int, dev: torch.device):
    key = (*key, str(dev))
    if key not in SHARED:
        while len(SHARED) >= 2:
            SHARED.pop(next(iter(SHARED)))
        SHARED[key] = (text.encode(texts, max_length).to(dev),
                       finetuning.FrozenCache(lambda: backbones.create(BACKBONE, "pretrained"), device=dev))
    return SHARED[key]


def train_condition(cfg: TextConfig, condition: str, seed: int, tokens: torch.Tensor, labels: torch.Tensor,
                    split: tuple[np.ndarray, np.ndarray], n_classes: int, dev: torch.device,
                    features: finetuning.FrozenCache | None, hooks: dict) -> tuple[TextRun, backbones.StagedModel]:
    """THE training loop (`train.fit`) on one condition: the frozen stages' cached features in, when there
    are frozen stages and caching is on; the head at `lr`, trainable encoder stages at `encoder_lr`."""
    tr, va = (torch.as_tensor(i) for i in split)
    weights = "scratch" if condition == "scratch" else "pretrained"
    model = backbones.create(BACKBONE, weights, n_classes, seed).to(dev)
    depth = cfg.frozen(condition)
    freeze.freeze_to(model, depth)
    net, x_tr, x_va = model, tokens[tr], tokens[va]
    if features is not None and depth > 0:
        stop = hooks.get("should_stop")
        net = model.suffix(depth)
        x_tr, x_va = features.at(depth, tokens, tr, stop), features.at(depth, tokens, va, stop)
    groups = [{"params": list(model.head.parameters()), "lr": cfg.lr},
              {"params": [p for stage in model.stages[:-1] for p in stage.parameters()], "lr": cfg.encoder_lr}]
    torch.manual_seed(seed)   # dropout in the layers that train draws from torch's stream: seeded per run
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
    hist = fit(net, (x_tr, labels[tr]), (x_va, labels[va]), fit_cfg, params=groups, **hooks)
    _, train_acc = evaluate(net, (x_tr, labels[tr]), "classification", cfg.batch_size)
    val_acc = hist.val_acc[-1] if hist.val_acc else float("nan")
    return TextRun(condition, seed, len(tr) // n_classes, hist, float(val_acc), float(train_acc)), model


def _prepared(cfg: TextConfig, shots: int, dev: torch.device):
    """(dataset, its tokens, the frozen-feature cache): every sentence tokenised once."""
    contract.validate(cfg)
    ds = text.load(cfg.dataset, cfg.classes)
    text.few_shot_split(ds, shots, cfg.seed, cfg.val_per_class)   # a class too small fails before any training
    tokens, features = shared_tokens((cfg.dataset, tuple(ds.classes), cfg.max_length), ds.texts, cfg.max_length, dev)
    return ds, tokens, features if cfg.cache else None


def run(cfg: TextConfig = TextConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> TextResult:
    """Every (condition, seed) of cfg at cfg.shots: curves, accuracies, the verdict."""
    start = time.perf_counter()
    dev = devices.pick(device)
    ds, tokens, features = _prepared(cfg, cfg.shots, dev)
    labels = ds.labels.to(dev)
    cached_before = features.seconds if features else 0.0
    result = TextResult(config=cfg, classes=list(ds.classes), stage_names=list(backbones.stage_names(BACKBONE)),
                        runs=[], device=devices.describe(dev))

    def train_one(cell, on_epoch, should_stop):
        split = text.few_shot_split(ds, cfg.shots, cell.seed, cfg.val_per_class)
        r, model = train_condition(cfg, cell.condition, cell.seed, tokens, labels, split, len(ds.classes), dev,
                                   features, {"on_epoch": on_epoch, "should_stop": should_stop})
        if not result.train_texts:
            result.train_texts = [ds.texts[i] for i in split[0]]
            result.train_labels = [ds.classes[int(ds.labels[i])] for i in split[0]]
        if result.tuned is None and cell.condition in ("last_k", "full") and r.history.status == "finished":
            depth = cfg.frozen(cell.condition)
            result.tuned = (cell.condition, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                                             if int(k.split(".")[1]) >= depth})
        return r

    out = contract.run_cells(contract.plan(cfg.conditions, cfg.seeds, cfg.seed), train_one, progress, should_stop,
                             epochs=cfg.epochs)
    result.runs, result.status, result.message = out.results, out.status, out.message
    result.cached_seconds = features.seconds - cached_before if features else 0.0
    result.seconds = time.perf_counter() - start
    return result


# ---- the shots sweep -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextSweepConfig(TextConfig):
    """The text settings with a list of shots values in place of one."""
    conditions: tuple[str, ...] = setting(("feature", "last_k", "scratch"), "what to compare, comma-separated",
                                          choices=CONDITIONS, check=_conditions_problem)
    shots: tuple[int, ...] = setting((2, 8, 32), "training sentences per topic, comma-separated", lo=1, hi=10_000,
                                     check=lambda v: "" if v else "give at least one shots value",
                                     title="Sentences per topic", steps=(1, 2, 4, 8, 16, 32))

    def resolve(self) -> "TextSweepConfig":
        return replace(self, shots=tuple(sorted(set(self.shots))))


@dataclass
class TextSweepResult(contract.Result):
    config: TextSweepConfig
    runs: list[TextRun] = field(default_factory=list)
    cached_seconds: float = 0.0
    kind = "text-sweep"
    headline = ""

    def accs(self, condition: str, shots: int) -> list[float]:
        return [r.val_acc for r in self.runs if r.condition == condition and r.shots == shots
                and r.history.status == "finished"]

    def values(self, shots: int) -> dict[str, dict[int, float]]:
        return {c: {r.seed: r.val_acc for r in self.runs if r.condition == c and r.shots == shots
                    and r.history.status == "finished"} for c in self.config.conditions}

    def claims(self) -> list[dict]:
        """Per shots value: the best pretrained condition against scratch."""
        return [{**c.to_json(), "shots": s} for s in self.config.shots if (c := claim_of(self.values(s)))]

    def table(self) -> dict[str, dict[str, dict]]:
        """condition → shots → seed stats of validation accuracy."""
        return {c: {str(s): contract.seed_stats(self.accs(c, s)) for s in self.config.shots if self.accs(c, s)}
                for c in self.config.conditions}

    def body(self) -> dict:
        return {"shots": list(self.config.shots), "table": self.table(), "claims": self.claims(),
                "records": [{"condition": r.condition, "seed": r.seed, "shots": r.shots, "val_acc": r.val_acc,
                             "train_acc": r.train_acc, "status": r.history.status} for r in self.runs],
                "cached_seconds": round(self.cached_seconds, 3)}

    def metrics(self) -> dict[str, float]:
        return {f"table.{c}.shots {s}.val_acc": v["mean"] for c, row in self.table().items() for s, v in row.items()}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        verdicts = [compare(self.values(s), self.config, tr("{n} sentences per topic", n=s)) for s in self.config.shots]
        kinds = {v.kind for v in verdicts}
        return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", " ".join(v.text for v in verdicts))


def sweep(cfg: TextSweepConfig = TextSweepConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
          device: str = "auto") -> TextSweepResult:
    """Validation accuracy for every condition, seed and shots value; the frozen features once for all."""
    start = time.perf_counter()
    cfg = cfg.resolve()
    dev = devices.pick(device)
    contract.validate(cfg)
    ds, tokens, features = _prepared(cfg, max(cfg.shots), dev)
    labels = ds.labels.to(dev)
    cached_before = features.seconds if features else 0.0
    out = TextSweepResult(config=cfg, device=devices.describe(dev))

    def train_one(cell, on_epoch, should_stop):
        split = text.few_shot_split(ds, cell["shots"], cell.seed, cfg.val_per_class)
        r, _ = train_condition(cfg, cell.condition, cell.seed, tokens, labels, split, len(ds.classes), dev, features,
                               {"on_epoch": on_epoch, "should_stop": should_stop})
        return r

    done = contract.run_cells(contract.plan(cfg.conditions, cfg.seeds, cfg.seed, shots=cfg.shots), train_one,
                              progress, should_stop, epochs=cfg.epochs)
    out.runs, out.status, out.message = done.results, done.status, done.message
    out.cached_seconds = features.seconds - cached_before if features else 0.0
    out.seconds = time.perf_counter() - start
    return out


# ---- the command line ------------------------------------------------------------------------------------

def _text(result: TextResult, out: dict) -> str:
    cfg = result.config
    lines = [f"{BACKBONE} on {len(result.classes)} topics ({', '.join(result.classes)}), {cfg.shots} sentences per "
             f"topic, {cfg.seeds} seed(s), on {result.device} in {result.seconds:.1f} s"]
    lines += [f"  {s['label']:<38} val acc {s['val_acc']:.3f} ± {s['val_acc_std']:.3f}   train acc {s['train_acc']:.3f}"
              for s in out["conditions"].values()]
    return "\n".join(lines + [out["verdict"]])


def _sweep_text(result: TextSweepResult, out: dict) -> str:
    lines = [f"validation accuracy (mean ± std over {result.config.seeds} seeds); columns: shots "
             f"{', '.join(map(str, result.config.shots))}"]
    lines += [f"  {result.config.label(c):<38} " + "  ".join(f"{v['mean']:.3f}±{v['std']:.3f}" for v in row.values())
              for c, row in out["table"].items()]
    return "\n".join(lines + [out["verdict"]])


EXPERIMENTS = (
    contract.Experiment("text", "a pretrained sentence encoder on a few labelled sentences: feature extraction, "
                                "fine-tuning the last k layers, full fine-tuning, scratch", TextConfig, run,
                        text=_text,
        page="text", plots="text", live=True,
        cost=lambda c: units(c["seeds"], c["epochs"], len(c["conditions"]), c["shots"]), narrate=narration.say_text),
    contract.Experiment("text-sweep", "the text conditions' validation accuracy over a list of shots values",
                        TextSweepConfig, sweep, text=_sweep_text,
        page="text", plots="text",
        cost=lambda c: units(c["seeds"], c["epochs"], len(c["conditions"]), c["shots"])),
)
