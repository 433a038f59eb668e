"""Inside the model: where it looks, how its representations separate the classes, and which stages changed.

One run of `run(cfg)` fine-tunes the backbone fully (every stage trains, through `finetuning.Trainer`) once per
seed, and for the first seed also trains a feature extractor (pretrained and frozen, only a new head) and the
same network from scratch, for Grad-CAM. Per seed, one forward pass per set of weights gives every probed
stage's **pooled features** (the spatial mean of the stage's map) of the seed's rows; those features, computed
once, feed all three numbers:

- **Linear probe** (Yosinski et al. 2014 style): a logistic regression (sklearn, standardised features) fitted on
  the *probe rows* (`probe_shots` per class: neither fine-tuned nor validated on) and scored on the held-out
  *validation rows*, for ImageNet-pretrained, random-init and fine-tuned weights, at every stage.
- **2-D map**: the validation rows' features at one stage, projected by PCA (or UMAP, umap-learn), one per weights,
  each titled with its probe accuracy.
- **Linear CKA** (`tl_core.cka.linear_cka`) between the pretrained and the fine-tuned model's features on every
  row not trained on (validation + probe rows), stage by stage, beside ‖w − w₀‖/‖w₀‖ (`finetuning.relative_change`).
- **Grad-CAM** (torchcam's `GradCAM`) of the three trained models on chosen validation images (correct and
  misclassified), for each model's predicted class, upsampled to the image's size.

Claims, through `claims.compare` per seed: (1) pretrained vs random probe accuracy at the last pretrained stage
(metric "accuracy"); (2) fine-tuning changed the late stages' representation more than the early ones': the mean
1 − CKA of the late half of the probed stages against the early half, compared as fractions (metric "accuracy": a
gap of at least one point, its interval above 0; a ratio would call 0.0001 → 0.0002 a doubling). Per stage, the
same rule says where pretrained features beat random ones and where CKA falls below 1 (the representation changed).

`text_embedding(result)` is the same map and probe for the text page: sentence embeddings before and after
fine-tuning. The measuring tools are the library's: `tl_core.probes` (pooled features, probes, 2-D maps) and
`tl_core.gradcam`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from torch import nn

from tl_core import backbones, claims, contract, data
from tl_core import device as devices
from tl_core.cka import linear_cka
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.finetuning import FinetuneConfig, FinetuneRun, Trainer, relative_change
from tl_core.gradcam import AUTO, CAM_SIDE, cam_choice, cam_stage, gradcam, map_correlation, spatial_sizes
from tl_core.i18n import tr
from tl_core.probes import EMBEDDINGS, probe, project, stage_features
from tl_core.serve.estimates import units

_DATASETS = tuple(d for d in data.DATASETS if d != "shapes")   # the real images
WEIGHTS = ("pretrained", "random", "finetuned")                 # the three representations probed
LABELS = {"pretrained": "ImageNet-pretrained", "random": "random init", "finetuned": "fine-tuned"}
CAM_MODELS = {"feature_extraction": "feature extraction (pretrained, frozen)", "finetuned": "full fine-tuning",
              "scratch": "from scratch"}
LAST = "last"


def _names_problem(values: tuple) -> str:
    return "each stage once, please" if len(set(values)) < len(values) else ""


@dataclass(frozen=True)
class InsideConfig:
    backbone: str = setting("efficientnet_lite0", "the pretrained backbone", choices=backbones.IMAGE, title="Backbone")
    dataset: str = setting("textures", "the dataset fine-tuned on and probed", choices=_DATASETS, title="Dataset")
    shots: int = setting(10, "training images per class of fine-tuning", lo=1, hi=1000,
                         title="Training images per class", steps=(2, 5, 10, 20, 40))
    probe_shots: int = setting(20, "images per class the linear probes are fitted on (never fine-tuned or validated "
                                   "on)", lo=2, hi=1000, label="probe shots")
    val_per_class: int = setting(20, "validation images per class: the probes' held-out rows and the map's points",
                                 lo=2, hi=200, label="val per class")
    epochs: int = setting(6, "passes over the training images (full fine-tuning; feature extraction and scratch "
                             "too)", lo=1, hi=500, title="Epochs", span=(1, 30))
    lr: float = setting(1e-3, "Adam learning rate of full fine-tuning and of scratch", lo=1e-6, hi=1)
    head_lr: float = setting(3e-3, "Adam learning rate of feature extraction (only the new head trains)", lo=1e-6,
                             hi=1, label="head lr")
    image_size: int = setting(64, "pixels", lo=data.MIN_SIZE, hi=data.MAX_SIZE, label="image size",
                              title="Image size (px)", steps=(32, 48, 64, 96, 128))
    batch_size: int = setting(32, "images per step", lo=1, hi=1024, label="batch size")
    seeds: int = setting(3, "seeds: split, random init, fine-tuning; for bands and the claims", lo=1, hi=20,
                         title="Seeds (for the bands)", span=(1, 5))
    seed: int = setting(0, "first seed", lo=0)
    probe_stages: tuple[str, ...] = setting((), "stages probed, comma-separated names (default: every stage but the "
                                                "head)", check=_names_problem, label="probe stages")
    stage: str = setting(LAST, "the stage the 2-D map shows: a stage name, or last (the last stage before the head)",
                         title="Stage of the 2-D map")
    embedding: str = setting("pca", "how the map is drawn", choices=EMBEDDINGS, title="2-D map")
    cam: int = setting(8, "validation images shown with Grad-CAM (0: none, and only full fine-tuning trains)", lo=0,
                       hi=32, title="Images with Grad-CAM")
    cam_stage: str = setting(AUTO, f"the stage Grad-CAM reads: a stage name, or auto (the deepest whose map is at "
                                   f"least {CAM_SIDE}×{CAM_SIDE})", label="cam stage")

    def names(self) -> list[str]:
        return list(backbones.stage_names(self.backbone))

    def probed(self) -> list[int]:
        """Indices of the probed stages, input → output (the head never: its outputs are the new task's logits)."""
        names = self.names()
        if not self.probe_stages:
            return list(range(len(names) - 1))
        return sorted(names.index(s) for s in self.probe_stages)

    def map_stage(self) -> int:
        return self.probed()[-1] if self.stage == LAST else self.names().index(self.stage)

    def check(self) -> None:
        backbones.check_size(self.backbone, self.image_size)
        names = self.names()
        body = names[:-1]
        for s in self.probe_stages:
            if s not in body:
                raise ValueError(f"probe stage {s!r} is not a stage of {self.backbone} before its head: choose from "
                                 f"{', '.join(body)}")
        if self.stage != LAST and self.stage not in [names[i] for i in self.probed()]:
            raise ValueError(f"stage {self.stage!r} is not probed: choose last or one of "
                             f"{', '.join(names[i] for i in self.probed())}")
        if self.cam_stage != AUTO and self.cam_stage not in body:
            raise ValueError(f"cam stage {self.cam_stage!r} is not a stage of {self.backbone} before its head: choose "
                             f"auto or one of {', '.join(body)}")
        most = data.max_shots(data.load(self.dataset, data.MIN_SIZE), self.val_per_class)
        if self.shots + self.probe_shots > most:
            raise ValueError(f"shots {self.shots} + probe shots {self.probe_shots} is more than {self.dataset} has per "
                             f"class after {self.val_per_class} validation images: at most {most} together")

    def lab(self, condition: str, seed: int) -> FinetuneConfig:
        """The lab's config of one trained model: full fine-tuning, feature extraction or scratch."""
        base = FinetuneConfig(backbone=self.backbone, weights="pretrained", dataset=self.dataset,
                              shots=self.shots, freeze="0", epochs=self.epochs, lr=self.lr,
                              batch_size=self.batch_size, image_size=self.image_size, seeds=1, seed=seed,
                              val_per_class=self.val_per_class)
        if condition == "feature_extraction":
            return replace(base, freeze="all", lr=self.head_lr).resolve()
        return replace(base, weights="scratch") if condition == "scratch" else base


# ---- the experiment ------------------------------------------------------------------------------------

@dataclass
class InsideRun:
    seed: int
    probe: dict[str, list[float]]   # weights → probe accuracy per probed stage
    cka: list[float]                # pretrained vs fine-tuned, per probed stage
    change: list[float]             # ‖w − w₀‖/‖w₀‖ per probed stage
    val_acc: float                  # the fine-tuned model's own validation accuracy
    history: object


@dataclass
class InsideResult(contract.Result):
    config: InsideConfig
    stage_names: list[str]
    probed: list[int]
    classes: list[str]
    runs: list[InsideRun] = field(default_factory=list)
    embedding: dict = field(default_factory=dict)            # weights → {method, stage, probe_acc, label, x, y, labels}
    cam: dict = field(default_factory=dict)                  # the JSON summary of the Grad-CAM view
    cam_images: np.ndarray | None = field(default=None, repr=False)   # (n, 3, S, S)
    cam_maps: dict = field(default_factory=dict, repr=False)           # model → (n, S, S)
    cam_pred: dict = field(default_factory=dict, repr=False)           # model → predicted class per shown image
    cam_true: list = field(default_factory=list, repr=False)
    kind = "inside"
    headline = "probe_last.pretrained"

    @property
    def stages(self) -> list[str]:
        return [self.stage_names[k] for k in self.probed]

    def done(self) -> list[InsideRun]:
        return [r for r in self.runs if r.history.status == "finished"]

    def per_seed(self, what: str, weights: str | None = None) -> np.ndarray:
        """(seeds, stages) of probe[weights], cka or change, finished seeds only."""
        rows = [r.probe[weights] if what == "probe" else getattr(r, what) for r in self.done()]
        return np.array(rows, dtype=float) if rows else np.zeros((0, len(self.probed)))

    def halves(self) -> tuple[list[str], list[str]]:
        """(early, late): the first and second half of the probed stages."""
        half = len(self.stages) // 2
        return self.stages[:half], self.stages[half:]

    def _values(self, what: str, ks, weights=None) -> dict[int, float]:
        """{seed: value}, the mean over probed stages `ks` (an index or a list) of probe[weights], cka or change."""
        ks = [ks] if isinstance(ks, int) else list(ks)
        return {r.seed: float(np.mean([v[k] for k in ks])) for r in self.done()
                for v in [r.probe[weights] if what == "probe" else getattr(r, what)]}

    def _part(self, part) -> list[int]:
        """Probed-stage indices of 'early', 'late' or one stage index."""
        half = len(self.probed) // 2
        if part == "early":
            return list(range(half))
        if part == "late":
            return list(range(half, len(self.probed)))
        return [part % len(self.probed)]

    def claim_probe(self, part="late") -> claims.Claim | None:
        """Per seed, the pretrained features' probe accuracy against random features', averaged over the stages of
        `part` (early, late or one probed-stage index)."""
        ks = self._part(part)
        if not self.done() or not ks:
            return None
        return claims.compare("pretrained", {w: self._values("probe", ks, w) for w in ("pretrained", "random")},
                              ["random"])

    def claim_tuned(self, part="late") -> claims.Claim | None:
        """Per seed, the fine-tuned features' probe accuracy against the pretrained ones' over `part`."""
        ks = self._part(part)
        if not self.done() or not ks:
            return None
        return claims.compare("finetuned", {w: self._values("probe", ks, w) for w in ("finetuned", "pretrained")},
                              ["pretrained"])

    def claim_changed(self, k: int) -> claims.Claim | None:
        """Per seed, CKA at probed stage k against 1 (an unchanged representation): 'hurt' = it changed."""
        if not self.done():
            return None
        values = {"fine-tuned": self._values("cka", k), "unchanged": {r.seed: 1.0 for r in self.done()}}
        return claims.compare("fine-tuned", values, ["unchanged"])

    def claim_cka(self) -> claims.Claim | None:
        """Per seed, the late half's mean 1 − CKA against the early half's, compared as fractions."""
        early, late = self._part("early"), self._part("late")
        if not self.done() or not early or not late:
            return None
        values = {"late stages": {s: 1 - v for s, v in self._values("cka", late).items()},
                  "early stages": {s: 1 - v for s, v in self._values("cka", early).items()}}
        return claims.compare("late stages", values, ["early stages"], metric="accuracy")

    def by_stage(self) -> list[dict]:
        out = []
        for k, name in enumerate(self.stages):
            c, t, ch = self.claim_probe(k), self.claim_tuned(k), self.claim_changed(k)
            out.append({"stage": name, "pretrained_vs_random": c.kind if c else None,
                        "pretrained_vs_random_gap": _num(c.gap) if c else None,
                        "finetuned_vs_pretrained": t.kind if t else None, "changed": ch.kind == "hurt" if ch else None})
        return out

    def better_at(self) -> list[str]:
        """The probed stages where pretrained features beat random ones by the rule."""
        return [s["stage"] for s in self.by_stage() if s["pretrained_vs_random"] == "helped"]

    def changed_at(self) -> list[str]:
        """The probed stages whose CKA is below 1 by the rule (fine-tuning changed the representation)."""
        return [s["stage"] for s in self.by_stage() if s["changed"]]

    def claims(self) -> list[dict]:
        named = [("pretrained vs random, late stages", self.claim_probe("late")),
                 ("pretrained vs random, early stages", self.claim_probe("early")),
                 ("late vs early, 1 - CKA", self.claim_cka()),
                 ("fine-tuned vs pretrained, late stages", self.claim_tuned("late"))]
        return [{"name": n, **c.to_json()} for n, c in named if c is not None]

    def body(self) -> dict:
        out: dict = {"stages": self.stages, "classes": self.classes, "chance": 1 / max(len(self.classes), 1),
                     "seeds": [r.seed for r in self.done()]}
        probe = {w: self.per_seed("probe", w) for w in WEIGHTS}
        out["probe"] = {w: _mean(v) for w, v in probe.items()}
        out["probe_std"] = {w: _std(v) for w, v in probe.items()}
        out["probe_seeds"] = {w: v.tolist() for w, v in probe.items()}
        for what in ("cka", "change"):
            v = self.per_seed(what)
            key = "relative_change" if what == "change" else what
            out.update({key: _mean(v), f"{key}_std": _std(v), f"{key}_seeds": v.tolist()})
        acc = contract.seed_stats([r.val_acc for r in self.done()])
        out.update(val_acc=acc["mean"], val_acc_std=acc["std"], embedding=self.embedding, cam=self.cam,
                   early_stages=self.halves()[0], late_stages=self.halves()[1], by_stage=self.by_stage(),
                   better_at=(b := self.better_at()), better_from=b[0] if b else None,
                   changed_at=(ch := self.changed_at()), changed_from=ch[0] if ch else None, claims=self.claims(),
                   claim=c.to_json() if (c := self.claim_probe("late")) else None)
        return out

    def metrics(self) -> dict[str, float]:
        if not self.done():
            return {}
        out = {}
        for w in WEIGHTS:
            m = self.per_seed("probe", w).mean(0)
            out.update({f"probe.{w}.{s}": float(v) for s, v in zip(self.stages, m)})
            out[f"probe_last.{w}"] = float(m[-1])
        out.update({f"cka.{s}": float(v) for s, v in zip(self.stages, self.per_seed("cka").mean(0))})
        out["val_acc"] = float(np.mean([r.val_acc for r in self.done()]))
        return out

    def curves(self) -> dict[str, list]:
        return {f"finetuned.history.{k}": contract.mean_curve([getattr(r.history, k) for r in self.runs])
                for k in ("val_acc", "val_loss", "train_acc", "train_loss")}

    def verdict(self) -> Verdict:
        """Late stages: pretrained vs random probe accuracy (the kind); early stages the same; where by stage; and
        whether fine-tuning changed the late stages' representation more than the early ones' (1 − CKA)."""
        if self.status != "finished" or not self.done():
            return self.ended_early()
        early, late = self.halves()
        span = lambda names: names[0] if len(names) == 1 else tr("{first} to {last}",  # noqa: E731
                                                                  first=names[0], last=names[-1])
        what = tr("linear-probe accuracy, mean over those stages")
        c, e = self.claim_probe("late"), self.claim_probe("early")
        lead = {"helped": tr("Pretrained features separate the classes better than random ones in the late stages. "),
                "hurt": tr("Here random features separate the classes better than pretrained ones in the late "
                           "stages. ")}.get(c.kind, "")
        text = lead + tr("Late stages ({stages}): {claim}", stages=span(late),
                         claim=c.sentence("pretrained", "random", what))
        if e is not None:
            text += tr(" Early stages ({stages}): {claim}", stages=span(early),
                       claim=e.sentence("pretrained", "random", what))
        better = self.better_at()
        text += (tr(" Stage by stage, pretrained features beat random ones by the rule at {stages}.",
                    stages=", ".join(better)) if better
                 else tr(" Stage by stage, pretrained features beat random ones by the rule at no probed stage."))
        cka = self.claim_cka()
        if cka is not None:
            moved = cka.sentence(tr("the late-stage average"), tr("the early-stage average"),
                                 tr("1 − linear CKA (how far the representation moved)"))
            text += tr(" Under fine-tuning: {claim}", claim=moved)
            changed = self.changed_at()
            text += (tr(" CKA is below 1 by the rule at {n} of {total} probed stages, first at {first}.",
                        n=len(changed), total=len(self.stages), first=changed[0]) if changed
                     else tr(" CKA is below 1 by the rule at no probed stage."))
        return Verdict(c.kind, text)


def label(weights: str, cfg: InsideConfig) -> str:
    """How a figure names a representation: ImageNet-pretrained (the shapes CNN: pretrained on shapes), random init,
    fine-tuned on the dataset."""
    if weights == "pretrained" and backbones.entry(cfg.backbone).source == "project":
        return "pretrained (on shapes)"
    return LABELS[weights] + (f" on {cfg.dataset}" if weights == "finetuned" else "")


def _num(v: float):
    return float(v) if v is not None and np.isfinite(v) else None


def _mean(v: np.ndarray) -> list:
    return v.mean(0).tolist() if len(v) else []


def _std(v: np.ndarray) -> list:
    return v.std(0).tolist() if len(v) else []


def splits(ds: data.ImageSet, cfg: InsideConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, probe) rows of one seed through THE splitter: the lab's few-shot train and validation rows, and
    the next `probe_shots` of each class's training pool for the probes (nested: never trained on)."""
    k = len(ds.classes)
    train, val = data.class_split(ds.labels, k, seed, lambda n: cfg.val_per_class, cfg.shots)
    more, _ = data.class_split(ds.labels, k, seed, lambda n: cfg.val_per_class, cfg.shots + cfg.probe_shots)
    return train, val, np.setdiff1d(more, train)


def run(cfg: InsideConfig = InsideConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> InsideResult:
    """Per seed: full fine-tuning, then the probed stages' pooled features of pretrained, random and fine-tuned
    weights → probes, CKA, relative change; the first seed's 2-D maps; Grad-CAM of three models (first seed)."""
    contract.validate(cfg)
    ok, message = backbones.weights_status(cfg.backbone)
    if not ok:
        raise backbones.WeightsUnavailable(f"{cfg.backbone}: {message}")
    start = time.perf_counter()
    dev = devices.pick(device)
    ds = data.load(cfg.dataset, cfg.image_size)
    n_classes, probed, shown_at = len(ds.classes), cfg.probed(), cfg.map_stage()
    pretrained = backbones.create(cfg.backbone, "pretrained", n_classes, cfg.seed).to(dev)
    result = InsideResult(config=cfg, stage_names=list(pretrained.names), probed=probed, classes=list(ds.classes),
                          device=devices.describe(dev))
    trained: dict[str, tuple[nn.Module, FinetuneRun]] = {}   # the first seed's models, for Grad-CAM

    def measure(seed, model, before, r: FinetuneRun, stop) -> InsideRun:
        train, val, probe_rows = splits(ds, cfg, seed)
        rows = np.concatenate([val, probe_rows])     # never trained on: val first, then the probe rows
        images, labels = ds.images[rows], ds.labels[rows].numpy()
        nv = len(val)
        random = backbones.create(cfg.backbone, "scratch", n_classes, seed).to(dev)
        feats = {w: stage_features(m, images, probed, 64, stop)
                 for w, m in (("pretrained", pretrained), ("random", random), ("finetuned", model))}
        accs = {w: [probe(f[k][nv:], labels[nv:], f[k][:nv], labels[:nv]) for k in probed] for w, f in feats.items()}
        cka = [linear_cka(feats["pretrained"][k], feats["finetuned"][k]) for k in probed]
        after = {n: p.detach().cpu() for n, p in model.named_parameters()}
        change = relative_change(before, after, model)
        if not result.embedding:
            for w, f in feats.items():
                xy = project(f[shown_at][:nv].numpy(), cfg.embedding, seed)
                result.embedding[w] = {"method": cfg.embedding, "stage": result.stage_names[shown_at],
                                       "label": label(w, cfg),
                                       "probe_acc": accs[w][probed.index(shown_at)], "seed": seed,
                                       "x": xy[:, 0].round(4).tolist(), "y": xy[:, 1].round(4).tolist(),
                                       "labels": labels[:nv].tolist()}
        return InsideRun(seed, accs, cka, [change[k] for k in probed], r.val_acc, r.history)

    def train_one(cell, on_epoch, stop):
        train, val, _ = splits(ds, cfg, cell.seed)
        weights = "scratch" if cell.condition == "scratch" else "pretrained"
        model = backbones.create(cfg.backbone, weights, n_classes, cell.seed).to(dev)
        before = {n: p.detach().cpu().clone() for n, p in model.named_parameters()}
        r = Trainer(model, cfg.lab(cell.condition, cell.seed), dev).fit_and_score(
            weights, cell.seed, ds.subset(train), ds.subset(val), {"on_epoch": on_epoch, "should_stop": stop})
        if cell.seed == cfg.seed and cfg.cam:
            trained[cell.condition] = (model, r)
        if cell.condition != "finetuned" or r.history.status != "finished":
            return r
        return measure(cell.seed, model, before, r, stop)

    cells = contract.plan(["finetuned"], cfg.seeds, cfg.seed)
    if cfg.cam:
        cells[1:1] = [contract.Cell("feature_extraction", cfg.seed), contract.Cell("scratch", cfg.seed)]
    out = contract.run_cells(cells, train_one, progress, should_stop, epochs=cfg.epochs)
    result.runs = [r for c, r in zip(out.cells, out.results) if c.condition == "finetuned" and isinstance(r, InsideRun)]
    result.status, result.message = out.status, out.message
    if cfg.cam and len(trained) == len(CAM_MODELS) and out.status == "finished":
        _cams(result, cfg, ds, trained)
    elif not cfg.cam:
        result.cam = {"images": 0, "note": "Grad-CAM off (cam 0)"}
    result.seconds = time.perf_counter() - start
    return result


def _cams(result: InsideResult, cfg: InsideConfig, ds: data.ImageSet, trained: dict) -> None:
    """Grad-CAM of the first seed's three models on the same validation images, each for its own prediction."""
    _, val, _ = splits(ds, cfg, cfg.seed)
    model = trained["finetuned"][0]
    k = cam_stage(model, cfg.image_size, cfg.cam_stage)
    if k is None:
        result.cam = {"images": 0, "note": f"{cfg.backbone} has no stage that outputs a map: no Grad-CAM"}
        return
    truth = ds.labels[val].numpy()
    preds = {m: np.asarray(trained[m][1].val_pred) for m in CAM_MODELS}
    right, wrong = cam_choice(truth, preds, cfg.cam)
    rows = right + wrong
    images = ds.images[val[rows]]
    for m in CAM_MODELS:
        result.cam_maps[m], result.cam_pred[m] = gradcam(trained[m][0], images, k)
    result.cam_images, result.cam_true = images.numpy(), truth[rows].tolist()
    side = spatial_sizes(model, cfg.image_size)[k]
    result.cam = {
        "images": len(rows), "correct_shown": len(right), "misclassified_shown": len(wrong),
        "stage": result.stage_names[k], "map_size": list(side), "image_size": cfg.image_size, "seed": cfg.seed,
        "models": {m: {"label": CAM_MODELS[m], "val_acc": trained[m][1].val_acc,
                       "misclassified": int((preds[m] != truth).sum()), "val_images": len(truth)} for m in CAM_MODELS},
        "agreement_with_finetuned": {m: map_correlation(result.cam_maps[m], result.cam_maps["finetuned"])
                                     for m in CAM_MODELS if m != "finetuned"},
    }


# ---- the text page: sentence embeddings before and after fine-tuning ---------------------------------

_TEXT_MAPS: dict = {}   # (id(result), method) → (result, map): a page rerun draws it at once


def text_embedding(result, method: str = "pca") -> dict:
    """The text page's map: the first seed's validation sentences' embeddings (the encoder's mean-pooled last
    layer) under the pretrained encoder and, when the run fine-tuned one (last_k or full), after fine-tuning;
    projected to 2-D by `method`, each with a linear probe fitted on the training sentences and scored on the
    validation ones. A dict keyed by weights ("pretrained", "finetuned"), each {method, stage, probe_acc, label,
    x, y, labels}, as the image experiment's `embedding`."""
    from tl_core import text

    key = (id(result), method)
    if key in _TEXT_MAPS and _TEXT_MAPS[key][0] is result:
        return _TEXT_MAPS[key][1]
    cfg = result.config
    ds = text.load(cfg.dataset, cfg.classes)
    train, val = text.few_shot_split(ds, cfg.shots, cfg.seed, cfg.val_per_class)
    texts = [ds.texts[i] for i in np.concatenate([train, val])]
    y = ds.labels[np.concatenate([train, val])].numpy()
    nt = len(train)
    models = {"pretrained": ("pretrained encoder", backbones.pretrained_text_model())}
    tuned = result.tuned_model()
    if tuned is not None:
        models["finetuned"] = (f"after fine-tuning ({cfg.label(result.tuned[0])})", tuned)
    out = {}
    for w, (label, model) in models.items():
        e = text.embed(model, texts, cfg.max_length).numpy()
        xy = project(e[nt:], method, cfg.seed)
        out[w] = {"method": method, "stage": "sentence embedding (mean pool)", "label": label, "seed": cfg.seed,
                  "probe_acc": probe(e[:nt], y[:nt], e[nt:], y[nt:]), "x": xy[:, 0].round(4).tolist(),
                  "y": xy[:, 1].round(4).tolist(), "labels": y[nt:].tolist()}
    while len(_TEXT_MAPS) >= 2:
        _TEXT_MAPS.pop(next(iter(_TEXT_MAPS)))
    _TEXT_MAPS[key] = (result, out)
    return out


# ---- the command line ------------------------------------------------------------------------------------

def _text(result: InsideResult, out: dict) -> str:
    n = len(out["seeds"])
    lines = [f"{'stage':<12} {'pretrained':>10} {'random':>8} {'fine-tuned':>10} {'CKA':>7} {'Δw/w':>7}   "
             f"(probe accuracy, mean of {n} seeds)"]
    for i, s in enumerate(out["stages"]):
        p = out["probe"]
        lines.append(f"{s:<12} {p['pretrained'][i]:>10.3f} {p['random'][i]:>8.3f} {p['finetuned'][i]:>10.3f} "
                     f"{out['cka'][i]:>7.3f} {out['relative_change'][i]:>7.4f}")
    return "\n".join(lines + [f"{result.seconds:.0f} s on {result.device}", out["verdict"]])


EXPERIMENTS = (
    contract.Experiment("inside", "inside the model: Grad-CAM of three models, linear probes and a 2-D map of every "
                                  "stage's features (pretrained, random, fine-tuned), CKA per stage", InsideConfig,
                        run, text=_text,
        page="inside", plots="inside", live=True,
        cost=lambda c: units(c["seeds"], c["epochs"], 1, c["shots"], c["image_size"])),
)
