"""Machine listening: a speech encoder pretrained on real speech (GE2E, LibriSpeech + VoxCeleb) on a few labelled
clips per class, four ways over seeds, on two tasks:

    words     what is said: classes are words; voices heard in training never validate
    speakers  who is speaking: classes are voices; words heard in training never validate

    frozen      the encoder frozen, a new linear head on its 256-d embedding (computed once per clip)
    last_layer  its last LSTM layer, embedding and head fine-tuned (the two layers below cached)
    full        every layer fine-tuned
    scratch     the same network from random weights, every layer trained

`audio-shift` measures the decks' "niche languages" warning: a small log-mel CNN pretrained here on the English
words, transferred to the Spanish digits (frozen or fine-tuned), against the same CNN from scratch.
`audio-own` is `audio` on the user's own clips (recorded on the page, or a zip): private to its session.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tl_core import audio, backbones, claims, contract, finetuning, freeze, narration
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import fmt, tr
from tl_core.serve.estimates import units
from tl_core.train import FitConfig, History, evaluate, fit, predict

CONDITIONS = {"frozen": "the pretrained encoder frozen, a new linear head on its embedding",
              "last_layer": "its last LSTM layer, embedding and head fine-tuned; the two layers below frozen",
              "full": "every layer of the pretrained encoder fine-tuned",
              "scratch": "the same network from random weights, every layer trained"}
LABELS = {"frozen": "frozen encoder + head", "last_layer": "last LSTM layer fine-tuned", "full": "fully fine-tuned",
          "scratch": "same network from scratch",
          "frozen_en": "English CNN frozen + head", "finetune_en": "English CNN fine-tuned",
          "scratch_cnn": "same CNN from scratch"}
TASKS = {"words": "what is said: one class per word; validation voices never heard in training",
         "speakers": "who is speaking: one class per voice; validation words never heard in training"}
DEPTH = {"frozen": 4, "last_layer": 2}   # frozen stages: lstm 1 … embedding; lstm 1, lstm 2
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")
EXPORTED = ("last_layer", "full", "frozen")   # the condition whose model is exported, the first that ran
# The speed path (bench/audio_run.py compares it with False, the path before it, in one process): one CPU thread
# (an LSTM's per-step products are small and many: on a busy 2-core machine two threads made the default run 7.5x
# slower, 339 s against 45 s for one seed; on an idle one two threads are 1.7x faster, 10 s against 17 s for three
# seeds: one thread is the one that never takes minutes), and each epoch's validation clips in one pass. The same
# numbers (tests/test_audio.py).
FAST = True
EVAL_BATCH = 1024


def _conditions_problem(conditions: tuple) -> str:
    if not conditions:
        return "choose at least one condition"
    return "each condition once, please" if len(set(conditions)) < len(conditions) else ""


@dataclass(frozen=True)
class AudioConfig:
    task: str = setting("words", "what to tell apart", choices=TASKS, title="Task")
    language: str = setting("es", "the built-in clips' language", choices=audio.LANGUAGES, title="Language")
    # full fine-tuning trains all three LSTM layers through every step of every clip: on a 2-core CPU the slowest
    # condition by far, so it is offered, not run by default
    conditions: tuple[str, ...] = setting(("frozen", "last_layer", "scratch"), "what to compare, comma-separated",
                                          choices=CONDITIONS, check=_conditions_problem, title="Conditions")
    shots: int = setting(5, "training clips per class", lo=1, hi=1000, title="Training clips per class",
                         steps=(1, 2, 3, 5, 10, 20))
    epochs: int = setting(10, "passes over the training clips", lo=1, hi=500, title="Epochs", span=(1, 60))
    # 3e-2: the frozen head at 1e-2 had not fitted its 50 clips in 10 epochs (train 87%, validation 53%; at 3e-2 94% and
    # 59%; a logistic regression to convergence 62%: validation seeds 100-103); the last layer is the same at both
    lr: float = setting(3e-2, "Adam learning rate of the new head", lo=1e-7, hi=10, title="Head learning rate",
                        steps=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1))
    encoder_lr: float = setting(1e-3, "Adam learning rate of the encoder layers that train", lo=1e-8, hi=1,
                                label="encoder lr", title="Encoder learning rate", steps=(1e-4, 3e-4, 1e-3, 3e-3))
    batch_size: int = setting(32, "clips per step", lo=1, hi=4096, label="batch size")
    seeds: int = setting(3, "runs per condition (each its own split), for intervals", lo=1, hi=20,
                         title="Seeds", span=(1, 10))
    seed: int = setting(0, "first seed: split, head init, scratch init", lo=0)
    val_voices: int = setting(4, "words task: voices held out for validation", lo=1, hi=19, label="validation voices",
                              title="Voices held out (words)", span=(1, 10))
    val_words: int = setting(3, "speakers task: words held out for validation", lo=1, hi=19, label="validation words",
                             title="Words held out (speakers)", span=(1, 9))
    val_fraction: float = setting(0.25, "own clips: validation share per class", lo=0.05, hi=0.5,
                                  label="validation fraction")
    cache: bool = setting(True, "compute the frozen layers once per clip (--no-cache: every epoch)")

    def label(self, condition: str) -> str:
        return LABELS[condition]


@dataclass
class AudioRun:
    condition: str
    seed: int
    history: History
    val_acc: float
    train_acc: float
    val_rows: list = field(default_factory=list)
    val_pred: list = field(default_factory=list)
    state: dict | None = field(default=None, repr=False)   # trained weights, kept for the first seed only


@dataclass
class AudioResult(contract.ConditionsResult):
    config: AudioConfig
    classes: list[str]
    runs: list[AudioRun]
    data: dict = field(default_factory=dict)
    cached_seconds: float = 0.0
    # the exported model (tl_core.audio_export): the first seed of the best pretrained condition, its weights on the
    # CPU and up to 64 of its validation clips' features (the ONNX parity check's inputs)
    model_state: dict | None = field(default=None, repr=False)
    model_of: tuple = ()
    check_feats: torch.Tensor | None = field(default=None, repr=False)
    kind = "audio"
    headline = "val_acc"

    def runs_of(self, condition: str) -> list[AudioRun]:
        return [r for r in self.runs if r.condition == condition]

    def ran(self) -> list[str]:
        return [c for c in self.config.conditions if self.runs_of(c)]

    def summary(self, condition: str) -> dict:
        runs = self.runs_of(condition)
        done = [r for r in runs if r.history.status == "finished"]
        acc = contract.seed_stats([r.val_acc for r in done])
        return {"label": self.config.label(condition), "val_acc": acc["mean"], "val_acc_std": acc["std"],
                "val_acc_mean": acc["mean"], "val_acc_seeds": acc["seeds"], "seeds": [r.seed for r in done],
                "interval": interval(acc["seeds"]),
                "train_acc": contract.seed_stats([r.train_acc for r in done])["mean"],
                "histories": [{k: getattr(r.history, k) for k in CURVES} for r in runs],
                "status": runs[0].history.status}

    def values(self) -> dict[str, dict[int, float]]:
        return {c: {r.seed: r.val_acc for r in self.runs_of(c) if r.history.status == "finished"} for c in self.ran()}

    def confusion(self) -> dict:
        """The first seed of the best condition: its confusion matrix and the validation rows behind each cell."""
        best = max(self.ran(), key=lambda c: self.summary(c)["val_acc"], default=None)
        run = self.runs_of(best)[0] if best else None
        if run is None or not run.val_rows:
            return {}
        k = len(self.classes)
        matrix, cells = np.zeros((k, k), int), {}
        for row, true, pred in zip(run.val_rows, self.data.get("val_true", {}).get(run.seed, []), run.val_pred):
            matrix[true, pred] += 1
            cells.setdefault(f"{true},{pred}", []).append(int(row))
        return {"condition": best, "seed": run.seed, "matrix": matrix.tolist(), "rows": cells}

    def body(self) -> dict:
        return {"task": self.config.task, "language": self.config.language, "encoder": audio.ENCODER,
                "classes": self.classes, "conditions": {c: self.summary(c) for c in self.ran()},
                "claim": c.to_json() if (c := claim_of(self.values())) else None,
                "pretraining_claim": p.to_json() if (p := pretraining_of(self.values())) else None,
                "data": {k: v for k, v in self.data.items() if k != "val_true"}, "confusion": self.confusion(),
                "chance": 1 / max(len(self.classes), 1), "cached_seconds": round(self.cached_seconds, 3)}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        fill = dict(n=self.config.shots, chance=fmt(1 / max(len(self.classes), 1), ".0%"))
        return compare(self.values(), tr("{n} clips per class (words, chance {chance})", **fill)
                       if self.config.task == "words" else tr("{n} clips per class (voices, chance {chance})", **fill))


def interval(values: list[float]) -> list[float]:
    """The 95% interval of a mean over seeds (Student's t), [low, high]; [mean, mean] for one seed."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return [float(v.mean()), float(v.mean())] if len(v) else []
    half = claims.t_quantile(len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return [max(float(v.mean() - half), 0.0), min(float(v.mean() + half), 1.0)]   # an accuracy stays in [0, 1]


def claim_of(values: dict[str, dict[int, float]]) -> claims.Claim | None:
    """The best condition against the strongest other, by the claims rule (None with fewer than two)."""
    have = [c for c in values if values[c]]
    return claims.compare(claims.best_of(values, have), values, have) if len(have) > 1 else None


def pretraining_of(values: dict[str, dict[int, float]], scratch: str = "scratch") -> claims.Claim | None:
    """The best pretrained condition against scratch, by the claims rule (None without both): what pretraining is
    worth, whichever way the best condition's claim went."""
    transfer = [c for c in values if c != scratch and values[c]]
    if not values.get(scratch) or not transfer:
        return None
    return claims.compare(claims.best_of(values, transfer), values, [scratch])


def compare(values: dict[str, dict[int, float]], where: str, scratch: str = "scratch",
            labels: dict[str, str] = LABELS) -> Verdict:
    """The verdict: the best condition against the strongest other, then (when that was not already it) the best
    pretrained condition against scratch."""
    claim, pre = claim_of(values), pretraining_of(values, scratch)
    if claim is None:
        stats = {c: contract.seed_stats(list(v.values())) for c, v in values.items() if v}
        numbers = "; ".join(f"{labels[c]} {fmt(s['mean'], '.0%')} ± {fmt(s['std'], '.0%')}" for c, s in stats.items())
        return Verdict("single", tr("{numbers} (validation accuracy at {where}). Add another condition to compare.",
                                    numbers=numbers, where=where))
    text = tr("At {where}, {claim}", where=where, claim=claim.clause(labels[claim.subject], labels[claim.against]))
    if pre is not None and (pre.subject, pre.against) != (claim.subject, claim.against):
        lead = {"helped": tr("Pretraining still helped: "), "hurt": tr("Negative transfer: ")}.get(
            pre.kind, tr("Against scratch: "))
        text += f" {lead}" + pre.sentence(labels[pre.subject], labels[scratch])
        return Verdict(pre.kind if claim.subject == scratch else claim.kind, text)
    lead = {"helped": tr("Pretraining helped: "), "hurt": tr("Negative transfer: ")}.get(claim.kind, "") if pre else ""
    return Verdict(claim.kind, lead + text)


# ---- training ------------------------------------------------------------------------------------------------

# per (clips' identity, device): the frozen layers' outputs over the clips, shared by every seed, condition and
# later run (the pretrained weights never change); the two latest kept
SHARED: dict[tuple, finetuning.FrozenCache] = {}


def shared_cache(key: str, dev: torch.device) -> finetuning.FrozenCache:
    key = (key, str(dev))
    if key not in SHARED:
        while len(SHARED) >= 2:
            SHARED.pop(next(iter(SHARED)))
        SHARED[key] = finetuning.FrozenCache(lambda: backbones.create(audio.ENCODER, "pretrained"), device=dev)
    return SHARED[key]


def train_condition(cfg, condition: str, seed: int, feats: torch.Tensor, labels: torch.Tensor, split, n_classes: int,
                    dev: torch.device, cache: finetuning.FrozenCache | None, hooks: dict,
                    keep: bool = False) -> AudioRun:
    """THE training loop (`train.fit`) on one condition; the frozen layers' cached outputs in, when it has any."""
    tr, va = (torch.as_tensor(i, dtype=torch.long) for i in split)
    model = backbones.create(audio.ENCODER, "scratch" if condition == "scratch" else "pretrained", n_classes,
                             seed).to(dev)
    depth = DEPTH.get(condition, 0)
    freeze.freeze_to(model, depth)
    net, x_tr, x_va = model, feats[tr], feats[va]
    if cache is not None and depth > 0:
        stop = hooks.get("should_stop")
        net, x_tr, x_va = model.suffix(depth), cache.at(depth, feats, tr, stop), cache.at(depth, feats, va, stop)
    groups = [{"params": list(model.head.parameters()), "lr": cfg.lr},
              {"params": [p for s in model.stages[:-1] for p in s.parameters() if p.requires_grad],
               "lr": cfg.encoder_lr}]
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed,
                        eval_batch_size=EVAL_BATCH if FAST else 0)
    hist = fit(net, (x_tr, labels[tr]), (x_va, labels[va]), fit_cfg, params=[g for g in groups if g["params"]],
               **hooks)
    batch = EVAL_BATCH if FAST else cfg.batch_size
    _, train_acc = evaluate(net, (x_tr, labels[tr]), "classification", batch)
    pred = predict(net, x_va, batch).argmax(1).cpu()
    val_acc = float((pred == labels[va].cpu()).float().mean()) if len(va) else float("nan")
    state = ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
             if keep and condition != "scratch" else None)
    return AudioRun(condition, seed, hist, val_acc, float(train_acc), va.tolist(), pred.tolist(), state)


def own_split(labels: torch.Tensor, n_classes: int, shots: int, seed: int, fraction: float):
    """The user's clips: per class, a validation share (at least 1), at most `shots` of the rest to train."""
    from tl_core import data

    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in range(n_classes):
        rows = rng.permutation(np.flatnonzero(labels.numpy() == c))
        v = data.val_count(len(rows), fraction)
        va += rows[:v].tolist()
        tr += rows[v:v + shots].tolist()
    return np.array(sorted(tr)), np.array(sorted(va))


def _task(cfg: AudioConfig, clips):
    """(features, labels, classes, seed → (train rows, val rows), data facts, cache key) for built-in or own clips."""
    if clips is not None:
        ready = clips.ready()
        if ready.problems():
            raise ValueError(ready.problems()[0])
        labels = torch.tensor(ready.labels, dtype=torch.long)
        k = len(ready.classes)
        facts = {"clips": len(ready), "classes": list(ready.classes), "voices_train": [], "voices_val": [],
                 "source": ready.source, "val_true": {}}
        return (ready.feats(), labels, list(ready.classes), lambda s: own_split(labels, k, cfg.shots, s,
                                                                                  cfg.val_fraction),
                facts, ready.fingerprint)
    ds = audio.spoken_words()
    splits = {}

    def split_of(seed: int):
        if seed not in splits:
            splits[seed] = (audio.word_split(ds, cfg.language, cfg.shots, seed, cfg.val_voices) if cfg.task == "words"
                            else audio.speaker_split(ds, cfg.language, cfg.shots, seed, cfg.val_words))
        return splits[seed]

    first = split_of(cfg.seed)
    facts = {"clips": int((first.labels >= 0).sum()), "classes": first.classes, "val_true": {},
             "voices_train": first.voices_train, "voices_val": first.voices_val, "source": "built-in spoken words"}
    return ds.feats, first.labels, first.classes, lambda s: (split_of(s).train, split_of(s).val), facts, "built-in"


def run(cfg: AudioConfig = AudioConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto", clips=None) -> AudioResult:
    """Every (condition, seed): accuracies, curves, the confusion of the best, the verdict. `clips`: the user's
    own (userclips.UserClips) in place of the built-in words."""
    dev = devices.pick(device)
    with devices.one_cpu_thread(dev) if FAST else contextlib.nullcontext():
        return _run(cfg, progress, should_stop, dev, clips)


def _run(cfg: AudioConfig, progress, should_stop, dev: torch.device, clips) -> AudioResult:
    start = time.perf_counter()
    contract.validate(cfg)
    feats, labels, classes, splitter, facts, key = _task(cfg, clips)
    feats, labels = feats.to(dev), labels.to(dev)
    cache = shared_cache(key, dev) if cfg.cache else None
    before = cache.seconds if cache else 0.0
    result = AudioResult(config=cfg, classes=classes, runs=[], data=facts, device=devices.describe(dev))

    def train_one(cell, on_epoch, should_stop):
        split = splitter(cell.seed)
        facts["val_true"][cell.seed] = labels[torch.as_tensor(split[1], dtype=torch.long)].tolist()
        return train_condition(cfg, cell.condition, cell.seed, feats, labels, split, len(classes), dev, cache,
                               {"on_epoch": on_epoch, "should_stop": should_stop}, keep=cell.seed == cfg.seed)

    out = contract.run_cells(contract.plan(cfg.conditions, cfg.seeds, cfg.seed), train_one, progress, should_stop,
                             epochs=cfg.epochs)
    result.runs, result.status, result.message = out.results, out.status, out.message
    kept = [r for c in EXPORTED for r in result.runs_of(c) if r.state is not None and r.history.status == "finished"]
    if kept:
        result.model_state, result.model_of = kept[0].state, (kept[0].condition, kept[0].seed)
        result.check_feats = feats[torch.as_tensor(kept[0].val_rows[:64], dtype=torch.long)].cpu()
    for r in result.runs:
        r.state = None
    result.cached_seconds = cache.seconds - before if cache else 0.0
    result.seconds = time.perf_counter() - start
    return result


# ---- the command line ------------------------------------------------------------------------------------------

def _prepare(args, cfg: AudioConfig):
    if not getattr(args, "data_zip", None):
        return cfg, {}
    from tl_core import userclips

    clips = userclips.read_zip(args.data_zip)
    problems = clips.ready().problems()
    if problems:
        raise ValueError(f"{args.data_zip}: {problems[0]}")
    return cfg, {"clips": clips}


def _after(args, result: AudioResult) -> dict:
    """--export DIR: the trained model saved there (model.pt, model.onnx checked against torch, model.json)."""
    if not getattr(args, "export", None):
        return {}
    import sys

    from tl_core import audio_export

    clf = audio_export.from_result(result)
    saved = audio_export.save(clf, args.export)
    sys.stderr.write(audio_export.parity_line(clf) + "\n")
    return {"export": saved, "exported": {"condition": result.model_of[0], "seed": result.model_of[1],
                                          "onnx_max_abs_diff": clf.meta["onnx"]["max_abs_diff"]}}


def _predict(args) -> int:
    from tl_core import audio_export

    return audio_export.predict(args)


def _own_clips(blob: bytes, cfg: AudioConfig, record: dict) -> dict:
    from tl_core import userclips

    return {"clips": userclips.UserClips.from_bytes(blob)}


def _text(result: AudioResult, out: dict) -> str:
    d = out["data"]
    lines = [f"{out['task']} on {d['clips']} clips, {len(out['classes'])} classes, {result.config.shots} per class, "
             f"{result.config.seeds} seed(s), on {result.device} in {result.seconds:.1f} s"]
    lines += [f"  {s['label']:<30} val acc {s['val_acc']:.3f} ± {s['val_acc_std']:.3f}   train acc {s['train_acc']:.3f}"
              for s in out["conditions"].values()]
    return "\n".join(lines + [out["verdict"]])


def _predict_onnx():
    from tl_core import export

    return export.ONNX_FLAG


def _cost(c: dict) -> float:
    return units(c["seeds"], c["epochs"], len(c["conditions"]), c["shots"])


_DATA_ZIP = contract.Option("--data-zip", "a zip of class folders of your own WAV/FLAC/OGG clips (instead of the "
                                          "built-in words)")
_EXPORT = contract.Option("--export", "save the trained model there: model.pt (state_dict), model.onnx (checked "
                                      "against torch), model.json; the first seed of the best pretrained condition")

EXPERIMENTS = (
    contract.Experiment("audio", "a speech encoder pretrained on real speech on a few clips per class: frozen, last "
                                 "layer, full fine-tuning, scratch; words or speakers", AudioConfig, run,
                        prepare=_prepare, after=_after, text=_text, options=(_DATA_ZIP, _EXPORT), page="listen",
                        plots="audio", live=True,
                        cost=_cost, inputs={"clips": _own_clips}, narrate=narration.say_audio),
    contract.Experiment("audio-own", "the listening conditions on your own clips (recorded on the page, or a zip)",
                        AudioConfig, run, prepare=_prepare, after=_after, text=_text,
                        options=(replace(_DATA_ZIP, required=True), _EXPORT), page="listen", plots="audio", live=True,
                        private=True, cost=_cost, rate_of="audio", inputs={"clips": _own_clips}),
    contract.Experiment("audio-predict", "top-k classes of WAV/FLAC/OGG clips with a model exported by audio --export "
                                         "or the listening page", main=_predict, recorded=False, device=False,
                        options=(contract.Option("--wav", "clips to classify (WAV, FLAC or OGG)", nargs="+",
                                                 required=True),
                                 contract.Option("--model", "the exported model.pt (model.json beside it), its "
                                                            "folder or zip", required=True),
                                 contract.Option("--top-k", "classes to list per clip", default=3, type=int),
                                 _predict_onnx())),
)
