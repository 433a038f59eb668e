"""Which strategy for which data: the decks' 2×2 chart of data size × similarity to the pretraining task,
measured instead of stated.

Source task: ImageNet (EfficientNet-Lite0's real weights). Targets, placed on the similarity axis:
*near* (natural photos: textures, faces) and *far* (microscopy and tissue crops; 8×8 grayscale digits).
Data size: a few images per class and more. Four strategies, each a freeze depth of the lab's own run:

    feature extraction  every stage but the new head frozen
    partial             the last stages train (the last block, the head conv, the head)
    full                every stage trains, from the ImageNet weights
    scratch             every stage trains, from random weights

One cell of the grid is (dataset, strategy, seed); inside it every shots value starts from the same weights
and the frozen prefix's features are computed once (the lab's trainer caches them), as the lab's sweep does.
A cell is self-contained (it loads its own data), so the Ray engine can run it anywhere.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tl_core import backbones, claims, contract, data, finetuning, narration, store
from tl_core import device as devices
from tl_core import engine as engines
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import N_, fmt, number, tr
from tl_core.serve.estimates import units

# where each built-in dataset sits on the similarity axis (to ImageNet's natural photos)
DOMAINS = {"textures": "near", "faces": "near", "microscopy": "far", "digits": "far"}
STRATEGIES = {
    "feature_extraction": "every stage but the new head frozen",
    "partial": "the last stages train (last block, head conv, head), the rest frozen",
    "full": "every stage trains, starting from the ImageNet weights",
    "scratch": "every stage trains, starting from random weights",
}
PRETRAINED = ("feature_extraction", "partial", "full")
# Negative transfer on real images, chosen on validation seeds (100-102 and 200-202): a source task far from the target
# (Transfer Lab's shapes CNN, pretrained on synthetic shapes) with its features frozen, on handwritten digits.
# Scratch beat feature extraction by the claims rule at 5 and 20 shots on both draws (83% vs 34%, 95% vs 53%; 75% vs
# 30%, 93% vs 48%); letting the last stages train (partial) ties scratch.
# The strategy page's preset, the lecture's step.
FAR_SOURCE = {"backbone": "shapes_cnn", "datasets": ("digits",), "shots": (5, 20), "image_size": 32, "epochs": 6,
              "strategies": ("feature_extraction", "scratch")}
PARTIAL_STAGES = 3   # stages that train under "partial": for Lite0 block 7, the head conv and the classifier
# the decks' rule for each quadrant (data size, similarity): what they recommend, and which strategies count as it
RULE = {
    ("few", "near"): (N_("feature extraction: freeze the pretrained network, train a new head"),
                      ("feature_extraction",)),
    ("more", "near"): (N_("fine-tune more layers (partial or full) as the data grows"), ("partial", "full")),
    ("few", "far"): (N_("fine-tune the last stages (partial); expect pretraining to help less"),
                     ("partial",)),
    ("more", "far"): (N_("fine-tune everything, or train from scratch: ImageNet features can mislead"),
                      ("full", "scratch")),
}
# a quadrant and a strategy as the verdict names them (the run's JSON keeps the keys)
QUADRANT_WORDS = {("few", "near"): N_("few data, near"), ("few", "far"): N_("few data, far"),
                  ("more", "near"): N_("more data, near"), ("more", "far"): N_("more data, far")}
STRATEGY_WORDS = {"feature_extraction": N_("feature extraction"), "partial": N_("partial"), "full": N_("full"),
                  "scratch": N_("scratch")}


def _datasets_problem(values: tuple) -> str:
    if not values:
        return "give at least one dataset"
    bad = [v for v in values if v not in DOMAINS]
    return f"unknown dataset {bad[0]!r}: choose from {', '.join(DOMAINS)}" if bad else ""


def _nonempty(what: str):
    return lambda values: "" if values else f"give at least one {what}"


@dataclass(frozen=True)
class DomainsConfig:
    datasets: tuple[str, ...] = setting(("textures", "microscopy"), "target datasets, comma-separated: near "
                                        "(textures, faces) or far (microscopy, digits) from ImageNet; digits (10 "
                                        "classes) costs about 3× a 3-class dataset", check=_datasets_problem,
                                        title="Datasets: near (textures, faces), far (microscopy, digits)",
                                        steps=tuple(DOMAINS))
    shots: tuple[int, ...] = setting((5, 20), "training images per class, comma-separated: few and more",
                                     lo=1, hi=1000, check=_nonempty("shots value"),
                                     title="Training images per class (few, more)", steps=(2, 5, 10, 15, 20, 40))
    strategies: tuple[str, ...] = setting(tuple(STRATEGIES), "strategies, comma-separated", choices=STRATEGIES,
                                          check=_nonempty("strategy"), title="Strategies")
    backbone: str = setting("efficientnet_lite0", "the pretrained backbone: the source task (ImageNet photos, or "
                            "Transfer Lab's synthetic shapes)", choices=backbones.IMAGE,
                            title="Backbone (the source task)")
    epochs: int = setting(8, "passes over the training images", lo=1, hi=500, title="Epochs", span=(2, 30))
    lr: float = setting(3e-3, "Adam learning rate when only the head or the last stages train", lo=1e-6, hi=1)
    full_lr: float = setting(3e-3, "Adam learning rate when every stage trains (full, scratch)", lo=1e-6, hi=1,
                             label="full lr")
    image_size: int = setting(48, "pixels; small is fast on a CPU", lo=data.MIN_SIZE, hi=data.MAX_SIZE,
                              label="image size", title="Image size (px)", steps=(32, 48, 64, 96))
    batch_size: int = setting(8, "images per step (small: more steps, so training from scratch can start to learn)",
                              lo=1, hi=1024, label="batch size")
    seeds: int = setting(3, "runs per cell, for bands", lo=1, hi=20, title="Seeds (for the bands)", span=(1, 5))
    seed: int = setting(0, "first seed: split, head init, scratch init", lo=0)
    val_per_class: int = setting(20, "fixed validation images per class", lo=1, hi=200, label="val per class",
                                 title="Validation images per class", span=(2, 50))
    engine: str = engines.engine_setting()
    address: str = engines.address_setting()

    def check(self) -> None:
        backbones.check_size(self.backbone, self.image_size)
        for name in self.datasets:
            ds = data.load(name, data.MIN_SIZE)   # class counts only: the smallest size is the cheapest
            most = data.max_shots(ds, self.val_per_class)
            if max(self.shots) > most:
                raise ValueError(f"shots {max(self.shots)} is more than {name} has per class after "
                                 f"{self.val_per_class} validation images: at most {most}")

    def resolve(self) -> "DomainsConfig":
        """Each dataset, shots value and strategy once; shots ascending (few before more)."""
        return replace(self, datasets=tuple(dict.fromkeys(self.datasets)), shots=tuple(sorted(set(self.shots))),
                       strategies=tuple(s for s in STRATEGIES if s in self.strategies))

    def lab(self, dataset: str, strategy: str) -> finetuning.FinetuneConfig:
        """The fine-tuning lab's config that one strategy is."""
        n = len(backbones.stage_names(self.backbone))
        depth = {"feature_extraction": n - 1, "partial": n - PARTIAL_STAGES}.get(strategy, 0)
        every = strategy in ("full", "scratch")
        return finetuning.FinetuneConfig(
            backbone=self.backbone, weights="scratch" if strategy == "scratch" else "pretrained", dataset=dataset,
            shots=None, freeze=str(depth), epochs=self.epochs, lr=self.full_lr if every else self.lr,
            batch_size=self.batch_size, image_size=self.image_size, seeds=1, val_per_class=self.val_per_class)


@dataclass
class CellRecords:
    """What one (dataset, strategy, seed) cell gives back: one record per shots value it finished."""
    records: list[dict] = field(default_factory=list)
    status: str = "finished"
    message: str = ""


def train_cell(cfg: DomainsConfig, dev: torch.device, cell: contract.Cell, on_epoch, should_stop) -> CellRecords:
    """Every shots value of one (dataset, strategy, seed), each from the same initial weights."""
    dataset, strategy = cell["dataset"], cell.condition
    lab = cfg.lab(dataset, strategy)
    ds = data.load(dataset, cfg.image_size)
    weights = "scratch" if strategy == "scratch" else "pretrained"
    model = backbones.create(cfg.backbone, weights, len(ds.classes), cell.seed).to(dev)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = finetuning.Trainer(model, lab, dev)
    _, val = data.few_shot_split(ds, 1, cell.seed, cfg.val_per_class)   # one object: its features cached once
    out = CellRecords()
    for i, shots in enumerate(cfg.shots):
        train, _ = data.few_shot_split(ds, shots, cell.seed, cfg.val_per_class)
        model.load_state_dict(initial)
        hooks = {"should_stop": should_stop,
                 "on_epoch": lambda e, h, base=i * cfg.epochs: on_epoch(base + e, h)}
        r = trainer.fit_and_score(weights, cell.seed, train, val, hooks)
        out.status, out.message = r.history.status, r.history.message
        if out.status != "finished":
            break
        out.records.append({"dataset": dataset, "domain": DOMAINS[dataset], "strategy": strategy, "seed": cell.seed,
                            "shots": shots, "val_acc": r.val_acc, "train_acc": r.train_acc})
    return out


class CellTrainer:
    """`train_one` for the runner: a plain object holding the config and device (picklable for Ray)."""

    def __init__(self, cfg: DomainsConfig, dev: torch.device):
        self.cfg, self.dev = cfg, dev

    def __call__(self, cell, on_epoch, should_stop):
        return train_cell(self.cfg, self.dev, cell, on_epoch, should_stop)


def _size(shots: int, all_shots: tuple) -> str:
    return "few" if shots == min(all_shots) else "more"


@dataclass
class DomainsResult(contract.Result):
    config: DomainsConfig
    records: list[dict] = field(default_factory=list)
    kind = "domains"
    headline = ""

    @classmethod
    def from_json(cls, out: dict) -> "DomainsResult":
        """A result as its JSON (the run history keeps it) describes it: the grid is drawn again without training."""
        return cls(config=contract.from_record(DomainsConfig, out["config"]), records=out["records"],
                   seconds=out.get("seconds", 0.0), device=out.get("device", ""), status=out.get("status", "finished"),
                   message=out.get("message", ""))

    def accs(self, dataset: str, shots: int, strategy: str) -> list[float]:
        return [r["val_acc"] for r in self.records
                if r["dataset"] == dataset and r["shots"] == shots and r["strategy"] == strategy]

    def cells(self) -> list[dict]:
        """One entry per (dataset, shots, strategy) that has results: mean and std over seeds."""
        out = []
        for ds in self.config.datasets:
            for sh in self.config.shots:
                for st in self.config.strategies:
                    accs = self.accs(ds, sh, st)
                    if accs:
                        s = contract.seed_stats(accs)
                        out.append({"domain": DOMAINS[ds], "dataset": ds, "shots": sh, "strategy": st,
                                    "val_acc_mean": s["mean"], "val_acc_std": s["std"], "val_acc_seeds": s["seeds"]})
        return out

    def mean(self, dataset: str, shots: int, strategy: str) -> float:
        accs = self.accs(dataset, shots, strategy)
        return float(np.mean(accs)) if accs else float("nan")

    def gain_by_dataset(self) -> dict[str, dict[str, float]]:
        """Best pretrained strategy minus scratch (means over seeds), per dataset and shots."""
        out = {}
        for ds in self.config.datasets:
            row = {}
            for sh in self.config.shots:
                best = max((self.mean(ds, sh, st) for st in PRETRAINED if st in self.config.strategies),
                           default=float("nan"), key=lambda v: -np.inf if np.isnan(v) else v)
                gap = best - self.mean(ds, sh, "scratch")
                if np.isfinite(gap):
                    row[str(sh)] = float(gap)
            out[ds] = row
        return out

    def gain(self) -> dict[str, dict[str, float]]:
        """Best pretrained minus scratch per domain and shots: the mean over the domain's datasets."""
        by_ds = self.gain_by_dataset()
        out = {}
        for domain in ("near", "far"):
            rows = [by_ds[ds] for ds in self.config.datasets if DOMAINS[ds] == domain]
            shots = {k for r in rows for k in r}
            if shots:
                out[domain] = {k: float(np.mean([r[k] for r in rows if k in r]))
                               for k in sorted(shots, key=int)}
        return out

    def by_seed(self, datasets, shots, strategy: str) -> dict[int, float]:
        """Per seed: the strategy's validation accuracy averaged over these datasets and shots values (a seed that
        lacks one of them is left out), so a claim can pair seeds."""
        per: dict[int, list[float]] = {}
        for r in self.records:
            if r["dataset"] in datasets and r["shots"] in shots and r["strategy"] == strategy:
                per.setdefault(r["seed"], []).append(r["val_acc"])
        want = len(datasets) * len(shots)
        return {seed: float(np.mean(v)) for seed, v in per.items() if len(v) == want}

    def quadrants(self) -> list[dict]:
        """The 2×2 chart: for each (data size, similarity), every strategy's mean over the quadrant's datasets and
        seeds; the winner and, by the claims rule, whether it beats the runner-up (`kind`: helped, or tie) and which
        strategies the rule cannot tell from it (`tied`); and whether that agrees with the decks' rule, counting
        clear results only (`agrees`, see `agreement`): True where the rule's strategy wins clearly, False where the
        winner, or every strategy tied with it, is another one; None where the rule's strategy ties with others
        (the data can't tell them apart at this size: no agreement by tie)."""
        out = []
        for size in ("few", "more"):
            shots = [sh for sh in self.config.shots if _size(sh, self.config.shots) == size]
            if not shots or (size == "more" and len(self.config.shots) < 2):
                continue
            for domain in ("near", "far"):
                datasets = [ds for ds in self.config.datasets if DOMAINS[ds] == domain]
                values = {st: v for st in self.config.strategies if (v := self.by_seed(datasets, shots, st))}
                if not values:
                    continue
                ranked = sorted(values, key=lambda st: -np.mean(list(values[st].values())))
                win = ranked[0]
                claim = claims.compare(win, values) if len(ranked) > 1 else None
                tied = claims.tied_with(values, win) if claim else [win]
                rule_text, rule_set = RULE[(size, domain)]
                ruled = [st for st in ranked if st in rule_set]
                means = {st: float(np.mean(list(values[st].values()))) for st in ranked}
                stds = {st: float(np.std(list(values[st].values()))) for st in ranked}
                out.append({"size": size, "domain": domain, "shots": shots, "datasets": datasets,
                            "means": means, "stds": stds, "winner": win,
                            "runner_up": claim.against if claim else None,
                            "margin": claim.gap if claim else float("nan"),
                            "kind": claim.kind if claim else "single", "claim": claim.to_json() if claim else None,
                            "tied": tied, "rule": rule_text, "rule_strategies": list(rule_set),
                            "agrees": agreement(claim.kind if claim else "single", win, tied, rule_set),
                            "gap_to_rule": means[win] - means[ruled[0]] if ruled else float("nan")})
        return out

    def gain_claims(self) -> list[dict]:
        """Per (dataset, shots): the best pretrained strategy against scratch, by the claims rule."""
        out = []
        for ds in self.config.datasets:
            for sh in self.config.shots:
                values = {st: v for st in self.config.strategies if (v := self.by_seed([ds], [sh], st))}
                pretrained = [st for st in PRETRAINED if st in values]
                if "scratch" in values and pretrained:
                    best = claims.best_of(values, pretrained)
                    out.append({**claims.compare(best, values, ["scratch"]).to_json(), "dataset": ds,
                                "domain": DOMAINS[ds], "shots": sh})
        return out

    def negative_transfer(self) -> list[dict]:
        """Every (dataset, shots) where scratch beat every pretrained strategy by the claims rule (the best
        pretrained one's claim against scratch is "hurt"), with both numbers."""
        return [{"dataset": c["dataset"], "domain": c["domain"], "shots": int(c["shots"]),
                 "gain": c["subject_mean"] - c["against_mean"], "pretrained": c["subject"],
                 "pretrained_acc": c["subject_mean"], "scratch_acc": c["against_mean"], "claim": c}
                for c in self.gain_claims() if c["kind"] == "hurt"]

    def far_vs_near_claims(self) -> list[dict]:
        """Per shots value: the gain of pretraining (best pretrained minus scratch, per seed, mean over the domain's
        datasets) near ImageNet against far from it, by the claims rule."""
        out = []
        for sh in self.config.shots:
            gains = {}
            for domain in ("near", "far"):
                per = []
                for ds in (d for d in self.config.datasets if DOMAINS[d] == domain):
                    values = {st: self.by_seed([ds], [sh], st) for st in self.config.strategies}
                    pretrained = [st for st in PRETRAINED if values.get(st)]
                    if not values.get("scratch") or not pretrained:
                        continue
                    best = claims.best_of(values, pretrained)
                    per.append({seed: values[best][seed] - values["scratch"][seed] for seed in values[best]
                                if seed in values["scratch"]})
                shared = set.intersection(*(set(p) for p in per)) if per else set()
                if shared:
                    gains[domain] = {seed: float(np.mean([p[seed] for p in per])) for seed in shared}
            if len(gains) == 2:
                out.append({**claims.compare("near", gains, ["far"]).to_json(), "shots": sh})
        return out

    def far_vs_near(self) -> str:
        """The page's answer to "does pretraining help less far from ImageNet?", shots value by shots value, each by
        the claims rule on the per-seed gains."""
        found = self.far_vs_near_claims()
        if not found:
            return "Choose at least one near and one far dataset (and scratch) to compare the domains."
        less = [str(c["shots"]) for c in found if c["kind"] == "helped"]
        numbers = " ".join(f"{c['shots']} shots: " + claims.Claim.from_json(c).sentence(
            "the gain near ImageNet", "far from it", "best pretrained minus scratch") for c in found)
        claim = "pretraining's lead over scratch clearly smaller far from ImageNet than near it"
        head = (f"Yes: at every data size, {claim}" if len(less) == len(found) else
                f"No: at no data size is {claim}" if not less else f"Only at {', '.join(less)} shots is {claim}")
        return f"{head}. {numbers}"

    def body(self) -> dict:
        return {"cells": self.cells(),
                "gain": self.gain(), "gain_by_dataset": self.gain_by_dataset(), "gain_claims": self.gain_claims(),
                "far_vs_near": self.far_vs_near(), "far_vs_near_claims": self.far_vs_near_claims(),
                "quadrants": self.quadrants(), "negative_transfer": self.negative_transfer(), "records": self.records}

    def metrics(self) -> dict[str, float]:
        out = {f"{c['dataset']}.shots {c['shots']}.{c['strategy']}.val_acc": c["val_acc_mean"] for c in self.cells()}
        out.update({f"gain.{d}.shots {sh}": g for d, row in self.gain().items() for sh, g in row.items()})
        return out

    def verdict(self) -> Verdict:
        """Quadrant by quadrant, the measured winner (or the tie) next to the decks' rule, and negative transfer."""
        if self.status != "finished":
            return self.ended_early()
        quads = self.quadrants()
        if not quads:
            return Verdict("single", tr("{n} runs; choose two shots values and near and far datasets for the 2×2 "
                                        "chart.", n=len(self.records)))
        agree = sum(q["agrees"] is True for q in quads)
        clear = sum(q["agrees"] is not None for q in quads)
        parts = [tr("{quadrant}: {result}", quadrant=_quadrant(q), result=quadrant_words(q))
                 + ("" if q["agrees"] is True else tr(" (the decks' rule: {rule})", rule=tr(q["rule"]))) for q in quads]
        negative = self.negative_transfer()
        cases = "; ".join(tr("{dataset} at {shots} shots, scratch {scratch} vs {strategy} {acc}", dataset=x["dataset"],
                             shots=x["shots"], scratch=fmt(x["scratch_acc"], ".0%"),
                             strategy=_name(x["pretrained"]), acc=fmt(x["pretrained_acc"], ".0%")) for x in negative)
        neg = (tr("Negative transfer (scratch ahead of every pretrained strategy by the rule): {cases}.", cases=cases)
               if negative else
               tr("No dataset shows negative transfer here: at every data size scratch does not beat the best "
                  "pretrained strategy by the rule."))
        unclear = len(quads) - clear
        count = ((tr("The measurement agrees with the decks' rule in {agree} of {clear} quadrants with a clear result",
                     agree=agree, clear=clear)
                  + (tr("; in {unclear} the data can't tell the strategies apart at this size", unclear=unclear)
                     if unclear else ""))
                 if clear else tr("No quadrant gives a clear result: the data can't tell the strategies apart at this "
                                  "size, so it neither agrees nor disagrees with the decks' rule"))
        text = tr("{count} ({parts}; validation accuracy over {seeds} seeds). {negative}", count=count,
                  parts="; ".join(parts), seeds=self.config.seeds, negative=neg)
        return Verdict("helped" if agree == len(quads) else "tie" if not clear else "mixed", text)


def agreement(kind: str, winner: str, tied: list[str], rule: tuple | list | set) -> bool | None:
    """Whether a quadrant's result agrees with the decks' rule, counting clear results only: the winner clearly ahead
    of every other strategy (helped): agrees when it is the rule's; a tie, or one seed: disagrees when no strategy the
    rule names is among those the seeds cannot tell from the winner (they are all clearly behind), else None (the
    data can't tell the rule's strategy from the others at this size)."""
    if kind == "helped":
        return winner in rule
    if not any(st in rule for st in (tied or [winner])):
        return False
    return None


def reading(q: dict) -> str:
    """A quadrant against the decks' rule in a word: "agrees", "disagrees" or "can't tell"."""
    return {True: "agrees", False: "disagrees"}.get(q.get("agrees"), "can't tell")


def quadrant_words(q: dict) -> str:
    """A quadrant's result in words: 'partial wins (93%, +4.1 points over full, ...)' or 'a tie: ...'."""
    if q["kind"] == "helped":
        c = q["claim"]
        return tr("{winner} wins ({acc}; {gap} points over {runner_up}, 95% interval {low} to {high})",
                  winner=_name(q["winner"]), acc=fmt(q["means"][q["winner"]], ".0%"), gap=_signed(c["gap"]),
                  runner_up=_name(q["runner_up"]), low=_signed(c["low"]), high=_signed(c["high"]))
    if q["kind"] == "single":
        return tr("{winner} leads ({acc}; one seed says little)", winner=_name(q["winner"]),
                  acc=fmt(q["means"][q["winner"]], ".0%"))
    every = len(q["tied"]) == len(q["means"])
    tied = [tr("{strategy} ({acc})", strategy=_name(st), acc=fmt(q["means"][st], ".0%")) for st in q["tied"]]
    between = tr(" and ").join(tied)
    if every:
        return tr("a tie between {tied}: the data can't tell these apart at this size", tied=between)
    if len(q["tied"]) > 2:
        return tr("a tie between {tied}: the data can't tell these apart at this size, and the rest trail",
                  tied=between)
    return tr("a tie between {tied}: the data can't tell the two apart at this size, and the rest trail", tied=between)


def _name(strategy: str) -> str:
    return tr(STRATEGY_WORDS[strategy]) if strategy in STRATEGY_WORDS else strategy.replace("_", " ")


def _quadrant(q: dict) -> str:
    key = (q["size"], q["domain"])
    return tr(QUADRANT_WORDS[key]) if key in QUADRANT_WORDS else f"{q['size']} data, {q['domain']}"


def _signed(fraction: float) -> str:
    """A gap in points, signed, one decimal: "+4.1" (as `:+.1f` writes it in English)."""
    return number(fraction * 100, 1, signed=True)


def run(cfg: DomainsConfig = DomainsConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> DomainsResult:
    """Validation accuracy of every (dataset, shots, strategy) over seeds, and the 2×2 chart they make."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    ok, message = backbones.weights_status(cfg.backbone)
    if not ok:
        raise backbones.WeightsUnavailable(f"{cfg.backbone}: {message}")
    start = time.perf_counter()
    dev = devices.pick(device)
    cells = [contract.Cell(st, cfg.seed + s, (("dataset", ds),))
             for ds in cfg.datasets for st in cfg.strategies for s in range(cfg.seeds)]
    done = engines.run_cells(cells, CellTrainer(cfg, dev), progress, should_stop, epochs=cfg.epochs * len(cfg.shots),
                             engine=cfg.engine, address=cfg.address)
    records = [r for cell in done.results for r in cell.records]
    return DomainsResult(config=cfg, records=records, seconds=time.perf_counter() - start,
                         device=devices.describe(dev), status=done.status, message=done.message)


def from_history(db: store.Store, cfg: DomainsConfig) -> tuple[DomainsResult, store.Run] | None:
    """The newest finished grid in the run history with exactly `cfg`'s recorded settings, or None."""
    want = contract.record(cfg)
    for run_ in db.runs(kind="domains"):
        if run_.status == "finished" and run_.config == want:
            full = db.get(run_.id)
            return DomainsResult.from_json(full.result), full
    return None


def _text(result: DomainsResult, out: dict) -> str:
    lines = [f"{'dataset':<11} {'domain':<5} {'shots':>5}  "
             + "  ".join(f"{_name(s):>18}" for s in result.config.strategies)]
    for ds in result.config.datasets:
        for sh in result.config.shots:
            cells = [f"{result.mean(ds, sh, st):.3f} ± {np.std(result.accs(ds, sh, st) or [np.nan]):.3f}"
                     for st in result.config.strategies]
            lines.append(f"{ds:<11} {DOMAINS[ds]:<5} {sh:>5}  " + "  ".join(f"{c:>18}" for c in cells))
    lines += [f"gain (best pretrained − scratch), {d}: " + ", ".join(f"{sh} shots {g:+.3f}" for sh, g in row.items())
              for d, row in out["gain"].items()]
    return "\n".join(lines + [f"{result.seconds:.0f} s on {result.device}", result.verdict().text])


EXPERIMENTS = (
    contract.Experiment("domains", "which strategy for which data: near/far datasets × few/more shots × "
                                   "feature extraction, partial, full, scratch", DomainsConfig, run, text=_text,
        page="domains", plots="domains",
        cost=lambda c: units(c["seeds"], c["epochs"], len(c["strategies"]), c["shots"], c["image_size"]),
        narrate=narration.say_domains),
)
