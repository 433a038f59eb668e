"""Your own clips: recordings from the browser, or a zip of class folders of WAV/FLAC/OGG files → labelled clips.

The audio twin of `userdata.py`, and as wary: nothing is extracted to disk; each zip entry goes through
`safeio.read_entry` (declared sizes counted, stored/deflated only); each file's duration is read from its header
and charged to the upload's `safeio.Budget` *before* it is decoded, and decoding reads at most MAX_CLIP_SECONDS
(one frame more means the header lied: refused), so a tiny file claiming hours of audio costs a header read. A clip
is mixed down to mono, resampled to 16 kHz, trimmed to its sound and kept (its loudest KEEP_SECONDS) as int16.
Every refusal is one line: silence, a clip under MIN_SECONDS of sound, one over MAX_CLIP_SECONDS, a file that is
not audio, a format other than WAV/FLAC/OGG.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from functools import cached_property
from hashlib import sha256
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from tl_core import audio, safeio, userdata
from tl_core.i18n import N_, fmt, tr

UPLOAD_LIMIT_MB = userdata.UPLOAD_LIMIT_MB
MAX_ENTRIES = 5_000
MAX_CLIPS = 1_000
MAX_TOTAL_BYTES = 500 * 2 ** 20
MAX_FILE_BYTES = 20 * 2 ** 20
MAX_CLIP_SECONDS = 30.0             # declared or decoded: longer is refused
MAX_AUDIO_SECONDS = 20 * 60.0       # decoded in all from one upload
MAX_DECODE_SECONDS = 60             # spent reading one upload; then it stops, keeping what it read
MAX_RATE, MAX_CHANNELS = 96_000, 2
MIN_SECONDS = 0.3                   # of sound, after trimming the silence around it
KEEP_SECONDS = 3.0                  # the loudest stretch kept of a longer clip
SILENCE = 10 ** (-50 / 20)          # peak under -50 dBFS: nothing was said
SUFFIXES = {".wav", ".flac", ".ogg", ".oga"}
FORMATS = {"WAV", "WAVEX", "FLAC", "OGG"}
LAYOUT = N_("Expected layout: one folder per class with its clips inside, e.g. yes/1.wav, yes/2.wav, no/1.flac "
            "(one extra top folder, like my_words/yes/1.wav, is fine).")   # tr(LAYOUT) where it is shown


def limits_text() -> str:
    return tr("WAV, FLAC or OGG; at most {seconds} s and {mb} MB per clip, at least {least} s of sound; {clips} clips, "
              "{minutes} minutes of audio and {total} MB unpacked per upload", seconds=fmt(MAX_CLIP_SECONDS, "g"),
              mb=MAX_FILE_BYTES // 2 ** 20, least=fmt(MIN_SECONDS, "g"), clips=fmt(MAX_CLIPS, ","),
              minutes=fmt(MAX_AUDIO_SECONDS / 60, "g"), total=MAX_TOTAL_BYTES // 2 ** 20)


class BadClip(ValueError):
    """One file that is not a usable clip; the message is the reason shown."""


def upload_budget() -> safeio.Budget:
    return safeio.Budget(bytes=MAX_TOTAL_BYTES, audio=MAX_AUDIO_SECONDS, seconds=MAX_DECODE_SECONDS)


def decode(raw: bytes, budget: safeio.Budget | None = None) -> np.ndarray:
    """Audio bytes → int16 16 kHz mono, trimmed to its sound. BadClip (one line) for what cannot be used;
    safeio.BudgetSpent when the upload's audio budget would be overrun (checked from the header, before decoding)."""
    import soundfile as sf

    if len(raw) > MAX_FILE_BYTES:
        raise BadClip(tr("larger than {mb} MB", mb=MAX_FILE_BYTES // 2 ** 20))
    try:
        f = sf.SoundFile(io.BytesIO(raw))
    except Exception:  # noqa: BLE001 - libsndfile's errors for a file it cannot parse
        raise BadClip(tr("not an audio file that can be read (use WAV, FLAC or OGG)")) from None
    with f:
        if f.format not in FORMATS:
            raise BadClip(tr("{format} audio is not supported (use WAV, FLAC or OGG)", format=f.format))
        rate, channels, frames = f.samplerate, f.channels, f.frames
        if not 8_000 <= rate <= MAX_RATE:
            raise BadClip(tr("sample rate {rate} Hz is outside {lo}-{hi} Hz", rate=fmt(rate, ","), lo=fmt(8_000, ","),
                             hi=fmt(MAX_RATE, ",")))
        if not 1 <= channels <= MAX_CHANNELS:
            raise BadClip(tr("{n} channels: only mono or stereo clips are read", n=channels))
        cap = int(MAX_CLIP_SECONDS * rate)
        if frames > cap:
            raise BadClip(tr("{s} s long: the limit is {most} s per clip (cut it shorter)", s=fmt(frames / rate),
                             most=fmt(MAX_CLIP_SECONDS, "g")))
        if budget is not None:
            budget.spend_audio(max(frames, 0) / rate)   # from the header, before a sample is decoded
        try:
            x = f.read(frames=cap + 1, dtype="float32", always_2d=True)
        except Exception as err:  # noqa: BLE001 - truncated or damaged data
            raise BadClip(tr("damaged audio ({error})", error=type(err).__name__)) from None
    if len(x) > cap:
        raise BadClip(tr("longer than the {s} s its header declares or the limit allows", s=fmt(MAX_CLIP_SECONDS, "g")))
    return prepare(x.mean(axis=1), rate)


def prepare(x: np.ndarray, rate: int) -> np.ndarray:
    """A float mono waveform → int16 at 16 kHz, trimmed to its sound, at most KEEP_SECONDS (its loudest part)."""
    x = np.nan_to_num(np.asarray(x, np.float32))
    if not len(x) or float(np.abs(x).max()) < SILENCE:
        raise BadClip(tr("silent: no sound was recorded (check the microphone)"))
    if rate != audio.RATE:
        import librosa  # soxr's high-quality resampler underneath

        x = librosa.resample(x, orig_sr=rate, target_sr=audio.RATE)
    x = trim(x)
    if len(x) < MIN_SECONDS * audio.RATE:
        raise BadClip(tr("only {s} s of sound: say the word for at least {least} s", s=fmt(len(x) / audio.RATE, ".2f"),
                         least=fmt(MIN_SECONDS, "g")))
    keep = int(KEEP_SECONDS * audio.RATE)
    if len(x) > keep:
        energy = np.convolve(x ** 2, np.ones(keep, np.float32), "valid")
        start = int(np.argmax(energy))
        x = x[start:start + keep]
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def trim(x: np.ndarray, top_db: float = 30.0) -> np.ndarray:
    """The clip from its first to its last 10 ms frame within `top_db` of its loudest (librosa.effects.trim's rule)."""
    n = len(x) // audio.HOP
    if n < 1:
        return x
    power = np.square(x[:n * audio.HOP].reshape(n, audio.HOP), dtype=np.float64).mean(1)
    loud = np.flatnonzero(10 * np.log10(np.maximum(power, 1e-20) / max(power.max(), 1e-20)) > -top_db)
    return x[loud[0] * audio.HOP:(loud[-1] + 1) * audio.HOP]


def to_wav(wave: np.ndarray) -> bytes:
    """int16 16 kHz → WAV bytes (to play on a page, or to zip)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, audio.RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@dataclass(frozen=True)
class UserClips:
    """The user's labelled clips. Immutable: every edit returns a new set."""
    waves: tuple[np.ndarray, ...] = ()     # int16 16 kHz mono
    labels: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    skipped: tuple[userdata.Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    source: str = "your clips"

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the clips, labels and class names: the identity of runs on them."""
        h = sha256()
        for w in self.waves:
            h.update(len(w).to_bytes(8, "little") + w.tobytes())
        h.update(np.asarray(self.labels, np.int64).tobytes())
        h.update("\x00".join(self.classes).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        return {c: sum(1 for label in self.labels if label == i) for i, c in enumerate(self.classes)}

    def add_class(self, name: str) -> "UserClips":
        name = userdata.check_class_name(name)
        if name in self.classes:
            raise ValueError(tr("there is already a class named {name}", name=repr(name)))
        return replace(self, classes=self.classes + (name,))

    def add_clip(self, class_name: str, raw: bytes, name: str, budget: safeio.Budget | None = None) -> "UserClips":
        """Decode one recording or file and add it to `class_name` (created if new); BadClip with the reason."""
        if len(self) >= MAX_CLIPS:
            raise BadClip(tr("the set already holds the maximum of {n} clips", n=fmt(MAX_CLIPS, ",")))
        wave = decode(raw, budget)
        s = self if userdata.check_class_name(class_name) in self.classes else self.add_class(class_name)
        return replace(s, waves=s.waves + (wave,), labels=s.labels + (s.classes.index(class_name.strip()),),
                       names=s.names + (name,))

    def problems(self) -> list[str]:
        counts = self.counts()
        full = [c for c, n in counts.items() if n > 0]
        if len(full) < 2:
            found = ", ".join(tr("{name} ({n} clip)", name=repr(c), n=n) if n == 1 else
                              tr("{name} ({n} clips)", name=repr(c), n=n) for c, n in counts.items()) or tr("none")
            return [tr("Training needs at least 2 classes with clips to tell apart; found {n} (classes: {found}). "
                       "Record or upload clips for another class.", n=len(full), found=found)]
        if min(n for n in counts.values() if n) < 2:
            short = [c for c, n in counts.items() if n == 1]
            return [tr("Class {name} has only 1 clip, so none is left to validate on: record at least 2 per class (5 "
                       "or more is better).", name=repr(short[0]))]
        return []

    def ready(self) -> "UserClips":
        """The classes with clips only (empty ones dropped), in the same order."""
        keep = [i for i, n in enumerate(self.counts().values()) if n]
        remap = {old: new for new, old in enumerate(keep)}
        return replace(self, classes=tuple(self.classes[i] for i in keep),
                       labels=tuple(remap[label] for label in self.labels))

    def feats(self) -> torch.Tensor:
        return audio.features_of(list(self.waves))

    def to_bytes(self) -> bytes:
        """Plain data for a run request (safetensors: the samples end to end, each clip's length and label)."""
        from safetensors.torch import save

        lengths = torch.tensor([len(w) for w in self.waves], dtype=torch.int64)
        samples = torch.from_numpy(np.concatenate(self.waves)) if self.waves else torch.zeros(0, dtype=torch.int16)
        return save({"samples": samples.contiguous(), "lengths": lengths,
                     "labels": torch.tensor(self.labels, dtype=torch.int64)},
                    metadata={"classes": json.dumps(list(self.classes)), "source": self.source})

    @classmethod
    def from_bytes(cls, blob: bytes) -> "UserClips":
        """A set written by `to_bytes`; its shapes and labels checked (a blob is never trusted)."""
        from safetensors.torch import load

        try:
            t = load(blob)
            meta = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")]).get("__metadata__") or {}
            classes = tuple(json.loads(meta["classes"]))
            samples, lengths, labels = t["samples"], t["lengths"], t["labels"]
        except Exception as err:  # noqa: BLE001 - the library's own errors for a corrupt blob
            raise ValueError(tr("the clips sent with the run could not be read ({error})", error=err)) from None
        if (samples.dtype != torch.int16 or lengths.shape != labels.shape or int(lengths.sum()) != len(samples)
                or (len(lengths) and (int(lengths.min()) < 1 or int(labels.min()) < 0
                                      or int(labels.max()) >= len(classes)))):
            raise ValueError(tr("the clips sent with the run are not a set of labelled clips"))
        waves = tuple(c.numpy().copy() for c in torch.split(samples, lengths.tolist())) if len(lengths) else ()
        return cls(waves, tuple(labels.tolist()), classes, source=meta.get("source", "your clips"))

    def to_zip(self) -> bytes:
        """The set as class folders of WAVs: what `read_zip` reads back."""
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for c in self.classes:
                zf.writestr(f"{c}/", b"")
            for i, (w, label) in enumerate(zip(self.waves, self.labels)):
                zf.writestr(f"{self.classes[label]}/{i:04d}.wav", to_wav(w))
        return buf.getvalue()


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(p == "__MACOSX" or p.startswith(".") for p in parts)


def read_zip(source, label: str | None = None) -> UserClips:
    """A class-folder zip of clips → UserClips, unusable files in `skipped` with the reason. ValueError (one line)
    for a zip that is unsafe, too big, or has no class folders."""
    label = label or (Path(source).name if isinstance(source, (str, Path)) else "the upload")
    with safeio.open_zip(source, label) as zf:
        infos = zf.infolist()
        safeio.check_entries(infos, label, max_entries=MAX_ENTRIES, max_total=MAX_TOTAL_BYTES, max_ratio=100,
                             ratio_floor=2 ** 20)
        files = []
        for info in infos:
            parts = tuple(p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p)
            if parts and not _ignored(parts) and not info.is_dir():
                files.append((parts, info))
        while files and len({p[0] for p, _ in files}) == 1 and all(len(p) >= 3 for p, _ in files):
            files = [(p[1:], i) for p, i in files]   # a wrapper folder: my_words/yes/1.wav
        loose = [i.filename for p, i in files if len(p) == 1]
        files = sorted(((p, i) for p, i in files if len(p) > 1), key=lambda f: f[1].filename)
        if not files:
            raise ValueError(safeio.no_class_folders(label, loose, tr(LAYOUT)))
        clips = UserClips(source=label, classes=tuple(sorted({userdata.check_class_name(p[0]) for p, _ in files},
                                                              key=str.lower)))
        skipped = [userdata.Skipped(n, tr("not inside a class folder")) for n in loose]
        notes, budget = [], upload_budget()
        for parts, info in files:
            if Path(parts[-1]).suffix.lower() not in SUFFIXES:
                skipped.append(userdata.Skipped(info.filename, tr("not a WAV, FLAC or OGG file ({suffix})",
                                                                  suffix=Path(parts[-1]).suffix or tr("no extension"))))
                continue
            try:
                budget.check_time()
                raw = safeio.read_entry(zf, info, label, budget, MAX_FILE_BYTES, name=tr("this file"))
                clips = clips.add_clip(parts[0], raw, info.filename, budget)
            except safeio.BudgetSpent as err:
                notes.append(tr("Stopped after {n} clips: {why}; the rest were skipped.", n=len(clips), why=err))
                break
            except ValueError as err:   # BadClip, or a lying, damaged or bzip2/LZMA entry
                skipped.append(userdata.Skipped(info.filename, str(err)))
    return replace(clips, skipped=tuple(skipped), notes=tuple(notes))
