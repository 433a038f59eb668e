"""A GPT small enough to pretrain in a lecture: characters in, the next character out.

The model is nanoGPT's shape (token and position embeddings, pre-norm blocks of causal self-attention and an MLP,
a last LayerNorm, the output layer tied to the token embedding) at about 0.8 M parameters. It reads characters
(printable ASCII and the newline; anything else is read as "?"), so it needs no tokenizer and its samples show
what it learnt letter by letter: noise, then spaces and short words, then words and punctuation.

The corpus ships offline, with nothing downloaded:
- the Python Language Reference's pydoc topics (`pydoc_data.topics`, in the standard library; PSF licence),
  about 465 k characters of English prose;
- chatterbot-corpus's English conversation lines (BSD-3-Clause) of every topic the classification task does
  not use, so that no sentence it is judged on was read in pretraining.

Pretraining is its own small loop (`pretrain`): it samples random windows of the corpus each step, which an
epoch over a fixed training set (`train.fit`) does not express; the classification fine-tuning that follows
goes through `train.fit` as every other experiment does.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

CHARS = "\n" + "".join(chr(c) for c in range(32, 127))   # the vocabulary: newline and printable ASCII
UNKNOWN = CHARS.index("?")
VOCAB = len(CHARS)
_INDEX = {c: i for i, c in enumerate(CHARS)}


def encode(text: str) -> list[int]:
    return [_INDEX.get(c, UNKNOWN) for c in text]


def decode(ids) -> str:
    return "".join(CHARS[int(i)] for i in ids)


@dataclass(frozen=True)
class GPTConfig:
    block_size: int = 96     # characters the model sees at once (its position embeddings)
    n_layer: int = 4         # transformer blocks
    n_head: int = 4          # attention heads per block
    n_embd: int = 128        # width of every token's state
    dropout: float = 0.0     # none: a run of a few hundred steps does not overfit the corpus


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        width = 4 * cfg.n_embd
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, width), nn.GELU(), nn.Linear(width, cfg.n_embd))
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Characters (B, T) → the next character's logits at every position (B, T, VOCAB)."""

    def __init__(self, cfg: GPTConfig = GPTConfig()):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(VOCAB, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, VOCAB, bias=False)
        self.head.weight = self.tok.weight   # tied: the same vectors read and write characters
        self.apply(_init)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """Every position's last state (B, T, n_embd)."""
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.ln(x)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids))

    @torch.no_grad()
    def sample(self, prompt: str, n: int, generator: torch.Generator, temperature: float = 0.8) -> str:
        """`n` characters after `prompt`, drawn from the model's next-character distribution."""
        was = self.training
        self.eval()
        dev = self.tok.weight.device
        ids = torch.tensor([encode(prompt) or [0]], device=dev)
        for _ in range(n):
            logits = self(ids[:, -self.cfg.block_size:])[0, -1] / temperature
            nxt = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=generator).to(dev)
            ids = torch.cat([ids, nxt.view(1, 1)], 1)
        self.train(was)
        return decode(ids[0, len(encode(prompt) or [0]):].tolist())


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())   # (a tied weight counts once)


# ---- the corpus ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def corpus(exclude: tuple[str, ...] = ()) -> str:
    """The pretraining text: the pydoc topics, then chatterbot-corpus's English lines of every topic not in
    `exclude` (the classification task's topics), one per line."""
    import pydoc_data.topics

    from tl_core import text

    docs = "\n\n".join(pydoc_data.topics.topics[k].strip() for k in sorted(pydoc_data.topics.topics))
    lines = [line for topic in text.topics() if topic not in exclude for line in text.sentences(topic)]
    return docs + "\n\n" + "\n".join(lines) + "\n"


def split_corpus(body: str, held_out: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """(training characters, held-out characters): every twentieth stretch of 2,000 characters held out, so both
    halves hold docs and conversation lines."""
    ids = torch.tensor(encode(body), dtype=torch.long)
    stretch, every = 2000, round(1 / held_out)
    chunks = ids.split(stretch)
    held = [c for i, c in enumerate(chunks) if i % every == every - 1]
    kept = [c for i, c in enumerate(chunks) if i % every != every - 1]
    return torch.cat(kept), torch.cat(held)


def windows(ids: torch.Tensor, block: int, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows (x) and the same windows one character later (y)."""
    start = torch.randint(len(ids) - block - 1, (batch,), generator=gen)
    x = torch.stack([ids[s:s + block] for s in start.tolist()])
    y = torch.stack([ids[s + 1:s + block + 1] for s in start.tolist()])
    return x, y


# ---- pretraining: predict the next character -----------------------------------------------------------------

@dataclass
class PretrainLog:
    """What pretraining reports at every logged step: the step, the training loss (mean since the last log),
    the held-out loss, and a sample from a fixed prompt; `status` as train.History says it."""
    step: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    samples: list = field(default_factory=list)   # {"step": ..., "text": ...}
    status: str = "running"
    message: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def estimate_loss(model: GPT, ids: torch.Tensor, batches: int = 4, batch: int = 32, seed: int = 0) -> float:
    """Mean next-character cross-entropy over fixed random windows of `ids` (the same windows every call)."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    dev = model.tok.weight.device
    losses = []
    for _ in range(batches):
        x, y = windows(ids, model.cfg.block_size, batch, gen)
        losses.append(F.cross_entropy(model(x.to(dev)).flatten(0, 1), y.to(dev).flatten()).item())
    model.train(was)
    return float(sum(losses) / len(losses))


def pretrain(model: GPT, train_ids: torch.Tensor, val_ids: torch.Tensor, steps: int, *, lr: float = 3e-3,
             batch: int = 32, log_every: int = 20, seed: int = 0, prompt: str = "The ", sample_chars: int = 80,
             on_log: Callable[[int, PretrainLog], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> PretrainLog:
    """Next-character pretraining for `steps` steps of AdamW with a warm-up and cosine decay; every `log_every`
    steps (and at the first and last) the held-out loss and a sample. Stop is checked before every step; a loss
    that is no longer a finite number ends it as "diverged"."""
    dev = model.tok.weight.device
    gen, sample_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01,
                            betas=(0.9, 0.99))
    warm = max(steps // 10, 1)
    log, running, start = PretrainLog(), [], time.perf_counter()

    def record(step: int) -> None:
        log.step.append(step)
        log.train_loss.append(float(sum(running) / len(running)) if running else estimate_loss(model, train_ids))
        log.val_loss.append(estimate_loss(model, val_ids))
        log.samples.append({"step": step, "text": model.sample(prompt, sample_chars, sample_gen)})
        running.clear()
        if on_log is not None:
            on_log(step, log)

    record(0)
    model.train()
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            log.status, log.message = "stopped", f"stopped by the user after {step - 1} steps"
            break
        # learning rate: linear warm-up, then cosine decay to a tenth
        cosine = 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / (steps - warm + 1)))
        frac = step / warm if step <= warm else cosine
        for g in opt.param_groups:
            g["lr"] = lr * frac
        # forward, backward, update
        x, y = windows(train_ids, model.cfg.block_size, batch, gen)
        loss = F.cross_entropy(model(x.to(dev)).flatten(0, 1), y.to(dev).flatten())
        if not math.isfinite(loss.item()):
            log.status, log.message = "diverged", f"diverged: the loss became NaN/inf at step {step}"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(loss.item())
        if step % log_every == 0 or step == steps:
            record(step)
    else:
        log.status = "finished"
    log.seconds = time.perf_counter() - start
    return log


# ---- the classifier on top: mean of the characters' last states, a linear head ----------------------------------

def encode_batch(texts: list[str], length: int) -> torch.Tensor:
    """Sentences → (N, 2, length) int64: characters (cut to `length`) and a mask of the real ones."""
    out = torch.zeros(len(texts), 2, length, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = encode(t)[:length]
        out[i, 0, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        out[i, 1, :len(ids)] = 1
    return out


class TextClassifier(nn.Module):
    """A GPT body (pretrained or random) and a new linear head on the mean of its real characters' states."""

    def __init__(self, body: GPT, n_classes: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.cfg.n_embd, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = x[:, 0], x[:, 1].unsqueeze(-1).float()
        states = self.body.features(ids)
        return self.head((states * mask).sum(1) / mask.sum(1).clamp(min=1.0))
