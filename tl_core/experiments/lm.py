"""Language models, the decks' prime example of transfer: a real pretrained next-word model (SmolLM2-135M-Instruct,
offline: `tl_core.causal_lm`).

    lm-next  what pretraining taught it: the next-word distribution after a prompt and a short greedy continuation,
             the pretrained model beside the same architecture with random weights, and both perplexities on
             held-out text. Nothing trains.
    lm       adjusting it for a task (the text page's topics) at a few shots per topic, over seeds: frozen features
             + a head, LoRA, the last layers trained, random weights, and prompting (`tl_core.lm_tuning`):
             accuracy, the share of weights trained, the bytes a fine-tuned copy needs, seconds per epoch, and the
             perplexity on held-out text after each (what fine-tuning forgets). Each verdict by the claims rule
             against the strongest other method.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tl_core import causal_lm, claims, contract, lm_tuning, narration, text
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import N_, fmt, tr
from tl_core.lm_tuning import FINE_TUNED, LABELS, METHODS
from tl_core.serve.estimates import units
from tl_core.train import History

PROMPT = "The capital of France is"
SHORT = {"feature": N_("frozen features + head"), "lora": N_("LoRA"), "last_k": N_("last k layers trained"),
         "scratch": N_("random weights"), "prompt": N_("prompting (no training)")}   # the methods as a page lists them


def _prompt_problem(prompt: str) -> str:
    if not prompt.strip():
        return "the prompt is empty: type a few words"
    if len(prompt) > causal_lm.CONTEXT * 16:   # no need to read the tokenizer to know this one is too long
        return f"the prompt is {len(prompt):,} characters: the model reads at most {causal_lm.CONTEXT} tokens here"
    try:   # in tokens once the model is converted (the run checks it anyway)
        if causal_lm.converted():
            causal_lm.check_prompt(prompt)
    except ValueError as err:
        return str(err)
    return ""


@dataclass(frozen=True)
class NextConfig:
    prompt: str = setting(PROMPT, "the text the model continues", check=_prompt_problem, title="Prompt")
    top: int = setting(10, "next tokens listed, most likely first", lo=1, hi=50, title="Tokens listed")
    tokens: int = setting(20, "tokens of greedy continuation (the most likely token each time)", lo=1, hi=100,
                          title="Continuation (tokens)", span=(5, 60))


@dataclass
class NextResult(contract.Result):
    config: NextConfig
    next_word: dict = field(default_factory=dict)
    continuation: dict = field(default_factory=dict)
    perplexity: dict = field(default_factory=dict)
    parameters: int = 0
    kind = "lm-next"
    headline = "perplexity.pretrained"

    def body(self) -> dict:
        return {"model": causal_lm.NAME, "parameters": self.parameters, "next_word": self.next_word,
                "continuation": self.continuation, "perplexity": self.perplexity}

    def metrics(self) -> dict[str, float]:
        out = {f"perplexity.{k}": v for k, v in self.perplexity.items()}
        for k in ("pretrained", "random"):
            if self.next_word.get(k):
                out[f"next_word.{k}.top_p"] = self.next_word[k][0]["p"]
        return out

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        p, r = self.next_word["pretrained"][0], self.next_word["random"][0]
        return Verdict("single", tr("After “{prompt}” the pretrained model's most likely next token is “{token}” (p = "
                                    "{p}); with random weights it is “{random_token}” (p = {random_p}: it spreads its "
                                    "bets over all {vocab} tokens it knows). On held-out text its perplexity is "
                                    "{perplexity} against {random_perplexity}: pretraining on next-word prediction "
                                    "taught it English and facts.", prompt=self.config.prompt, token=p["token"],
                                    p=fmt(p["p"], ".0%"), random_token=r["token"], random_p=fmt(r["p"], ".2%"),
                                    vocab=fmt(causal_lm.VOCAB, ","),
                                    perplexity=fmt(self.perplexity["pretrained"], ".1f"),
                                    random_perplexity=fmt(self.perplexity["random"], ",.0f")))


def run_next(cfg: NextConfig = NextConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
             device: str = "auto") -> NextResult:
    """The next-word distribution, a greedy continuation and the perplexity, pretrained and random."""
    start = time.perf_counter()
    contract.validate(cfg)
    out = NextResult(config=cfg, device=devices.describe(torch.device("cpu")))
    for i, kind in enumerate(("pretrained", "random")):
        if should_stop is not None and should_stop():
            out.status, out.message = "stopped", "stopped by the user"
            break
        if progress is not None:
            progress(i / 2, f"the {kind} model reads the prompt")
        model = causal_lm.shared(kind == "pretrained")
        out.parameters = causal_lm.parameters(model)
        out.next_word[kind] = causal_lm.next_words(model, cfg.prompt, cfg.top)
        out.continuation[kind] = causal_lm.continuation(model, cfg.prompt, cfg.tokens)
        out.perplexity[kind] = base_perplexity(kind)
    out.next_word["prompt"] = cfg.prompt
    out.seconds = time.perf_counter() - start
    return out


_PERPLEXITY: dict[str, float] = {}


def base_perplexity(kind: str) -> float:
    """The untouched model's perplexity on the held-out text (once per process)."""
    if kind not in _PERPLEXITY:
        _PERPLEXITY[kind] = causal_lm.perplexity(causal_lm.shared(kind == "pretrained"))
    return _PERPLEXITY[kind]


# ---- adjusting it for a task ---------------------------------------------------------------------------------

def _methods_problem(methods: tuple) -> str:
    if not methods:
        return "choose at least one method"
    return "each method once, please" if len(set(methods)) < len(methods) else ""


def _classes_problem(classes: tuple) -> str:
    if len(classes) < 2:
        return "choose at least 2 topics"
    return "each topic once, please" if len(set(classes)) < len(classes) else ""


@dataclass(frozen=True)
class LMConfig:
    classes: tuple[str, ...] = setting(("money", "science", "sports", "emotion"), "topics to tell apart, "
                                       "comma-separated", check=_classes_problem, title="Topics (classes)")
    methods: tuple[str, ...] = setting(tuple(METHODS), "what to compare, comma-separated", choices=METHODS,
                                       check=_methods_problem, title="Methods")
    shots: int = setting(4, "labelled sentences per topic (trained on, or written into the prompt)", lo=1, hi=32,
                         title="Sentences per topic", steps=(1, 2, 4, 8, 16))
    layers: int = setting(2, "k: how many of the last layers train (the last layers trained, and from scratch) or "
                             "get LoRA adapters", lo=1, hi=8,
                          title="k: last layers adjusted")
    rank: int = setting(8, "LoRA rank", lo=1, hi=64, title="LoRA rank", steps=(1, 2, 4, 8, 16, 32))
    epochs: int = setting(12, "passes over the training sentences", lo=1, hi=200, title="Epochs", span=(1, 40))
    lr: float = setting(1e-2, "Adam learning rate of the new head", lo=1e-6, hi=1, title="Head learning rate",
                        steps=(1e-3, 3e-3, 1e-2, 3e-2))
    layer_lr: float = setting(1e-4, "learning rate of the layers that train (the last layers trained, and from "
                                    "scratch)", lo=1e-7, hi=1,
                              label="layer lr", title="Layer learning rate", steps=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3))
    lora_lr: float = setting(1e-3, "learning rate of LoRA's adapters", lo=1e-7, hi=1, label="lora lr",
                             title="LoRA learning rate", steps=(1e-4, 3e-4, 1e-3, 3e-3))
    batch_size: int = setting(16, "sentences per step", lo=1, hi=512, label="batch size")
    max_length: int = setting(24, "tokens read of each sentence", lo=4, hi=128, label="max length",
                              title="Tokens per sentence (max)", steps=(8, 16, 24, 32, 64))
    seeds: int = setting(3, "runs per method (each seed: its own training sentences and validation set)", lo=1,
                         hi=10, title="Seeds", span=(1, 6))
    seed: int = setting(0, "first seed: split, head init, LoRA init, prompt order", lo=0)
    val_per_class: int = setting(8, "fixed validation sentences per topic", lo=1, hi=100,
                                 title="Validation sentences per topic", span=(2, 30))

    def check(self) -> None:
        unknown = [c for c in self.classes if c not in text.topics()]
        if unknown:
            raise ValueError(f"unknown topic {unknown[0]!r}: choose from {', '.join(text.topics())}")
        if "prompt" in self.methods and causal_lm.converted():   # (the run checks it anyway)
            lm_tuning.first_tokens(list(self.classes))

    def label(self, method: str) -> str:
        return LABELS[method].format(k=self.layers, shots=self.shots)


@dataclass
class LMResult(contract.ConditionsResult):
    config: LMConfig
    classes: list[str]
    runs: list = field(default_factory=list)
    base_perplexity: dict = field(default_factory=dict)
    next_word: dict = field(default_factory=dict)
    prepared_seconds: float = 0.0
    kind = "lm"
    headline = "val_acc"

    def runs_of(self, method: str) -> list:
        return [r for r in self.runs if r.method == method]

    def ran(self) -> list[str]:
        return [m for m in self.config.methods if self.runs_of(m)]

    def summary(self, method: str) -> dict:
        runs = [r for r in self.runs_of(method) if r.history.status == "finished"]
        acc = contract.seed_stats([r.val_acc for r in runs])
        first = self.runs_of(method)[0]
        per_epoch = [r.seconds_per_epoch for r in runs if r.seconds_per_epoch is not None]
        return {"method": method, "label": self.config.label(method), "val_acc": acc["mean"],
                "val_acc_std": acc["std"], "val_acc_mean": acc["mean"], "val_acc_seeds": acc["seeds"],
                "seeds": [r.seed for r in runs], "train_acc": contract.seed_stats([r.train_acc for r in runs])["mean"],
                "trainable": first.trainable, "trainable_fraction": first.trainable / first.total,
                "bytes_saved": 4 * first.trainable,
                "seconds_per_epoch": float(np.mean(per_epoch)) if per_epoch else None,
                "seconds": float(np.mean([r.seconds for r in runs])) if runs else None,
                "perplexity_after": float(np.exp(np.mean(np.log([r.perplexity_after for r in runs])))) if runs
                else None,
                "history": {k: getattr(first.history, k) for k in lm_tuning.CURVES},
                "histories": [{k: getattr(r.history, k) for k in lm_tuning.CURVES} for r in self.runs_of(method)],
                "status": first.history.status}

    def values(self) -> dict[str, dict[int, float]]:
        return {m: {r.seed: r.val_acc for r in self.runs_of(m) if r.history.status == "finished"} for m in self.ran()}

    def claims(self) -> dict:
        return claims_of(self.values())

    def body(self) -> dict:
        found = self.claims()
        return {"methods": [self.summary(m) for m in self.ran()], "classes": self.classes, "model": causal_lm.NAME,
                "base_perplexity": self.base_perplexity, "next_word": self.next_word, "claim": found.get("best"),
                "claims": found, "prepared_seconds": round(self.prepared_seconds, 3)}

    def verdict(self) -> Verdict:
        if self.status != "finished":
            return self.ended_early()
        return say(self.claims(), self.config)


def claims_of(values: dict[str, dict[int, float]]) -> dict:
    """The claims the page speaks from, as JSON: `best`, the best method against the strongest other; `prompting`,
    prompting against the best fine-tuned method; `pretraining`, the best pretrained method against random weights."""
    have = {m: v for m, v in values.items() if v}
    out = {}
    if len(have) >= 2:
        best = claims.best_of(have, list(have))
        out["best"] = claims.compare(best, have).to_json()
    tuned = [m for m in FINE_TUNED if m in have]
    if "prompt" in have and tuned:
        out["prompting"] = claims.compare("prompt", have, tuned).to_json()
    pretrained = [m for m in (*FINE_TUNED, "prompt") if m in have]
    if "scratch" in have and pretrained:
        out["pretraining"] = claims.compare(claims.best_of(have, pretrained), have, ["scratch"]).to_json()
    return out


def say(found: dict, cfg: LMConfig) -> Verdict:
    """The verdict: the best method against the strongest other, then prompting against fine-tuning."""
    if "best" not in found:
        return Verdict("single", tr("Add a second method to compare."))
    best = claims.Claim.from_json(found["best"])
    text_ = tr("At {n} sentences per topic, {claim}", n=cfg.shots,
               claim=best.sentence(cfg.label(best.subject), cfg.label(best.against)))
    if "prompting" in found:
        p = claims.Claim.from_json(found["prompting"])
        lead = {"helped": tr("Prompting, with no training at all, beats fine-tuning here"),
                "tie": tr("Prompting, with no training at all, ties fine-tuning here"),
                "single": ""}.get(p.kind, tr("Fine-tuning beats prompting here"))
        same = (p.subject, p.against) in ((best.subject, best.against), (best.against, best.subject))
        if lead:
            text_ += f" {lead}{'.' if same else ': ' + p.sentence(cfg.label(p.subject), cfg.label(p.against))}"
    return Verdict(best.kind, text_)


# ---- the run --------------------------------------------------------------------------------------------------

def run(cfg: LMConfig = LMConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> LMResult:
    """Every method and seed: the frozen layers once, then each method through `train.fit` (prompting: no
    training), accuracy, the share trained, seconds per epoch and the perplexity after."""
    start = time.perf_counter()
    contract.validate(cfg)
    if "prompt" in cfg.methods:
        lm_tuning.first_tokens(list(cfg.classes))
    ds = text.load("topics", cfg.classes)
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    splits = {s: text.few_shot_split(ds, cfg.shots, s, cfg.val_per_class) for s in seeds}
    used = sorted({int(i) for tr, va in splits.values() for i in (*tr, *va)})
    where = {row: j for j, row in enumerate(used)}   # dataset row → its row in the prepared tensors
    texts = lm_tuning.cut([ds.texts[i] for i in used], cfg.max_length)
    labels = ds.labels[used]
    result = LMResult(config=cfg, classes=list(ds.classes), device=devices.describe(torch.device("cpu")))
    # what pretraining taught it, before it is adjusted (the lecture's step shows it beside the methods)
    result.next_word = {"prompt": PROMPT, "pretrained": causal_lm.next_words(causal_lm.shared(True), PROMPT, 8)}
    depth = lm_tuning.LAYERS - cfg.layers
    trains = [m for m in cfg.methods if m != "prompt"]
    prep = None
    if trains:
        def said(message: str) -> None:
            if progress is not None:
                progress(0.0, f"Computing {message}…")

        try:
            prep = lm_tuning.prepare(causal_lm.encode_texts(texts, cfg.max_length), depth, "scratch" in trains,
                                     should_stop, said)
        except contract.Stopped as stop:
            result.status, result.message = "stopped", str(stop)
            result.seconds = time.perf_counter() - start
            return result
        result.base_perplexity = dict(prep.perplexity)
    result.prepared_seconds = time.perf_counter() - start

    def train_one(cell, on_epoch, should_stop):
        tr, va = ([where[int(i)] for i in part] for part in splits[cell.seed])
        if cell.condition == "prompt":
            return _prompting(cfg, cell.seed, texts, labels, list(ds.classes), (tr, va), should_stop, prep)
        run_, _ = lm_tuning.train(cell.condition, prep, (tr, va), labels, len(ds.classes), cell.seed,
                                  epochs=cfg.epochs, lr=cfg.lr, layer_lr=cfg.layer_lr, lora_lr=cfg.lora_lr,
                                  rank=cfg.rank, batch_size=cfg.batch_size,
                                  hooks={"on_epoch": on_epoch, "should_stop": should_stop})
        return run_

    out = contract.run_cells(contract.plan(cfg.methods, cfg.seeds, cfg.seed), train_one, progress, should_stop,
                             epochs=cfg.epochs, span=(0.25 if trains else 0.0, 1.0))
    result.runs, result.status, result.message = out.results, out.status, out.message
    result.seconds = time.perf_counter() - start
    return result


def _prompting(cfg: LMConfig, seed: int, texts: list[str], labels: torch.Tensor, classes: list[str], split,
               should_stop, prep) -> lm_tuning.MethodRun:
    """Prompting for one seed: that seed's training sentences as the prompt's examples (in an order drawn from the
    seed), each validation sentence asked."""
    tr, va = split
    order = np.random.default_rng(seed).permutation(len(tr))
    examples = [(texts[tr[i]], classes[int(labels[tr[i]])]) for i in order]
    begin = time.perf_counter()
    guesses = lm_tuning.prompt_predict(examples, [texts[i] for i in va], classes, should_stop)
    hist = History(task="classification")
    if guesses is None:
        hist.status, hist.message = "stopped", "stopped by the user while prompting"
        acc = float("nan")
    else:
        acc = float(np.mean([g == int(labels[i]) for g, i in zip(guesses, va)]))
        hist.status, hist.val_acc = "finished", [acc]
    total = causal_lm.parameters(causal_lm.shared(True))
    ppl = prep.perplexity["pretrained"] if prep is not None else base_perplexity("pretrained")
    return lm_tuning.MethodRun("prompt", seed, hist, acc, float("nan"), 0, total, None, ppl,
                               time.perf_counter() - begin)


# ---- the command line ---------------------------------------------------------------------------------------------

def _next_text(result: NextResult, out: dict) -> str:
    lines = [f"{causal_lm.NAME} after {result.config.prompt!r}:"]
    for kind in ("pretrained", "random"):
        tops = ", ".join(f"{t['token']!r} {t['p']:.1%}" for t in out["next_word"][kind][:5])
        lines += [f"  {kind:<10} next: {tops}", f"  {'':<10} continues: {out['continuation'][kind]!r}",
                  f"  {'':<10} perplexity on held-out text: {out['perplexity'][kind]:,.1f}"]
    return "\n".join(lines + [out["verdict"]])


def _text(result: LMResult, out: dict) -> str:
    lines = [f"{causal_lm.NAME} on {len(result.classes)} topics, {result.config.shots} sentences per topic, "
             f"{result.config.seeds} seed(s), in {result.seconds:.1f} s"]
    for m in out["methods"]:
        per = f"{m['seconds_per_epoch']:.2f} s/epoch" if m["seconds_per_epoch"] is not None else "no training"
        lines.append(f"  {m['label']:<34} val acc {m['val_acc_mean']:.3f} ± {m['val_acc_std']:.3f}  trains "
                     f"{m['trainable_fraction']:.3%}  {per}  perplexity after {m['perplexity_after']:,.1f}")
    return "\n".join(lines + [out["verdict"]])


def _available(record: dict) -> float:
    return units(1)


EXPERIMENTS = (
    contract.Experiment("lm-next", "a real pretrained next-word model (SmolLM2-135M) beside random weights: the next "
                                   "word after a prompt, a continuation, perplexity", NextConfig, run_next,
                        text=_next_text, page="lm", plots="lm", cost=_available),
    contract.Experiment("lm", "adjusting SmolLM2-135M for topics at a few shots: frozen features, LoRA, last layers, "
                              "random weights, prompting", LMConfig, run, text=_text, page="lm", plots="lm",
                        cost=lambda c: units(c["seeds"], c["epochs"], len(c["methods"]), c["shots"]),
                        narrate=narration.say_lm),
)
