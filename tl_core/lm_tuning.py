"""Adjusting a real pretrained language model (SmolLM2-135M, `tl_core.causal_lm`) for a task at a few shots per
class, five ways:

    feature  frozen features: the pretrained model frozen, a new linear head on the mean of its last layer's states
    lora     LoRA (peft) on the attention projections (q, k, v, o) of the last k layers, and the head
    last_k   the last k layers and the final norm trained, and the head; the layers below frozen
    scratch  the same architecture from random weights, trained as last_k is (the random layers below stay frozen:
             all 135 M weights trained from scratch take minutes per seed on a CPU)
    prompt   prompting: the k examples per class written into the prompt, then each sentence and "Topic:"; the
             model's next token among the topics' first tokens is its answer. Nothing trains.

Every method that trains goes through `train.fit` on the layers from `depth` = 30 − k up (`causal_lm.Suffix`),
over hidden states computed once below them (`LMInputs`): the frozen bottom costs one pass per run, not one per
epoch and seed. What fine-tuning forgets is measured the same way: the perplexity of the whole model, with the
tuned top layers, on held-out general text (`causal_lm.general_text`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from tl_core import causal_lm
from tl_core.i18n import N_
from tl_core.train import FitConfig, History, evaluate, fit

METHODS = {
    "feature": "frozen features: the pretrained model frozen, a new linear head on its last layer's mean state",
    "lora": "LoRA on the attention projections (q, k, v, o) of the last k layers, and the head",
    "last_k": "the last k layers (and the final norm) trained, and the head; the layers below frozen",
    "scratch": "the same architecture from random weights, trained as last_k is (the layers below stay random)",
    "prompt": "prompting: the k examples per class written into the prompt; no training at all",
}
LABELS = {"feature": N_("frozen features + head"), "lora": N_("LoRA (last {k} layers)"),
          "last_k": N_("last {k} layers trained"), "scratch": N_("random weights, last {k} trained"),
          "prompt": N_("prompting ({shots} examples/topic)")}
FINE_TUNED = ("feature", "lora", "last_k")   # the pretrained methods that train
LAYERS = 30
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")


@dataclass
class LMInputs:
    """What every seed and method share: the sentences' tokens, the hidden states entering layer `depth` of the
    pretrained (and, for scratch, the random) model, and the held-out text's, with the base perplexities."""
    x: torch.Tensor                     # (N, 2, L) token ids and mask of the sentences used
    depth: int
    states: dict                        # "pretrained" / "random" → (N, L, 577)
    general: torch.Tensor               # (M, 2, L') the held-out text
    general_states: dict                # as `states`, for the held-out text
    perplexity: dict                    # "pretrained" / "random" → the untouched model's perplexity
    features: torch.Tensor | None = None   # (N, 576): the pretrained model's pooled last layer ("feature")


def prepare(x: torch.Tensor, depth: int, random: bool, should_stop=None, progress=None) -> LMInputs:
    """Run the frozen layers once over the sentences (and the held-out text), for the pretrained model and, when
    `random`, the same architecture with random weights (seed 0: scratch's frozen bottom is the same for every
    seed; its trained top starts from that seed's draw)."""
    general = causal_lm.encode_texts(causal_lm.general_text(), 96)
    prep = LMInputs(x, depth, {}, general, {}, {})
    for kind in ("pretrained", "random") if random else ("pretrained",):
        if progress is not None:
            progress(f"the {kind} model's first {depth} layers over {len(x)} sentences (once for every seed)")
        model = causal_lm.shared(kind == "pretrained")
        prep.states[kind] = causal_lm.prefix_states(model, x, depth, should_stop=should_stop)
        prep.general_states[kind] = causal_lm.prefix_states(model, general, depth, should_stop=should_stop)
        prep.perplexity[kind] = causal_lm.Suffix(model, depth).perplexity(prep.general_states[kind], general)
        if kind == "pretrained":
            with torch.no_grad():
                prep.features = causal_lm.Suffix(model, depth)(prep.states[kind])
    return prep


class TopClassifier(nn.Module):
    """The top of the model (a Suffix, perhaps with LoRA layers in it) and a new linear head on its mean state."""

    def __init__(self, top: nn.Module, n_classes: int, seed: int):
        super().__init__()
        self.top = top
        torch.manual_seed(seed)
        self.head = nn.Linear(causal_lm.HIDDEN, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.top(x))


@dataclass
class MethodRun:
    method: str
    seed: int
    history: History
    val_acc: float
    train_acc: float
    trainable: int          # weights trained (the head included)
    total: int              # weights of the whole model (the base and the head)
    seconds_per_epoch: float | None
    perplexity_after: float
    seconds: float = 0.0


def lora_config(rank: int):
    """LoRA on every attention projection of a Suffix (its layers are the adapted ones), lora_alpha = 2 · rank."""
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, bias="none",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def build(method: str, depth: int, n_classes: int, seed: int, rank: int = 8) -> tuple[nn.Module, nn.Module]:
    """(the classifier to train, its top as the language model sees it: Suffix or peft's model around it)."""
    from tl_core import adapters

    base = causal_lm.shared(method != "scratch")
    top = causal_lm.Suffix(base, depth)
    if method == "scratch":   # the top layers drawn afresh from this seed, as transformers initialises them
        torch.manual_seed(seed)
        for m in top.layers.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, base.config.initializer_range)
    if method == "lora":
        torch.manual_seed(seed)
        wrapped = adapters.wrap(top, lora_config(rank))
        return TopClassifier(wrapped, n_classes, seed), wrapped
    for p in [*top.layers.parameters(), *top.norm.parameters()]:
        p.requires_grad_(method in ("last_k", "scratch"))
    return TopClassifier(top, n_classes, seed), top


def merged(clf: TopClassifier) -> TopClassifier:
    """A LoRA classifier with its adapters merged into the layers' weights: a plain Suffix and the same head."""
    out = copy.deepcopy(clf)
    out.top = out.top.merge_and_unload()
    return out


def trainable_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train(method: str, prep: LMInputs, split: tuple, labels: torch.Tensor, n_classes: int, seed: int, *,
          epochs: int, lr: float, layer_lr: float, lora_lr: float, rank: int, batch_size: int,
          hooks: dict) -> tuple[MethodRun, TopClassifier]:
    """One method, one seed, through `train.fit`: the head at `lr`, trained layers at `layer_lr`, LoRA's
    adapters at `lora_lr`."""
    tr, va = (torch.as_tensor(i) for i in split)
    total = causal_lm.parameters(causal_lm.shared(True)) + causal_lm.HIDDEN * n_classes + n_classes
    if method == "feature":   # the head alone, on the pooled features computed once
        torch.manual_seed(seed)
        head = nn.Linear(causal_lm.HIDDEN, n_classes)
        x_tr, x_va, net = prep.features[tr], prep.features[va], head
        groups = [{"params": list(head.parameters()), "lr": lr}]
        clf, top = None, None
    else:
        clf, top = build(method, prep.depth, n_classes, seed, rank)
        kind = "random" if method == "scratch" else "pretrained"
        x_tr, x_va, net = prep.states[kind][tr], prep.states[kind][va], clf
        groups = [{"params": list(clf.head.parameters()), "lr": lr},
                  {"params": [p for p in clf.top.parameters() if p.requires_grad],
                   "lr": lora_lr if method == "lora" else layer_lr}]
    hist = fit(net, (x_tr, labels[tr]), (x_va, labels[va]), FitConfig(epochs=epochs, lr=lr, batch_size=batch_size,
                                                                      seed=seed), params=groups, **hooks)
    _, train_acc = evaluate(net, (x_tr, labels[tr]), "classification", batch_size)
    kind = "random" if method == "scratch" else "pretrained"
    if top is None:
        after = prep.perplexity["pretrained"]   # nothing of the language model changed
    else:
        lm_top = top.base_model.model if method == "lora" else top
        after = lm_top.perplexity(prep.general_states[kind], prep.general)
    trained = trainable_of(net)
    val_acc = hist.val_acc[-1] if hist.val_acc else float("nan")
    per_epoch = hist.seconds / max(len(hist.train_loss), 1) if hist.train_loss else None
    run = MethodRun(method, seed, hist, float(val_acc), float(train_acc), trained, total, per_epoch, float(after),
                    hist.seconds)
    return run, clf


# ---- prompting: the examples in the prompt, no training ---------------------------------------------------------

def label_word(cls: str) -> str:
    return cls.replace("_", " ")


def prompt_text(examples: list[tuple[str, str]], classes: list[str]) -> str:
    head = f"Sort each sentence into one of these topics: {', '.join(label_word(c) for c in classes)}.\n\n"
    return head + "".join(f"Sentence: {s}\nTopic: {label_word(c)}\n\n" for s, c in examples)


def first_tokens(classes: list[str]) -> list[int]:
    """Each topic's first token after "Topic:" (" money" → one id); ValueError when two topics share one."""
    tok = causal_lm.tokenizer()
    ids = [tok(" " + label_word(c), add_special_tokens=False)["input_ids"][0] for c in classes]
    if len(set(ids)) < len(ids):
        raise ValueError("two of these topics start with the same token: prompting cannot tell them apart")
    return ids


@torch.no_grad()
def prompt_predict(examples: list[tuple[str, str]], queries: list[str], classes: list[str],
                   should_stop=None) -> list[int] | None:
    """The class each query is given: the examples read once (their keys and values kept), then per query its
    sentence and "Topic:", and the most likely of the topics' first tokens. None when stopped."""
    from transformers import DynamicCache

    model, tok = causal_lm.shared(True), causal_lm.tokenizer()
    candidates = torch.tensor(first_tokens(classes))
    prefix = torch.tensor([tok(prompt_text(examples, classes), add_special_tokens=False)["input_ids"]])
    cache = DynamicCache()
    model(input_ids=prefix, cache=cache, use_cache=True)
    n = prefix.shape[1]
    out = []
    for q in queries:
        if should_stop is not None and should_stop():
            return None
        ids = torch.tensor([tok(f"Sentence: {q}\nTopic:", add_special_tokens=False)["input_ids"]])
        logits = model(input_ids=ids, cache=cache, use_cache=True,
                       attention_mask=torch.ones(1, n + ids.shape[1], dtype=torch.long)).logits[0, -1]
        cache.crop(-ids.shape[1])   # back to the examples alone
        out.append(int(logits[candidates].argmax()))
    return out


def cut(texts: list[str], max_length: int) -> list[str]:
    """Each text cut to its first `max_length` tokens (what the fine-tuned methods read of it too)."""
    tok = causal_lm.tokenizer()
    return [tok.decode(tok(t, add_special_tokens=False)["input_ids"][:max_length]) for t in texts]
