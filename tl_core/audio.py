"""Machine listening: mel features, a pretrained speech encoder staged like a backbone, the built-in spoken words.

- **Features**: what the encoder was trained on (resemblyzer's `hparams.py`): 40 mel bands of the *power* spectrum,
  25 ms windows every 10 ms at 16 kHz. A clip is trimmed to its word, its volume raised to -30 dBFS (never
  lowered), and fitted to FRAMES frames (0.64 s): longer ones keep their loudest stretch, shorter ones are padded with
  silence before the word, so the recurrent encoder's last step comes right after the word ends.
- **The encoder**: GE2E (generalised end-to-end loss) speaker encoder from `resemblyzer==0.1.4` (Apache-2.0),
  trained on LibriSpeech and VoxCeleb to tell *speakers* apart: a 3-layer LSTM of width 256 (its last step), then
  Linear 256→256, ReLU, L2-normalised. Only its weights file is read (the package's `pretrained.pt`, installed
  `--no-deps`; the package itself is never imported). Here its layers are stages: lstm 1, lstm 2, lstm 3,
  embedding, classifier, so freezing, the frozen-feature cache and the trainer work unchanged.
- **Spoken words**: `spoken_words()` reads tl_core/assets/spoken_words.ogg (made by tools/make_spoken_words.py
  with espeak-ng): 20 English words and the 10 Spanish digits, 20 voices per language, 2 takes each; noise is
  added here, seeded per clip. Splits keep voices apart (`word_split`) or words apart (`speaker_split`).
- **A small log-mel CNN** (`MelCNN`) for the language shift: pretrained here on the English words.
"""
from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

RATE = 16_000          # samples per second everything is resampled to
N_MELS = 40
WINDOW = 400           # 25 ms
HOP = 160              # 10 ms
FRAMES = 64            # frames a clip is fitted to: 0.64 s (most built-in words fit whole)
HIDDEN = 256
TARGET_DBFS = -30.0
ASSETS = Path(__file__).resolve().parent / "assets"
WORDS_AUDIO, WORDS_INDEX = ASSETS / "spoken_words.ogg", ASSETS / "spoken_words.json"
LANGUAGES = {"en": "English (20 words: ten commands, ten digits)", "es": "Spanish (the ten digits)"}
ENCODER = "ge2e_speaker"
PACKAGE = "resemblyzer"


class SpeechEncoderUnavailable(ValueError):
    """The speech encoder's weights are not installed; the message says how to get them."""


# ---- features ------------------------------------------------------------------------------------------

def mel(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 power mel spectrogram of a 16 kHz waveform: resemblyzer's `wav_to_mel_spectrogram`
    (librosa's melspectrogram: centred frames padded with zeros, a periodic Hann window, |STFT|², Slaney mel
    filters), computed with torch's STFT so that no librosa import (seconds of numba) is needed to featurise."""
    x = torch.from_numpy(np.asarray(wav, np.float32))
    spec = torch.stft(x, WINDOW, HOP, window=torch.hann_window(WINDOW), center=True, pad_mode="constant",
                      return_complex=True).abs() ** 2
    return (torch.from_numpy(mel_filters()) @ spec).T.numpy().astype(np.float32)


@functools.lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(40, 201) Slaney-style mel filterbank (librosa.filters.mel's defaults: Slaney scale and area norm)."""
    def to_mel(f):
        f = np.asarray(f, np.float64)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) / (np.log(6.4) / 27), f / (200 / 3))

    def to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= 15, 1000 * np.exp(np.log(6.4) / 27 * (m - 15)), m * 200 / 3)

    fft = np.linspace(0, RATE / 2, WINDOW // 2 + 1)
    edges = to_hz(np.linspace(to_mel(0), to_mel(RATE / 2), N_MELS + 2))
    widths, ramps = np.diff(edges), edges[:, None] - fft[None, :]
    lower, upper = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def louder(wav: np.ndarray) -> np.ndarray:
    """Volume raised to TARGET_DBFS (never lowered): resemblyzer's `normalize_volume(increase_only=True)`."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 0:
        return wav
    gain = 10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)
    return (wav * gain).astype(np.float32) if gain > 1 else wav


def fit_frames(m: np.ndarray, frames: int = FRAMES) -> np.ndarray:
    """A (T, 40) spectrogram as exactly `frames` frames: the loudest stretch of a longer one; a shorter one with
    silence (zero power) before it, so that the recurrent encoder ends on the word."""
    t = len(m)
    if t >= frames:
        energy = np.convolve(m.sum(1), np.ones(frames), "valid")
        start = int(np.argmax(energy))
        return m[start:start + frames]
    return np.concatenate([np.zeros((frames - t, m.shape[1]), np.float32), m])


def features(wav: np.ndarray) -> np.ndarray:
    """The encoder's input for one clip: (FRAMES, 40) float32."""
    return fit_frames(mel(louder(np.asarray(wav, np.float32))))


def features_of(waves: list[np.ndarray]) -> torch.Tensor:
    """(N, FRAMES, 40) float32 for a list of 16 kHz waveforms (float in [-1, 1], or int16)."""
    return torch.from_numpy(np.stack([features(as_float(w)) for w in waves])) if waves else \
        torch.zeros(0, FRAMES, N_MELS)


def as_float(wav: np.ndarray) -> np.ndarray:
    return wav.astype(np.float32) / 32768.0 if wav.dtype == np.int16 else wav.astype(np.float32)


def log_mel(x: torch.Tensor) -> torch.Tensor:
    """Power mel → decibels (what a spectrogram plot and the CNN read)."""
    return 10 * torch.log10(x.clamp_min(1e-10))


# ---- the pretrained speech encoder, staged -----------------------------------------------------------------

class LSTMLayer(nn.Module):
    """One layer of the encoder's LSTM: (N, T, in) → (N, T, 256), or, for the last, its last step (N, 256)."""

    def __init__(self, inputs: int, last: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(inputs, HIDDEN, 1, batch_first=True)
        self.last = last

    def forward(self, x):
        out, _ = self.lstm(x)
        return out[:, -1] if self.last else out


class Embedding(nn.Module):
    """Linear 256→256, ReLU, L2-normalised: the encoder's speaker embedding."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        return nn.functional.normalize(torch.relu(self.linear(x)), dim=1, eps=1e-12)


class SpeechEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1, self.lstm2, self.lstm3 = LSTMLayer(N_MELS), LSTMLayer(HIDDEN), LSTMLayer(HIDDEN, last=True)
        self.embedding = Embedding()
        self.classifier = nn.Linear(HIDDEN, 2)   # replaced for the task's classes (backbones.reset_head)

    def forward(self, x):
        return self.classifier(self.embedding(self.lstm3(self.lstm2(self.lstm1(x)))))


def split_encoder(m: SpeechEncoder) -> list[tuple[str, nn.Module]]:
    return [("lstm 1", m.lstm1), ("lstm 2", m.lstm2), ("lstm 3", m.lstm3), ("embedding", m.embedding),
            ("classifier", m.classifier)]


def weights_path() -> Path:
    """The installed package's pretrained.pt, found without importing the package (its audio helpers import
    webrtcvad, which it does not need here)."""
    spec = importlib.util.find_spec(PACKAGE)
    where = [Path(p) / "pretrained.pt" for p in (spec.submodule_search_locations or [])] if spec else []
    found = [p for p in where if p.is_file()]
    if not found:
        raise SpeechEncoderUnavailable(f"the speech encoder's weights come from the {PACKAGE} package: "
                                 f"pip install --no-deps {PACKAGE}==0.1.4 (make install does)")
    return found[0]


@functools.lru_cache(maxsize=1)
def checkpoint_state() -> dict[str, torch.Tensor]:
    """The file's `model_state` as it is stored (nn.LSTM's names: lstm.weight_ih_l0, …, linear.weight)."""
    return torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]


def mapped_state() -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the checkpoint's tensors under SpeechEncoder's names, the checkpoint keys left unused: the GE2E loss's
    similarity scale and bias, which only training used)."""
    out, unused = {}, []
    for key, tensor in checkpoint_state().items():
        if key.startswith("lstm."):
            name, layer = key[len("lstm."):].rsplit("_l", 1)
            out[f"lstm{int(layer) + 1}.lstm.{name}_l0"] = tensor
        elif key.startswith("linear."):
            out[f"embedding.{key}"] = tensor
        else:
            unused.append(key)
    return out, unused


def build_encoder(pretrained: bool) -> SpeechEncoder:
    model = SpeechEncoder()
    if pretrained:
        state, _ = mapped_state()
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("classifier.")]:
            raise ValueError(f"the speech encoder's file does not fit: missing {missing}, unexpected {unexpected}")
    return model


def embed(feats: torch.Tensor, net: nn.Module, batch: int = 128) -> torch.Tensor:
    """(N, FRAMES, 40) → (N, 256) unit-norm embeddings through `net`, the encoder up to its embedding
    (`backbones.speech_encoder(pretrained)`)."""
    with torch.no_grad():
        return torch.cat([net(feats[i:i + batch]) for i in range(0, len(feats), batch)]) if len(feats) else \
            torch.zeros(0, HIDDEN)


# ---- a small log-mel CNN (the language shift) ----------------------------------------------------------------

class LogMel(nn.Module):
    """Power mel (N, T, 40) → standardised decibels (N, 1, 40, T)."""

    def forward(self, x):
        db = log_mel(x).transpose(1, 2)[:, None]
        return (db + 50.0) / 25.0


def cnn_stages(num_classes: int) -> list[tuple[str, nn.Module]]:
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))

    return [("conv 1", nn.Sequential(LogMel(), block(1, 16))), ("conv 2", block(16, 32)),
            ("conv 3", nn.Sequential(block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))),
            ("classifier", nn.Linear(64, num_classes))]


# ---- the built-in spoken words --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clips:
    """Labelled clips: int16 16 kHz waveforms (to play), their encoder features, who says what."""
    waves: tuple[np.ndarray, ...]
    feats: torch.Tensor            # (N, FRAMES, 40) float32 power mel
    words: tuple[str, ...]
    voices: tuple[str, ...]
    languages: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.words)

    def rows(self, language: str) -> np.ndarray:
        return np.array([i for i, lang in enumerate(self.languages) if lang == language], dtype=np.int64)


def _noisy(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise at 15-35 dB below the clip's level."""
    level = float(np.sqrt(np.mean(x ** 2))) * 10 ** (-rng.uniform(15, 35) / 20)
    return np.clip(x + rng.normal(0, level, len(x)).astype(np.float32), -1, 1)


@functools.lru_cache(maxsize=1)
def spoken_words() -> Clips:
    """The built-in set, decoded and featurised once per process (a few seconds)."""
    import soundfile as sf

    if not WORDS_AUDIO.exists() or not WORDS_INDEX.exists():
        raise FileNotFoundError(f"{WORDS_AUDIO.name} is missing from tl_core/assets/: recreate it with "
                                f"python tools/make_spoken_words.py (needs espeak-ng)")
    stream, rate = sf.read(WORDS_AUDIO, dtype="float32")
    index = json.loads(WORDS_INDEX.read_text())
    assert rate == index["rate"] == RATE
    rng = np.random.default_rng(0)
    waves, words, voices, langs = [], [], [], []
    for lang, word, voice, _take, start, length in index["clips"]:
        x = _noisy(stream[start:start + length], rng)
        waves.append((x * 32767).astype(np.int16))
        words.append(word)
        voices.append(voice)
        langs.append(lang)
    return Clips(tuple(waves), features_of(waves), tuple(words), tuple(voices), tuple(langs))


def vocabulary(language: str) -> list[str]:
    ds = spoken_words()
    return list(dict.fromkeys(w for w, lang in zip(ds.words, ds.languages) if lang == language))


def voices_of(language: str) -> list[str]:
    ds = spoken_words()
    return list(dict.fromkeys(v for v, lang in zip(ds.voices, ds.languages) if lang == language))


@dataclass(frozen=True)
class Split:
    """One seed's task: rows of the set to train and validate on, their labels, and the voices each side hears."""
    train: np.ndarray
    val: np.ndarray
    labels: torch.Tensor           # a label per row of the whole set (-1: not in this task)
    classes: list[str]
    voices_train: list[str]
    voices_val: list[str]


def _pick(rng, rows: list[int], shots: int, what: str) -> list[int]:
    if len(rows) < shots:
        raise ValueError(f"{what} has only {len(rows)} training clips, fewer than the {shots} shots asked for")
    return sorted(rng.choice(rows, shots, replace=False).tolist())


def word_split(ds: Clips, language: str, shots: int, seed: int, val_voices: int) -> Split:
    """Which word: classes are the language's words; `val_voices` voices (drawn per seed) only validate, and
    `shots` clips per word are drawn from the other voices' clips."""
    voices, words = voices_of(language), vocabulary(language)
    if not 1 <= val_voices <= len(voices) - 1:
        raise ValueError(f"validation voices must be between 1 and {len(voices) - 1} for {language}")
    rng = np.random.default_rng(seed)
    held = set(np.asarray(voices)[rng.permutation(len(voices))[:val_voices]].tolist())
    rows = ds.rows(language)
    labels = torch.full((len(ds),), -1, dtype=torch.long)
    labels[rows] = torch.tensor([words.index(ds.words[i]) for i in rows])
    train = [i for w in words for i in _pick(rng, [r for r in rows if ds.words[r] == w and ds.voices[r] not in held],
                                             shots, f"the word {w!r}")]
    val = [int(r) for r in rows if ds.voices[r] in held]
    return Split(np.array(train), np.array(val), labels, words, sorted({ds.voices[i] for i in train}), sorted(held))


def speaker_split(ds: Clips, language: str, shots: int, seed: int, val_words: int) -> Split:
    """Who is speaking: classes are the language's voices; `val_words` words (drawn per seed) only validate, so
    a voice is recognised in words never heard from it in training."""
    voices, words = voices_of(language), vocabulary(language)
    if not 1 <= val_words <= len(words) - 1:
        raise ValueError(f"validation words must be between 1 and {len(words) - 1} for {language}")
    rng = np.random.default_rng(seed)
    held = set(np.asarray(words)[rng.permutation(len(words))[:val_words]].tolist())
    rows = ds.rows(language)
    labels = torch.full((len(ds),), -1, dtype=torch.long)
    labels[rows] = torch.tensor([voices.index(ds.voices[i]) for i in rows])
    train = [i for v in voices for i in _pick(rng, [r for r in rows if ds.voices[r] == v and ds.words[r] not in held],
                                              shots, f"the voice {v!r}")]
    val = [int(r) for r in rows if ds.words[r] in held]
    return Split(np.array(train), np.array(val), labels, voices, voices, voices)
