"""What a lecture step says of its run: the claims rule's findings in the audience's words, from the run's JSON.

Each experiment declares its narration (`contract.Experiment.narrate`: one of these); a lecture step may speak
from another claim of the same run (lecture step 1's overfitting, step 8's negative transfer). Where a run
departs from what the decks say, the words say so; a tie is called a tie. Every sentence is said in this context's
language (`tl_core.i18n`): whole sentences through the catalogue, numbers as the language writes them, conditions
named as the pages name them; English word for word as before.
"""
from __future__ import annotations

from tl_core import claims, i18n, names
from tl_core.contract import Verdict
from tl_core.i18n import N_, tr

# the conditions the listening page records under labels of its own (names.condition has no entry for them): marked
# for the catalogue, so that a sentence in another language names them from it
OWN_LABELS = {N_("frozen encoder + head"), N_("last LSTM layer fine-tuned"), N_("fully fine-tuned"),
              N_("same network from scratch"), N_("English CNN frozen + head"), N_("English CNN fine-tuned"),
              N_("same CNN from scratch")}


def named(key: str, label: str | None = None, **fill) -> str:
    """A condition as the sentences name it: in English as they always have (its label as the run recorded it, else
    its key with spaces), in another language as `names.condition` shows it (`fill`: its template's values)."""
    if i18n.language() == i18n.DEFAULT:
        return label if label is not None else str(key).replace("_", " ")
    return tr(label) if label in OWN_LABELS else names.condition(key, **fill)


def _points(x: float) -> str:
    """A gap (a fraction) in whole points, signed: +57."""
    return i18n.number(x * 100, 0, signed=True)


def _pct(x: float, digits: int = 0) -> str:
    return i18n.percent(x, digits)


def _span(c: dict) -> dict:
    """A claim's gap and 95% interval, in whole points, as the sentences' placeholders."""
    return {"gap": _points(c["gap"]), "low": _points(c["low"]), "high": _points(c["high"])}


def claim_words(c: dict, a: str, b: str) -> str:
    """What the claims rule found, said plainly: a clear win or loss with its interval, a tie, or one seed."""
    if c["kind"] == "single":
        return tr("one seed says little: run it with more seeds before believing either")
    if c["kind"] == "helped":
        return tr("{a} is clearly ahead ({gap} points; 95% interval {low} to {high})", a=a, **_span(c))
    if c["kind"] == "hurt":
        return tr("{a} is clearly behind ({gap} points; 95% interval {low} to {high})", a=a, **_span(c))
    if c["low"] * 100 <= 0 <= c["high"] * 100:
        return tr("a tie: the seeds disagree too much to tell them apart ({gap} points; 95% interval {low} to {high})",
                  **_span(c))
    return tr("a tie: the gap is under a point ({gap} points; 95% interval {low} to {high})", **_span(c))


def cap(text: str) -> str:
    """The first letter upper case, the rest as it is (str.capitalize would lower 'ImageNet')."""
    return text[:1].upper() + text[1:]


def pair(c: dict, a: str, b: str) -> str:
    """Both conditions with their means: "pretrained 88%, from scratch 33%" (a list: the same in every language)."""
    return f"{a} {_pct(c['subject_mean'])}, {b} {_pct(c['against_mean'])}"


def said(kind: str, text: str, rule: str = "", agrees: bool = True) -> Verdict:
    """A step's words; where the run departs from what the decks say (`rule`, a clause in this language), it says so."""
    return Verdict(kind, text if agrees or not rule else
                   text + " " + tr("The decks say {rule}; this run does not show it.", rule=rule))


def ended(out: dict) -> Verdict | None:
    if out.get("status", "finished") != "finished":
        return Verdict(out["status"], out.get("message") or tr("The run ended early."))
    return None


def say_idea(out: dict) -> Verdict:
    c, cfg = out.get("claim"), out["config"]
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    # (a tr() inside another's arguments is not extracted into the catalogue: its words first)
    pretrained, from_scratch, scratch = tr("pretrained"), tr("from scratch"), tr("scratch")
    text = tr("On new images after training on {shots} per class: {pair}. {verdict}.", shots=cfg["shots"],
              pair=pair(c, pretrained, from_scratch), verdict=cap(claim_words(c, pretrained, scratch)))
    return said(c["kind"], text, tr("a pretrained start wins with little data"), c["kind"] == "helped")


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
    if c["kind"] == "helped":
        found = tr("it knows its training images far better than new ones ({gap} points; 95% interval {low} to "
                   "{high}): overfitting", **_span(c))
    elif c["kind"] == "single":
        found = tr("one run says little")
    else:
        found = tr("no clear gap between the two ({gap} points; 95% interval {low} to {high})", **_span(c))
    text = tr("After {epochs} epochs on {shots} images per class, the network gets {train} of its training images "
              "right and {new} of new ones: {found}.", epochs=len(runs[0]["val_acc"]), shots=out["config"]["shots"],
              train=_pct(c["subject_mean"]), new=_pct(c["against_mean"]), found=found)
    return said("helped" if c["kind"] == "helped" else c["kind"], text,
                tr("little data makes a big model overfit"), c["kind"] == "helped")


def _g(v: float) -> str:
    """Three significant digits (0.0123), with this language's decimal sign."""
    return f"{v:.3g}".replace(".", i18n.number(0.5, 1)[1])


def say_toy(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    fill = dict(points=out["config"]["b_points"], factor=i18n.number(10 ** abs(c["gap"] or 0), 1),
                a_value=_g(c["subject_mean"]), b_value=_g(c["against_mean"]), seeds=c["seeds"],
                verdict={"helped": tr("pretraining clearly helped"),
                         "hurt": tr("pretraining clearly hurt")}.get(c["kind"]) or tr("a tie"))
    text = (tr("Both fit B's {points} points; away from them the pretrained networks stay ×{factor} closer to B's "
               "line than the ones from scratch (test error {a_value} vs {b_value}, {seeds} networks each): "
               "{verdict}.", **fill) if (c["gap"] or 0) >= 0 else
            tr("Both fit B's {points} points; away from them the networks from scratch stay ×{factor} closer to B's "
               "line (test error {a_value} vs {b_value}, {seeds} networks each): {verdict}.", **fill))
    return said(c["kind"], text, tr("a pretrained start acts as a prior"), c["kind"] == "helped")


def say_layers(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", "")
    fill = dict(late=_pct(c["subject_mean"], 1), early=_pct(c["against_mean"], 1), seeds=c["seeds"])
    if c["kind"] == "helped":
        text = tr("Under full fine-tuning the late stages moved {late} of their size, the early ones {early} (mean of "
                  "{seeds} seeds): the early stages barely moved, so freezing them costs little.", **fill)
    elif c["kind"] == "hurt":
        text = tr("Under full fine-tuning the late stages moved {late} of their size, the early ones {early} (mean of "
                  "{seeds} seeds): here the early stages moved more.", **fill)
    else:
        text = tr("Under full fine-tuning the late stages moved {late} of their size, the early ones {early} (mean of "
                  "{seeds} seeds): the seeds cannot tell the two apart.", **fill)
    return said(c["kind"], text, tr("the early, general stages change least"), c["kind"] == "helped")


def depth_name(depth: int, stages: int) -> str:
    return (tr("feature extraction") if depth == stages - 1 else tr("full fine-tuning") if depth == 0
            else tr("partial fine-tuning (the last {n} stages)", n=stages - depth))


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
        fill = dict(shots=c["shots"], other=depth_name(int(c["against"]), stages), frozen=_pct(c["subject_mean"]),
                    value=_pct(c["against_mean"]), **_span(c))
        if c["kind"] == "helped":
            parts.append(tr("with {shots} images per class, feature extraction {frozen} beats {other} {value} ({gap} "
                            "points; 95% interval {low} to {high}): freezing protects the pretrained features", **fill))
        elif c["kind"] == "hurt":
            parts.append(tr("with {shots} images per class, {other} {value} beats feature extraction {frozen} ({gap} "
                            "points; 95% interval {low} to {high}): letting the last stages adapt pays", **fill))
        else:
            parts.append(tr("with {shots} images per class, feature extraction {frozen} and {other} {value} tie ({gap} "
                            "points; 95% interval {low} to {high})", **fill))
        kinds.add(c["kind"])
    return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", cap("; ".join(parts)) + "." if parts else "")


def either(items: list[str]) -> str:
    """"a or b or c"."""
    text = items[0]
    for item in items[1:]:
        text = tr("{a} or {b}", a=text, b=item)
    return text


def say_domains(out: dict) -> Verdict:
    """Each quadrant's result next to the decks' rule, counting clear results only: where the strategies tie, the
    step says what that means instead of calling it agreement (short enough to sit beside the chart)."""
    quads, parts = out.get("quadrants", []), []
    for q in quads:
        c = q.get("claim") or {}
        if q["kind"] == "helped":
            found = tr("{winner} wins, {value} vs {runner_up} {other} (95% interval {low} to {high} points)",
                       winner=named(q["winner"]), value=_pct(q["means"][q["winner"]]), runner_up=named(q["runner_up"]),
                       other=_pct(q["means"][q["runner_up"]]), low=_points(c["low"]), high=_points(c["high"]))
        else:
            tied = ", ".join(f"{named(st)} {_pct(q['means'][st])}" for st in q["tied"])
            rest = [named(st) for st in q["means"] if st not in q["tied"]]
            found = (tr("a tie, {tied} ({rest} behind)", tied=tied, rest=", ".join(rest)) if rest else
                     tr("a tie, {tied}", tied=tied))
        verdict = {True: tr("as measured"), False: tr("not what this run shows")}.get(q["agrees"]) or \
            tr("the data can't tell")
        fill = dict(shots="/".join(map(str, q["shots"])), found=found,
                    rule=either([named(st) for st in q["rule_strategies"]]), verdict=verdict)
        parts.append(tr("Few images ({shots} per class): {found}; the decks say {rule}: {verdict}.", **fill)
                     if q["size"] == "few" else
                     tr("More images ({shots} per class): {found}; the decks say {rule}: {verdict}.", **fill)
                     if q["size"] == "more" else
                     cap(tr("{size} images ({shots} per class): {found}; the decks say {rule}: {verdict}.",
                            size=q["size"], **fill)))
    text = " ".join(parts)
    if any(q["agrees"] is None for q in quads):
        text += " " + tr("A tie is an answer too: at this size the strategy moves accuracy less than the luck of which "
                         "images were drawn, so any of the tied ones will do.")
    clear = [q["agrees"] for q in quads if q["agrees"] is not None]
    kind = "helped" if quads and len(clear) == len(quads) and all(clear) else "tie" if not clear else "mixed"
    return Verdict(kind, text)


def say_negative(out: dict) -> Verdict:
    """Where scratch beat every pretrained strategy of the run by the claims rule: negative transfer, or not."""
    neg = out.get("negative_transfer", [])
    backbone = out["config"]["backbone"]
    if not neg:
        scratch = tr("scratch")
        parts = [tr("at {shots} shots: {pair}, {verdict}", shots=c["shots"], pair=pair(c, named(c["subject"]), scratch),
                    verdict=claim_words(c, named(c["subject"]), scratch)) for c in out.get("gain_claims", [])]
        return Verdict("mixed", tr("No negative transfer in this run ({results}): the decks warn of it, and these "
                                   "seeds do not show it.", results="; ".join(parts)))
    parts = [tr("at {shots} images per class, scratch {scratch} vs {name} {value}", shots=x["shots"],
                scratch=_pct(x["scratch_acc"]), name=named(x["pretrained"]), value=_pct(x["pretrained_acc"]))
             for x in neg]
    return Verdict("hurt", tr("Negative transfer, as the decks warn: the frozen features of {backbone} lose to the "
                              "same network from scratch, {results} (by the claims rule over {seeds} seeds). The "
                              "source task is too far from the target.", backbone=backbone, results="; ".join(parts),
                              seeds=out["config"]["seeds"]))


def say_ssl(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    name = tr("the frozen SSL encoder") if c["subject"] == "ssl_frozen" else tr("the fine-tuned SSL encoder")
    scratch = tr("scratch")
    text = tr("With {labels} labels per class: {pair}. {verdict}.", labels=out["config"]["labels"],
              pair=pair(c, name, scratch), verdict=cap(claim_words(c, name, scratch)))
    return said(c["kind"], text, tr("pretraining without labels helps when labels are few"), c["kind"] == "helped")


def say_gtl(out: dict) -> Verdict:
    """The GTL sweep: does guidance beat simply freezing the body, from a related source and an unrelated one."""
    from tl_core.experiments import gtl

    parts = []
    for source in out["config"]["sources"]:
        mine = [c for c in out.get("claims", []) if c["source"] == source and c["question"] == "guidance"]
        by = {k: [c for c in mine if c["kind"] == k] for k in ("helped", "hurt")}
        fill = dict(source=named(source, f"{source} source"))
        if by["hurt"]:
            fill.update(trails=shots(by["hurt"]), behind=behind(by["hurt"], gtl.NAMES))
        if by["helped"] and by["hurt"]:
            parts.append(tr("{source}: guided fine-tuning beats the stronger of freezing the body and plain "
                            "fine-tuning at {shots}, and trails at {trails}: {behind}", shots=shots(by["helped"]),
                            **fill))
        elif by["helped"]:
            parts.append(tr("{source}: guided fine-tuning beats the stronger of freezing the body and plain "
                            "fine-tuning at {shots}", shots=shots(by["helped"]), **fill))
        elif by["hurt"]:
            parts.append(tr("{source}: guided fine-tuning trails at {trails}: {behind}", **fill))
        else:
            parts.append(tr("{source}: guided fine-tuning ties freezing the body at every shots value", **fill))
    hurt = any(c["kind"] == "hurt" for c in out.get("claims", []) if c["question"] == "guidance")
    lesson = " " + tr("From a source that does not fit, the guide keeps the wrong weights: guidance hurts.")
    return Verdict("mixed", ". ".join(cap(p) for p in parts) + "." + (lesson if hurt else ""))


def behind(hurt: list[dict], names_: dict) -> str:
    """Whom each gap is to: "13, 28 and 38 points behind plain fine-tuning", or, when the stronger baseline changes
    with the shots, "13 points behind freezing all but the head (2 shots); 28 points behind plain fine-tuning (5
    shots)". names_: each condition's name in English (another language: `names.condition`)."""
    groups: dict[str, list[dict]] = {}
    for c in hurt:
        groups.setdefault(c["against"], []).append(c)
    return "; ".join(
        tr("{gaps} points behind {name}", gaps=listed(gaps), name=named(against, names_[against]))
        if len(groups) == 1 else
        tr("{gaps} points behind {name} ({shots})", gaps=listed(gaps), name=named(against, names_[against]),
           shots=shots(mine))
        for against, mine in groups.items() for gaps in [[i18n.number(-c["gap"] * 100, 0) for c in mine]])


def listed(items: list[str]) -> str:
    """"a, b and c"."""
    return tr("{items} and {last}", items=", ".join(items[:-1]), last=items[-1]) if len(items) > 1 else items[0]


def shots(claims_: list[dict]) -> str:
    """"2, 5 and 10 shots"."""
    return tr("{shots} shots", shots=listed([str(c["shots"]) for c in claims_]))


def say_peft(out: dict) -> Verdict:
    """The best parameter-efficient method against full fine-tuning: accuracy (the claim), share trained, forgetting."""
    c = out.get("claim")
    if c is None:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    methods = {m["condition"]: m for m in out.get("methods", [])}
    mine, full = methods.get(c["subject"], {}), methods.get(c["against"], {})
    a = named(c["subject"], mine.get("label", c["subject"]))
    b = named(c["against"], full.get("label", c["against"]))
    text = tr("{pair}: {verdict}, training {share} of the weights", pair=pair(c, a, b), verdict=claim_words(c, a, b),
              share=_pct(mine.get("trainable_fraction", 0), 1))
    key = out.get("forgetting_measure", "agreement")
    measure = key if i18n.language() == i18n.DEFAULT else names.measure(key)
    f = out.get("forgetting_claim")
    if f is not None and f.get("subject_mean") is not None:
        fill = dict(said=cap({"helped": tr("{a} forgets far less", a=a), "hurt": tr("{a} forgets more", a=a)}.get(
            f["kind"]) or tr("the seeds cannot tell which forgets less")), measure=measure,
            a_value=i18n.number(f["subject_mean"], 2), b_value=i18n.number(f["against_mean"], 2))
        text = (tr("{head}. {said}: {measure} with the original model {a_value} vs {b_value} (95% interval of the gap "
                   "{low} to {high}), 1 = forgot nothing", head=text, low=i18n.number(f["low"], 2, signed=True),
                   high=i18n.number(f["high"], 2, signed=True), **fill) if f.get("low") is not None else
                tr("{head}. {said}: {measure} with the original model {a_value} vs {b_value}, 1 = forgot nothing",
                   head=text, **fill))
    else:
        forgot = [(m.get("forgetting") or {}).get(key) for m in (mine, full)]
        forgot = [v.get("mean") if isinstance(v, dict) else v for v in forgot]
        if None not in forgot:
            text = tr("{head}; {measure} with the original model {a_value} vs {b_value} (1 = forgot nothing)",
                      head=text, measure=measure, a_value=i18n.number(forgot[0], 2), b_value=i18n.number(forgot[1], 2))
    return Verdict(c["kind"], cap(text) + ".")


def say_text(out: dict) -> Verdict:
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    encoder, same, scratch = tr("the pretrained encoder"), tr("the same model from scratch"), tr("scratch")
    text = tr("With {shots} labelled sentences per topic: {pair}. {verdict}.", shots=out["config"]["shots"],
              pair=pair(c, encoder, same), verdict=cap(claim_words(c, encoder, scratch)))
    return said(c["kind"], text, tr("pretrained language models transfer to few labels"), c["kind"] == "helped")


def say_audio(out: dict) -> Verdict:
    """The best pretrained condition against scratch (what pretraining is worth), then the best condition against the
    strongest other when that is another pair (e.g. the last layer fine-tuned against the frozen encoder)."""
    c, best = out.get("pretraining_claim"), out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    labels = {k: v["label"] for k, v in out.get("conditions", {}).items()}
    fill = dict(shots=out["config"]["shots"], condition=named(c["subject"], labels.get(c["subject"], c["subject"])),
                pair=pair(c, tr("pretrained"), tr("the same network from scratch")),
                verdict=cap(claim_words(c, tr("the pretrained encoder"), tr("scratch"))))
    text = (tr("Telling which word was said from {shots} clips per class, the speech encoder pretrained on "
               "LibriSpeech and VoxCeleb ({condition}): {pair}. {verdict}.", **fill) if out.get("task") == "words" else
            tr("Telling who was speaking from {shots} clips per class, the speech encoder pretrained on LibriSpeech "
               "and VoxCeleb ({condition}): {pair}. {verdict}.", **fill))
    if best is not None and (best["subject"], best["against"]) != (c["subject"], c["against"]):
        a = named(best["subject"], labels.get(best["subject"], best["subject"]))
        b = named(best["against"], labels.get(best["against"], best["against"]))
        text += " " + tr("Best of all: {pair}; {verdict}.", pair=pair(best, a, b), verdict=claim_words(best, a, b))
    return said(c["kind"], text, tr("a pretrained speech encoder transfers to a few clips"), c["kind"] == "helped")


def say_lm(out: dict) -> Verdict:
    """The real language model adjusted for topics: the best method against the strongest other, then prompting
    (no training) against fine-tuning; a tie is called a tie, and prompting winning is said as a lesson too."""
    c = out.get("claim")
    if c is None:
        return Verdict("single", out.get("verdict", ""))
    labels = {m["method"]: m["label"] for m in out.get("methods", [])}
    k = {"k": out["config"]["layers"]} if "layers" in out["config"] else {}
    a = named(c["subject"], labels.get(c["subject"], c["subject"]), **k)
    b = named(c["against"], labels.get(c["against"], c["against"]), **k)
    text = tr("With {shots} labelled sentences per topic: {pair}. {verdict}.", shots=out["config"]["shots"],
              pair=pair(c, a, b), verdict=cap(claim_words(c, a, b)))
    p = out.get("claims", {}).get("prompting")
    if p is not None and p["kind"] == "helped":
        text += " " + tr("Writing the examples into the prompt, with no training at all, beats fine-tuning here: that "
                         "is today's lesson too.")
    elif p is not None and p["kind"] == "tie":
        text += " " + tr("Writing the examples into the prompt, with no training at all, ties fine-tuning here: that "
                         "is today's lesson too.")
    elif p is not None and p["kind"] == "hurt":
        text += " " + tr("Fine-tuning beats writing the examples into the prompt here.")
    return Verdict(c["kind"], text)


def load_words(report: dict) -> str:
    """What loading a state_dict did, from its report's JSON (`state.LoadReport.to_json`), in this language: the
    words of the report's own message, which the JSON keeps in the language it was recorded in."""
    cfg = report.get("config") or {}
    arch, missing = cfg.get("arch", ""), report.get("missing", [])
    n = dict(missing=len(missing), unexpected=len(report.get("unexpected", [])),
             mismatched=len(report.get("mismatched", [])))
    counts = tr("{missing} missing, {unexpected} unexpected, {mismatched} shape-mismatched", **n)
    if report.get("outcome") == "loaded":
        return tr("Loaded all {n} tensors into {arch}: names and shapes match.", n=report.get("n_loaded", 0),
                  arch=arch)
    if report.get("outcome") == "partial":
        return tr("strict off: loaded {n} matching tensors into {arch}; the rest did not load ({counts}). Missing keys "
                  "keep their {init} values.", n=report.get("n_loaded", 0), arch=arch, counts=counts,
                  init=named(cfg.get("init", "scratch")))
    if missing and not n["unexpected"] and not n["mismatched"]:   # the same architecture, a part of it
        more, keys = len(missing) - 3, ", ".join(missing[:3])
        keys = tr("{keys} and {more} more", keys=keys, more=more) if more > 0 else keys
        return tr("Strict loading into {arch} refused the file: every tensor in it matches the model, but {n} of the "
                  "model's keys are not in it ({keys}), and strict asks for all of them. Nothing was loaded; with "
                  "strict off the matching tensors load.", arch=arch, n=len(missing), keys=keys)
    return tr("Strict loading into {arch} failed: {counts}. Nothing was loaded: strict loading needs the same names "
              "and shapes, as the same architecture has.", arch=arch, counts=counts)


def say_weights(out: dict) -> Verdict:
    """The lecture's save/load demo (`lecture_steps.weights_demo`): strict loading, then strict off."""
    if "strict" not in out or "loose" not in out:
        return Verdict(out.get("verdict_kind", "single"), out.get("verdict", ""))
    return Verdict(out.get("verdict_kind", "single"), tr("{strict} Then, {loose}", strict=load_words(out["strict"]),
                                                         loose=load_words(out["loose"])))
