"""What a lecture step says of its run: the claims rule's findings in the audience's words, from the run's JSON.

Each experiment declares its narration (`contract.Experiment.narrate`: one of these); a lecture step may speak
from another claim of the same run (lecture step 1's overfitting, step 8's negative transfer). Where a run
departs from what the decks say, the words say so; a tie is called a tie.
"""
from __future__ import annotations

from tl_core import claims
from tl_core.contract import Verdict


def claim_words(c: dict, a: str, b: str) -> str:
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


def cap(text: str) -> str:
    """The first letter upper case, the rest as it is (str.capitalize would lower 'ImageNet')."""
    return text[:1].upper() + text[1:]


def pair(c: dict, a: str, b: str) -> str:
    return f"{a} {c['subject_mean']:.0%}, {b} {c['against_mean']:.0%}"


def said(kind: str, text: str, rule: str = "", agrees: bool = True) -> Verdict:
    """A step's words; where the run departs from what the decks say, it says so."""
    return Verdict(kind, text + ("" if agrees or not rule else f" The decks say {rule}; this run does not show it."))


def ended(out: dict) -> Verdict | None:
    if out.get("status", "finished") != "finished":
        return Verdict(out["status"], out.get("message") or "The run ended early.")
    return None


def say_idea(out: dict) -> Verdict:
    c, cfg = out.get("claim"), out["config"]
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    text = (f"On new images after training on {cfg['shots']} per class: {pair(c, 'pretrained', 'from scratch')}. "
            f"{cap(claim_words(c, 'pretrained', 'scratch'))}.")
    return said(c["kind"], text, "a pretrained start wins with little data", c["kind"] == "helped")


def overfit_claim(out: dict) -> dict | None:
    """Train against validation accuracy at the last epoch, paired run by run (the claims rule)."""
    runs = [h for s in out.get("conditions", {}).values() for h in s.get("histories", []) if h["val_acc"]]
    if not runs:
        return None
    values = {"train": {i: h["train_acc"][-1] for i, h in enumerate(runs)},
              "validation": {i: h["val_acc"][-1] for i, h in enumerate(runs)}}
    return claims.compare("train", values, ["validation"]).to_json()


def say_overfit(out: dict) -> Verdict:
    """Train against validation accuracy at the last epoch, paired run by run (the claims rule)."""
    c = overfit_claim(out)
    if c is None:
        return Verdict("single", "")
    runs = [h for s in out.get("conditions", {}).values() for h in s.get("histories", []) if h["val_acc"]]
    gap = f"{c['gap'] * 100:+.0f} points; 95% interval {c['low'] * 100:+.0f} to {c['high'] * 100:+.0f}"
    found = {"helped": f"it knows its training images far better than new ones ({gap}): overfitting",
             "single": "one run says little"}.get(c["kind"], f"no clear gap between the two ({gap})")
    text = (f"After {len(runs[0]['val_acc'])} epochs on {out['config']['shots']} images per class, the network gets "
            f"{c['subject_mean']:.0%} of its training images right and {c['against_mean']:.0%} of new ones: {found}.")
    return said("helped" if c["kind"] == "helped" else c["kind"], text, "little data makes a big model overfit",
                 c["kind"] == "helped")


def say_toy(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    factor = 10 ** abs(c["gap"] or 0)
    closer = (f"the pretrained networks stay ×{factor:.1f} closer to B's line than the ones from scratch"
              if (c["gap"] or 0) >= 0 else f"the networks from scratch stay ×{factor:.1f} closer to B's line")
    kind = {"helped": "pretraining clearly helped", "hurt": "pretraining clearly hurt"}.get(c["kind"], "a tie")
    text = (f"Both fit B's {out['config']['b_points']} points; away from them {closer} (test error "
            f"{c['subject_mean']:.3g} vs {c['against_mean']:.3g}, {c['seeds']} networks each): {kind}.")
    return said(c["kind"], text, "a pretrained start acts as a prior", c["kind"] == "helped")


def say_layers(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", "")
    text = (f"Under full fine-tuning the late stages moved {c['subject_mean']:.1%} of their size, the early ones "
            f"{c['against_mean']:.1%} (mean of {c['seeds']} seeds): "
            + {"helped": "the early stages barely moved, so freezing them costs little.",
               "hurt": "here the early stages moved more."}.get(c["kind"], "the seeds cannot tell the two apart."))
    return said(c["kind"], text, "the early, general stages change least", c["kind"] == "helped")


def depth_name(depth: int, stages: int) -> str:
    return ("feature extraction" if depth == stages - 1 else "full fine-tuning" if depth == 0
            else f"partial fine-tuning (the last {stages - depth} stages)")


def freeze_claims(out: dict) -> list[dict]:
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


def say_freeze(out: dict) -> Verdict:
    stages, parts, kinds = len(out.get("stages", [])), [], set()
    for c in freeze_claims(out):
        other = depth_name(int(c["against"]), stages)
        span = f"{c['gap'] * 100:+.0f} points; 95% interval {c['low'] * 100:+.0f} to {c['high'] * 100:+.0f}"
        result = (f"feature extraction {c['subject_mean']:.0%} beats {other} {c['against_mean']:.0%} ({span}): "
                  f"freezing protects the pretrained features" if c["kind"] == "helped" else
                  f"{other} {c['against_mean']:.0%} beats feature extraction {c['subject_mean']:.0%} ({span}): "
                  f"letting the last stages adapt pays" if c["kind"] == "hurt" else
                  f"feature extraction {c['subject_mean']:.0%} and {other} {c['against_mean']:.0%} tie ({span})")
        parts.append(f"with {c['shots']} images per class, {result}")
        kinds.add(c["kind"])
    return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", cap("; ".join(parts)) + "." if parts else "")


def say_domains(out: dict) -> Verdict:
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
        parts.append(f"{cap(head)}{found}; the decks say {rule}: {said}.")
    text = " ".join(parts)
    if any(q["agrees"] is None for q in quads):
        text += (" A tie is an answer too: at this size the strategy moves accuracy less than the luck of which "
                 "images were drawn, so any of the tied ones will do.")
    clear = [q["agrees"] for q in quads if q["agrees"] is not None]
    kind = "helped" if quads and len(clear) == len(quads) and all(clear) else "tie" if not clear else "mixed"
    return Verdict(kind, text)


def say_negative(out: dict) -> Verdict:
    """Where scratch beat every pretrained strategy of the run by the claims rule: negative transfer, or not."""
    neg = out.get("negative_transfer", [])
    backbone = out["config"]["backbone"]
    if not neg:
        parts = [f"at {c['shots']} shots: {pair(c, c['subject'].replace('_', ' '), 'scratch')}, "
                 + claim_words(c, c["subject"].replace("_", " "), "scratch") for c in out.get("gain_claims", [])]
        return Verdict("mixed", f"No negative transfer in this run ({'; '.join(parts)}): the decks warn of it, and "
                                f"these seeds do not show it.")
    parts = [f"at {x['shots']} images per class, scratch {x['scratch_acc']:.0%} vs "
             f"{x['pretrained'].replace('_', ' ')} {x['pretrained_acc']:.0%}" for x in neg]
    return Verdict("hurt", f"Negative transfer, as the decks warn: the frozen features of {backbone} lose to the same "
                           f"network from scratch, {'; '.join(parts)} (by the claims rule over "
                           f"{out['config']['seeds']} seeds). The source task is too far from the target.")


def say_ssl(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    name = "the frozen SSL encoder" if c["subject"] == "ssl_frozen" else "the fine-tuned SSL encoder"
    text = (f"With {out['config']['labels']} labels per class: {pair(c, name, 'scratch')}. "
            f"{cap(claim_words(c, name, 'scratch'))}.")
    return said(c["kind"], text, "pretraining without labels helps when labels are few", c["kind"] == "helped")


def say_gtl(out: dict) -> Verdict:
    """The GTL sweep: does guidance beat simply freezing the body, from a related source and an unrelated one."""
    from tl_core.experiments import gtl

    parts = []
    for source in out["config"]["sources"]:
        mine = [c for c in out.get("claims", []) if c["source"] == source and c["question"] == "guidance"]
        by = {k: [c for c in mine if c["kind"] == k] for k in ("helped", "hurt")}
        said = [f"beats the stronger of freezing the body and plain fine-tuning at {shots(by['helped'])}"
                if by["helped"] else "",
                f"trails at {shots(by['hurt'])}: {behind(by['hurt'], gtl.NAMES)}" if by["hurt"] else ""]
        said = [s for s in said if s] or ["ties freezing the body at every shots value"]
        parts.append(f"{source} source: guided fine-tuning " + ", and ".join(said))
    hurt = any(c["kind"] == "hurt" for c in out.get("claims", []) if c["question"] == "guidance")
    return Verdict("mixed", ". ".join(cap(p) for p in parts) + "." + (
        " From a source that does not fit, the guide keeps the wrong weights: guidance hurts." if hurt else ""))


def behind(hurt: list[dict], names: dict) -> str:
    """Whom each gap is to: "13, 28 and 38 points behind plain fine-tuning", or, when the stronger baseline changes
    with the shots, "13 points behind freezing all but the head (2 shots); 28 points behind plain fine-tuning (5
    shots)"."""
    groups: dict[str, list[dict]] = {}
    for c in hurt:
        groups.setdefault(c["against"], []).append(c)
    return "; ".join(listed([f"{-c['gap'] * 100:.0f}" for c in mine]) + f" points behind {names[against]}"
                     + ("" if len(groups) == 1 else f" ({shots(mine)})") for against, mine in groups.items())


def listed(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def shots(claims_: list[dict]) -> str:
    shots = [str(c["shots"]) for c in claims_]
    return (", ".join(shots[:-1]) + " and " + shots[-1] if len(shots) > 1 else shots[0]) + " shots"


def say_peft(out: dict) -> Verdict:
    """The best parameter-efficient method against full fine-tuning: accuracy (the claim), share trained, forgetting."""
    c = out.get("claim")
    if c is None:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    methods = {m["condition"]: m for m in out.get("methods", [])}
    mine, full = methods.get(c["subject"], {}), methods.get(c["against"], {})
    a, b = mine.get("label", c["subject"]), full.get("label", c["against"])
    text = f"{pair(c, a, b)}: {claim_words(c, a, b)}, training {mine.get('trainable_fraction', 0):.1%} of the weights"
    key = out.get("forgetting_measure", "agreement")
    f = out.get("forgetting_claim")
    if f is not None and f.get("subject_mean") is not None:
        said = {"helped": f"{a} forgets far less", "hurt": f"{a} forgets more"}.get(
            f["kind"], "the seeds cannot tell which forgets less")
        span = (f" (95% interval of the gap {f['low']:+.2f} to {f['high']:+.2f})" if f.get("low") is not None else "")
        text += (f". {cap(said)}: {key} with the original model {f['subject_mean']:.2f} vs {f['against_mean']:.2f}"
                 f"{span}, 1 = forgot nothing")
    else:
        forgot = [(m.get("forgetting") or {}).get(key) for m in (mine, full)]
        forgot = [v.get("mean") if isinstance(v, dict) else v for v in forgot]
        if None not in forgot:
            text += f"; {key} with the original model {forgot[0]:.2f} vs {forgot[1]:.2f} (1 = forgot nothing)"
    return Verdict(c["kind"], cap(text) + ".")


def say_text(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    text = (f"With {out['config']['shots']} labelled sentences per topic: "
            f"{pair(c, 'the pretrained encoder', 'the same model from scratch')}. "
            f"{cap(claim_words(c, 'the pretrained encoder', 'scratch'))}.")
    return said(c["kind"], text, "pretrained language models transfer to few labels", c["kind"] == "helped")


def say_audio(out: dict) -> Verdict:
    """The best pretrained condition against scratch (what pretraining is worth), then the best condition against the
    strongest other when that is another pair (e.g. the last layer fine-tuned against the frozen encoder)."""
    c, best = out.get("pretraining_claim"), out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    task = "which word was said" if out.get("task") == "words" else "who was speaking"
    name = {k: v["label"] for k, v in out.get("conditions", {}).items()}
    text = (f"Telling {task} from {out['config']['shots']} clips per class, the speech encoder pretrained on "
            f"LibriSpeech and VoxCeleb ({name.get(c['subject'], c['subject'])}): "
            f"{pair(c, 'pretrained', 'the same network from scratch')}. "
            f"{cap(claim_words(c, 'the pretrained encoder', 'scratch'))}.")
    if best is not None and (best["subject"], best["against"]) != (c["subject"], c["against"]):
        a, b = name.get(best["subject"], best["subject"]), name.get(best["against"], best["against"])
        text += f" Best of all: {pair(best, a, b)}; {claim_words(best, a, b)}."
    return said(c["kind"], text, "a pretrained speech encoder transfers to a few clips", c["kind"] == "helped")


def say_lm(out: dict) -> Verdict:
    """The real language model adjusted for topics: the best method against the strongest other, then prompting
    (no training) against fine-tuning; a tie is called a tie, and prompting winning is said as a lesson too."""
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    names = {m["method"]: m["label"] for m in out.get("methods", [])}
    a, b = names.get(c["subject"], c["subject"]), names.get(c["against"], c["against"])
    text = (f"With {out['config']['shots']} labelled sentences per topic: {pair(c, a, b)}. "
            f"{cap(claim_words(c, a, b))}.")
    p = out.get("claims", {}).get("prompting")
    if p is not None and p["kind"] in ("helped", "tie"):
        text += (" Writing the examples into the prompt, with no training at all, "
                 f"{'beats' if p['kind'] == 'helped' else 'ties'} fine-tuning here: that is today's lesson too.")
    elif p is not None and p["kind"] == "hurt":
        text += " Fine-tuning beats writing the examples into the prompt here."
    return Verdict(c["kind"], text)
