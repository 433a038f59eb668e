"""When does guidance help? Guided Transfer Learning over shots × how related the source is.

For each source (related: the other classes of the same data; unrelated: the same source data with its
features shuffled, see `gtl_lab.SOURCES`) the base and its scouts are pretrained once (the GTL lab's cache),
and the guide built with the lab's settings. Then every (shots, seed) trains guided and plain fine-tuning
from that base, and scratch once (scratch never sees a source, so both sources show the same scratch).
Each (shots, source, condition) is one grid cell over seeds; the cells run through `engine.run_cells`,
locally or as Ray tasks (`tl_core.engine`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from tl_core import claims, contract, data, gtl_data, gtl_lab, i18n, narration
from tl_core import engine as engines
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import N_, tr
from tl_core.serve.estimates import units

CONDITIONS = ("guided", "freeze_head_only", "plain", "scratch")
SOURCE_WORDS = {"related": N_("Related"), "unrelated": N_("Unrelated")}   # a finding's first word
_D = gtl_lab.GTLConfig()


@dataclass(frozen=True)
class GTLSweepConfig:
    data: str = setting(_D.data, "the data: source and target classes come from it", choices=gtl_lab.DATA)
    target_classes: tuple[str, ...] = setting(_D.target_classes, "classes (0-9) held out of pretraining and "
                                              "scouts: the few-shot target task, comma-separated",
                                              label="target classes")
    shots: tuple[int, ...] = setting((1, 2, 5, 10), "target training images per class, comma-separated", lo=1, hi=100)
    sources: tuple[str, ...] = setting(tuple(gtl_lab.SOURCES), "sources to compare, comma-separated",
                                       choices=gtl_lab.SOURCES)
    seeds: int = setting(5, "few-shot splits (and head inits) per cell, for bands", lo=2, hi=50)
    seed: int = setting(0, "base, scouts and the first split", lo=0)
    pretrain_epochs: int = setting(_D.pretrain_epochs, "epochs of the base model on the source classes", lo=1,
                                   hi=500, label="pretrain epochs")
    scouts: int = setting(_D.scouts, "K scouts per source, trained at once", lo=1, hi=256)
    scout_epochs: int = setting(_D.scout_epochs, "epochs of every scout", lo=1, hi=500, label="scout epochs")
    epochs: int = setting(_D.epochs, "target fine-tuning epochs (full batch: one step each)", lo=1, hi=2000)
    val_per_class: int = setting(_D.val_per_class, "fixed target validation images per class, per seed", lo=5,
                                 hi=100, label="val per class")
    engine: str = engines.engine_setting()
    address: str = engines.address_setting()

    def resolve(self) -> "GTLSweepConfig":
        """Shots ascending and each once, target classes and sources in order: one grid, one recorded config."""
        return replace(self, shots=tuple(sorted(set(self.shots))), target_classes=tuple(sorted(self.target_classes)),
                       sources=tuple(s for s in gtl_lab.SOURCES if s in self.sources))

    def lab(self, source: str, shots: int = 1) -> gtl_lab.GTLConfig:
        """The GTL lab's config for one source and shot count (every other setting: the lab's default)."""
        return replace(_D, data=self.data, source=source, target_classes=tuple(sorted(self.target_classes)),
                       shots=shots, seeds=self.seeds, seed=self.seed, pretrain_epochs=self.pretrain_epochs,
                       scouts=self.scouts, scout_epochs=self.scout_epochs, epochs=self.epochs,
                       val_per_class=self.val_per_class)

    def check(self) -> None:
        if not self.shots:
            raise ValueError("give at least one shot count")
        if not self.sources:
            raise ValueError("give at least one source")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("each source may be given once")
        self.lab(self.sources[0]).check()


@dataclass
class GTLSweepResult(contract.Result):
    config: GTLSweepConfig
    runs: list                     # gtl_lab.GTLRun of every cell that ran
    cells: list                    # the contract.Cell of each run (condition, seed, source, shots)
    scouts: dict                   # source → classes of each scout
    guide_mean: dict               # source → mean guide
    base_acc: dict                 # source → the base's accuracy on held-out source samples
    kind = "gtl-sweep"
    headline = "related.guided.shots1.val_acc_mean"

    def accs(self, source: str, condition: str, shots: int) -> list[float]:
        """Final validation accuracy of every finished seed; scratch is shared by every source."""
        want = "none" if condition == "scratch" else source
        return [r.val_acc for r, c in zip(self.runs, self.cells)
                if c.condition == condition and c["source"] == want and c["shots"] == shots
                and r.history.status == "finished"]

    def table(self) -> list[dict]:
        out = []
        for source in self.config.sources:
            for shots in self.config.shots:
                for condition in CONDITIONS:
                    stats = contract.seed_stats(self.accs(source, condition, shots))
                    out.append({"shots": shots, "source": source, "condition": condition,
                                "val_acc_mean": stats["mean"], "val_acc_std": stats["std"],
                                "val_acc_seeds": stats["seeds"], "uses_source": condition != "scratch"})
        return out

    def values(self, source: str, shots: int) -> dict[str, dict[int, float]]:
        """condition -> {seed: final validation accuracy} of one (source, shots) cell; scratch is shared."""
        want = lambda c: "none" if c == "scratch" else source  # noqa: E731
        out: dict[str, dict[int, float]] = {c: {} for c in CONDITIONS}
        for r, c in zip(self.runs, self.cells):
            if c["shots"] == shots and c["source"] == want(c.condition) and r.history.status == "finished":
                out[c.condition][c.seed] = r.val_acc
        return out

    def claims(self) -> list[dict]:
        """Per (source, shots): guided against the stronger of freezing all but the head and plain fine-tuning,
        and the best source-based condition against scratch ("transfer"), by the claims rule."""
        out = []
        for source in self.config.sources:
            for shots in self.config.shots:
                v = self.values(source, shots)
                if v["guided"] and (v["plain"] or v["freeze_head_only"]):
                    out.append({**claims.compare("guided", v, list(gtl_lab.BASELINES)).to_json(), "source": source,
                                "shots": shots, "question": "guidance"})
                if v["scratch"]:
                    best = claims.best_of(v, ("guided", "freeze_head_only", "plain"))
                    out.append({**claims.compare(best, v, ["scratch"]).to_json(), "source": source, "shots": shots,
                                "question": "transfer"})
        return out

    def findings(self) -> list[str]:
        """One plain sentence per source: where guidance beat the stronger baseline, and where transfer beat scratch."""
        lines, found = [], self.claims()
        for source in self.config.sources:
            mine = [c for c in found if c["source"] == source]
            guidance = {k: [tr("{shots} ({gap} vs {against})", shots=c["shots"],
                               gap=i18n.number(c["gap"] * 100, 1, signed=True),
                               against=tr(gtl_lab.NAMES[c["against"]])) for c in mine
                            if c["question"] == "guidance" and c["kind"] == k] for k in claims.KINDS}
            beat = [str(c["shots"]) for c in mine if c["question"] == "transfer" and c["kind"] == "helped"]
            lost = [str(c["shots"]) for c in mine if c["question"] == "transfer" and c["kind"] == "hurt"]
            none = tr("none")
            parts = [tr("{source} source: guided fine-tuning beats the stronger of freezing the body and plain "
                        "fine-tuning (points) at shots {shots}",
                        source=tr(SOURCE_WORDS.get(source, source.capitalize())),
                        shots=", ".join(guidance["helped"]) or none)]
            if guidance["hurt"]:
                parts.append(tr("trails at {shots}", shots=", ".join(guidance["hurt"])))
            if guidance["tie"] or guidance["single"]:
                parts.append(tr("ties it at {shots}", shots=", ".join(guidance["tie"] + guidance["single"])))
            parts.append(tr("the best condition from this source beats scratch at shots {shots}",
                            shots=", ".join(beat) or none))
            if lost:
                parts.append(tr("and trails scratch at {shots} (negative transfer)", shots=", ".join(lost)))
            lines.append("; ".join(parts) + ".")
        return lines

    def body(self) -> dict:
        with i18n.using("en"):   # the run's JSON is the same in every language
            findings = self.findings()
        return {"cells": self.table(), "claims": self.claims(), "findings": findings, "scouts": self.scouts,
                "guide_mean": self.guide_mean, "base_source_val_acc": self.base_acc}

    def metrics(self) -> dict[str, float]:
        """<source>.<condition>.shots<k>.val_acc_mean / _std for every cell."""
        out = {}
        for row in self.table():
            key = f"{row['source']}.{row['condition']}.shots{row['shots']}"
            out[f"{key}.val_acc_mean"], out[f"{key}.val_acc_std"] = row["val_acc_mean"], row["val_acc_std"]
        return out

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        kinds = {c["kind"] for c in self.claims() if c["question"] == "guidance"}
        return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", " ".join(self.findings()))


def run(cfg: GTLSweepConfig = GTLSweepConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> GTLSweepResult:
    """Pretrain (or reuse) base and scouts per source, then every shots × source × condition × seed."""
    return gtl_lab.on_one_thread(_run, cfg, progress, should_stop, device)


def _run(cfg: GTLSweepConfig, dev: torch.device, progress: Progress | None, should_stop: Stop | None) -> GTLSweepResult:
    start = time.perf_counter()
    target = gtl_data.load_classes(cfg.data, cfg.target_classes)
    data.few_shot_split(target, max(cfg.shots), cfg.seed, cfg.val_per_class)  # a clear error if too many shots
    bases, guides, scouts, guide_mean, base_acc = {}, {}, {}, {}, {}
    for i, source in enumerate(cfg.sources):
        lab = cfg.lab(source)
        step = (lambda f, text, i=i: progress(0.2 * (i + f) / len(cfg.sources), f"{source} source: {text}")) \
            if progress else None
        scouted, _ = gtl_lab.pretrain_and_scout(lab, dev, step, should_stop)
        if should_stop is not None and should_stop():
            return GTLSweepResult(cfg, [], [], {}, {}, {}, device=str(dev), seconds=time.perf_counter() - start,
                                  status="stopped",
                                  message="stopped by the user while pretraining a base and its scouts")
        bases[source], guides[source] = scouted.base, gtl_lab.make_guide(scouted.raw(lab.change), lab)
        scouts[source], base_acc[source] = scouted.tasks, scouted.source_val_acc
        guide_mean[source] = float(torch.cat([g.flatten() for g in guides[source].values()]).mean())
    labs = {(s, k): cfg.lab(s, k) for s in cfg.sources for k in cfg.shots}
    first = cfg.sources[0]

    def train_one(cell: contract.Cell, on_epoch, should_stop) -> gtl_lab.GTLRun:
        source = first if cell["source"] == "none" else cell["source"]  # scratch ignores the base
        return gtl_lab.train_target(labs[source, cell["shots"]], cell.condition, cell.seed, target, bases[source],
                                guides[source], dev, on_epoch, should_stop)

    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    cells = [contract.Cell(c, s, (("source", src), ("shots", k)))
             for k in cfg.shots for s in seeds for c in CONDITIONS
             for src in (("none",) if c == "scratch" else cfg.sources)]
    out = engines.run_cells(cells, train_one, progress, should_stop, epochs=cfg.epochs, span=(0.2, 1.0),
                            engine=cfg.engine, address=cfg.address)
    return GTLSweepResult(cfg, out.results, out.cells, scouts, guide_mean, base_acc, device=str(dev),
                          seconds=time.perf_counter() - start, status=out.status, message=out.message)


def _text(result: GTLSweepResult, out: dict) -> str:
    cfg = result.config
    lines = [f"GTL sweep: {cfg.data}, target classes {','.join(cfg.target_classes)}, {cfg.seeds} seeds, on "
             f"{out['device']} in {out['seconds']:.1f} s"]
    for row in out["cells"]:
        lines.append(f"  {row['source']:<9} {row['shots']:>3} shots  {row['condition']:<8} val acc "
                     f"{row['val_acc_mean']:.3f} ± {row['val_acc_std']:.3f}")
    return "\n".join(lines + out["findings"])


EXPERIMENTS = (
    contract.Experiment("gtl-sweep", "When does guidance help? GTL over shots × related / unrelated source",
                        GTLSweepConfig, run, text=_text,
        page="gtl", plots="gtl",
        cost=lambda c: units(c["seeds"], c["epochs"] + c["pretrain_epochs"] + c["scout_epochs"] * c["scouts"] / 4, 1,
                             c["shots"]), narrate=narration.say_gtl),
)
