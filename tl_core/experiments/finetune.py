"""The fine-tuning lab: a pretrained backbone (or the same one from scratch), a freeze depth, a
strategy, a small few-shot dataset → per-epoch curves, accuracy, confusion matrix; over several seeds.

`run` trains one config (both weights side by side if asked), on a built-in dataset, on the user's own
images (`dataset=`), or from weights loaded in the workshop (`init=`: "continue fine-tuning" is this
same run). `sweep` trains a shots × freeze-depth grid. Both cache the frozen prefix: its features are
computed once per model and reused by every epoch, every shots value of a sweep, and every phase of
gradual unfreezing at that depth.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from torch import nn

from tl_core import (
    augment,
    backbones,
    claims,
    contract,
    data,
    finetuning,
    freeze,
    lab_cost,
    live_run,
    narration,
    reuse,
    serve,
)
from tl_core import device as devices
from tl_core import engine as engines
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.finetuning import OWN, FinetuneConfig, Trainer, freeze_problem, model_for, splitter, weights_note
from tl_core.i18n import fmt, tr

CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")


@dataclass
class FinetuneResult(contract.ConditionsResult):
    config: FinetuneConfig
    classes: list[str]
    stage_names: list[str]
    frozen: int                   # frozen stages at the start
    runs: list[finetuning.FinetuneRun]
    val: data.ImageSet            # the first run's validation set (its confusion matrix, misclassified images)
    weights_note: str
    # the first run's trained weights (pretrained when it ran), on the CPU: for predict and export
    model_state: dict | None = field(default=None, repr=False)
    kind = "finetune"
    headline = "val_acc"

    def by_weights(self, weights: str) -> list[finetuning.FinetuneRun]:
        return [r for r in self.runs if r.weights == weights]

    runs_of = by_weights

    def ran(self) -> list[str]:
        return [w for w in self.config.conditions() if self.by_weights(w)]

    def summary(self, weights: str) -> dict:
        runs = self.by_weights(weights)
        first = runs[0].history
        done = [r for r in runs if r.history.status == "finished"]   # a run cut short says nothing of its accuracy
        acc = contract.seed_stats([r.val_acc for r in done])
        return {
            "val_acc": acc["mean"], "val_acc_std": acc["std"], "val_acc_seeds": acc["seeds"],
            "seeds": [r.seed for r in done],
            "train_acc": contract.seed_stats([r.train_acc for r in done])["mean"],
            "per_class": [[None if np.isnan(v) else float(v) for v in r.per_class_recall] for r in done],
            "history": {k: getattr(first, k) for k in CURVES},
            "histories": [{k: getattr(r.history, k) for k in CURVES} for r in runs],
            "status": first.status,
        }

    def body(self) -> dict:
        conditions = self.ran()
        out = self.summary(conditions[0]) if conditions else {}   # the first condition's numbers at the top level
        out.update({
            "conditions": {w: self.summary(w) for w in conditions},
            "classes": self.classes, "stages": self.stage_names, "frozen_stages": self.frozen,
            "claim": c.to_json() if (c := self.claim()) else None, "weights_note": self.weights_note,
        })
        if self.runs:
            first = self.runs[0]
            out["confusion"] = {"weights": first.weights, "seed": first.seed, "matrix": first.confusion.tolist()}
        return out

    def claim(self) -> claims.Claim | None:
        """Pretrained against scratch, paired over seeds (None when only one of them ran)."""
        ran = self.ran()
        if len(ran) < 2:
            return None
        values = {w: claims.by_seed(*(self.summary(w)[k] for k in ("seeds", "val_acc_seeds"))) for w in ran}
        return claims.compare("pretrained", values, ["scratch"])

    def verdict(self) -> Verdict:
        return verdict(self)


def run(cfg: FinetuneConfig = FinetuneConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto", dataset: data.ImageSet | None = None, init: nn.Module | None = None,
        init_note: str = "") -> FinetuneResult:
    """Train every (weights, seed) of cfg and return curves, accuracies and confusion matrices.

    `dataset` (the user's own images, at cfg.image_size) replaces the named dataset; its validation set
    is then a class-balanced `cfg.val_fraction` of each class, not a count. `init` (a registry
    backbone's module with loaded weights; `init_note` says where they came from) replaces the
    pretrained weights: continuing to fine-tune loaded weights is this same run."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    start = time.perf_counter()
    note = init_note if init is not None else weights_note(cfg)
    dev = devices.pick(device)
    ds, split = splitter(cfg, dataset)
    first: dict = {}
    data_key = reuse.data_key(cfg, dataset) if reuse.REUSE and "scratch" in cfg.conditions() else ""

    def train_one(cell, on_epoch, should_stop) -> finetuning.FinetuneRun:
        train, val = split(cell.seed)
        scratch = reuse.REUSE and cell.condition == "scratch"
        scratch_id = reuse.scratch_key(cfg, cell.seed, data_key) if scratch else None
        hit = reuse.SCRATCH.get(scratch_id) if scratch_id else None
        if hit is not None and (first or hit[2] is not None):   # trained before with these scratch settings
            r, names, state = hit
            on_epoch(len(r.history.train_loss) - 1, r.history)
            if not first:
                first.update(val=val, names=names, state=state)
            return r
        model = model_for(cfg, cell.condition, len(ds.classes), cell.seed, init).to(dev)
        cache = reuse.frozen_cache(cfg, len(ds.classes), dev, init) if cell.condition == "pretrained" else None
        trainer = Trainer(model, cfg.for_weights(cell.condition), dev, cache)
        r = trainer.fit_and_score(cell.condition, cell.seed, train, val,
                                  {"on_epoch": on_epoch, "should_stop": should_stop})
        state = None
        if not first or (scratch_id and cell.seed == cfg.seed):
            state = {key: t.detach().cpu().clone() for key, t in model.state_dict().items()}
        if not first:
            first.update(val=val, names=model.names, state=state)
        if scratch_id and r.history.status == "finished":
            reuse.SCRATCH[scratch_id] = (r, model.names, state)   # the oldest go past the byte budget or 12 runs
        return r

    cells = contract.plan(cfg.conditions(), cfg.seeds, cfg.seed)
    n_train, n_val = map(len, split(cfg.seed))
    costs = [lab_cost.timed_cost(cfg, c.condition, n_train, n_val, c.condition == "scratch" and reuse.REUSE
                                 and reuse.scratch_key(cfg, c.seed, data_key) in reuse.SCRATCH) for c in cells]
    with reuse.released(dev):
        out = contract.run_cells(cells, train_one, serve.by_cost(progress, costs), should_stop, epochs=cfg.epochs)
    frozen = int(cfg.freeze) if "pretrained" in cfg.conditions() else 0   # resolved: a stage count
    result = FinetuneResult(config=cfg, classes=list(ds.classes), stage_names=first.get("names", []), frozen=frozen,
                            runs=out.results, val=first.get("val"), device=devices.describe(dev), weights_note=note,
                            status=out.status, message=out.message, model_state=first.get("state"),
                            seconds=time.perf_counter() - start)
    result.kind = "own" if dataset is not None else "continue" if init is not None else "finetune"
    return result


# ---- the shots × freeze-depth sweep --------------------------------------------------------------------

def _freezes_problem(values: tuple) -> str:
    return next((p for p in map(freeze_problem, values) if p), "" if values else "give at least one freeze depth")


@dataclass(frozen=True)
class SweepConfig(FinetuneConfig):
    """The lab's settings, with a list of shots and a list of freeze depths in place of one of each."""
    freeze: str = setting("all", "(the sweep's depths are `freezes`)", record=False, cli=False)
    val_fraction: float = setting(0.15, "(own images only)", lo=0.05, hi=0.5, record=False, cli=False)
    shots: tuple[int | None, ...] = setting((1, 5, 20), "training images per class, comma-separated (all = every "
                                                        "image left)", lo=1, hi=100_000,
                                            check=lambda v: "" if v else "give at least one shots value")
    freezes: tuple[str, ...] = setting(("all", "none"), "freeze depths, comma-separated: all, none or a count",
                                       check=_freezes_problem)
    engine: str = engines.engine_setting()
    address: str = engines.address_setting()

    def check(self) -> None:
        super().check()
        n = len(backbones.stage_names(self.backbone))
        for fr in self.freezes:
            freeze.parse_freeze(fr, n)

    def resolve(self) -> "SweepConfig":
        """Depths as stage counts, each once, deepest first; shots each once, in the order given."""
        n = len(backbones.stage_names(self.backbone))
        depths = sorted({freeze.parse_freeze(fr, n) for fr in self.freezes}, reverse=True)
        return replace(super().resolve(), freezes=tuple(map(str, depths)), shots=tuple(dict.fromkeys(self.shots)))

    def lab(self, shots: int | None = None, freeze_depth: str = "0") -> FinetuneConfig:
        base = {f.name: getattr(self, f.name) for f in fields(FinetuneConfig)}
        return FinetuneConfig(**{**base, "shots": shots, "freeze": freeze_depth})


@dataclass
class SweepResult(contract.Result):
    config: SweepConfig
    records: list[dict] = field(default_factory=list)   # weights, seed, shots, freeze, val_acc, train_acc
    kind = "sweep"
    headline = ""

    @property
    def shots(self) -> list:
        return list(self.config.shots)

    @property
    def freezes(self) -> list[str]:
        return list(self.config.freezes)

    def rows(self, weights: str) -> list[str]:
        """The grid's rows: the freeze depths (scratch: its one row, every stage trained)."""
        return self.freezes if weights == "pretrained" else ["0"]

    def grid(self, weights: str) -> np.ndarray:
        """Mean val accuracy, rows = freeze depths, columns = shots."""
        rows = self.rows(weights)
        g = np.full((len(rows), len(self.shots)), np.nan)
        for i, fr in enumerate(rows):
            for j, sh in enumerate(self.shots):
                accs = [r["val_acc"] for r in self.records
                        if r["weights"] == weights and r["freeze"] == fr and r["shots"] == sh]
                if accs:
                    g[i, j] = float(np.mean(accs))
        return g

    def body(self) -> dict:
        return {"shots": self.shots, "freezes": self.freezes,
                "stages": list(backbones.stage_names(self.config.backbone)),
                "grid": {w: self.grid(w).tolist() for w in self.config.conditions()}, "records": self.records,
                "claims": self.claims()}

    def values(self, shots) -> dict[str, dict[int, float]]:
        """At one shots value: each freeze depth's (and scratch's) validation accuracy by seed."""
        out: dict[str, dict[int, float]] = {}
        for r in self.records:
            if r["shots"] == shots and r.get("status", "finished") == "finished":
                name = "scratch" if r["weights"] == "scratch" else f"pretrained ({r['freeze']} frozen)"
                out.setdefault(name, {})[r["seed"]] = r["val_acc"]
        return out

    def claims(self) -> list[dict]:
        """Per shots value: the best pretrained freeze depth against scratch (against the other depths when
        scratch did not run), by the claims rule."""
        out = []
        for sh in self.shots:
            values = self.values(sh)
            depths = [f"pretrained ({fr} frozen)" for fr in self.freezes if f"pretrained ({fr} frozen)" in values]
            if not depths:
                continue
            best = claims.best_of(values, depths)
            against = ["scratch"] if "scratch" in values else [d for d in depths if d != best]
            if against:
                out.append({**claims.compare(best, values, against).to_json(), "shots": sh})
        return out

    def verdict(self) -> Verdict:
        """One claim per shots value, in words; the kind is theirs when they agree, else "mixed"."""
        if self.status != "finished":
            return self.ended_early()
        found = self.claims()
        if not found:
            return Verdict("single", tr("Choose two freeze depths, or weights 'both', to compare."))
        stages = len(backbones.stage_names(self.config.backbone))
        parts = []
        for c in found:
            claim = claims.Claim.from_json(c)
            name = lambda key: key if key == "scratch" else _depth_words(int(key.split("(")[1].split()[0]), stages)  # noqa: E731
            parts.append(tr("{shots} shots: {claim}", shots=contract.ALL if c["shots"] is None else c["shots"],
                            claim=claim.sentence(name(c["subject"]), name(c["against"]))))
        kinds = {c["kind"] for c in found}
        return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", " ".join(parts))

    def metrics(self) -> dict[str, float]:
        """One metric per grid cell: grid.<weights>.freeze <depth>.shots <n>."""
        return {f"grid.{w}.freeze {fr}.shots {contract.ALL if sh is None else sh}": self.grid(w)[i, j]
                for w in self.config.conditions() for i, fr in enumerate(self.rows(w))
                for j, sh in enumerate(self.shots)}


def sweep(cfg: SweepConfig = SweepConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
          device: str = "auto") -> SweepResult:
    """Val accuracy over a shots × freeze-depth grid, for every weights condition and seed. The frozen
    prefix's features are computed once per (weights, seed, depth) and reused for every shots value."""
    contract.validate(cfg)
    cfg = cfg.resolve()
    weights_note(cfg)
    start = time.perf_counter()
    dev = devices.pick(device)
    ds = data.load(cfg.dataset, cfg.image_size, cfg.classes or None)
    most = None if None in cfg.shots else max(cfg.shots)
    data.few_shot_split(ds, most, cfg.seed, cfg.val_per_class)  # fails early if a shots value is too large
    out = SweepResult(config=cfg, device=devices.describe(dev))
    # one cell per (weights, seed, depth); scratch trains every stage, so it has one depth
    cells = [contract.Cell(w, cfg.seed + s, (("freeze", fr),)) for w in cfg.conditions() for s in range(cfg.seeds)
             for fr in (cfg.freezes if w == "pretrained" else ("0",))]

    def train_one(cell, on_epoch, should_stop):  # self-contained: on engine "ray" it runs in another process
        model = backbones.create(cfg.backbone, cell.condition, len(ds.classes), cell.seed).to(dev)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        cache = reuse.frozen_cache(cfg, len(ds.classes), dev, None) if cell.condition == "pretrained" else None
        trainer = Trainer(model, cfg.lab(None, cell["freeze"]).for_weights(cell.condition), dev, cache)
        # the same validation set for every shots value, and the same object, so its features are computed once
        _, val = data.few_shot_split(ds, 1, cell.seed, cfg.val_per_class)
        status, records = "finished", []
        for sh in cfg.shots:
            if should_stop is not None and should_stop():
                status = "stopped"
                break
            train, _ = data.few_shot_split(ds, sh, cell.seed, cfg.val_per_class)
            model.load_state_dict(initial)       # every shots value starts from the same weights
            r = trainer.fit_and_score(cell.condition, cell.seed, train, val, {"should_stop": should_stop})
            records.append({"weights": cell.condition, "seed": cell.seed, "freeze": cell["freeze"], "shots": sh,
                            "val_acc": r.val_acc, "train_acc": r.train_acc, "status": r.history.status})
            status = r.history.status
            if status != "finished":
                break
        return contract.Outcome(results=records, status=status)

    def on_cell(cell, done):  # each finished cell goes into the run history as it arrives
        out.records.extend(done.results)
        out.seconds = time.perf_counter() - start
        live_run.checkpoint(out)

    with reuse.released(dev):
        done = engines.run_cells(cells, train_one, progress, should_stop, engine=cfg.engine, address=cfg.address,
                                 on_cell=on_cell)
    out.records = [rec for cell in done.results for rec in cell.results]   # in plan order, whichever engine
    out.status, out.message = done.status, done.message
    out.seconds = time.perf_counter() - start
    return out


def _depth_words(depth: int, stages: int) -> str:
    """A freeze depth in a sentence: 'pretrained, 9 of 10 stages frozen (feature extraction)'."""
    what = tr(" (feature extraction)") if depth == stages - 1 else tr(" (full fine-tuning)") if depth == 0 else ""
    return tr("pretrained, {depth} of {stages} stages frozen{what}", depth=depth, stages=stages, what=what)


def verdict(result: FinetuneResult) -> Verdict:
    """Pretrained against scratch by the claims rule; the conditions side by side when only one ran."""
    if result.status != "finished":
        return result.ended_early()
    claim = result.claim()
    if claim is None:
        s = result.summary(result.ran()[0])
        fill = dict(acc=fmt(s["val_acc"], ".1%"), std=fmt(s["val_acc_std"], ".1%"), n=len(s["val_acc_seeds"]))
        return Verdict("single", tr("{weights}: validation accuracy {acc} ± {std} over {n} seed(s). Choose weights "
                                    "'both' to compare with scratch.", weights=result.config.weights, **fill))
    lead = {"helped": tr("Pretraining helped: "), "hurt": tr("Negative transfer: ")}.get(claim.kind, "")
    loaded = result.kind == "continue"
    return Verdict(claim.kind, lead + claim.sentence("loaded weights" if loaded else "pretrained", "scratch"))


# ---- the command line: finetune (built-in data or --data-zip), sweep, predict ---------------------------

def _prepare(args, cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict]:
    """`--data-zip`: the user's own images in place of a built-in dataset (all images unless --shots)."""
    if args.data_zip is None:
        if args.export:
            raise ValueError("--export saves a model trained on your own images: add --data-zip")
        return cfg, {}
    from tl_core import userdata

    images = userdata.read_zip(args.data_zip)
    if cfg.classes:
        unknown = [c for c in cfg.classes if c not in images.classes]
        if unknown:
            raise ValueError(f"class {unknown[0]!r} is not in {args.data_zip}: it has {', '.join(images.classes)}")
        images = images.edited(drop=[c for c in images.classes if c not in cfg.classes])
    shots = cfg.shots if "shots" in contract.given(args, FinetuneConfig) else None
    cfg = replace(cfg, dataset=f"{OWN}{images.source}", classes=(), shots=shots)   # as the page names it
    contract.validate(cfg)
    dataset = images.to_imageset(cfg.image_size)  # raises, saying what is needed, before any warning prints
    for line in [*(f"skipped {s.name}: {s.reason}" for s in images.skipped), *images.warnings(cfg.val_fraction)]:
        sys.stderr.write(f"warning: {line}\n")
    args.images = images
    del dataset
    return cfg, {"dataset": (images.fingerprint, images.to_bytes())}


def _prepare_init(args, cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict]:
    """`continue --init FILE`: the file's weights loaded into the backbone (what matches by name and shape)."""
    from tl_core import state

    path = Path(args.init)
    checked = state.read_path(path)   # refused here, in one line, before anything is recorded
    raw = path.read_bytes()
    cfg = replace(cfg, weights="pretrained") if cfg.weights == "both" else cfg
    args.extra = {"init": path.name, "load": contract.record(state.LoadConfig(arch=cfg.backbone, strict=False))}
    return cfg, {"init": (f"sha256:{checked.digest}", raw)}


def _after(args, result: FinetuneResult) -> dict:
    if args.data_zip is None:
        return {}
    from tl_core import export

    extras = {"skipped": [{"file": s.name, "reason": s.reason} for s in args.images.skipped],
              "counts": args.images.counts()}
    if args.export and result.runs:
        clf = export.from_result(result)
        extras["export"] = export.save(clf, args.export)
        extras["model_path"] = extras["export"]["model.pt"]
        extras.update(onnx_path=extras["export"]["model.onnx"], onnx_max_abs_diff=clf.meta["onnx"]["max_abs_diff"])
        sys.stderr.write(export.parity_line(clf) + "\n")
    return extras


def _text(result: FinetuneResult, out: dict) -> str:
    cfg = result.config
    counts = ", ".join(f"{c}: {n}" for c, n in out["counts"].items()) if "counts" in out else ""
    data_text = cfg.dataset + (f" ({counts})" if counts else "")
    lines = [f"{cfg.backbone}, {data_text}, {cfg.shots or 'all'} shots/class, {result.frozen} of "
             f"{len(result.stage_names)} stages frozen, {cfg.strategy}, augmentation: {augment.words(cfg.augment)}, "
             f"on {result.device} in {result.seconds:.1f} s"]
    lines += [f"  {w:<10} val acc {s['val_acc']:.3f} ± {s['val_acc_std']:.3f}   train acc {s['train_acc']:.3f}"
              for w, s in out["conditions"].items()]
    if "export" in out:
        lines.append(f"  saved {', '.join(out['export'].values())}")
    return "\n".join(lines + [result.verdict().text])


def _sweep_text(result: SweepResult, out: dict) -> str:
    lines = []
    for weights, grid in out["grid"].items():
        lines.append(f"{weights}: val accuracy, rows: frozen stages {result.rows(weights)}, columns: shots "
                     f"{[contract.ALL if s is None else s for s in result.shots]}")
        lines += [f"  {fr:>5}  " + "  ".join(f"{v:.3f}" for v in row) for fr, row in zip(result.rows(weights), grid)]
    return "\n".join(lines + [result.verdict().text])


def _predict(args) -> int:
    from tl_core import export

    return export.predict(args)


def _onnx_flag() -> contract.Option:
    from tl_core import export

    return export.ONNX_FLAG   # predict --onnx: run model.onnx with onnxruntime


def _cost(c: dict) -> float:
    """In seconds on the reference machine (`lab_cost.reference_seconds`): the rate is then this machine's speed."""
    return lab_cost.reference_seconds(c)


def _sweep_cost(c: dict) -> float:
    """Every (shots, depth) of the grid; scratch, which has no depth, once per shots value."""
    total = 0.0
    for sh in c.get("shots") or [None]:
        for i, fr in enumerate(c.get("freezes") or ["all"]):
            if i == 0 or c["weights"] != "scratch":
                total += lab_cost.reference_seconds(c if i == 0 else {**c, "weights": "pretrained"}, sh, fr)
    return total


def _own_images(blob: bytes, cfg: FinetuneConfig, record: dict) -> dict:
    """The user's images sent with a run request (`userdata.UserImages.to_bytes`), at the config's size."""
    from tl_core import userdata

    return {"dataset": userdata.UserImages.from_bytes(blob).to_imageset(cfg.image_size)}


def _loaded_weights(blob: bytes, cfg: FinetuneConfig, record: dict) -> dict:
    """Weights sent with a run request (a state_dict's bytes), loaded into the backbone as the record's "load"
    config says (the workshop's Load): the start of "continue fine-tuning"."""
    from tl_core import state

    name = str(record.get("init") or "weights")
    sd = state.read(blob, name)
    load = contract.from_record(state.LoadConfig, record.get("load") or {"arch": cfg.backbone, "strict": False})
    report = state.load_into(sd.state, load, name, sd.notes)
    if report.model is None:
        raise ValueError(f"{name}: nothing was loaded into {load.arch}, so there is nothing to continue from")
    return {"init": report.model, "init_note": f"weights loaded from {name}"}


# the cost is in the reference machine's seconds (lab_cost.REFERENCE_MS / FEATURE_MS, measured per backbone): rate 1
_REFERENCE = 1.0

EXPERIMENTS = (
    contract.Experiment(
        "finetune", "fine-tune a backbone on a few-shot dataset, or on your own images (--data-zip)",
        FinetuneConfig, run, prepare=_prepare, after=_after, text=_text, options=(
            contract.Option("--data-zip", "a zip of class folders of your own images (instead of --dataset)"),
            contract.Option("--export", "with --data-zip: save the trained model there: model.pt (state_dict), "
                                        "model.json, predict.py")),
        page="finetune", plots="finetune", live=True, cost=_cost, reference=_REFERENCE,
        inputs={"dataset": _own_images, "init": _loaded_weights}, narrate=narration.say_idea),
    contract.Experiment("sweep", "val accuracy over a shots x freeze-depth grid", SweepConfig, sweep,
                        text=_sweep_text, page="finetune", plots="finetune", cost=_sweep_cost, rate_of="finetune",
                        narrate=narration.say_freeze),
    contract.Experiment(
        "own", "fine-tune on your own images: a zip of class folders (the Your own images page)", FinetuneConfig,
        run, prepare=_prepare, after=_after, text=_text, options=(
            contract.Option("--data-zip", "a zip of class folders of your own images", required=True),
            contract.Option("--export", "save the trained model there: model.pt (state_dict), model.json, "
                                        "predict.py")),
        page="own", plots="finetune", live=True, private=True, cost=_cost, rate_of="finetune",
        inputs={"dataset": _own_images}),
    contract.Experiment(
        "continue", "continue fine-tuning from a state_dict (the State-dict workshop's last step)", FinetuneConfig,
        run, prepare=_prepare_init, text=_text, options=(
            contract.Option("--init", "the .pt/.pth/.safetensors state_dict to start from", required=True),),
        page="state", plots="finetune", live=True, private=True, cost=_cost, rate_of="finetune",
        inputs={"init": _loaded_weights}),
    contract.Experiment(
        "predict", "top-k classes of images with a model exported by finetune --export", main=_predict,
        recorded=False, device=False, options=(
            contract.Option("images", "image files (jpg, png, webp, bmp, gif, tiff)", nargs="+"),
            contract.Option("--model", "the exported model.pt (model.json beside it), its folder or zip",
                            required=True),
            contract.Option("--top-k", "classes to list per image", default=3, type=int), _onnx_flag())),
)
