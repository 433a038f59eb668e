"""What the layers learn (Zeiler & Fergus), measured on the lab's own backbones and data.

- **Filters**: the first convolution's kernels as RGB tiles: ImageNet-pretrained, random init, and after
  full fine-tuning on a chosen dataset.
- **Activation maps**: one image through every stage (pretrained or scratch), the strongest channels of each.
- **Strongest patches**: for each stage, the image patches of the dataset that drive its most active
  channels hardest: real forward passes over the data, each patch the unit's effective receptive field.
- **How far each stage moved**: full fine-tuning (every stage trains) over seeds, then the relative change
  ‖w − w₀‖ / ‖w₀‖ of each stage's parameters: the measured reason to freeze early stages.

Full fine-tuning is the lab's own run (`finetuning.Trainer`, freeze depth 0); nothing here trains otherwise.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tl_core import backbones, claims, contract, data, finetuning, narration
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.finetuning import relative_change
from tl_core.i18n import tr
from tl_core.serve.estimates import units

_DATASETS = tuple(d for d in data.DATASETS if d != "shapes")   # the real images


@dataclass(frozen=True)
class LayersConfig:
    backbone: str = setting("efficientnet_lite0", "the pretrained backbone", choices=backbones.IMAGE, title="Backbone")
    dataset: str = setting("textures", "the dataset fine-tuned on, and whose patches are shown", choices=_DATASETS,
                           title="Dataset")
    shots: int = setting(20, "training images per class", lo=1, hi=1000, title="Training images per class",
                         steps=(5, 10, 20, 40))
    epochs: int = setting(8, "passes over the training images (full fine-tuning: every stage trains)", lo=1, hi=500,
                          title="Epochs of full fine-tuning", span=(1, 30))
    lr: float = setting(1e-3, "Adam learning rate", lo=1e-6, hi=1)
    image_size: int = setting(64, "pixels", lo=data.MIN_SIZE, hi=data.MAX_SIZE, label="image size",
                              title="Image size (px)", steps=(32, 48, 64, 96, 128))
    batch_size: int = setting(32, "images per step", lo=1, hi=1024, label="batch size")
    seeds: int = setting(3, "fine-tuning runs, for bands", lo=1, hi=20, title="Seeds (for the band)", span=(1, 5))
    seed: int = setting(0, "first seed: split, head init, random init", lo=0)
    val_per_class: int = setting(20, "fixed validation images per class", lo=1, hi=200, label="val per class",
                                 title="Validation images per class", span=(2, 50))
    patches: int = setting(6, "strongest patches shown per stage", lo=1, hi=16)

    def check(self) -> None:
        backbones.check_size(self.backbone, self.image_size)
        most = data.max_shots(data.load(self.dataset, data.MIN_SIZE), self.val_per_class)
        if self.shots > most:
            raise ValueError(f"shots {self.shots} is more than {self.dataset} has per class after "
                             f"{self.val_per_class} validation images: at most {most}")

    def lab(self) -> finetuning.FinetuneConfig:
        """Full fine-tuning as the lab runs it: pretrained, nothing frozen."""
        return finetuning.FinetuneConfig(backbone=self.backbone, weights="pretrained", dataset=self.dataset,
                                         shots=self.shots, freeze="0", epochs=self.epochs, lr=self.lr,
                                         batch_size=self.batch_size, image_size=self.image_size, seeds=1,
                                         val_per_class=self.val_per_class)


# ---- looking inside: filters, activation maps, strongest patches --------------------------------------

def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution that reads the RGB image."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)


def filters(model: nn.Module) -> np.ndarray:
    """The first convolution's kernels, (out, 3, k, k), as numbers (the plot scales them to colours)."""
    return first_conv(model).weight.detach().cpu().numpy().copy()


def spatial_stages(model: backbones.StagedModel, size: int) -> list[int]:
    """Indices of the stages whose output is still a map (N, C, H, W) for a size×size input."""
    x = torch.zeros(1, 3, size, size)
    out = []
    model.eval()
    with torch.no_grad():
        for i, stage in enumerate(model.stages):
            x = stage(x)
            if x.dim() == 4:
                out.append(i)
    return out


@torch.no_grad()
def stage_outputs(model: backbones.StagedModel, images: torch.Tensor, batch_size: int = 64) -> list[torch.Tensor]:
    """Every stage's output for `images`, in eval mode, on the CPU."""
    model.eval()
    dev = next(model.parameters()).device
    outs: list[list[torch.Tensor]] = [[] for _ in model.stages]
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(dev)
        for k, stage in enumerate(model.stages):
            x = stage(x)
            outs[k].append(x.cpu())
    return [torch.cat(o) for o in outs]


def activation_maps(model: backbones.StagedModel, image: torch.Tensor, channels: int = 4) -> list[dict]:
    """One image (3, S, S) through every stage: for each stage with a spatial output, its `channels` most
    active channels (highest mean activation on this image), as (channels, h, w) arrays."""
    outs = stage_outputs(model, image[None])
    maps = []
    for name, out in zip(model.names, outs):
        if out.dim() != 4:
            continue
        a = out[0]
        top = a.mean((1, 2)).argsort(descending=True)[:channels]
        maps.append({"stage": name, "channels": top.tolist(), "maps": a[top].numpy(), "size": list(a.shape[1:])})
    return maps


def receptive_field(model: backbones.StagedModel, stage: int, size: int, share: float = 0.01) -> int:
    """The side, in input pixels, of the effective receptive field of one unit at the centre of `stage`'s
    map: the input pixels whose gradient is at least `share` of the largest (measured, not from strides)."""
    model.eval()
    x = torch.rand(1, 3, size, size, requires_grad=True)
    out = x
    for s in model.stages[:stage + 1]:
        out = s(out)
    _, _, h, w = out.shape
    out[0, :, h // 2, w // 2].sum().backward()
    g = x.grad[0].abs().sum(0)
    rows, cols = (g >= share * g.max()).nonzero(as_tuple=True)
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def top_patches(model: backbones.StagedModel, images: torch.Tensor, most: int = 6, batch_size: int = 64) -> list[dict]:
    """For each spatial stage: its channel most active over `images`, and the `most` images where one unit of
    that channel fires hardest, each cut to that unit's receptive field around where it fired."""
    size = images.shape[-1]
    outs = stage_outputs(model, images, batch_size)
    result = []
    for k, (name, out) in enumerate(zip(model.names, outs)):
        if out.dim() != 4:
            continue
        n, c, h, w = out.shape
        channel = int(out.amax((2, 3)).mean(0).argmax())   # the channel whose peaks are highest on this data
        peak = out[:, channel].reshape(n, -1)
        best, where = peak.max(1)
        order = best.argsort(descending=True)[:most]
        side = min(receptive_field(model, k, size), size)
        crops, values = [], []
        for i in order.tolist():
            y, x = divmod(int(where[i]), w)
            cy, cx = int((y + 0.5) * size / h), int((x + 0.5) * size / w)
            top, left = min(max(cy - side // 2, 0), size - side), min(max(cx - side // 2, 0), size - side)
            crops.append(images[i, :, top:top + side, left:left + side].permute(1, 2, 0).numpy())
            values.append(float(best[i]))
        result.append({"stage": name, "channel": channel, "field": side, "patches": crops, "activations": values,
                       "images": order.tolist()})
    return result


# ---- the experiment: full fine-tuning over seeds, and what moved ----------------------------------------

@dataclass
class LayersRun:
    seed: int
    change: list[float]        # relative change per stage
    val_acc: float
    history: object


@dataclass
class LayersResult(contract.Result):
    config: LayersConfig
    stages: list[str]
    runs: list[LayersRun]
    filters: dict = field(default_factory=dict, repr=False)   # pretrained / scratch / fine-tuned → (out, 3, k, k)
    patches: list = field(default_factory=list, repr=False)    # top_patches of the pretrained model
    tuned_state: dict | None = field(default=None, repr=False)  # the first seed's fine-tuned weights (CPU)
    classes: list = field(default_factory=list)
    kind = "layers"
    headline = ""

    def done(self) -> list[LayersRun]:
        return [r for r in self.runs if r.history.status == "finished"]

    def change(self) -> np.ndarray:
        """(seeds, stages): relative change of every finished seed."""
        return np.array([r.change for r in self.done()]) if self.done() else np.zeros((0, len(self.stages)))

    def halves(self) -> tuple[list[str], list[str]]:
        """(early, late): the first and second half of the pretrained stages (the new head, whose start is random,
        is in neither: its change says nothing about transfer)."""
        pretrained = self.stages[:-1]
        half = len(pretrained) // 2
        return pretrained[:half], pretrained[half:]

    def claim(self) -> claims.Claim | None:
        """Per seed, the late half's mean relative change against the early half's (a scale: compared as factors)."""
        done = self.done()
        if not done:
            return None
        early, late = (len(h) for h in self.halves())
        values = {"late stages": {r.seed: float(np.mean(r.change[early:early + late])) for r in done},
                  "early stages": {r.seed: float(np.mean(r.change[:early])) for r in done}}
        return claims.compare("late stages", values, ["early stages"], metric="relative change")

    def body(self) -> dict:
        ch = self.change()
        acc = contract.seed_stats([r.val_acc for r in self.done()])
        return {"stages": self.stages,
                "relative_change": ch.mean(0).tolist() if len(ch) else [],
                "relative_change_std": ch.std(0).tolist() if len(ch) else [],
                "relative_change_seeds": ch.tolist(), "val_acc": acc["mean"], "val_acc_std": acc["std"],
                "early_stages": self.halves()[0], "late_stages": self.halves()[1],
                "claim": c.to_json() if (c := self.claim()) else None,
                "patch_stages": [{"stage": p["stage"], "channel": p["channel"], "field": p["field"],
                                  "activations": p["activations"]} for p in self.patches]}

    def metrics(self) -> dict[str, float]:
        ch = self.change()
        if not len(ch):
            return {}
        out = {f"relative_change.{name}": float(v) for name, v in zip(self.stages, ch.mean(0))}
        out["val_acc"] = float(np.mean([r.val_acc for r in self.done()]))
        return out

    def verdict(self) -> Verdict:
        """Did the early stages move less than the late ones under full fine-tuning? By the claims rule, per seed."""
        if self.status != "finished" or not self.done():
            return self.ended_early()
        claim = self.claim()
        early, late = self.halves()
        text = claim.sentence(tr("the late stages"), tr("the early stages"), tr("mean relative weight change"))
        if claim.kind == "helped":
            return Verdict("helped", tr("The early stages barely moved and the late ones moved most: {claim} "
                                        "Fine-tuning keeps the early stages nearly as ImageNet left them, so freezing "
                                        "them changes little.", claim=text))
        if claim.kind == "hurt":
            return Verdict("hurt", tr("Here the early stages moved more than the late ones, against the decks: {claim}",
                                      claim=text))
        return Verdict(claim.kind, tr("Under full fine-tuning, the late stages ({late_first} to {late_last}) and the "
                                      "early ones ({early_first} to {early_last}) moved alike by the rule: {claim}",
                                      late_first=late[0], late_last=late[-1], early_first=early[0],
                                      early_last=early[-1], claim=text))


def run(cfg: LayersConfig = LayersConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> LayersResult:
    """Full fine-tuning over seeds (relative change per stage), the first layer's filters before and after,
    and the pretrained model's strongest patches on the dataset."""
    contract.validate(cfg)
    ok, message = backbones.weights_status(cfg.backbone)
    if not ok:
        raise backbones.WeightsUnavailable(f"{cfg.backbone}: {message}")
    start = time.perf_counter()
    dev = devices.pick(device)
    ds = data.load(cfg.dataset, cfg.image_size)
    lab = cfg.lab()
    if progress is not None:
        progress(0.0, "Finding the strongest patches of every stage…")
    pretrained = backbones.create(cfg.backbone, "pretrained", len(ds.classes), cfg.seed)
    patches = top_patches(pretrained, ds.images, cfg.patches)
    shown = {"pretrained": filters(pretrained),
             "random init": filters(backbones.create(cfg.backbone, "scratch", len(ds.classes), cfg.seed))}
    tuned: dict = {}

    def train_one(cell, on_epoch, should_stop) -> LayersRun:
        train, val = data.few_shot_split(ds, cfg.shots, cell.seed, cfg.val_per_class)
        model = backbones.create(cfg.backbone, "pretrained", len(ds.classes), cell.seed).to(dev)
        before = {k: v.detach().cpu().clone() for k, v in model.named_parameters()}
        r = finetuning.Trainer(model, lab, dev).fit_and_score("pretrained", cell.seed, train, val,
                                                              {"on_epoch": on_epoch, "should_stop": should_stop})
        after = {k: v.detach().cpu() for k, v in model.named_parameters()}
        if not tuned:
            tuned.update(state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                         filters=filters(model))
        return LayersRun(cell.seed, relative_change(before, after, model), r.val_acc, r.history)

    out = contract.run_cells(contract.plan(["full fine-tuning"], cfg.seeds, cfg.seed), train_one, progress,
                             should_stop, epochs=cfg.epochs, span=(0.05, 1.0))
    if "filters" in tuned:
        shown[f"fine-tuned on {cfg.dataset}"] = tuned["filters"]
    return LayersResult(config=cfg, stages=list(pretrained.names), runs=out.results, filters=shown, patches=patches,
                        tuned_state=tuned.get("state"), classes=list(ds.classes), seconds=time.perf_counter() - start,
                        device=devices.describe(dev), status=out.status, message=out.message)


def _text(result: LayersResult, out: dict) -> str:
    lines = [f"{'stage':<12} relative change (mean ± std over {len(result.done())} seeds)"]
    lines += [f"{s:<12} {m:.4f} ± {sd:.4f}" for s, m, sd in
              zip(out["stages"], out["relative_change"], out["relative_change_std"])]
    return "\n".join(lines + [f"val acc {out['val_acc']:.3f}; {result.seconds:.0f} s", result.verdict().text])


EXPERIMENTS = (
    contract.Experiment("layers", "what layers learn: first-layer filters, strongest patches per stage, and how far "
                                  "each stage's weights move under full fine-tuning", LayersConfig, run, text=_text,
        page="layers", plots="layers", live=True,
        cost=lambda c: units(c["seeds"], c["epochs"], 1, c["shots"], c["image_size"]), narrate=narration.say_layers),
)
