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
from contextlib import contextmanager, nullcontext
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


def projector_figure(fig, fit: bool = True):
    """A step's chart for the projector: the full page's figure in large type (`plots.base.projector`), its title
    kept above the plot whatever its length: the first line as the title, the rest (how it is measured) as a
    smaller note of its own, each wrapped to the width the chart has beside the step's words at 1400 px, and the
    top margin made to hold them, so no line of it runs over the plot or the axis labels."""
    import re

    base = _figures("base")
    fig = base.projector(fig, fit=fit)
    text = fig.layout.title.text or ""
    head, _, rest = text.partition("<br>")
    head = re.sub(r"<(?!/?b>)[^>]*>", "", head).strip()
    size = fig.layout.title.font.size or 30
    small = max(14, round(size * 0.55))
    heads = base._wrap(head, 42).split("<br>")
    notes = re.sub(r"<[^>]*>", " ", rest.replace("<br>", " "))
    notes = base._wrap(" ".join(notes.split()), 70).split("<br>") if notes.strip() else []
    head_h, note_h = len(heads) * size * 1.3, len(notes) * small * 1.35
    # subplot titles sit just above the plots: the note goes above them
    above = [a for a in fig.layout.annotations if a.yref in ("paper", None) and (a.y or 0) >= 0.98]
    lift = 10 + (max(a.font.size or base_size(fig) for a in above) * 1.5 if above else 0)
    # plotly lays a title of several lines out from its first line: a top-anchored one needs the others' height
    fig.update_layout(title=dict(text="<br>".join(heads), x=0, xref="paper", xanchor="left", y=1, yref="container",
                                 yanchor="top", pad=dict(t=round(10 + (len(heads) - 1) * size * 1.3))),
                      margin=dict(t=round(10 + head_h + note_h + lift + 12)))
    if notes:
        fig.add_annotation(text="<br>".join(notes), xref="paper", yref="paper", x=0, y=1, xanchor="left",
                           yanchor="bottom", yshift=lift, showarrow=False, align="left",
                           font=dict(size=small, color="#444"))
    return fig


def base_size(fig) -> float:
    return fig.layout.font.size or 22


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


def _overfit_claim(out: dict) -> dict | None:
    """Train against validation accuracy at the last epoch, paired run by run (the claims rule)."""
    runs = [h for s in out.get("conditions", {}).values() for h in s.get("histories", []) if h["val_acc"]]
    if not runs:
        return None
    values = {"train": {i: h["train_acc"][-1] for i, h in enumerate(runs)},
              "validation": {i: h["val_acc"][-1] for i, h in enumerate(runs)}}
    return claims.compare("train", values, ["validation"]).to_json()


def _say_overfit(out: dict) -> Verdict:
    """Train against validation accuracy at the last epoch, paired run by run (the claims rule)."""
    c = _overfit_claim(out)
    if c is None:
        return Verdict("single", "")
    runs = [h for s in out.get("conditions", {}).values() for h in s.get("histories", []) if h["val_acc"]]
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


def _depth_name(depth: int, stages: int) -> str:
    return ("feature extraction" if depth == stages - 1 else "full fine-tuning" if depth == 0
            else f"partial fine-tuning (the last {stages - depth} stages)")


def _freeze_claims(out: dict) -> list[dict]:
    """Per shots value of the sweep: feature extraction (every pretrained stage frozen) against the strongest other
    freeze depth, paired over seeds by the claims rule: helped = freezing protects, hurt = adapting pays."""
    stages, found = len(out.get("stages", [])), []
    frozen = str(stages - 1)
    for sh in out.get("shots", []):
        values: dict[str, dict] = {}
        for r in out.get("records", []):
            if r["shots"] == sh and r["weights"] == "pretrained" and r.get("status", "finished") == "finished":
                values.setdefault(r["freeze"], {})[r["seed"]] = r["val_acc"]
        if frozen in values and len(values) > 1:
            found.append({**claims.compare(frozen, values, [d for d in values if d != frozen]).to_json(), "shots": sh})
    return found


def _say_freeze(out: dict) -> Verdict:
    stages, parts, kinds = len(out.get("stages", [])), [], set()
    for c in _freeze_claims(out):
        other = _depth_name(int(c["against"]), stages)
        span = f"{c['gap'] * 100:+.0f} points; 95% interval {c['low'] * 100:+.0f} to {c['high'] * 100:+.0f}"
        result = (f"feature extraction {c['subject_mean']:.0%} beats {other} {c['against_mean']:.0%} ({span}): "
                  f"freezing protects the pretrained features" if c["kind"] == "helped" else
                  f"{other} {c['against_mean']:.0%} beats feature extraction {c['subject_mean']:.0%} ({span}): "
                  f"letting the last stages adapt pays" if c["kind"] == "hurt" else
                  f"feature extraction {c['subject_mean']:.0%} and {other} {c['against_mean']:.0%} tie ({span})")
        parts.append(f"with {c['shots']} images per class, {result}")
        kinds.add(c["kind"])
    return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", _cap("; ".join(parts)) + "." if parts else "")


def _say_domains(out: dict) -> Verdict:
    """Each quadrant's result next to the decks' rule, counting clear results only: where the strategies tie, the
    step says what that means instead of calling it agreement (short enough to sit beside the chart)."""
    quads, parts = out.get("quadrants", []), []

    def name(strategy: str) -> str:
        return strategy.replace("_", " ")

    for q in quads:
        head = f"{q['size']} images ({'/'.join(map(str, q['shots']))} per class): "
        c = q.get("claim") or {}
        if q["kind"] == "helped":
            found = (f"{name(q['winner'])} wins, {q['means'][q['winner']]:.0%} vs {name(q['runner_up'])} "
                     f"{q['means'][q['runner_up']]:.0%} (95% interval {c['low'] * 100:+.0f} to {c['high'] * 100:+.0f} "
                     f"points)")
        else:
            rest = [st for st in q["means"] if st not in q["tied"]]
            found = ("a tie, " + ", ".join(f"{name(st)} {q['means'][st]:.0%}" for st in q["tied"])
                     + (f" ({', '.join(name(st) for st in rest)} behind)" if rest else ""))
        rule = " or ".join(name(st) for st in q["rule_strategies"])
        said = {True: "as measured", False: "not what this run shows"}.get(q["agrees"], "the data can't tell")
        parts.append(f"{_cap(head)}{found}; the decks say {rule}: {said}.")
    text = " ".join(parts)
    if any(q["agrees"] is None for q in quads):
        text += (" A tie is an answer too: at this size the strategy moves accuracy less than the luck of which "
                 "images were drawn, so any of the tied ones will do.")
    clear = [q["agrees"] for q in quads if q["agrees"] is not None]
    kind = "helped" if quads and len(clear) == len(quads) and all(clear) else "tie" if not clear else "mixed"
    return Verdict(kind, text)


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
    f = out.get("forgetting_claim")
    if f is not None and f.get("subject_mean") is not None:
        said = {"helped": f"{a} forgets far less", "hurt": f"{a} forgets more"}.get(
            f["kind"], "the seeds cannot tell which forgets less")
        span = (f" (95% interval of the gap {f['low']:+.2f} to {f['high']:+.2f})" if f.get("low") is not None else "")
        text += (f". {_cap(said)}: {key} with the original model {f['subject_mean']:.2f} vs {f['against_mean']:.2f}"
                 f"{span}, 1 = forgot nothing")
    else:
        forgot = [(m.get("forgetting") or {}).get(key) for m in (mine, full)]
        forgot = [v.get("mean") if isinstance(v, dict) else v for v in forgot]
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
    return [Check("train vs validation accuracy", ("helped",), _overfit_claim(out))]


def _lesson_toy(out: dict) -> list[Check]:
    return [Check("pretrained vs scratch (test MSE)", ("helped",), out.get("claim"))]


def _lesson_layers(out: dict) -> list[Check]:
    return [Check("late vs early stages (relative change)", ("helped",), out.get("claim"))]


def _lesson_freeze(out: dict) -> list[Check]:
    found = _freeze_claims(out)
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
    lesson: Callable[[dict], list[Check]] | None = None   # a directional step: the claims its lesson rests on
    seconds: float = 5.0           # what preparing it takes on an idle 2-core machine, one thread (measured)

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

    def checks(self, out: dict) -> list[Check]:
        """The claims this step's lesson rests on, each with the kind the lesson needs ([] for a step whose lesson is
        'it depends')."""
        return self.lesson(out) if self.lesson is not None else []

    def shows_lesson(self, out: dict) -> bool:
        return all(c.holds for c in self.checks(out))

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
                 say: Callable[[dict], Verdict] = _say_domains, seconds: float = 5.0,
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
    Step("idea", "What transfer learning is: D_ext → D",
         "A network first learns on a large dataset *D_ext* (here ImageNet's 1.2 million photos), then trains for a "
         "few epochs on your small dataset *D* (here 3 photos each of brick, grass and gravel). The same network "
         "from random weights sees the same 9 photos. Which one tells the textures apart on new photos?",
         "Point at the two bands: the gap is the whole argument of the course. From random weights the network stays "
         "at chance (one in three): 9 photos are far too few to learn edges, colours and grain from nothing, and the "
         "pretrained network already has them. Scratch trains every stage, which is why it is the slow part of the "
         "run. The full page's default (handwritten digits, 64 px) shows the same on a target far from ImageNet.",
         page="finetune", module="finetune", kind="finetune",
         # chosen on validation seeds (100-103, 150-153): pretrained 87-89% vs scratch 33%, intervals +38 to +69
         make=lambda m: m.FinetuneConfig(weights="both", dataset="textures", shots=3, epochs=4, image_size=48,
                                         val_per_class=10, seeds=4),
         tiny=dict(epochs=2, seeds=2, shots=2, val_per_class=4, image_size=32), chart=_chart("finetune", "curves"),
         say=_say_idea, lesson=_lesson_idea, seconds=4.0),
    Step("overfit", "Overfitting with little data",
         "With 2 images per digit, a network trained from scratch learns its training images by heart: train accuracy "
         "climbs to 100% while validation accuracy on new images stays far below. The gap between the two lines is "
         "overfitting, and it is what little data does to a big model.",
         "Solid = the images it trains on, dashed = new images. Ask: what would a model that memorised the training "
         "set score on new images? On the full page, raise *training images per class* and watch the gap close. "
         "The small CNN trains at 32 px so that this step stays fast.",
         page="finetune", module="finetune", kind="finetune",
         # 4 runs: with 3, an interval reached past 100 points (seeds 200-202: +24 to +104)
         make=lambda m: m.FinetuneConfig(backbone="shapes_cnn", weights="scratch", shots=2, epochs=20, image_size=32,
                                         val_per_class=10, seeds=4),
         lesson=_lesson_overfit, seconds=6.0,
         tiny=dict(epochs=3, seeds=2, val_per_class=4, classes=FIVE), chart=_chart("finetune", "curves"),
         say=_say_overfit),
    Step("toy", "Pretraining as a regulariser",
         "Task B has 2 points; every network fits them. The networks pretrained on a related task A (a line with "
         "another slope) also stay close to B's line between and beyond the points: the pretrained start acts as a "
         "prior over plausible functions.",
         "Open the full page for the picture of every learned function. Then set *unrelated* on the full page: the "
         "prior misleads and the advantage turns into negative transfer.",
         page="toy", module="toy", kind="toy", make=lambda m: m.ToyConfig(relation="shifted", seeds=20),
         tiny=dict(seeds=5, epochs=50, pretrain_epochs=50), chart=_chart("toy", "functions"), say=_say_toy,
         lesson=_lesson_toy, seconds=1.0),
    Step("layers", "What layers learn",
         "Early layers of a pretrained network respond to edges and colours, later ones to parts and objects, so the "
         "early layers transfer to almost any image task. Measured here: fine-tune every stage on a few textures and "
         "see how far each stage's weights move.",
         "The full page shows the first layer's filters and the patches each stage responds to most; open it for the "
         "pictures. Ask which stages a microscope image would still need.",
         page="layers", module="layers", kind="layers",
         make=lambda m: m.LayersConfig(shots=5, epochs=4, image_size=48, seeds=3, val_per_class=10),
         tiny=dict(epochs=1, seeds=2, image_size=32, val_per_class=4), chart=_chart("layers", "relative_change"),
         say=_say_layers, lesson=_lesson_layers, seconds=3.5),
    Step("freeze", "Feature extraction vs fine-tuning: which layers to freeze",
         "Feature extraction freezes every pretrained stage and trains only a new head; fine-tuning lets the last "
         "stages move too. With very few images, freezing protects the pretrained features; with more, letting "
         "the last stages adapt pays.",
         "Read the two lines at the left end (2 images per digit) and at the right end (20). Ask the class why the "
         "order flips: with 10 images, the last stages' million weights fit those images and lose what ImageNet "
         "taught them; with 100, they adapt to pen strokes. Frozen stages are computed once and cached, which is why "
         "ten seeds take seconds. The full page adds full fine-tuning (every stage moves, BatchNorm statistics too).",
         page="finetune", module="finetune", runner="sweep", kind="sweep",
         # chosen on validation seeds (100-109, 150-159): feature extraction ahead at 2 shots by 14-18 points
         # (intervals from +5 and +11), partial ahead at 20 by 5-7 (from +3.5 and +4.6); 32 px, 5 epochs, 3 seeds tied
         make=lambda m: m.SweepConfig(weights="pretrained", classes=FIVE, shots=(2, 20), freezes=("all", "7"),
                                      epochs=8, lr=1e-3, image_size=48, val_per_class=30, seeds=10),
         tiny=dict(epochs=2, shots=(1, 2), val_per_class=4, image_size=32, seeds=2),
         prefixes=(("shots", "ft_sweep_"), ("freezes", "ft_sweep_")), chart=_chart("finetune", "shots_sweep"),
         say=_say_freeze, lesson=_lesson_freeze, seconds=23.5),
    _domain_step(
        "strategy", "Which strategy for which data", "textures",
        "The decks' 2×2 chart: little or much data, a target near or far from the pretraining photos. Each quadrant "
        "has a recommended strategy; here each is measured instead of stated.",
        "Go quadrant by quadrant; ask the class to predict the winner before showing it. This step measures the "
        "near column (textures); the full page runs every quadrant at once. Where the strategies tie, that is the "
        "answer: at that size the choice matters less than which images were drawn. Scratch is left out here: on "
        "textures it stays at chance (step 1).", seconds=11.0, image_size=48,
        strategies=("feature_extraction", "partial", "full")),
    Step("peft", "Fine-tuning at scale: train 1% of the weights",
         "Companies and researchers fine-tune big pretrained models for their own data, and the cost can be huge. "
         "Parameter-efficient fine-tuning trains a few percent of the weights (LoRA adapters beside frozen layers) and "
         "saves kilobytes instead of the whole model. "
         "Does it keep up with full fine-tuning, and what does each forget?",
         "Read the x axis: agreement with the original ImageNet model on photos nobody trained on "
         "(1 = forgot nothing). "
         "Full fine-tuning moves BatchNorm's statistics too, which is most of what it forgets here. The full page adds "
         "BitFit, more ranks, partial fine-tuning and the text encoder.",
         page="peft", module="peft", kind="peft",
         # 4 seeds, 4 epochs (chosen on seeds 100-103 and 150-153): LoRA forgets far less (agreement 0.91-0.95 vs
         # 0.02-0.03, intervals +75 to +103 points) and keeps up (ties full fine-tuning); 2 seeds gave intervals of
         # -61 to +108 points
         make=lambda m: dataclasses.replace(m.LECTURE, seeds=4, epochs=4),
         tiny=dict(shots=2, epochs=1, seeds=2, image_size=32, val_per_class=4),
         chart=_chart("peft", "accuracy_vs_forgetting"), say=_say_peft, lesson=_lesson_peft, seconds=9.5),
    _domain_step(
        "far", "Far source tasks and negative transfer", "digits",
        "If the source task is too different from the target, its features can be bad ones, and a pretrained start "
        "can do worse than random weights: negative transfer. Here the source is Transfer Lab's own small CNN, "
        "pretrained on synthetic shapes; the target is handwritten digits; its features are kept frozen.",
        "ImageNet features still help on every built-in dataset (the strategy page shows it); a source task this far "
        "(clean synthetic shapes) does not. Ask what a shape detector misses about pen strokes. On the full page, "
        "add *partial* to the strategies: letting the last stages learn closes most of the gap.",
        # 4 seeds, 5 validation images per digit (seeds 100-103, 150-153: scratch ahead by 43-55 points, intervals
        # up to -25 at worst); 3 seeds gave intervals 70 points wide
        preset="FAR_SOURCE", say=_say_negative, lesson=_lesson_far, seconds=11.5, seeds=4, val_per_class=5),
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
         say=_say_ssl, lesson=_lesson_ssl, seconds=4.5),
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
         prefixes=(("shots", "gtl_sweep_"), ("sources", "gtl_sweep_")), chart=_chart("gtl", "sweep"), say=_say_gtl,
         seconds=4.0),
    Step("text", "Text: the same ideas for sentences",
         "A pretrained language model turns a sentence into features. Freeze it and train a new head on a few labelled "
         "sentences, fine-tune its last layers, or train the same network from scratch.",
         "The vocabulary is the same as for images: feature extraction, fine-tuning the last k layers, scratch.",
         page="text", module="text", kind="text",
         # feature extraction vs scratch, 2 sentences a topic, 4 seeds (3 gave an interval 50 points wide), 5 new
         # sentences a topic (seeds 100-103, 150-153: +44 to +48 points, intervals from +32)
         make=lambda m: dataclasses.replace(m.QUICK, epochs=4, seeds=4, val_per_class=5),
         tiny=dict(shots=1, seeds=2, epochs=2, val_per_class=2, max_length=16),
         chart=_chart("text", "curves"), say=_say_text, lesson=_lesson_text, seconds=12.5),
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


WORKERS_ENV = "TL_LECTURE_WORKERS"   # how many worker processes prepare the lecture (default: 2 on a CPU)
STARTUP_S = 3.0                      # a worker process's start (Python, torch, tl_core) on an idle 2-core machine


def workers_for(device: str = "auto") -> int:
    """Worker processes to prepare the lecture with: TL_LECTURE_WORKERS, else one per core up to 2 on a CPU (each
    step trains on one thread, so two steps at once use both cores of a laptop), else 1 (a GPU: one at a time)."""
    given = os.environ.get(WORKERS_ENV, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ValueError(f"{WORKERS_ENV} must be a whole number of at least 1, got {given!r}")
        return int(given)
    from tl_core import device as devices

    return max(1, min(2, os.cpu_count() or 1)) if devices.pick(device).type == "cpu" else 1


def _plan(db: store.Store | None, force: bool = False) -> tuple[list[Prepared], list[tuple[Prepared, Any]], dict]:
    """Every step's entry, the (entry, config) runs to train (longest first), and the steps that share each run."""
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
    todo.sort(key=lambda t: -t[0].step.seconds)   # longest first: the workers finish close together
    return out, todo, seen


def makespan(seconds: list[float], workers: int) -> float:
    """How long `workers` processes take for jobs of these lengths, each taking the longest job left when free."""
    ends = [0.0] * max(workers, 1)
    for s in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += s
    return max(ends)


def estimate(db: store.Store | None, device: str = "auto", force: bool = False,
             workers: int | None = None) -> tuple[float, int, int]:
    """(seconds, steps to train, worker processes): how long `prepare` will take on an idle 2-core machine, from
    each step's measured time there (a busy or slower machine takes longer; a faster one, less)."""
    _, todo, _ = _plan(db, force)
    workers = _workers(workers, device, db, len(todo))
    seconds = [entry.step.seconds for entry, _ in todo]
    return (makespan(seconds, workers) + (STARTUP_S if workers > 1 else 0.0) if todo else 0.0), len(todo), workers


def _workers(workers: int | None, device: str, db, jobs: int) -> int:
    workers = workers_for(device) if workers is None else workers
    return max(1, min(workers, jobs)) if db is not None else 1   # workers record what they train in the history


def prepare(db: store.Store | None, session: str = "lecture", progress=None, should_stop=None, device: str = "auto",
            force: bool = False, workers: int | None = None, pool: Workers | None = None) -> list[Prepared]:
    """Run, once, every step that has no finished run of its config in the history (all of them with `force`),
    each recorded like any run; steps that share a config share its run. With more than one worker (the default on
    a CPU with 2 cores or more: `workers_for`), the steps train in that many worker processes at once, longest
    first, each on one thread and recording its runs in the history itself; a step's numbers are the same as
    alone. Progress goes over the steps that train, by their measured time; a Stop ends the running steps' runs
    (kept as stopped) and skips the rest. `pool`: workers started ahead (`Workers`, recording in `db`: the command
    line's), given every step at once: each worker works out its step's config and looks in the history itself,
    so no step waits for this process to import the experiments; the pool is closed at the end."""
    if pool is not None:
        return _in_pool(pool, db, progress, should_stop, force)
    out, todo, seen = _plan(db, force)
    workers = _workers(workers, device, db, len(todo))
    if workers > 1:
        _in_workers(todo, db, session, progress, should_stop, device, workers)
    else:
        for j, (entry, cfg) in enumerate(todo):
            if should_stop is not None and should_stop():
                entry.state, entry.message = "stopped", "not run: the lecture's preparation was stopped"
                continue

            def sub(fraction, message, j=j, entry=entry):
                if progress is not None:
                    progress((j + min(fraction, 1.0)) / len(todo),
                             f"step {entry.number} ({entry.step.title}): {message}")

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


# ---- worker processes: several steps at once --------------------------------------------------------------

@contextmanager
def _spawning():
    """Start worker processes without re-running the parent's __main__ (under Streamlit, the app's script): the
    class server's own rule (tl_core.serve), so a worker imports tl_core by name."""
    from tl_core import serve

    serve._install_preparation()
    serve._SPAWNING.on = True
    try:
        yield
    finally:
        serve._SPAWNING.on = False


class Workers:
    """Worker processes for several steps at once, started ahead: each imports torch and the steps' experiments while
    this process plans (its own imports, the history), then takes jobs (j, step key, config, mode) first come first
    served and sends events: ("start", j, pid), ("progress", j, fraction, message), ("done", j, state, run id,
    seconds, message, json or None). `root`: the history the workers record in (None: nothing recorded)."""

    def __init__(self, workers: int, root: str | None, session: str = "lecture", device: str = "auto"):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.jobs, self.events, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.procs = [ctx.Process(target=_worker, args=(self.jobs, self.events, self.stop, os.getpid(), root, session,
                                                        device), daemon=True, name=f"tl-lecture-{i + 1}")
                      for i in range(workers)]
        with _spawning():
            for proc in self.procs:
                proc.start()
        self.closed = False

    def __len__(self) -> int:
        return len(self.procs)

    def run(self, jobs_: list, on_event, should_stop=None) -> None:
        """Run the jobs; each event goes to on_event(event) in this thread. A job whose worker ended without saying
        is done as failed; should_stop() asks every worker to stop (each keeps its running step's run as stopped)."""
        import queue

        for job in jobs_:
            self.jobs.put(job)
        self.close(wait=False)
        left, where = {job[0] for job in jobs_}, {}
        try:
            while left:
                if should_stop is not None and not self.stop.is_set() and should_stop():
                    self.stop.set()
                try:
                    event = self.events.get(timeout=0.2)
                except queue.Empty:
                    gone = {proc.pid for proc in self.procs if not proc.is_alive()}
                    for j in [j for j in left if where.get(j) in gone or len(gone) == len(self.procs)]:
                        left.discard(j)
                        on_event(("done", j, "failed", None, None, "the worker process preparing it ended before it "
                                                                     "finished (killed, or out of memory)", None))
                    continue
                if event[0] == "start":
                    where[event[1]] = event[2]
                elif event[0] == "done":
                    left.discard(event[1])
                on_event(event)
        except BaseException:   # a Stop raised by the page (or ^C): the workers stop too, keeping their runs as stopped
            self.stop.set()
            raise
        finally:
            self.close()

    def close(self, wait: bool = True) -> None:
        """No more jobs: each worker ends after the ones it has (with `wait`, wait for that)."""
        if not self.closed:
            self.closed = True
            for _ in self.procs:
                self.jobs.put(None)
        if wait:
            for proc in self.procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()


def _in_pool(pool: Workers, db: store.Store, progress, should_stop, force: bool) -> list[Prepared]:
    """Every step that trains goes to the pool at once, longest first (mode "plan": the worker skips a step that is
    unavailable or has a run of its config in the history, as `_plan` does, and looks again just before training,
    so steps that share a config share a run when one follows the other)."""
    out = [Prepared(i, step, "pending" if step.trains() else "instant",
                    message="" if step.trains() else "nothing to train: shown at once")
           for i, step in enumerate(STEPS, 1)]
    todo = sorted(((p, None) for p in out if p.state == "pending"), key=lambda t: -t[0].step.seconds)
    if db is None:
        raise ValueError("preparing in worker processes needs the run history they record in")
    _in_workers(todo, db, "", progress, should_stop, "", len(pool), pool, "force" if force else "plan")
    return out


def _in_workers(todo: list, db: store.Store, session: str, progress, should_stop, device: str, workers: int,
                pool: Workers | None = None, mode: str = "record") -> None:
    weight = [max(entry.step.seconds, 0.5) for entry, _ in todo]
    done = [0.0] * len(todo)

    def on_event(event) -> None:
        j, entry = event[1], todo[event[1]][0]
        if event[0] == "progress":
            done[j] = min(max(float(event[2]), 0.0), 1.0)
        elif event[0] == "done":
            done[j] = 1.0
            entry.state, entry.run_id, entry.seconds, entry.message = event[2:6]
        if progress is not None and event[0] in ("progress", "done"):
            message = event[3] if event[0] == "progress" else entry.state
            progress(sum(w * d for w, d in zip(weight, done)) / sum(weight),
                     f"step {entry.number} ({entry.step.title}): {message}")

    pool = pool if pool is not None else Workers(workers, str(db.root), session, device)
    pool.run([(j, entry.step.key, cfg, mode) for j, (entry, cfg) in enumerate(todo)], on_event, should_stop)


def _worker(jobs, events, stop, parent: int, root: str | None, session: str, device: str) -> None:
    """A worker process: take jobs until told to end; train each step's config on one thread ("record": recorded in
    the history at `root`, as `prepare` does; "plan" / "force": the step's config worked out here, skipped when
    unavailable or (plan) in the history, else recorded; "check": not recorded, its JSON sent back)."""
    import threading

    def orphaned() -> None:   # the parent is gone (killed): end rather than train for no one
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    db = store.Store(root) if root else None
    steps = {step.key: step for step in STEPS}
    while (job := jobs.get()) is not None:
        j, key, cfg, mode = job
        if stop.is_set():
            events.put(("done", j, "stopped", None, None, "not run: the lecture's preparation was stopped", None))
            continue
        events.put(("start", j, os.getpid()))

        def progress(fraction, message, j=j):
            events.put(("progress", j, fraction, message))

        if mode in ("plan", "force"):
            step = steps[key]
            why = status(step)
            cfg = None if why else step.config()
            run = latest(step, db, cfg) if cfg is not None and mode == "plan" else None
            if why or run is not None:
                events.put(("done", j, "unavailable", None, None, why, None) if why else
                           ("done", j, "history", run.id, run.seconds, "", None))
                continue
        if mode in ("record", "plan", "force"):
            events.put(("done", j, *_run_step(steps[key], cfg, db, session, progress, stop.is_set, device), None))
        else:
            events.put(("done", j, *_check_run(steps[key], cfg, progress, stop.is_set, device)))


def _check_run(step: Step, cfg, progress, should_stop, device: str) -> tuple:
    """Train one step's config without recording it: (state, None, seconds, message, its JSON or None)."""
    try:
        result = step.run(cfg, progress=progress, should_stop=should_stop, device=device)
    except Exception as err:  # noqa: BLE001 - reported as the step's failure
        return "failed", None, None, (str(err).splitlines() or [type(err).__name__])[0], None
    state = "ran" if result.status == "finished" else result.status
    return state, None, result.seconds, result.message, result_json(result)


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

def _warm() -> None:
    """Import what reading the steps' runs and drawing the handout needs (every experiment, its figures, plotly)."""
    for step in STEPS:
        try:
            step.config() if step.trains() else step.experiment()
            if step.page:
                _figures({"finetune": "finetune", "selfsup": "ssl", "gtl_sweep": "gtl", "state": "state"}.get(
                    step.module, step.module or "state"))
        except Exception:  # noqa: BLE001 - only a head start: whatever fails here fails again, and is said, later
            pass
    importlib.import_module("tl_core.experiments.domains")


def said(step: Step, out: dict) -> list[str]:
    """What a step's run claims, a line each: its lesson's claims (a directional step), else its verdict."""
    checks = step.checks(out)
    if checks:
        return [c.line() for c in checks]
    v = step.verdict(out)
    return [f"{v.kind}: {v.text}"]


def _about(seconds: float, n: int, workers: int) -> str:
    if not n:
        return "every step is in the history already: nothing to train"
    return (f"{n} step{'s' * (n != 1)} to train, about {max(seconds, 1):.0f} s on an idle 2-core machine"
            + (f" ({workers} worker processes)" if workers > 1 else ""))


def _main(args) -> int:
    if args.check:
        return _check(args)
    folder = os.path.dirname(os.path.abspath(args.handout)) if args.handout else ""
    if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):   # say so before minutes of training
        raise ValueError(f"can't write the handout to {args.handout}: {folder} is not a writable folder")
    db = store.Store(args.data_dir)
    show = not args.json or getattr(args, "progress", False)
    start = time.perf_counter()
    # the workers start first: they import torch and the experiments while this process plans
    pool = Workers(workers_for(args.device), str(db.root), "cli", args.device) if workers_for(args.device) > 1 else None
    workers = len(pool) if pool else 1
    if not db.runs():   # an empty history: every step trains (known without importing the experiments)
        trained = [step.seconds for step in STEPS if step.trains()]
        seconds, n = makespan(trained, workers) + (STARTUP_S if workers > 1 else 0.0), len(trained)
    else:
        seconds, n, workers = estimate(db, args.device, workers=workers)
    if show:
        sys.stderr.write(f"Preparing the lecture: {_about(seconds, n, workers)}.\n")
    progress = (lambda f, m: sys.stderr.write(f"\r{f:4.0%} {m[:70]:<70}")) if show else None
    if pool is not None:   # what the claims and the handout need, imported while the workers train
        import threading

        threading.Thread(target=_warm, daemon=True).start()
    done = prepare(db, session="cli", progress=progress, device=args.device, pool=pool)
    took = time.perf_counter() - start
    if progress is not None:
        sys.stderr.write("\n")
    steps = []
    for p in done:
        out_, _ = shown(p.step, db) if p.state in ("ran", "history", "instant") else (None, None)
        steps.append({**p.to_json(), "claims": said(p.step, out_) if out_ else [],
                      "lesson": [{"what": c.what, "want": list(c.want), "kind": (c.claim or {}).get("kind"),
                                  "holds": c.holds} for c in (p.step.checks(out_) if out_ else [])]})
    out = {"steps": steps, "database": str(db.path), "seconds": took, "estimate": seconds, "workers": workers}
    if args.handout:   # written at the end, from the history: every step prepared now or before
        with open(args.handout, "w", encoding="utf-8") as f:
            f.write(handout(db))
        out["handout"] = args.handout
    if args.json:
        print(json.dumps(out))
    else:
        for p, s in zip(done, steps):
            secs = f"{p.seconds:5.1f} s" if p.seconds is not None else ""
            print(f"{p.number:>2}. {p.step.title:<58} {p.state:<11} {secs}" + (f"  {p.message[:60]}" if p.message and
                                                                                  p.state != "instant" else ""))
            for line in s["claims"]:
                print(f"      {line}")
        print(f"prepared in {took:.1f} s ({n} step{'s' * (n != 1)} trained, {workers} worker "
              f"process{'es' * (workers != 1)})")
        if args.handout:
            print(f"handout: {args.handout}")
    return 1 if any(p.state in ("failed", "stopped", "diverged") for p in done) else 0


CHECK_FIRSTS = "reported,200"   # `make lecture-check`: the reported seeds and the first other draw


def check(firsts: list[int | None], device: str = "auto", workers: int | None = None, steps=None,
          progress=None) -> list[dict]:
    """Train steps (default: every one that trains) on their reported seeds (first None) and each directional step
    on seeds from each other first seed too, without recording: one row per (step, first seed) with its time, its
    lesson's checks (a directional step) and what it says."""
    jobs, rows = [], []
    for number, step in enumerate(STEPS, 1):
        if (steps is not None and step.key not in steps) or not step.trains() or status(step):
            continue
        for first in firsts:
            if first is not None and step.lesson is None:
                continue
            cfg = step.config() if first is None else dataclasses.replace(step.config(), seed=first)
            rows.append({"step": number, "key": step.key, "title": step.title, "first_seed": cfg.seed,
                         "seeds": getattr(cfg, "seeds", None), "reported": first is None})
            jobs.append((len(jobs), step.key, cfg, "check"))
    order = sorted(jobs, key=lambda job: -STEPS[rows[job[0]]["step"] - 1].seconds)

    def on_event(event) -> None:
        if event[0] == "done":
            row, step = rows[event[1]], STEPS[rows[event[1]]["step"] - 1]
            out = event[6]
            row.update(state=event[2], seconds=event[4], message=event[5],
                       checks=[{"what": c.what, "want": list(c.want), "holds": c.holds, "line": c.line()}
                               for c in (step.checks(out) if out else [])],
                       said=said(step, out) if out else [])
            row["holds"] = event[2] == "ran" and all(c["holds"] for c in row["checks"])
            if progress is not None:
                progress(sum("state" in r for r in rows) / len(rows), row)

    workers = max(1, min(workers_for(device) if workers is None else workers, len(jobs)))
    if workers > 1:
        Workers(workers, None, "check", device).run(order, on_event)
    else:
        for job in order:
            step = STEPS[rows[job[0]]["step"] - 1]
            on_event(("done", job[0], *_check_run(step, job[2], None, None, device)))
    return rows


def _check(args) -> int:
    firsts = [None if f.strip() == "reported" else int(f) for f in args.check.split(",") if f.strip()]
    start = time.perf_counter()

    def progress(fraction, row) -> None:
        if not args.json:
            print(_check_lines(row), flush=True)

    rows = check(firsts, args.device, progress=progress)
    took = time.perf_counter() - start
    failed = [r for r in rows if not r.get("holds") and (r.get("checks") or r.get("state") != "ran")]
    if args.json:
        print(json.dumps({"rows": rows, "seconds": took, "failed": len(failed)}))
    else:
        print(f"checked {len(rows)} runs in {took:.0f} s: " + (
            "every directional step shows its lesson on every draw" if not failed else
            f"{len(failed)} do NOT: " + ", ".join(f"step {r['step']} from seed {r['first_seed']}" for r in failed)))
    return 1 if failed else 0


def _check_lines(row: dict) -> str:
    seeds = f"seeds {row['first_seed']}-{row['first_seed'] + row['seeds'] - 1}" if row.get("seeds") else \
        f"seed {row['first_seed']}"
    head = (f"{row['step']:>2}. {row['title'][:48]:<48} {seeds:<14} {'reported' if row['reported'] else 'other':<8} "
            f"{row.get('seconds') or 0:5.1f} s  {row.get('state')}")
    lines = [c["line"] for c in row.get("checks", [])] or row.get("said", []) or [row.get("message", "")]
    return "\n".join([head, *(f"      {line}" for line in lines)])


EXPERIMENTS = (
    contract.Experiment(
        "lecture", "the lecture's steps: run every step that has no run in the history yet, and write the handout",
        main=_main, recorded=False, options=(
            contract.Option("--handout", "write the handout here: one self-contained HTML file"),
            contract.Option("--data-dir", "where the run history lives"),
            contract.Option("--check", "instead: train every step on its reported seeds and each directional step on "
                                       "seeds from these first seeds too (comma-separated, 'reported' for its own; "
                                       f"make lecture-check: {CHECK_FIRSTS}), without recording; print each claim "
                                       "and time; exit 1 where a lesson does not hold"))),
)
