"""Guided Transfer Learning (Nikolić, Andrić, Nikolić 2023, arXiv 2303.16154), written from the paper's
description: pretraining learns the weights *and* how far each weight should move on a new task.

1. Pretrain a base network on the source task: the classes that are not target classes (cell types of a
   synthetic RNA-seq-like expression atlas, or handwritten digits).
2. Scouts: K copies of the base, each fine-tuned on an easier sub-problem (a few source classes).
   They are independent, so all K train at once as one stacked model (`tl_core.stacked.Stacked`).
3. Raw guide per parameter: the mean over scouts of (w_scout - w_base)^2 (or |w_scout - w_base|).
4. Focus per tensor (raw, subtract min, min-max to [0, 1], divide by max), clipped to [0, 1], then an
   optional temperature g ** (1 / T) (warm, T > 1: every guide rises toward free, 1 stays 1; cold, T < 1:
   the low ones sink toward frozen) or binary freezing (per tensor, its top fraction -> 1, the rest -> 0).
5. Guided fine-tuning on the target task: after every optimizer step each parameter's update is scaled
   by its guide, new = old + guide * (stepped - old), so guide 0 = frozen and 1 = free with any optimizer.

The comparison trains, for several seeds of the few-shot target split: scratch, plain fine-tuning,
guided fine-tuning, and "freeze all but the head". The target head is new (the target classes were never
seen), so it has no guide and trains freely in every condition.

This module is the comparison as one experiment: its result, claim, verdict and command line. The rest is the
library's: `tl_core.gtl_lab` (the settings, the base and scouts, one condition trained, shared with the sweep),
`tl_core.guidance` (scouts, the guide, the guided update) and `tl_core.gtl_data` (the digits, the expression atlas,
the small networks).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from tl_core import claims, contract, data, guidance
from tl_core.contract import Progress, Stop, Verdict
from tl_core.gtl_data import load_classes
from tl_core.gtl_lab import (
    BASELINES,
    CONDITIONS,
    NAMES,
    GTLConfig,
    GTLRun,
    Scouted,
    make_guide,
    on_one_thread,
    pretrain_and_scout,
    train_target,
)
from tl_core.i18n import fmt, tr
from tl_core.serve.estimates import units

# Searched on validation draws (seed 100 and 200, 5 seeds each; about 3,150 settings of the existing knobs): the
# one setting where guided beat the stronger baseline by the rule on both draws. Offered as a preset, not a default:
# on the reported seeds (0-4) it is a tie, and on digits it trails plain fine-tuning.
BEST_TRY = {"scout_classes": 2, "free_fraction": 0.05, "shots": 10}
BEST_TRY_NOTE = ("Scouts on 2-class sub-problems, only the top 5% of each tensor free, 10 shots: the one setting of "
                 "about 3,150 searched on validation seeds where guidance beat freezing the body by the rule on two "
                 "draws (+1.5 and +1.2 points). The freed weights are mostly the first layer's programme genes. On "
                 "seeds 0-4 it ties freezing (+1.2 points, interval -0.4 to +2.8): on this data guidance behaves "
                 "like freezing.")


# ---- the comparison ---------------------------------------------------------------------------------

@dataclass
class GTLResult(contract.Result):
    config: GTLConfig
    guide: dict[str, torch.Tensor]       # the focused guide applied to the body (CPU tensors)
    raw: dict[str, torch.Tensor]         # the raw guide before focus
    scouted: Scouted
    runs: list[GTLRun]
    scouts_cached: bool = False
    kind = "gtl"
    headline = "guided.val_acc_mean"

    def by_condition(self, condition: str) -> list[GTLRun]:
        return [r for r in self.runs if r.condition == condition]

    def summary(self, condition: str) -> dict:
        runs = self.by_condition(condition)
        acc = contract.seed_stats([r.val_acc for r in runs if r.history.status == "finished"])  # not a stopped one
        return {
            "val_acc_mean": acc["mean"],
            "val_acc_std": acc["std"],
            "val_acc_seeds": acc["seeds"],
            "seeds": [r.seed for r in runs],
            "val_acc_curves": [r.history.val_acc for r in runs],
            "status": runs[0].history.status if runs else "not run",
        }

    def guide_summary(self) -> dict:
        values = torch.cat([g.flatten() for g in self.guide.values()])
        return {
            "mean": float(values.mean()),
            "per_layer": {n: float(g.mean()) for n, g in self.guide.items()},
            "fraction_frozen": float((values == 0).float().mean()),
            "fraction_free": float((values >= 1).float().mean()),
            "fraction_above_half": float((values > 0.5).float().mean()),
            "parameters": int(values.numel()),
        }

    def body(self) -> dict:
        s = self.scouted
        return {
            **{c: self.summary(c) for c in CONDITIONS},
            "guide": self.guide_summary(),
            "claim": c.to_json() if (c := self.claim()) else None,
            "base": {"source_classes": s.source_classes, "source_val_acc": s.source_val_acc,
                     "pretrain_seconds": round(s.pretrain_seconds, 3)},
            "scouts": {"count": len(s.scouts), "classes": s.tasks, "seconds": round(s.scout_seconds, 3),
                       "cached": self.scouts_cached},
        }

    def metrics(self) -> dict[str, float]:
        """<condition>.val_acc_mean / .val_acc_std over seeds, the guide's mean and frozen/free shares, and the
        base's accuracy on held-out source images."""
        out = {}
        for c in CONDITIONS:
            s = self.summary(c)
            out.update({f"{c}.val_acc_mean": s["val_acc_mean"], f"{c}.val_acc_std": s["val_acc_std"]})
        if self.guide:
            g = self.guide_summary()
            out.update({"guide.mean": g["mean"], "guide.fraction_frozen": g["fraction_frozen"],
                        "guide.fraction_free": g["fraction_free"]})
        if self.scouted is not None:
            out["base.source_val_acc"] = self.scouted.source_val_acc
        return out

    def curves(self) -> dict[str, list]:
        """<condition>.val_acc: the seeds' mean validation accuracy per fine-tuning epoch."""
        return {f"{c}.val_acc": contract.mean_curve([r.history.val_acc for r in self.by_condition(c)])
                for c in CONDITIONS if self.by_condition(c)}

    def claim(self) -> claims.Claim | None:
        """Guided against the stronger of freezing all but the head and plain fine-tuning, paired over seeds."""
        values = {c: {r.seed: r.val_acc for r in self.by_condition(c) if r.history.status == "finished"}
                  for c in CONDITIONS}
        if not values["guided"] or not any(values[c] for c in BASELINES):
            return None
        return claims.compare("guided", values, list(BASELINES))

    def verdict(self) -> Verdict:
        return verdict(self)


def run(cfg: GTLConfig = GTLConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> GTLResult:
    """Pretrain (or reuse) base and scouts, build the guide, and train every condition for every seed."""
    return on_one_thread(_run, cfg, progress, should_stop, device)


def _run(cfg: GTLConfig, dev: torch.device, progress: Progress | None, should_stop: Stop | None) -> GTLResult:
    start = time.perf_counter()
    target = load_classes(cfg.data, tuple(cfg.target_classes))
    data.few_shot_split(target, cfg.shots, cfg.seed, cfg.val_per_class)  # a clear error if shots is too big
    scouted, cached = pretrain_and_scout(cfg, dev, progress, should_stop)
    raw = scouted.raw(cfg.change)
    guide = make_guide(raw, cfg)
    if should_stop is not None and should_stop():
        return GTLResult(config=cfg, guide=guide, raw=raw, scouted=scouted, runs=[], device=str(dev),
                         status="stopped", message="stopped by the user while pretraining the base and its scouts",
                         seconds=time.perf_counter() - start)
    base = scouted.base

    def train_one(cell: contract.Cell, on_epoch, should_stop) -> GTLRun:
        return train_target(cfg, cell.condition, cell.seed, target, base, guide, dev, on_epoch, should_stop)

    # seeds outermost: a run stopped early still has every condition of the seeds it finished, paired
    cells = [contract.Cell(c, s) for s in range(cfg.seed, cfg.seed + cfg.seeds) for c in CONDITIONS]
    out = contract.run_cells(cells, train_one, progress, should_stop, epochs=cfg.epochs, span=(0.15, 1.0))
    return GTLResult(config=cfg, guide=guide, raw=raw, scouted=scouted, runs=out.results, device=str(dev),
                     scouts_cached=cached, status=out.status, message=out.message,
                     seconds=time.perf_counter() - start)


def freedom(guide: dict) -> str:
    """How much of the body the guide leaves free, in words: its mean and the share of weights above 0.5."""
    return tr("the guide leaves {share} of the body's weights more than half free (mean guide {mean})",
              share=fmt(guide["fraction_above_half"], ".1%"), mean=fmt(guide["mean"], ".2f"))


def verdict(result: GTLResult) -> Verdict:
    """Does guidance beat simply freezing the body? Guided against the stronger of freezing all but the head and
    plain fine-tuning, by the claims rule, with how much of the body the guide leaves free."""
    if result.status != "finished":
        return result.ended_early()
    claim = result.claim()
    if claim is None:
        return Verdict("single", tr("Nothing to compare: guided or its baselines have no finished run."))
    guide = result.guide_summary()
    text = claim.sentence(NAMES["guided"], NAMES[claim.against])
    if guide["fraction_above_half"] < 0.05 and claim.against == "freeze_head_only":
        text += tr(" Here {freedom}, so guided fine-tuning is almost the same experiment as freezing the body.",
                   freedom=freedom(guide))
    else:
        text += tr(" Here {freedom}.", freedom=freedom(guide))
    means = {c: result.summary(c)["val_acc_mean"] for c in CONDITIONS}
    if means["freeze_head_only"] < means["scratch"] - 0.05:
        text += tr(" Freezing the source features (head only, {head}) trails scratch ({scratch}): this source "
                   "transfers poorly, so keeping weights near it, which is what guidance does, has little to offer.",
                   head=fmt(means["freeze_head_only"], ".1%"), scratch=fmt(means["scratch"], ".1%"))
    return Verdict(claim.kind, text)


# ---- the command line: python -m tl_core gtl ... --------------------------------------------------------

def _after(args, result: GTLResult) -> dict:
    """--guide-out: save the guide there (the history keeps the path as the run's model)."""
    if not args.guide_out:
        return {}
    guidance.guide_file(result.guide, args.guide_out)
    return {"model_path": str(args.guide_out)}


def _text(result: GTLResult, out: dict) -> str:
    cfg = result.config
    lines = [f"GTL: {cfg.data} ({cfg.source} source), {cfg.arch}, target classes {','.join(cfg.target_classes)}, "
             f"{cfg.shots} shot(s), {cfg.scouts} scouts on {cfg.scout_classes} classes, on {out['device']} in "
             f"{out['seconds']:.1f} s"]
    lines += [f"  {c:<17} val acc {out[c]['val_acc_mean']:.3f} ± {out[c]['val_acc_std']:.3f}" for c in CONDITIONS]
    lines.append(f"  mean guide {out['guide']['mean']:.3f}: " +
                 ", ".join(f"{n} {v:.2f}" for n, v in out["guide"]["per_layer"].items()))
    return "\n".join(lines + [out["verdict"]])


EXPERIMENTS = (
    contract.Experiment(
        "gtl", "Guided Transfer Learning: scouts, guide values, guided fine-tuning", GTLConfig, run,
        options=(contract.Option("--guide-out", "save the guide here as a .pt (parameter name -> tensor)"),),
        after=_after, text=_text,
        page="gtl", plots="gtl",
        cost=lambda c: units(c["seeds"], c["epochs"] + c["pretrain_epochs"] + c["scout_epochs"] * c["scouts"] / 4, 1,
                             c["shots"])),
)
