"""Lecture mode: transfer learning told in the order a lecture tells it, one live experiment per step.

A `Step` is a title, two or three sentences, teacher notes, and a small config of an existing experiment
(about 15 s or less on 2 CPU cores), run by that experiment's own `run` and recorded in the history like
any run. What a step shows is read from the run's recorded JSON (`chart`, `verdict`), so a run prepared
yesterday by another server draws exactly as one made a second ago:

    latest(step, db)      the newest finished run of the step's config in the history, or None
    prepare(db, ...)      run every step that has no such run yet (the lecture is then instant)
    handout(db)           every step's title, text, verdict and chart as one self-contained HTML page

`TL_LECTURE_TINY=1` shrinks every config further (2 seeds, a few epochs): for tests and very slow machines.
The command line: `python -m tl_core lecture [--handout FILE]` prepares what is missing, then writes.
"""
from __future__ import annotations

import dataclasses
import html
import importlib
import json
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

from tl_core import claims, contract, pages, store
from tl_core.contract import Verdict

TINY_ENV = "TL_LECTURE_TINY"


# ---- what a step draws: the full page's own figure of the run's JSON ------------------------------------

def _figures(name: str):
    return importlib.import_module(f"tl_core.plots.{name}")


def _chart(module: str, function: str, **kwargs) -> Callable[[dict], Any]:
    """A step's chart: the figure its full page draws, from the same JSON (imported when first drawn)."""
    return lambda out: getattr(_figures(module), function)(out, **kwargs)


# ---- what a step says: its run's claim, in the audience's words ------------------------------------------

def _kind(c: dict, a: str, b: str) -> str:
    """What the claims rule found, said plainly: a clear win or loss with its interval, a tie, or one seed."""
    if c["kind"] == "single":
        return "one seed says little: run it with more seeds before believing either"
    lo, hi = c["low"] * 100, c["high"] * 100
    if c["kind"] == "helped":
        return f"{a} is clearly ahead ({c['gap'] * 100:+.0f} points; 95% interval {lo:+.0f} to {hi:+.0f})"
    if c["kind"] == "hurt":
        return f"{a} is clearly behind ({c['gap'] * 100:+.0f} points; 95% interval {lo:+.0f} to {hi:+.0f})"
    why = "the seeds disagree too much to tell them apart" if lo <= 0 <= hi else "the gap is under a point"
    return f"a tie: {why} ({c['gap'] * 100:+.0f} points; 95% interval {lo:+.0f} to {hi:+.0f})"


def _cap(text: str) -> str:
    """The first letter upper case, the rest as it is (str.capitalize would lower 'ImageNet')."""
    return text[:1].upper() + text[1:]


def _pair(c: dict, a: str, b: str) -> str:
    return f"{a} {c['subject_mean']:.0%}, {b} {c['against_mean']:.0%}"


def _said(kind: str, text: str, rule: str = "", agrees: bool = True) -> Verdict:
    """A step's words; where the run departs from what the decks say, it says so."""
    return Verdict(kind, text + ("" if agrees or not rule else f" The decks say {rule}; this run does not show it."))


def _ended(out: dict) -> Verdict | None:
    if out.get("status", "finished") != "finished":
        return Verdict(out["status"], out.get("message") or "The run ended early.")
    return None


def _say_idea(out: dict) -> Verdict:
    c, cfg = out.get("claim"), out["config"]
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    text = (f"On new images after training on {cfg['shots']} per class: {_pair(c, 'pretrained', 'from scratch')}. "
            f"{_cap(_kind(c, 'pretrained', 'scratch'))}.")
    return _said(c["kind"], text, "a pretrained start wins with little data", c["kind"] == "helped")


def _say_overfit(out: dict) -> Verdict:
    """Train against validation accuracy at the last epoch, paired run by run (the claims rule)."""
    runs = [h for s in out.get("conditions", {}).values() for h in s.get("histories", []) if h["val_acc"]]
    if not runs:
        return Verdict("single", "")
    values = {"train": {i: h["train_acc"][-1] for i, h in enumerate(runs)},
              "validation": {i: h["val_acc"][-1] for i, h in enumerate(runs)}}
    c = claims.compare("train", values, ["validation"]).to_json()
    gap = f"{c['gap'] * 100:+.0f} points; 95% interval {c['low'] * 100:+.0f} to {c['high'] * 100:+.0f}"
    found = {"helped": f"it knows its training images far better than new ones ({gap}): overfitting",
             "single": "one run says little"}.get(c["kind"], f"no clear gap between the two ({gap})")
    text = (f"After {len(runs[0]['val_acc'])} epochs on {out['config']['shots']} images per class, the network gets "
            f"{c['subject_mean']:.0%} of its training images right and {c['against_mean']:.0%} of new ones: {found}.")
    return _said("helped" if c["kind"] == "helped" else c["kind"], text, "little data makes a big model overfit",
                 c["kind"] == "helped")


def _say_toy(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    factor = 10 ** abs(c["gap"] or 0)
    closer = (f"the pretrained networks stay ×{factor:.1f} closer to B's line than the ones from scratch"
              if (c["gap"] or 0) >= 0 else f"the networks from scratch stay ×{factor:.1f} closer to B's line")
    kind = {"helped": "pretraining clearly helped", "hurt": "pretraining clearly hurt"}.get(c["kind"], "a tie")
    text = (f"Both fit B's {out['config']['b_points']} points; away from them {closer} (test error "
            f"{c['subject_mean']:.3g} vs {c['against_mean']:.3g}, {c['seeds']} networks each): {kind}.")
    return _said(c["kind"], text, "a pretrained start acts as a prior", c["kind"] == "helped")


def _say_layers(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", "")
    text = (f"Under full fine-tuning the late stages moved {c['subject_mean']:.1%} of their size, the early ones "
            f"{c['against_mean']:.1%} (mean of {c['seeds']} seeds): "
            + {"helped": "the early stages barely moved, so freezing them costs little.",
               "hurt": "here the early stages moved more."}.get(c["kind"], "the seeds cannot tell the two apart."))
    return _said(c["kind"], text, "the early, general stages change least", c["kind"] == "helped")


def _depth(subject: str, stages: int) -> str:
    depth = int(subject.split("(")[1].split()[0])
    return ("feature extraction" if depth == stages - 1 else "full fine-tuning" if depth == 0
            else f"partial fine-tuning (the last {stages - depth} stages)")


def _say_freeze(out: dict) -> Verdict:
    stages, parts, kinds = len(out.get("stages", [])), [], set()
    for c in out.get("claims", []):
        best, other = _depth(c["subject"], stages), _depth(c["against"], stages)
        result = (f"{best} wins ({c['subject_mean']:.0%} vs {other} {c['against_mean']:.0%})" if c["kind"] == "helped"
                  else f"{best} {c['subject_mean']:.0%} and {other} {c['against_mean']:.0%} tie")
        parts.append(f"with {c['shots']} images per class, {result}")
        kinds.add(c["kind"])
    return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", _cap("; ".join(parts)) + "." if parts else "")


def _say_domains(out: dict) -> Verdict:
    """Each quadrant's result next to the decks' rule (and where they part ways)."""
    from tl_core.experiments import domains

    parts = [f"{q['size']} images: {domains.quadrant_words(q)}; the decks: {q['rule']}"
             + ("" if q["agrees"] else " (this run disagrees)") for q in out.get("quadrants", [])]
    agree = all(q["agrees"] for q in out.get("quadrants", []))
    return Verdict("helped" if agree else "mixed", ". ".join(_cap(p) for p in parts) + ".")


def _say_negative(out: dict) -> Verdict:
    """Where scratch beat every pretrained strategy of the run by the claims rule: negative transfer, or not."""
    neg = out.get("negative_transfer", [])
    backbone = out["config"]["backbone"]
    if not neg:
        parts = [f"at {c['shots']} shots: {_pair(c, c['subject'].replace('_', ' '), 'scratch')}, "
                 + _kind(c, c["subject"].replace("_", " "), "scratch") for c in out.get("gain_claims", [])]
        return Verdict("mixed", f"No negative transfer in this run ({'; '.join(parts)}): the decks warn of it, and "
                                f"these seeds do not show it.")
    parts = [f"at {x['shots']} images per class, scratch {x['scratch_acc']:.0%} vs "
             f"{x['pretrained'].replace('_', ' ')} {x['pretrained_acc']:.0%}" for x in neg]
    return Verdict("hurt", f"Negative transfer, as the decks warn: the frozen features of {backbone} lose to the same "
                           f"network from scratch, {'; '.join(parts)} (by the claims rule over "
                           f"{out['config']['seeds']} seeds). The source task is too far from the target.")


def _say_ssl(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    name = "the frozen SSL encoder" if c["subject"] == "ssl_frozen" else "the fine-tuned SSL encoder"
    text = (f"With {out['config']['labels']} labels per class: {_pair(c, name, 'scratch')}. "
            f"{_cap(_kind(c, name, 'scratch'))}.")
    return _said(c["kind"], text, "pretraining without labels helps when labels are few", c["kind"] == "helped")


def _say_gtl(out: dict) -> Verdict:
    """The GTL sweep: does guidance beat simply freezing the body, from a related source and an unrelated one."""
    from tl_core.experiments import gtl

    parts = []
    for source in out["config"]["sources"]:
        mine = [c for c in out.get("claims", []) if c["source"] == source and c["question"] == "guidance"]
        by = {k: [c for c in mine if c["kind"] == k] for k in ("helped", "hurt")}
        said = [f"beats the stronger of freezing the body and plain fine-tuning at {_shots(by['helped'])}"
                if by["helped"] else "",
                f"trails it at {_shots(by['hurt'])} (by " + ", ".join(f"{-c['gap'] * 100:.0f}" for c in by["hurt"])
                + f" points, against {gtl.NAMES[by['hurt'][0]['against']]})" if by["hurt"] else ""]
        said = [s for s in said if s] or ["ties freezing the body at every shots value"]
        parts.append(f"{source} source: guided fine-tuning " + ", and ".join(said))
    hurt = any(c["kind"] == "hurt" for c in out.get("claims", []) if c["question"] == "guidance")
    return Verdict("mixed", ". ".join(_cap(p) for p in parts) + "." + (
        " From a source that does not fit, the guide keeps the wrong weights: guidance hurts." if hurt else ""))


def _shots(claims_: list[dict]) -> str:
    shots = [str(c["shots"]) for c in claims_]
    return (", ".join(shots[:-1]) + " and " + shots[-1] if len(shots) > 1 else shots[0]) + " shots"


def _say_peft(out: dict) -> Verdict:
    """The best parameter-efficient method against full fine-tuning: accuracy (the claim), share trained, forgetting."""
    c = out.get("claim")
    if c is None:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    methods = {m["condition"]: m for m in out.get("methods", [])}
    mine, full = methods.get(c["subject"], {}), methods.get(c["against"], {})
    a, b = mine.get("label", c["subject"]), full.get("label", c["against"])
    text = f"{_pair(c, a, b)}: {_kind(c, a, b)}, training {mine.get('trainable_fraction', 0):.1%} of the weights"
    key = out.get("forgetting_measure", "agreement")
    forgot = [(m.get("forgetting") or {}).get(key) for m in (mine, full)]
    forgot = [f.get("mean") if isinstance(f, dict) else f for f in forgot]
    if None not in forgot:
        text += f"; {key} with the original model {forgot[0]:.2f} vs {forgot[1]:.2f} (1 = forgot nothing)"
    return Verdict(c["kind"], _cap(text) + ".")


def _say_text(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    text = (f"With {out['config']['shots']} labelled sentences per topic: "
            f"{_pair(c, 'the pretrained encoder', 'the same model from scratch')}. "
            f"{_cap(_kind(c, 'the pretrained encoder', 'scratch'))}.")
    return _said(c["kind"], text, "pretrained language models transfer to few labels", c["kind"] == "helped")


# ---- the steps ---------------------------------------------------------------------------------------

FIVE = ("0", "1", "2", "3", "4")


class Unavailable(Exception):
    """A step whose part of Transfer Lab is not in this installation (yet)."""


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    text: str                      # two or three sentences (markdown)
    notes: str                     # for the teacher: what to point at, what to ask, what can go wrong
    page: str = ""                 # url path of the full page
    module: str = ""               # tl_core.experiments.<module> that runs it; "" = nothing trains (`compute`)
    make: Callable[[Any], Any] | None = None   # module -> the step's small config
    runner: str = "run"            # the module's function that runs the config
    kind: str = ""                 # the run's kind in the history
    tiny: dict = field(default_factory=dict)   # overrides under TL_LECTURE_TINY=1
    prefixes: tuple = ()           # (config field, widget-key prefix) where it is not the page's own prefix
    fixed: tuple = ()              # (widget key, value) the link always carries
    chart: Callable[[dict], Any] | None = None      # the run's JSON -> its full page's figure
    say: Callable[[dict], Verdict] | None = None   # the run's JSON -> what the step says (default: its verdict)
    compute: Callable[[Any], dict] | None = None   # nothing to train: the step's JSON, computed at once

    def experiment(self):
        """The experiment's module; Unavailable when that part of Transfer Lab isn't installed."""
        try:
            return importlib.import_module(f"tl_core.experiments.{self.module}" if self.module else "tl_core.state")
        except ImportError as err:
            raise Unavailable(f"This part of Transfer Lab is not available yet ({err}).") from None

    def config(self):
        """The step's config (shrunk under TL_LECTURE_TINY=1). A config that no longer builds (a renamed field, a
        value out of range) raises: that is a bug of the lecture, and the tests fail on it."""
        module = self.experiment()
        if self.make is None:
            raise Unavailable("This part of Transfer Lab is not available in the lecture yet.")
        cfg = self.make(module)
        cfg = dataclasses.replace(cfg, **self.tiny) if self.tiny and os.environ.get(TINY_ENV) == "1" else cfg
        contract.validate(cfg)
        return cfg

    def run(self, cfg, progress=None, should_stop=None, device: str = "auto"):
        """The step's run, on one CPU thread: a step's models are small, and on a busy 2-core machine one thread
        each (in up to two processes) prepared the lecture about 5x faster than two threads; the same numbers
        whether it is prepared in advance, in another process or re-run live."""
        from tl_core import device as devices

        with devices.one_cpu_thread(devices.pick(device)):
            return getattr(self.experiment(), self.runner)(cfg, progress=progress, should_stop=should_stop,
                                                           device=device)

    def trains(self) -> bool:
        return self.compute is None

    def verdict(self, out: dict) -> Verdict:
        """What the step says of its run, in the audience's words, from the run's claims."""
        if out.get("status", "finished") != "finished":
            return Verdict(out["status"], out.get("message") or "The run ended early.")
        return self.say(out) if self.say else Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))


def weights_demo(state) -> dict:
    """The deck's save/load story on a lab model: the encoder only (every stage but the head) of the shapes CNN,
    saved as a state_dict, loaded into the same architecture with a new 5-class head: strict refuses (the head
    is missing), strict off loads the encoder and leaves the new head at its initial values."""
    arch = "shapes_cnn"
    encoder = state.parts(arch, "pretrained")["encoder"]
    strict = state.load_into(encoder, state.LoadConfig(arch=arch, num_classes=5, strict=True), "encoder.pt")
    loose = state.load_into(encoder, state.LoadConfig(arch=arch, num_classes=5, strict=False), "encoder.pt")
    groups = state.lab_groups(arch)
    stages: dict[str, dict] = {}
    for k in loose.model.state_dict():
        g = stages.setdefault(groups.get(k, "other"), {"stage": groups.get(k, "other"), "loaded": 0, "initial": 0})
        g["loaded" if k in loose.loaded else "initial"] += 1
    return {"experiment": "weights", "config": {"arch": arch, "part": "encoder", "num_classes": 5},
            "file_keys": len(encoder), "strict": strict.to_json(), "loose": loose.to_json(),
            "stages": list(stages.values()), "status": "finished",
            "verdict": f"{strict.message()} Then, {loose.message()}", "verdict_kind": "single"}


def _domain_step(key: str, title: str, dataset: str, text: str, notes: str, preset: str = "",
                 say: Callable[[dict], Verdict] = _say_domains) -> Step:
    """A step on one dataset of the strategy grid (every strategy, few and more images per class), or on one of
    the strategy page's presets (the module's constant named `preset`)."""
    settings = {"datasets": (dataset,), "shots": (2, 10), "seeds": 3, "epochs": 4, "image_size": 32,
                "val_per_class": 10}
    return Step(key, title, text, notes, page="domains", module="domains", kind="domains",
                make=lambda m: m.DomainsConfig(**{**settings, **(getattr(m, preset) if preset else {})}),
                tiny=dict(shots=(2,), epochs=2, image_size=32, val_per_class=4,
                          strategies=("feature_extraction", "scratch")),
                chart=_chart("domains", "domain_bars"), say=say)


STEPS: tuple[Step, ...] = (
    Step("idea", "What transfer learning is: D_ext → D",
         "A network first learns on a large dataset *D_ext* (here ImageNet's 1.2 million photos), then trains for a "
         "few epochs on your small dataset *D* (here 5 images per digit). The same network from random weights "
         "sees the same 5 images. Which one has learnt digits?",
         "Point at the two bands: the gap is the whole argument of the course. Ask the class what ImageNet photos "
         "could possibly teach about handwritten digits (edges, strokes, contrast). Scratch trains every stage, which "
         "is why it is the slow part of the run.",
         page="finetune", module="finetune", kind="finetune",
         make=lambda m: m.FinetuneConfig(weights="both", classes=FIVE, epochs=6, image_size=32, val_per_class=10),
         tiny=dict(epochs=2, seeds=2, shots=2, val_per_class=4, image_size=32), chart=_chart("finetune", "curves"),
         say=_say_idea),
    Step("overfit", "Overfitting with little data",
         "With 2 images per digit, a network trained from scratch learns its training images by heart: train accuracy "
         "climbs to 100% while validation accuracy on new images stays far below. The gap between the two lines is "
         "overfitting, and it is what little data does to a big model.",
         "Solid = the images it trains on, dashed = new images. Ask: what would a model that memorised the training "
         "set score on new images? On the full page, raise *training images per class* and watch the gap close. "
         "The small CNN trains at 32 px so that this step stays fast.",
         page="finetune", module="finetune", kind="finetune",
         make=lambda m: m.FinetuneConfig(backbone="shapes_cnn", weights="scratch", shots=2, epochs=20, image_size=32,
                                         val_per_class=10),
         tiny=dict(epochs=3, seeds=2, val_per_class=4, classes=FIVE), chart=_chart("finetune", "curves"),
         say=_say_overfit),
    Step("toy", "Pretraining as a regulariser",
         "Task B has 2 points; every network fits them. The networks pretrained on a related task A (a line with "
         "another slope) also stay close to B's line between and beyond the points: the pretrained start acts as a "
         "prior over plausible functions.",
         "Open the full page for the picture of every learned function. Then set *unrelated* on the full page: the "
         "prior misleads and the advantage turns into negative transfer.",
         page="toy", module="toy", kind="toy", make=lambda m: m.ToyConfig(relation="shifted", seeds=20),
         tiny=dict(seeds=5, epochs=50, pretrain_epochs=50), chart=_chart("toy", "functions"), say=_say_toy),
    Step("layers", "What layers learn",
         "Early layers of a pretrained network respond to edges and colours, later ones to parts and objects, so the "
         "early layers transfer to almost any image task. Measured here: fine-tune every stage on a few textures and "
         "see how far each stage's weights move.",
         "The full page shows the first layer's filters and the patches each stage responds to most; open it for the "
         "pictures. Ask which stages a microscope image would still need.",
         page="layers", module="layers", kind="layers",
         make=lambda m: m.LayersConfig(shots=5, epochs=4, image_size=48, seeds=3, val_per_class=10),
         tiny=dict(epochs=1, seeds=2, image_size=32, val_per_class=4), chart=_chart("layers", "relative_change"),
         say=_say_layers),
    Step("freeze", "Feature extraction vs fine-tuning: which layers to freeze",
         "Feature extraction freezes every pretrained stage and trains only a new head; fine-tuning lets some or all "
         "stages move too. With very few images, freezing protects the pretrained features; with more, letting "
         "the last stages adapt pays.",
         "Read the lines at the left end (2 images per class) and at the right end. Full fine-tuning usually does "
         "worst here: every stage (BatchNorm statistics too) moves on a handful of images and the pretrained features "
         "are lost; ask the class why. Frozen stages are computed once and cached, which is why feature extraction is "
         "also the fastest.",
         page="finetune", module="finetune", runner="sweep", kind="sweep",
         make=lambda m: m.SweepConfig(weights="pretrained", classes=FIVE, shots=(2, 10), freezes=("all", "7", "none"),
                                      epochs=5, image_size=32, val_per_class=10, seeds=3),
         tiny=dict(epochs=2, shots=(1, 2), val_per_class=4, image_size=32, freezes=("all", "7")),
         prefixes=(("shots", "ft_sweep_"), ("freezes", "ft_sweep_")), chart=_chart("finetune", "shots_sweep"),
         say=_say_freeze),
    _domain_step(
        "strategy", "Which strategy for which data", "textures",
        "The decks' 2×2 chart: little or much data, a target near or far from the pretraining photos. Each quadrant "
        "has a recommended strategy; here each is measured instead of stated.",
        "Go quadrant by quadrant; ask the class to predict the winner before showing it. This step measures the "
        "near column (textures); the next one the far column. The full page runs every quadrant at once."),
    Step("peft", "Fine-tuning at scale: train 1% of the weights",
         "Companies and researchers fine-tune big pretrained models for their own data, and the cost can be huge. "
         "Parameter-efficient fine-tuning trains a few percent of the weights (LoRA adapters beside frozen layers) and "
         "saves kilobytes instead of the whole model. "
         "Does it keep up with full fine-tuning, and what does each forget?",
         "Read the x axis: agreement with the original ImageNet model on photos nobody trained on "
         "(1 = forgot nothing). "
         "Full fine-tuning moves BatchNorm's statistics too, which is most of what it forgets here. The full page adds "
         "BitFit, more ranks, partial fine-tuning and the text encoder.",
         page="peft", module="peft", kind="peft", make=lambda m: m.LECTURE,
         tiny=dict(shots=2, epochs=1, seeds=2, image_size=32, val_per_class=4),
         chart=_chart("peft", "accuracy_vs_forgetting"), say=_say_peft),
    _domain_step(
        "far", "Far source tasks and negative transfer", "digits",
        "If the source task is too different from the target, its features can be bad ones, and a pretrained start "
        "can do worse than random weights: negative transfer. Here the source is Transfer Lab's own small CNN, "
        "pretrained on synthetic shapes; the target is handwritten digits; its features are kept frozen.",
        "ImageNet features still help on every built-in dataset (the strategy page shows it); a source task this far "
        "(clean synthetic shapes) does not. Ask what a shape detector misses about pen strokes. On the full page, "
        "add *partial* to the strategies: letting the last stages learn closes most of the gap.",
        preset="FAR_SOURCE", say=_say_negative),
    Step("weights", "Saving and loading weights: state_dict, encoder only",
         "`model.state_dict()` is a dict name → tensor. Save only the encoder (every stage but the head) and load it "
         "into a model with a new head: strict loading refuses (the head's keys are missing), strict off loads the "
         "encoder and the new head keeps its initial values.",
         "Nothing trains here: the chart counts values. On the full page, upload a file with a `module.` prefix and "
         "use *strip prefix*: the report explains the classic `Missing key(s)` traceback.",
         page="state", compute=weights_demo, fixed=(("sd_part", "encoder"),),
         prefixes=tuple((f, "sd_load_") for f in ("arch", "num_classes", "strict", "strip_prefix", "add_prefix")),
         chart=_chart("state", "loaded_stages")),
    Step("ssl", "Self-supervised pretraining",
         "No labels for pretraining? Hide part of every input and train a network to fill it in. The encoder that "
         "learns this on an unlabelled pool is reused with a new head on a few labelled samples, against scratch.",
         "The pool has thousands of samples but the downstream task only a few labels per class. Point out where the "
         "bands cross: with many labels scratch catches up.",
         page="ssl", module="selfsup", kind="ssl",
         make=lambda m: m.SSLConfig(pretrain_epochs=10, epochs=60, label_counts=(1, 5, 20)),
         tiny=dict(pretrain_epochs=2, epochs=10, seeds=2, label_counts=(1, 5)), chart=_chart("ssl", "label_curve"),
         say=_say_ssl),
    Step("gtl", "Guided Transfer Learning",
         "Scouts, copies of a pretrained network fine-tuned on small sub-problems, measure how far each weight moves. "
         "That *guide* then scales every update on the few-shot target: weights the scouts left alone stay put. From "
         "an unrelated source, the guide keeps weights that point the wrong way.",
         "Does guidance beat simply freezing the body? Four conditions (guided, freeze all but the head, plain "
         "fine-tuning, scratch) from a related source and from an unrelated one (the same cells, features shuffled): "
         "the second is the other face of negative transfer. The full page shows the guide itself as heat maps.",
         page="gtl", module="gtl_sweep", kind="gtl-sweep",
         make=lambda m: m.GTLSweepConfig(pretrain_epochs=5, scouts=8, scout_epochs=3, seeds=3, epochs=30),
         tiny=dict(pretrain_epochs=2, scouts=4, scout_epochs=1, seeds=2, epochs=10, val_per_class=10),
         prefixes=(("shots", "gtl_sweep_"), ("sources", "gtl_sweep_")), chart=_chart("gtl", "sweep"), say=_say_gtl),
    Step("text", "Text: the same ideas for sentences",
         "A pretrained language model turns a sentence into features. Freeze it and train a new head on a few labelled "
         "sentences, fine-tune its last layers, or train the same network from scratch.",
         "The vocabulary is the same as for images: feature extraction, fine-tuning the last k layers, scratch.",
         page="text", module="text", kind="text",
         make=lambda m: dataclasses.replace(m.QUICK, epochs=4),   # feature extraction vs scratch, 2 sentences a topic
         tiny=dict(shots=1, seeds=2, epochs=2, val_per_class=2, max_length=16),
         chart=_chart("text", "curves"), say=_say_text),
)


def step_at(number: int) -> Step:
    """Steps are numbered from 1, as the URL (`?step=4`) and the slides count them."""
    return STEPS[number - 1]


def status(step: Step) -> str:
    """"" when the step can run here, else why not (one line)."""
    try:
        step.config() if step.trains() else step.experiment()
    except Unavailable as err:
        return str(err)
    return ""


# ---- the history: a step's latest run ----------------------------------------------------------------

def _plain(obj):
    return json.loads(json.dumps(obj, default=str))


def recorded(cfg) -> dict:
    """The config as the history records it (the same dict from a page, the CLI and the lecture)."""
    return _plain(contract.record(cfg))


def latest(step: Step, db: store.Store | None, cfg=None) -> store.Run | None:
    """The newest finished run of this step's config in the history (with its whole JSON), or None."""
    if db is None or not step.trains():
        return None
    try:
        want = recorded(cfg if cfg is not None else step.config())
    except Unavailable:
        return None
    for run in db.runs(kind=step.kind):
        if run.status == "finished" and run.config == want:
            return db.get(run.id)
    return None


def result_json(result) -> dict:
    """A fresh result as the history stores it (what the step's chart and verdict read)."""
    return _plain(result.record()["json"])


# ---- links to the full page --------------------------------------------------------------------------

def _text(value) -> str | list[str]:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return contract.ALL if value is None else str(value)


def link(step: Step, cfg=None) -> str:
    """The full page's URL with the step's settings: only those that differ from the config's defaults, as the
    pages' own links do (a page starts from the same defaults)."""
    if not step.page:
        return ""
    params: list[tuple[str, str]] = list(step.fixed)
    try:
        cfg = cfg if cfg is not None else (step.config() if step.trains() else _load_config(step))
    except Unavailable:
        cfg = None
    if cfg is not None:
        mine, default = recorded(cfg), recorded(type(cfg)())
        prefix, other = pages.page(step.page).prefix, dict(step.prefixes)
        for name, value in mine.items():
            if value != default.get(name):   # a page widget's key is its prefix and the setting's name
                key, value = other.get(name, prefix) + name, _text(value)
                params += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return f"/{step.page}" + (f"?{urlencode(params)}" if params else "")


def _load_config(step: Step):
    demo = step.compute(step.experiment()) if step.compute else {}
    cfg = demo.get("loose", {}).get("config")
    return contract.from_record(step.experiment().LoadConfig, cfg) if cfg else None


# ---- preparing the lecture, and the handout ----------------------------------------------------------

@dataclass
class Prepared:
    """What `prepare` did for one step."""
    number: int
    step: Step
    state: str                 # "history" (a run was there), "ran", "stopped", "failed", "unavailable", "instant"
    run_id: int | None = None
    seconds: float | None = None
    message: str = ""

    def to_json(self) -> dict:
        return {"step": self.number, "key": self.step.key, "title": self.step.title, "state": self.state,
                "run_id": self.run_id, "seconds": self.seconds, "message": self.message, "link": link(self.step)}


def prepare(db: store.Store | None, session: str = "lecture", progress=None, should_stop=None, device: str = "auto",
            force: bool = False) -> list[Prepared]:
    """Run, once, every step that has no finished run of its config in the history (all of them with `force`),
    each recorded like any run; steps that share a config share its run. Progress goes over the steps that
    train; a Stop ends the running step's run (kept as stopped) and skips the rest. (Two processes at once were
    slower here than one after another: each starts cold, loading torch, data and weights.)"""
    out = []
    for i, step in enumerate(STEPS, 1):
        why = status(step)
        out.append(Prepared(i, step, "unavailable" if why else "pending" if step.trains() else "instant",
                            message=why or ("" if step.trains() else "nothing to train: shown at once")))
    todo, seen = [], {}
    for entry in (p for p in out if p.state == "pending"):
        cfg = entry.step.config()
        run = latest(entry.step, db, cfg) if not force else None
        if run is not None:
            entry.state, entry.run_id, entry.seconds = "history", run.id, run.seconds
        elif (entry.step.kind, cfg) in seen:   # another step with this config runs it: share its run
            seen[entry.step.kind, cfg].append(entry)
        else:
            seen[entry.step.kind, cfg] = [entry]
            todo.append((entry, cfg))
    for j, (entry, cfg) in enumerate(todo):
        if should_stop is not None and should_stop():
            entry.state, entry.message = "stopped", "not run: the lecture's preparation was stopped"
            continue

        def sub(fraction, message, j=j, entry=entry):
            if progress is not None:
                progress((j + min(fraction, 1.0)) / len(todo), f"step {entry.number} ({entry.step.title}): {message}")

        entry.state, entry.run_id, entry.seconds, entry.message = _run_step(entry.step, cfg, db, session, sub,
                                                                            should_stop, device)
    for entry, cfg in todo:   # steps that shared a run show it
        for other in seen[entry.step.kind, cfg][1:]:
            other.state, other.run_id, other.seconds = ("history" if entry.state == "ran" else entry.state,
                                                        entry.run_id, entry.seconds)
    return out


def _run_step(step: Step, cfg, db, session: str, progress, should_stop, device: str) -> tuple:
    """Train one step's config, recorded in the history: (state, run id, seconds, message)."""
    tracked = (db.track(step.kind, recorded(cfg), session=session, source="lecture") if db is not None
               else nullcontext({}))
    rec: dict = {}
    try:
        with tracked as rec:
            result = rec["result"] = step.run(cfg, progress=progress, should_stop=should_stop, device=device)
    except Exception as err:  # one step that fails (kept as failed in the history) leaves the rest
        return "failed", rec.get("id"), None, (str(err).splitlines() or [type(err).__name__])[0]
    return ("ran" if result.status == "finished" else result.status), rec.get("id"), result.seconds, result.message


def shown(step: Step, db: store.Store | None) -> tuple[dict | None, store.Run | None]:
    """What a step shows without training: its JSON (computed at once, or the latest run's) and that run."""
    if status(step):
        return None, None
    if not step.trains():
        return step.compute(step.experiment()), None
    run = latest(step, db)
    return (run.result, run) if run is not None else (None, None)


def handout(db: store.Store | None, projector: bool = False) -> str:
    """Every step's title, text, verdict and chart (plotly, embedded: the file works offline) as one HTML page."""
    parts, first = [], True
    for i, step in enumerate(STEPS, 1):
        parts.append(f"<section><h2>{i}. {html.escape(step.title)}</h2>\n<p>{_inline(step.text)}</p>")
        out, run = shown(step, db)
        why = status(step)
        if why:
            parts.append(f"<p class='note'>{html.escape(why)}</p>")
        elif out is None:
            parts.append("<p class='note'>Not prepared: no run of this step's settings in the history yet "
                         "(press <b>Prepare the lecture</b>, or run <code>python -m tl_core lecture</code>).</p>")
        else:
            v = step.verdict(out)
            if v.text:
                parts.append(f"<p class='verdict {html.escape(v.kind)}'>{html.escape(v.text)}</p>")
            fig = step.chart(out)
            fig = _figures("base").projector(fig) if projector else fig
            parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                                     config={"displaylogo": False}))
            first = False
            if run is not None:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
                parts.append(f"<p class='source'>Run #{run.id} of the history, {when}, {run.seconds or 0:.1f} s on "
                             f"{html.escape(run.device)}.</p>")
        parts.append("</section>")
    return _PAGE.format(body="\n".join(parts), made=time.strftime("%Y-%m-%d %H:%M"))


def _inline(text: str) -> str:
    """The steps' light markdown (*em*, **strong**, `code`) as HTML."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"\*(.+?)\*", r"<i>\1</i>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Transfer Lab: the lecture's handout</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
h1 {{ font-size: 2em; }} h2 {{ margin-top: 2em; border-bottom: 2px solid #ddd; }}
.verdict {{ padding: .6em .9em; border-radius: .4em; background: #eef3fb; }}
.verdict.helped {{ background: #e6f4ea; }} .verdict.hurt {{ background: #fdecea; }}
.note, .source {{ color: #555; font-style: italic; }}
</style></head><body>
<h1>Transfer learning, step by step</h1>
<p>Transfer Lab's lecture: every chart is a real run, over several seeds (line: mean, band: 10th-90th percentile).
Made {made}.</p>
{body}
</body></html>
"""


# ---- the command line: python -m tl_core lecture -----------------------------------------------------

def _main(args) -> int:
    folder = os.path.dirname(os.path.abspath(args.handout)) if args.handout else ""
    if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):   # say so before minutes of training
        raise ValueError(f"can't write the handout to {args.handout}: {folder} is not a writable folder")
    db = store.Store(args.data_dir)
    show = not args.json or getattr(args, "progress", False)
    progress = (lambda f, m: sys.stderr.write(f"\r{f:4.0%} {m[:70]:<70}")) if show else None
    done = prepare(db, session="cli", progress=progress, device=args.device)
    if progress is not None:
        sys.stderr.write("\n")
    out = {"steps": [p.to_json() for p in done], "database": str(db.path)}
    if args.handout:
        with open(args.handout, "w", encoding="utf-8") as f:
            f.write(handout(db))
        out["handout"] = args.handout
    if args.json:
        print(json.dumps(out))
    else:
        for p in done:
            print(f"{p.number:>2}. {p.step.title:<60} {p.state:<11} {p.message[:60]}")
        if args.handout:
            print(f"handout: {args.handout}")
    return 1 if any(p.state in ("failed", "stopped", "diverged") for p in done) else 0


EXPERIMENTS = (
    contract.Experiment(
        "lecture", "the lecture's steps: run every step that has no run in the history yet, and write the handout",
        main=_main, recorded=False, options=(
            contract.Option("--handout", "write the handout here: one self-contained HTML file"),
            contract.Option("--data-dir", "where the run history lives"))),
)
