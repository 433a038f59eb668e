"""The lecture's steps: transfer learning in the order a lecture tells it, one live experiment per step.

A `Step` is a title, two or three sentences, teacher notes, and a small config of an existing experiment (about 15 s
or less on 2 CPU cores), asked for as any run is and recorded in the history. What a step shows is read from the
run's recorded JSON: its full page's own figure (`chart`), and what it says (its experiment's narration, or the claim
the step speaks from). A directional step's lesson rests on claims (`lesson`, `Check`), which `make lecture-check`
verifies on seeds no step was chosen on. `link` opens the step's settings in the full page.

`TL_LECTURE_TINY=1` shrinks every config further (2 seeds, a few epochs): for tests and very slow machines.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

from tl_core import claims, contract, narration, pages, run_request
from tl_core.contract import Verdict
from tl_core.i18n import N_, tr

TINY_ENV = "TL_LECTURE_TINY"


# ---- what a step draws: the full page's own figure of the run's JSON ------------------------------------

def figures_module(name: str):
    return importlib.import_module(f"tl_core.plots.{name}")


def _chart(module: str, function: str, **kwargs) -> Callable[[dict], Any]:
    """A step's chart: the figure its full page draws, from the same JSON (imported when first drawn)."""
    return lambda out: getattr(figures_module(module), function)(out, **kwargs)


def projector_figure(fig, fit: bool = True):
    """A step's chart for the projector: the full page's figure in large type, laid out again for the chart's
    column beside the step's words (`plots.base.projector`: title, note, legend and subplot titles stacked above
    the plot, each wrapped to the width it has, the top margin made to hold them), exactly PROJECTOR_HEIGHT tall."""
    return figures_module("base").projector(fig, fit=fit)


def base_size(fig) -> float:
    return fig.layout.font.size or 22


# ---- what a step says: its run's claim, in the audience's words ------------------------------------------

# ---- what a directional step must show: its lesson, claim by claim ---------------------------------------

@dataclass(frozen=True)
class Check:
    """One claim a step's lesson rests on: what it compares, the kinds the lesson needs (by the claims rule), and
    the claim its run made (None: the run made none)."""
    what: str
    want: tuple[str, ...]
    claim: dict | None

    @property
    def holds(self) -> bool:
        return self.claim is not None and self.claim["kind"] in self.want

    def line(self) -> str:
        """'pretrained vs scratch: helped (+57 points, 95% interval +45 to +70), as the lesson says'"""
        c = self.claim
        if c is None:
            return f"{self.what}: no claim (the run ended early?), the lesson needs {' or '.join(self.want)}"
        scale = claims.METRICS.get(c.get("metric", "accuracy"), ("", False))[1]
        if scale:
            size = (f"×{10 ** c['gap']:.2f}; 95% interval ×{10 ** c['low']:.2f} to ×{10 ** c['high']:.2f}"
                    if c.get("low") is not None else f"×{10 ** (c['gap'] or 0):.2f}")
        elif c.get("metric") == "agreement":
            size = (f"{c['gap']:+.2f}; 95% interval {c['low']:+.2f} to {c['high']:+.2f}" if c.get("low") is not None
                    else f"{c['gap']:+.2f}")
        else:
            size = (f"{c['gap'] * 100:+.1f} points; 95% interval {c['low'] * 100:+.1f} to {c['high'] * 100:+.1f}"
                    if c.get("low") is not None else f"{(c['gap'] or 0) * 100:+.1f} points")
        verdict = "as the lesson says" if self.holds else f"NOT as the lesson says ({' or '.join(self.want)})"
        return f"{self.what}: {c['kind']} ({size}; {c['seeds']} seeds), {verdict}"


def _lesson_idea(out: dict) -> list[Check]:
    return [Check("pretrained vs scratch", ("helped",), out.get("claim"))]


def _lesson_overfit(out: dict) -> list[Check]:
    return [Check("train vs validation accuracy", ("helped",), narration.overfit_claim(out))]


def _lesson_toy(out: dict) -> list[Check]:
    return [Check("pretrained vs scratch (test MSE)", ("helped",), out.get("claim"))]


def _lesson_layers(out: dict) -> list[Check]:
    return [Check("late vs early stages (relative change)", ("helped",), out.get("claim"))]


def _lesson_freeze(out: dict) -> list[Check]:
    found = narration.freeze_claims(out)
    fewest = min((c["shots"] for c in found), default=None)
    return [Check(f"feature extraction vs the other depths at {c['shots']} shots",
                  ("helped",) if c["shots"] == fewest else ("hurt",), c) for c in found]


def _lesson_peft(out: dict) -> list[Check]:
    return [Check("LoRA vs full fine-tuning: forgetting (agreement with the original)", ("helped",),
                  out.get("forgetting_claim")),
            Check("LoRA vs full fine-tuning: accuracy (keeps up)", ("helped", "tie"), out.get("claim"))]


def _lesson_far(out: dict) -> list[Check]:
    return [Check(f"frozen far-source features vs scratch at {c['shots']} shots", ("hurt",), c)
            for c in out.get("gain_claims", [])]


def _lesson_ssl(out: dict) -> list[Check]:
    return [Check("SSL encoder vs scratch", ("helped",), out.get("claim"))]


def _lesson_text(out: dict) -> list[Check]:
    return [Check("pretrained encoder vs scratch", ("helped",), out.get("claim"))]


def _lesson_audio(out: dict) -> list[Check]:
    return [Check("pretrained speech encoder vs scratch", ("helped",), out.get("pretraining_claim"))]


# ---- the steps ---------------------------------------------------------------------------------------

def _lm_config(m):
    """The language-model step: frozen features + a head against prompting, 2 sentences a topic, 3 seeds; only
    where the model's package is installed."""
    from tl_core import causal_lm

    missing = causal_lm.available()
    if missing:
        raise Unavailable(tr("The language model is not installed here: {missing}.", missing=missing))
    return m.LMConfig(methods=("feature", "prompt"), shots=2, seeds=3, epochs=6, val_per_class=5)


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
    kind: str = ""                 # the run's kind in the history
    tiny: dict = field(default_factory=dict)   # overrides under TL_LECTURE_TINY=1
    prefixes: tuple = ()           # (config field, widget-key prefix) where it is not the page's own prefix
    fixed: tuple = ()              # (widget key, value) the link always carries
    chart: Callable[[dict], Any] | None = None      # the run's JSON -> its full page's figure
    say: Callable[[dict], Verdict] | None = None   # what the step says of the run's JSON, when it speaks from another
                                                   # claim than its experiment's narration (default)
    compute: Callable[[Any], dict] | None = None   # nothing to train: the step's JSON, computed at once
    lesson: Callable[[dict], list[Check]] | None = None   # a directional step: the claims its lesson rests on
    seconds: float = 5.0           # what preparing it takes on an idle 2-core machine, one thread (measured)

    def experiment(self):
        """The experiment's module; Unavailable when that part of Transfer Lab isn't installed."""
        try:
            return importlib.import_module(f"tl_core.experiments.{self.module}" if self.module else "tl_core.state")
        except ImportError as err:
            raise Unavailable(tr("This part of Transfer Lab is not available yet ({error}).", error=err)) from None

    def config(self):
        """The step's config (shrunk under TL_LECTURE_TINY=1). A config that no longer builds (a renamed field, a
        value out of range) raises: that is a bug of the lecture, and the tests fail on it."""
        module = self.experiment()
        if self.make is None:
            raise Unavailable(tr("This part of Transfer Lab is not available in the lecture yet."))
        cfg = self.make(module)
        cfg = dataclasses.replace(cfg, **self.tiny) if self.tiny and os.environ.get(TINY_ENV) == "1" else cfg
        contract.validate(cfg)
        return cfg

    def run(self, cfg, progress=None, should_stop=None, device: str = "auto"):
        """The step's run, not recorded (a check): its request rebuilt and trained here (`request_for`)."""
        return run_request.execute(request_for(self, cfg, device), {}, progress, should_stop)

    def trains(self) -> bool:
        return self.compute is None

    def checks(self, out: dict) -> list[Check]:
        """The claims this step's lesson rests on, each with the kind the lesson needs ([] for a step whose lesson is
        'it depends')."""
        return self.lesson(out) if self.lesson is not None else []

    def shows_lesson(self, out: dict) -> bool:
        return all(c.holds for c in self.checks(out))

    def verdict(self, out: dict) -> Verdict:
        """What the step says of its run, in the audience's words, from the run's claims."""
        if out.get("status", "finished") != "finished":
            return Verdict(out["status"], out.get("message") or tr("The run ended early."))
        say = self.say or (self.declared().narrate if self.trains() else None)   # the experiment's own narration
        return say(out) if say else Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))

    def declared(self):
        """The experiment the step runs, as its module declares it (`contract.Experiment`)."""
        from tl_core import experiments

        return experiments.command(self.kind)


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
                 say: Callable[[dict], Verdict] | None = None, seconds: float = 5.0,
                 lesson: Callable[[dict], list[Check]] | None = None, **settings) -> Step:
    """A step on one dataset of the strategy grid (every strategy, few and more images per class), or on one of
    the strategy page's presets (the module's constant named `preset`); `settings` override both."""
    base = {"datasets": (dataset,), "shots": (2, 10), "seeds": 3, "epochs": 4, "image_size": 32, "val_per_class": 10}
    return Step(key, title, text, notes, page="domains", module="domains", kind="domains",
                make=lambda m: m.DomainsConfig(**{**base, **(getattr(m, preset) if preset else {}), **settings}),
                tiny=dict(shots=(2,), epochs=2, image_size=32, val_per_class=4, seeds=2,
                          strategies=("feature_extraction", "scratch")),
                chart=_chart("domains", "domain_bars"), say=say, seconds=seconds, lesson=lesson)


STEPS: tuple[Step, ...] = (
    Step("idea", N_("What transfer learning is: D_ext → D"),
         N_("A network first learns on a large dataset *D_ext* (here ImageNet's 1.2 million photos), then trains for "
            "a few epochs on your small dataset *D* (here 3 photos each of brick, grass and gravel). The same network "
            "from random weights sees the same 9 photos. Which one tells the textures apart on new photos?"),
         N_("Point at the two bands: the gap is the whole argument of the course. From random weights the network "
            "stays at chance (one in three): 9 photos are far too few to learn edges, colours and grain from nothing, "
            "and the pretrained network already has them. Scratch trains every stage, which is why it is the slow "
            "part of the run. The full page's default (handwritten digits, 64 px) shows the same on a target far from "
            "ImageNet."),
         page="finetune", module="finetune", kind="finetune",
         # chosen on validation seeds (100-103, 150-153): pretrained 87-89% vs scratch 33%, intervals +38 to +69
         make=lambda m: m.FinetuneConfig(weights="both", dataset="textures", shots=3, epochs=4, image_size=48,
                                         val_per_class=10, seeds=4),
         tiny=dict(epochs=2, seeds=2, shots=2, val_per_class=4, image_size=32), chart=_chart("finetune", "curves"),
         lesson=_lesson_idea, seconds=4.0),
    Step("overfit", N_("Overfitting with little data"),
         N_("With 2 images per digit, a network trained from scratch learns its training images by heart: train "
            "accuracy climbs to 100% while validation accuracy on new images stays far below. The gap between the two "
            "lines is overfitting, and it is what little data does to a big model."),
         N_("Solid = the images it trains on, dashed = new images. Ask: what would a model that memorised the "
            "training set score on new images? On the full page, raise *training images per class* and watch the gap "
            "close. The small CNN trains at 32 px so that this step stays fast."),
         page="finetune", module="finetune", kind="finetune",
         # 4 runs: with 3, an interval reached past 100 points (seeds 200-202: +24 to +104)
         make=lambda m: m.FinetuneConfig(backbone="shapes_cnn", weights="scratch", shots=2, epochs=20, image_size=32,
                                         val_per_class=10, seeds=4),
         lesson=_lesson_overfit, seconds=6.0,
         tiny=dict(epochs=3, seeds=2, val_per_class=4, classes=FIVE), chart=_chart("finetune", "curves"),
         say=narration.say_overfit),
    Step("toy", N_("Pretraining as a regulariser"),
         N_("Task B has 2 points; every network fits them. The networks pretrained on a related task A (a line with "
            "another slope) also stay close to B's line between and beyond the points: the pretrained start acts as a "
            "prior over plausible functions."),
         N_("Open the full page for the picture of every learned function. Then set *unrelated* on the full page: the "
            "prior misleads and the advantage turns into negative transfer."),
         page="toy", module="toy", kind="toy", make=lambda m: m.ToyConfig(relation="shifted", seeds=20),
         tiny=dict(seeds=5, epochs=50, pretrain_epochs=50), chart=_chart("toy", "functions"),
         lesson=_lesson_toy, seconds=1.0),
    Step("layers", N_("What layers learn"),
         N_("Early layers of a pretrained network respond to edges and colours, later ones to parts and objects, so "
            "the early layers transfer to almost any image task. Measured here: fine-tune every stage on a few "
            "textures and see how far each stage's weights move."),
         N_("The full page shows the first layer's filters and the patches each stage responds to most; open it for "
            "the pictures. Ask which stages a microscope image would still need."),
         page="layers", module="layers", kind="layers",
         make=lambda m: m.LayersConfig(shots=5, epochs=4, image_size=48, seeds=3, val_per_class=10),
         tiny=dict(epochs=1, seeds=2, image_size=32, val_per_class=4), chart=_chart("layers", "relative_change"),
         lesson=_lesson_layers, seconds=3.5),
    Step("freeze", N_("Feature extraction vs fine-tuning: which layers to freeze"),
         N_("Feature extraction freezes every pretrained stage and trains only a new head; fine-tuning lets the last "
            "stages move too. With very few images, freezing protects the pretrained features; with more, letting the "
            "last stages adapt pays."),
         N_("Read the two lines at the left end (2 images per digit) and at the right end (20). Ask the class why the "
            "order flips: with 10 images, the last stages' million weights fit those images and lose what ImageNet "
            "taught them; with 100, they adapt to pen strokes. Frozen stages are computed once and cached, which is "
            "why ten seeds take seconds. The full page adds full fine-tuning (every stage moves, BatchNorm statistics "
            "too)."),
         page="finetune", module="finetune", kind="sweep",
         # chosen on validation seeds (100-109, 150-159): feature extraction ahead at 2 shots by 14-18 points
         # (intervals from +5 and +11), partial ahead at 20 by 5-7 (from +3.5 and +4.6); 32 px, 5 epochs, 3 seeds tied
         make=lambda m: m.SweepConfig(weights="pretrained", classes=FIVE, shots=(2, 20), freezes=("all", "7"),
                                      epochs=8, lr=1e-3, image_size=48, val_per_class=30, seeds=10),
         tiny=dict(epochs=2, shots=(1, 2), val_per_class=4, image_size=32, seeds=2),
         prefixes=(("shots", "ft_sweep_"), ("freezes", "ft_sweep_")), chart=_chart("finetune", "shots_sweep"),
         lesson=_lesson_freeze, seconds=23.5),
    _domain_step(
        "strategy", N_("Which strategy for which data"), "textures",
        N_("The decks' 2×2 chart: little or much data, a target near or far from the pretraining photos. Each "
           "quadrant has a recommended strategy; here each is measured instead of stated."),
        N_("Go quadrant by quadrant; ask the class to predict the winner before showing it. This step measures the "
           "near column (textures); the full page runs every quadrant at once. Where the strategies tie, that is the "
           "answer: at that size the choice matters less than which images were drawn. Scratch is left out here: on "
           "textures it stays at chance (step 1)."), seconds=11.0, image_size=48,
        strategies=("feature_extraction", "partial", "full")),
    Step("peft", N_("Fine-tuning at scale: train 1% of the weights"),
         N_("Companies and researchers fine-tune big pretrained models for their own data, and the cost can be huge. "
            "Parameter-efficient fine-tuning trains a few percent of the weights (LoRA adapters beside frozen layers) "
            "and saves kilobytes instead of the whole model. Does it keep up with full fine-tuning, and what does "
            "each forget?"),
         N_("Read the x axis: agreement with the original ImageNet model on photos nobody trained on (1 = forgot "
            "nothing). Full fine-tuning moves BatchNorm's statistics too, which is most of what it forgets here. The "
            "full page adds BitFit, more ranks, partial fine-tuning and the text encoder."),
         page="peft", module="peft", kind="peft",
         # 4 seeds, 4 epochs (chosen on seeds 100-103 and 150-153): LoRA forgets far less (agreement 0.91-0.95 vs
         # 0.02-0.03, intervals +75 to +103 points) and keeps up (ties full fine-tuning); 2 seeds gave intervals of
         # -61 to +108 points
         make=lambda m: dataclasses.replace(m.LECTURE, seeds=4, epochs=4),
         tiny=dict(shots=2, epochs=1, seeds=2, image_size=32, val_per_class=4),
         chart=_chart("peft", "accuracy_vs_forgetting"), lesson=_lesson_peft, seconds=9.5),
    _domain_step(
        "far", N_("Far source tasks and negative transfer"), "digits",
        N_("If the source task is too different from the target, its features can be bad ones, and a pretrained start "
           "can do worse than random weights: negative transfer. Here the source is Transfer Lab's own small CNN, "
           "pretrained on synthetic shapes; the target is handwritten digits; its features are kept frozen."),
        N_("ImageNet features still help on every built-in dataset (the strategy page shows it); a source task this "
           "far (clean synthetic shapes) does not. Ask what a shape detector misses about pen strokes. On the full "
           "page, add *partial* to the strategies: letting the last stages learn closes most of the gap."),
        # 4 seeds, 5 validation images per digit (seeds 100-103, 150-153: scratch ahead by 43-55 points, intervals
        # up to -25 at worst); 3 seeds gave intervals 70 points wide
        preset="FAR_SOURCE", say=narration.say_negative, lesson=_lesson_far, seconds=11.5, seeds=4, val_per_class=5),
    Step("weights", N_("Saving and loading weights: state_dict, encoder only"),
         N_("`model.state_dict()` is a dict name → tensor. Save only the encoder (every stage but the head) and load "
            "it into a model with a new head: strict loading refuses (the head's keys are missing), strict off loads "
            "the encoder and the new head keeps its initial values."),
         N_("Nothing trains here: the chart counts values. On the full page, upload a file with a `module.` prefix "
            "and use *strip prefix*: the report explains the classic `Missing key(s)` traceback."),
         page="state", compute=weights_demo, fixed=(("sd_part", "encoder"),),
         prefixes=tuple((f, "sd_load_") for f in ("arch", "num_classes", "strict", "strip_prefix", "add_prefix")),
         chart=_chart("state", "loaded_stages"), say=narration.say_weights),
    Step("ssl", N_("Self-supervised pretraining"),
         N_("No labels for pretraining? Hide part of every input and train a network to fill it in. The encoder that "
            "learns this on an unlabelled pool is reused with a new head on a few labelled samples, against scratch."),
         N_("The pool has thousands of samples but the downstream task only a few labels per class. Point out where "
            "the bands cross: with many labels scratch catches up."),
         page="ssl", module="selfsup", kind="ssl",
         make=lambda m: m.SSLConfig(pretrain_epochs=10, epochs=60, label_counts=(1, 5, 20)),
         tiny=dict(pretrain_epochs=2, epochs=10, seeds=2, label_counts=(1, 5)), chart=_chart("selfsup", "label_curve"),
         lesson=_lesson_ssl, seconds=4.5),
    Step("gtl", N_("Guided Transfer Learning"),
         N_("Scouts, copies of a pretrained network fine-tuned on small sub-problems, measure how far each weight "
            "moves. That *guide* then scales every update on the few-shot target: weights the scouts left alone stay "
            "put. From an unrelated source, the guide keeps weights that point the wrong way."),
         N_("Does guidance beat simply freezing the body? Four conditions (guided, freeze all but the head, plain "
            "fine-tuning, scratch) from a related source and from an unrelated one (the same cells, features "
            "shuffled): the second is the other face of negative transfer. The full page shows the guide itself as "
            "heat maps."),
         page="gtl", module="gtl_sweep", kind="gtl-sweep",
         make=lambda m: m.GTLSweepConfig(pretrain_epochs=5, scouts=8, scout_epochs=3, seeds=3, epochs=30),
         tiny=dict(pretrain_epochs=2, scouts=4, scout_epochs=1, seeds=2, epochs=10, val_per_class=10),
         prefixes=(("shots", "gtl_sweep_"), ("sources", "gtl_sweep_")), chart=_chart("gtl", "sweep"),
         seconds=4.0),
    Step("text", N_("Text: the same ideas for sentences"),
         N_("A pretrained language model turns a sentence into features. Freeze it and train a new head on a few "
            "labelled sentences, fine-tune its last layers, or train the same network from scratch."),
         N_("The vocabulary is the same as for images: feature extraction, fine-tuning the last k layers, scratch."),
         page="text", module="text", kind="text",
         # feature extraction vs scratch, 2 sentences a topic, 4 seeds (3 gave an interval 50 points wide), 5 new
         # sentences a topic (seeds 100-103, 150-153: +44 to +48 points, intervals from +32)
         make=lambda m: dataclasses.replace(m.QUICK, epochs=4, seeds=4, val_per_class=5),
         tiny=dict(shots=1, seeds=2, epochs=2, val_per_class=2, max_length=16),
         chart=_chart("text", "curves"), lesson=_lesson_text, seconds=12.5),
    Step("lm", N_("LLMs: pretrained to predict the next word"),
         N_("Today's language models are the prime example of transfer: pretrained on huge amounts of unlabelled text "
            "to predict the next word, then adjusted for a task. SmolLM2-135M has learnt facts that way; here it "
            "learns topics from two sentences each, with a head on its frozen features, or with the examples written "
            "into its prompt and no training at all."),
         N_("Point at the next-word bars first: nobody labelled anything, yet it knows the capital of France. Then "
            "ask the room whether training or prompting will win; where prompting ties or beats the trained head, "
            "that is today's lesson too. The full page adds LoRA, the last layers, random weights and a small GPT "
            "pretraining live."),
         page="lm", module="lm", kind="lm", make=_lm_config,
         tiny=dict(shots=1, seeds=2, epochs=2, val_per_class=2), chart=_chart("lm", "lecture"), seconds=14.0),
    Step("listen", N_("Machine listening: a speech encoder on a few clips"),
         N_("A network pretrained on real speech (LibriSpeech, VoxCeleb) hears ten Spanish digits, 5 clips each, said "
            "by voices it will never be tested on. Frozen with a new head, it tells the digits apart; the same "
            "network from random weights, trained as long, does not."),
         N_("Vision, text, now sound: the same recipe. The encoder was trained to tell *speakers* apart, yet its "
            "features carry the words too. Play a clip and its spectrogram on the full page; fine-tuning its last "
            "layer does better still, and the page's speakers task and language shift are good questions for the "
            "room."),
         page="listen", module="audio", kind="audio",
         # frozen vs scratch, 3 seeds of 5 clips a digit, 10 epochs: +48 points (interval +31 to +65) on seeds 0-2,
         # +33 (+23 to +42) on seeds 200-202; scratch's LSTM is what the step's time goes to
         make=lambda m: m.AudioConfig(conditions=("frozen", "scratch"), seeds=3, epochs=10),
         tiny=dict(seeds=2, epochs=2, shots=2), chart=_chart("audio", "accuracy_bars"), lesson=_lesson_audio,
         seconds=15.0),
)


def step_at(number: int) -> Step:
    """Steps are numbered from 1, as the URL (`?step=4`) and the slides count them."""
    return STEPS[number - 1]


def status(step: Step) -> str:
    """"" when the step can run here, else why not (one line, in this context's language)."""
    try:
        step.config() if step.trains() else step.experiment()
    except Unavailable as err:
        return str(err)
    return ""



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


# ---- a step's run, as data ---------------------------------------------------------------------------

def recorded(cfg) -> dict:
    """The config as the history records it (the same dict from a page, the CLI and the lecture)."""
    return run_request.plain(contract.record(cfg))


def request_for(step: Step, cfg, device: str = "auto") -> run_request.RunRequest:
    """A step's run as a request: its experiment, its config as recorded, on one CPU thread (a step's models are
    small, and on a busy 2-core machine one thread each, in up to two processes, prepared the lecture about 5x
    faster than two threads; the same numbers whether prepared in advance, in another process or re-run live).
    Built by `RunRequest.of`, as a page's and the CLI's are: the same record and the same settings the history
    does not record (`how`), so `python -m tl_core <kind>` with the step's settings is the same run, same numbers."""
    return run_request.RunRequest.of(step.kind, cfg, device=device, one_thread=True)
