"""Self-supervised pretraining by masked reconstruction, then a new prediction head: the CS 175 flow.

No labels for pretraining? Hide a random fraction of each sample's input features (or image patches),
and train an `Autoencoder(Encoder, Decoder)` to fill them in, with the loss on the hidden part only.
Then save only the encoder's state_dict, build a `DownstreamModel` from the same Encoder class plus new
prediction layers, load the encoder's weights into it, and train on a *small* labelled set:

    torch.save(autoencoder.encoder.state_dict(), buffer)                       # encoder only
    model = DownstreamModel(Encoder(features, hidden, latent), nn.Linear(latent, classes))
    model.encoder.load_state_dict(torch.load(buffer, weights_only=True))

Three downstream conditions share the same labelled draws and validation set: `scratch` (the same
encoder from random weights, everything trained), `ssl_frozen` (pretrained encoder fixed, only the
head trains) and `ssl_finetuned` (pretrained encoder trained too). Two modalities:

- `expression`: a synthetic gene-expression generator standing in for RNA-seq (recount3 in the deck):
  each sample mixes a few latent gene *programmes* (sets of co-expressed genes); its class, the cell
  type, is its dominant programme; counts are Poisson with log-normal noise, library sizes vary, and
  a few nuisance programmes (cell cycle, stress, batch) vary independently of the cell type. Genes are
  masked one by one.
- `digits`: the 1,797 scikit-learn handwritten digits at 16 × 16 (tl_core.data), masked by 4 × 4 patches.
"""
from __future__ import annotations

import functools
import io
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tl_core import claims, contract, expression, narration
from tl_core import data as datasets
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import tr
from tl_core.masked_pretraining import (
    HIDDEN,
    LATENT,
    SHAPES,
    Autoencoder,
    Decoder,
    DownstreamModel,
    Encoder,
    MaskedReconstruction,
    encoder_bytes,
    masked_mse,
)
from tl_core.serve.estimates import units
from tl_core.train import FitConfig, History, evaluate, fit

DATA = {
    "expression": "Gene-expression-like: 500 genes, 8 cell types, each a mix of latent gene programmes "
                  "(synthetic, standing in for RNA-seq)",
    "digits": "Handwritten digits 0-9 at 16×16 (scikit-learn), masked by 4×4 patches",
}
MODES = {"scratch": "from scratch (same encoder, random weights)",
         "ssl_frozen": "SSL encoder, frozen (only the new head trains)",
         "ssl_finetuned": "SSL encoder, fine-tuned (encoder and head train)"}
MODES_SHORT = {"scratch": "scratch", "ssl_frozen": "the SSL encoder frozen",
               "ssl_finetuned": "the SSL encoder fine-tuned"}
LABEL_COUNTS = (1, 2, 5, 10, 20, 50)   # labelled samples per class on the accuracy-vs-labels curve

# the expression data: one programme marks each cell type (tl_core.expression's generator)
(GENES, CELL_TYPES), NUISANCE, GENES_PER_PROGRAMME = SHAPES["expression"], 4, 30
POOL, VAL_PER_CLASS = 4000, 50         # unlabelled pool size; fixed validation samples per class
ATLAS = expression.Atlas(GENES, GENES_PER_PROGRAMME, tuple((k,) for k in range(CELL_TYPES)), NUISANCE,
                         cells=POOL + VAL_PER_CLASS * CELL_TYPES, background=0.35, mark=(0.7, 1.3))
PATCH = 4                              # digits: masking unit is a PATCH × PATCH block of the 16 × 16 image
DIGIT_SIDE = 16


def _lr_problem(lr) -> str:
    return "" if 0 < lr <= 1 else f"lr must be a number in (0, 1], got {lr}"


@dataclass(frozen=True)
class SSLConfig:
    data: str = setting("expression", "the data to pretrain and compare on", choices=DATA, title="Data")
    labels: int = setting(2, "labelled samples per class for the downstream task", lo=1, hi=200,
                          title="Labelled samples per class", steps=(1, 2, 5, 10, 20, 50))
    mask_ratio: float = setting(0.5, "fraction of features (expression) or patches (digits) hidden per sample",
                                lo=0.05, hi=0.95, label="mask ratio", title="Mask ratio (fraction hidden)",
                                span=(0.1, 0.9, 0.05))
    seeds: int = setting(3, "downstream runs per condition (labelled draw, head/scratch init), for bands",
                         lo=1, hi=20, title="Seeds (for the band)", span=(1, 5))
    seed: int = setting(0, "data split, pretraining, and the first downstream seed", lo=0)
    pretrain_epochs: int = setting(20, "passes over the unlabelled pool", lo=1, hi=500, label="pretrain epochs",
                                   title="Pretraining epochs", span=(2, 100))
    epochs: int = setting(100, "downstream epochs (full batch: the labelled set is small)", lo=1, hi=2000,
                          title="Downstream epochs", span=(10, 300, 10))
    lr: float = setting(3e-3, "Adam learning rate, pretraining and downstream, in (0, 1]", check=_lr_problem)
    hidden: int = setting(HIDDEN, "encoder: features → hidden → latent; hidden units", lo=4, hi=4096)
    latent: int = setting(LATENT, "encoder output size", lo=2, hi=1024)
    label_counts: tuple[int, ...] = setting((), "more label counts per class for accuracy vs labels, "
                                                "comma-separated, e.g. 1,2,5,20", lo=1, hi=200,
                                            label="label counts", flag="--sweep", title="Label counts on the curve",
                                            steps=(1, 2, 5, 10, 20, 50))

    def pretrain_key(self) -> tuple:
        """Everything pretraining depends on: a new label count or downstream setting reuses it."""
        return (self.data, self.mask_ratio, self.seed, self.pretrain_epochs, self.lr, self.hidden, self.latent)

    def resolve(self) -> "SSLConfig":
        """The extra label counts each once, in order, without cfg.labels (always trained): '--labels 2 --sweep
        20,1' on the CLI and the page's [1, 2, 20] with 2 labels are one config."""
        return replace(self, label_counts=tuple(sorted(set(self.label_counts) - {self.labels})))

    def counts(self) -> list[int]:
        """Every label count the run trains: cfg.labels and the extra ones, ascending."""
        return sorted({self.labels, *self.label_counts})


# ---------------------------------------------------------------- data

@dataclass
class SSLData:
    name: str
    raw: torch.Tensor        # (N, features) as generated / loaded: log-expression or pixel values
    x: torch.Tensor          # (N, features) standardised: (raw - mean) / std
    mean: torch.Tensor       # (features,) per-feature mean and std over the unlabelled pool
    std: torch.Tensor
    y: torch.Tensor          # (N,) class of every sample (hidden from pretraining)
    classes: list[str]
    pool: torch.Tensor       # indices of the unlabelled pool (pretraining; labelled draws come from it)
    val: torch.Tensor        # indices of the fixed, class-balanced validation set
    units: torch.Tensor      # (features,) masking unit of each feature
    image_side: int = 0      # > 0: features are an image_side × image_side image
    feature_order: list[int] = field(default_factory=list)  # display order (genes grouped by programme)

    @property
    def features(self) -> int:
        return self.x.shape[1]

    def labelled(self, per_class: int, seed: int) -> torch.Tensor:
        """`per_class` pool indices per class, nested in per_class for one seed (1 ⊂ 5 ⊂ 20)."""
        pool, y = self.pool.numpy(), self.y.numpy()
        have = np.bincount(y[pool], minlength=len(self.classes))
        if (have < per_class).any():
            k = int(np.flatnonzero(have < per_class)[0])
            raise ValueError(f"labels={per_class} per class is more than class {self.classes[k]!r} has "
                             f"in the pool ({have[k]})")
        # no validation rows (the fixed ones are outside the pool), the first per_class of each class train
        picks, _ = datasets.class_split(y[pool], len(self.classes), seed + 1000, val=lambda n: 0, shots=per_class)
        return torch.from_numpy(pool[picks])


def _expression(seed: int) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    """log1p counts (N, GENES) of cells of random types, each type marked by one programme (tl_core.expression)."""
    x, y = expression.simulate(ATLAS, seed)
    return x, y, [f"type {k + 1}" for k in range(CELL_TYPES)], list(range(GENES))


@functools.lru_cache(maxsize=8)
def load(name: str, seed: int = 0) -> SSLData:
    """The unlabelled pool, its labels (for drawing the small labelled set) and a fixed validation set."""
    if name not in DATA:
        raise ValueError(f"data must be one of {', '.join(DATA)}, got {name!r}")
    if name == "expression":
        raw, y, classes, order = _expression(seed)
        units, side = torch.arange(GENES), 0
    else:
        ds = datasets.load("digits", DIGIT_SIDE)
        raw, y, classes = ds.images[:, 0].flatten(1).numpy(), ds.labels.numpy(), list(ds.classes)
        rows, cols = np.divmod(np.arange(DIGIT_SIDE * DIGIT_SIDE), DIGIT_SIDE)
        units, side = torch.from_numpy((rows // PATCH) * (DIGIT_SIDE // PATCH) + cols // PATCH), DIGIT_SIDE
        order = list(range(raw.shape[1]))
    # VAL_PER_CLASS fixed validation samples per class; every other sample is the unlabelled pool
    pool, val = datasets.class_split(y, len(classes), seed, val=lambda n: VAL_PER_CLASS)
    raw_t = torch.from_numpy(raw)
    mean, std = raw_t[pool].mean(0), raw_t[pool].std(0).clamp_min(0.05)
    return SSLData(name=name, raw=raw_t, x=(raw_t - mean) / std, mean=mean, std=std, y=torch.from_numpy(y),
                   classes=classes, pool=torch.from_numpy(pool), val=torch.from_numpy(val), units=units,
                   image_side=side, feature_order=order)


# ---------------------------------------------------------------- pretraining (cached by config)

@dataclass
class Pretrained:
    key: tuple
    encoder: bytes               # the encoder's state_dict only: what the download button gives
    history: History             # masked reconstruction loss per epoch (train, val)
    examples: dict               # a few validation samples: raw, masked (NaN = hidden), reconstruction
    seconds: float
    device: str

    def recon_loss(self) -> dict:
        h = self.history
        return {"first": h.train_loss[0] if h.train_loss else None, "last": h.train_loss[-1] if h.train_loss else None,
                "val_first": h.val_loss[0] if h.val_loss else None, "val_last": h.val_loss[-1] if h.val_loss else None,
                "train": h.train_loss, "val": h.val_loss, "baseline": 1.0,
                "note": "masked MSE on standardised features; 1.0 = predicting each feature's mean"}


_PRETRAINED: dict[tuple, Pretrained] = {}


def pretrain(cfg: SSLConfig, progress: Progress | None = None, should_stop: Stop | None = None,
             device: str = "auto") -> Pretrained:
    """Masked-reconstruction pretraining on the unlabelled pool; cached by cfg.pretrain_key()."""
    contract.validate(cfg)
    key = cfg.pretrain_key()
    if key in _PRETRAINED:
        return _PRETRAINED[key]
    start = time.perf_counter()
    dev = devices.pick(device)
    with devices.one_cpu_thread(dev):
        out = _pretrain(cfg, key, dev, progress, should_stop)
    out.seconds, out.device = time.perf_counter() - start, devices.describe(dev)  # threads restored
    if out.history.status == "finished":  # a stopped or diverged pretraining is shown, not reused
        _PRETRAINED[key] = out
    return out


def _pretrain(cfg: SSLConfig, key: tuple, dev: torch.device, progress, should_stop) -> Pretrained:
    ds = load(cfg.data, cfg.seed)
    devices.seed_everything(cfg.seed)
    auto = Autoencoder(Encoder(ds.features, cfg.hidden, cfg.latent), Decoder(ds.features, cfg.hidden, cfg.latent))
    model = MaskedReconstruction(auto, ds.units, cfg.mask_ratio, cfg.seed).to(dev)
    pool, val = ds.x[ds.pool], ds.x[ds.val]

    def on_epoch(epoch, hist):
        if progress:
            progress((epoch + 1) / cfg.pretrain_epochs,
                     f"pretraining: epoch {epoch + 1}/{cfg.pretrain_epochs}, masked MSE {hist.train_loss[-1]:.3f}")

    hist = fit(model, (pool, pool), (val, val), FitConfig(epochs=cfg.pretrain_epochs, lr=cfg.lr, batch_size=256,
               seed=cfg.seed), task="regression", loss_fn=masked_mse, on_epoch=on_epoch, should_stop=should_stop)
    return Pretrained(key=key, encoder=encoder_bytes(auto.encoder), history=hist, examples=_examples(model, ds),
                      seconds=0.0, device="")


@torch.no_grad()
def _examples(model: MaskedReconstruction, ds: SSLData, n: int = 6) -> dict:
    """n validation samples (one per class first) with their masks and reconstructions, both as the model
    sees them (z: standardised per feature) and in raw units (log expression, pixel values)."""
    idx = [int(ds.val[ds.y[ds.val] == k][0]) for k in range(min(n, len(ds.classes)))]
    x = ds.x[idx].to(next(model.parameters()).device)
    model.eval()
    out = model(x).cpu()
    recon, mask = out[:, 0], out[:, 1].bool()
    raw = ds.raw[idx]
    return {"index": idx, "labels": [ds.classes[int(ds.y[i])] for i in idx], "mask": mask,
            "raw": raw, "recon": recon * ds.std + ds.mean, "z": ds.x[idx], "z_recon": recon}


# ---------------------------------------------------------------- downstream comparison

def train_downstream(ds: SSLData, cfg: SSLConfig, mode: str, encoder: bytes | None, labels: int, seed: int,
                     dev: torch.device, on_epoch=None, should_stop: Stop | None = None
                     ) -> tuple[DownstreamModel, History, float]:
    """One downstream run: the deck's flow for the SSL modes, the same architecture from random weights
    for scratch. Same labelled draw and head initialisation for every mode of one seed. Returns the
    model, its training history and its final validation accuracy (measured once, at the end)."""
    devices.seed_everything(seed)
    enc = Encoder(ds.features, cfg.hidden, cfg.latent)
    head = nn.Linear(cfg.latent, len(ds.classes))
    if mode != "scratch":
        enc.load_state_dict(torch.load(io.BytesIO(encoder), map_location="cpu", weights_only=True))
    if mode == "ssl_frozen":
        enc.requires_grad_(False)
    model = DownstreamModel(enc, head).to(dev)
    idx = ds.labelled(labels, seed)
    with devices.one_cpu_thread(dev):
        hist = fit(model, (ds.x[idx], ds.y[idx]), None,
                   FitConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=0, seed=seed),
                   task="classification", on_epoch=on_epoch, should_stop=should_stop)
        _, val_acc = evaluate(model, (ds.x[ds.val], ds.y[ds.val]), "classification")
    return model, hist, val_acc


@dataclass
class DownstreamRun:
    """One cell of the downstream plan: a mode, a label count, a seed."""
    mode: str
    labels: int
    seed: int
    history: History
    val_acc: float

    def record(self) -> dict:
        h = self.history
        return {"mode": self.mode, "labels": self.labels, "seed": self.seed, "val_acc": self.val_acc,
                "train_acc": h.train_acc[-1] if h.train_acc else None, "status": h.status}


@dataclass
class SSLResult(contract.Result):
    config: SSLConfig
    pretrained: Pretrained
    label_counts: list[int]                              # every count trained: cfg.labels and cfg.label_counts
    records: list[dict] = field(default_factory=list)   # mode, labels, seed, val_acc, train_acc, status
    classes: list[str] = field(default_factory=list)
    kind = "ssl"
    headline = "ssl_finetuned.val_acc"

    def accs(self, mode: str, labels: int | None = None) -> list[float]:
        labels = self.config.labels if labels is None else labels
        return [r["val_acc"] for r in self.records if r["mode"] == mode and r["labels"] == labels
                and r["status"] == "finished"]   # a run cut short by a Stop says nothing of its accuracy

    def by_seed(self, mode: str, labels: int | None = None) -> dict[int, float]:
        labels = self.config.labels if labels is None else labels
        return {r["seed"]: r["val_acc"] for r in self.records if r["mode"] == mode and r["labels"] == labels
                and r["status"] == "finished"}

    def summary(self, mode: str, labels: int | None = None) -> dict:
        accs = self.accs(mode, labels)
        return {"val_acc": float(np.mean(accs)) if accs else None, "val_acc_std": float(np.std(accs)) if accs else None,
                "val_acc_seeds": accs, "seeds": list(self.by_seed(mode, labels)), "description": MODES[mode]}

    def claim(self, labels: int | None = None) -> claims.Claim | None:
        """The better SSL mode (frozen or fine-tuned encoder) against scratch at `labels` per class."""
        values = {mode: self.by_seed(mode, labels) for mode in MODES}
        if not values["scratch"] or not (values["ssl_frozen"] or values["ssl_finetuned"]):
            return None
        best = claims.best_of(values, ("ssl_frozen", "ssl_finetuned"))
        return claims.compare(best, values, ["scratch"])

    def body(self) -> dict:
        out = {"classes": self.classes, "label_counts": self.label_counts}
        out.update({mode: self.summary(mode) for mode in MODES})
        out["by_labels"] = {str(n): {mode: self.summary(mode, n) for mode in MODES} for n in self.label_counts}
        claim = self.claim() if self.status == "finished" else None
        h = self.pretrained.history
        out.update({"claim": claim.to_json() if claim else None,
                    "claims": [{**c.to_json(), "labels": n} for n in self.label_counts if (c := self.claim(n))],
                    "recon_history": {"train": list(h.train_loss), "val": list(h.val_loss)},
                    "recon_loss": self.pretrained.recon_loss(), "pretrain_seconds": round(self.pretrained.seconds, 3),
                    "records": self.records})
        return out

    def metrics(self) -> dict[str, float]:
        """<mode>.val_acc(_std) at cfg.labels, by_labels.<n>.<mode>.val_acc, recon_loss.first/last/val_last."""
        out = {}
        for mode in MODES:
            s = self.summary(mode)
            out.update({f"{mode}.val_acc": s["val_acc"], f"{mode}.val_acc_std": s["val_acc_std"]})
        out.update({f"by_labels.{n}.{mode}.val_acc": self.summary(mode, n)["val_acc"]
                    for n in self.label_counts for mode in MODES})
        rl = self.pretrained.recon_loss()
        out.update({f"recon_loss.{k}": rl[k] for k in ("first", "last", "val_last")})
        return out   # Result.record keeps the finite ones

    def curves(self) -> dict[str, list]:
        h = self.pretrained.history
        return {"recon_loss.train": list(h.train_loss), "recon_loss.val": list(h.val_loss)}

    def verdict(self) -> Verdict:
        return verdict(self)


def run(cfg: SSLConfig = SSLConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> SSLResult:
    """Pretrain (or reuse the cached pretraining), then train scratch / SSL frozen / SSL fine-tuned on
    cfg.labels (and every count in cfg.label_counts) labelled samples per class, cfg.seeds seeds each."""
    contract.validate(cfg)
    cfg = contract.resolved(cfg)
    start = time.perf_counter()
    counts = cfg.counts()
    ds = load(cfg.data, cfg.seed)
    ds.labelled(max(counts), cfg.seed)  # fails now, not after pretraining, if a count is too large
    dev = devices.pick(device)
    share = 0.0 if cfg.pretrain_key() in _PRETRAINED else 0.5   # of the progress bar
    pre = pretrain(cfg, (lambda f, m: progress(share * f, m)) if progress else None, should_stop, device)
    result = SSLResult(config=cfg, pretrained=pre, label_counts=counts, classes=list(ds.classes),
                       device=devices.describe(dev))
    if pre.history.status != "finished":
        result.status, result.message = pre.history.status, pre.history.message
        result.seconds = time.perf_counter() - start
        return result
    # every mode of one (label count, seed) in a row: a Stop keeps whole comparisons
    cells = sorted(contract.plan(MODES, cfg.seeds, cfg.seed, labels=counts), key=lambda c: (c["labels"], c.seed))

    def train_one(cell, on_epoch, should_stop) -> DownstreamRun:
        _, hist, val_acc = train_downstream(ds, cfg, cell.condition, pre.encoder, cell["labels"], cell.seed, dev,
                                            on_epoch=on_epoch, should_stop=should_stop)
        return DownstreamRun(cell.condition, cell["labels"], cell.seed, hist, val_acc)

    out = contract.run_cells(cells, train_one, progress, should_stop, epochs=cfg.epochs, span=(share, 1.0))
    result.records = [r.record() for r in out.results]
    result.status, result.message = out.status, out.message
    result.seconds = time.perf_counter() - start
    return result


def verdict(result: SSLResult) -> Verdict:
    """The better SSL mode against scratch at cfg.labels, by the claims rule. A Verdict (kind, text):
    `kind, text = verdict(result)` works."""
    if result.status != "finished":
        return result.ended_early()
    claim = result.claim()
    if claim is None:
        return Verdict("single", tr("Nothing to compare: scratch or the SSL encoder has no finished run."))
    n = result.config.labels
    lead = {"helped": tr("Self-supervised pretraining helped: "), "hurt": tr("Self-supervised pretraining hurt: ")}
    return Verdict(claim.kind, lead.get(claim.kind, "")
                   + (tr("with {n} labels per class, ", n=n) if n > 1 else tr("with {n} label per class, ", n=n))
                   + claim.clause(MODES_SHORT[claim.subject], "scratch"))


def finetune_note(result: SSLResult) -> str:
    """Frozen against fine-tuned at cfg.labels, by the claims rule, in words."""
    values = {mode: result.by_seed(mode) for mode in ("ssl_finetuned", "ssl_frozen")}
    if not all(values.values()):
        return ""
    claim = claims.compare("ssl_finetuned", values, ["ssl_frozen"])
    why = {"helped": " There are enough labels to adapt its features.",
           "hurt": " With so few labels, training the encoder too lets it overfit them."}.get(claim.kind, "")
    return claim.sentence("fine-tuning the encoder", "keeping it frozen") + why


def _after(args, result: SSLResult) -> dict:
    """--save-encoder: the encoder-only state_dict (.pt), as the page's download button gives it."""
    if not args.save_encoder:
        return {}
    Path(args.save_encoder).write_bytes(result.pretrained.encoder)
    return {"encoder_file": args.save_encoder, "model_path": args.save_encoder}


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _text(result: SSLResult, out: dict) -> str:
    cfg, rl = result.config, out["recon_loss"]
    lines = [f"ssl on {cfg.data}, mask ratio {cfg.mask_ratio}, on {out['device']} in {out['seconds']:.1f} s; "
             f"masked reconstruction MSE {_num(rl['first'])} → {_num(rl['last'])} (1.0 = predict the mean)"]
    lines += [f"  {n} labels/class: " + "   ".join(f"{mode} {_num(s['val_acc'])} ± {_num(s['val_acc_std'])}"
                                                   for mode, s in out["by_labels"][str(n)].items())
              for n in result.label_counts]
    if "encoder_file" in out:
        lines.append(f"  saved the encoder to {out['encoder_file']}")
    return "\n".join(lines + [result.verdict().text])


EXPERIMENTS = (
    contract.Experiment(
        "ssl", "masked-reconstruction pretraining, then scratch vs SSL encoder on few labels", SSLConfig, run,
        options=(contract.Option("--save-encoder", "write the encoder-only state_dict (.pt) here"),),
        after=_after, text=_text,
        page="ssl", plots="selfsup", live=True,
        cost=lambda c: units(c["seeds"], c["epochs"] + c["pretrain_epochs"], 1, c["labels"]),
        narrate=narration.say_ssl),
)
