"""Make Transfer Lab's built-in spoken-word set (tl_core/assets/spoken_words.ogg + spoken_words.json) with espeak-ng.

Run once, by whoever changes the set (it needs Debian's espeak-ng: apt-get install espeak-ng); the app and the tests
only read the two files it writes, so `make run` needs no system package.

    .venv/bin/python tools/make_spoken_words.py

What it says: 20 English words (ten commands and the ten digits) and the ten Spanish digits, each in VOICES_PER_LANG
voices per language (an espeak-ng accent + a voice variant + its own base pitch), TAKES takes each with pitch and
speed jittered. Every clip is trimmed to the word (librosa's silence trim), peak-normalised, and the clips are laid
end to end, with a short silence between them, in one 16 kHz mono Ogg Opus stream (about 2 MB for 1,200 clips:
~22 kbit/s); the JSON index gives each clip's language, word, voice, take, first sample and length. Noise is not
baked in: `tl_core.audio` adds it when it reads the set (seeded per clip), so the file stays small.
"""
from __future__ import annotations

import io
import itertools
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

OUT = Path(__file__).resolve().parent.parent / "tl_core" / "assets"
RATE = 16_000
GAP = 1_600                 # samples of silence between clips (0.1 s): the codec's smear stays between words
TAKES = 2
VOICES_PER_LANG = 20
WORDS = {
    "en": ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
           "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
}
ACCENTS = {"en": ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-us-nyc"],
           "es": ["es", "es-419"]}
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "Annie",
            "Andy", "Alicia", "david", "Mr_Serious", "Demonic", "steph", "michel", "john", "edward", "Gene"]


def voices(lang: str, rng: np.random.Generator) -> list[tuple[str, int]]:
    """VOICES_PER_LANG distinct (accent+variant, base pitch) pairs."""
    pairs = list(itertools.product(ACCENTS[lang], VARIANTS))
    picked = rng.choice(len(pairs), VOICES_PER_LANG, replace=False)
    return [(f"{pairs[i][0]}+{pairs[i][1]}", int(rng.integers(30, 71))) for i in sorted(picked)]


def speak(voice: str, pitch: int, speed: int, word: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", word],
                         check=True, capture_output=True).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    x = librosa.resample(x, orig_sr=sr, target_sr=RATE)
    x, _ = librosa.effects.trim(x, top_db=35)
    pad = np.zeros(int(0.03 * RATE), np.float32)
    x = np.concatenate([pad, x, pad])
    return (0.7 * x / max(float(np.abs(x).max()), 1e-4)).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(38)
    jobs = []
    for lang, words in WORDS.items():
        for v, (voice, pitch) in enumerate(voices(lang, rng)):
            for word in words:
                for take in range(TAKES):
                    p = int(np.clip(pitch + rng.integers(-12, 13), 0, 99))
                    s = int(rng.integers(130, 200))
                    jobs.append((lang, word, f"{lang}-{v:02d} {voice}", take, voice, p, s))
    with ThreadPoolExecutor(4) as pool:
        clips = list(pool.map(lambda j: speak(j[4], j[5], j[6], j[1]), jobs))
    parts, index, at = [], [], 0
    for (lang, word, name, take, *_), x in zip(jobs, clips):
        index.append([lang, word, name, take, at, len(x)])
        parts += [x, np.zeros(GAP, np.float32)]
        at += len(x) + GAP
    stream = np.concatenate(parts)
    OUT.mkdir(exist_ok=True)
    sf.write(OUT / "spoken_words.ogg", stream, RATE, format="OGG", subtype="OPUS", compression_level=0.9)
    (OUT / "spoken_words.json").write_text(json.dumps(
        {"rate": RATE, "fields": ["language", "word", "voice", "take", "start", "length"], "clips": index},
        separators=(",", ":")) + "\n")
    size = (OUT / "spoken_words.ogg").stat().st_size
    print(f"{len(index)} clips, {len(stream) / RATE / 60:.1f} min of audio, {size / 2**20:.2f} MB")


if __name__ == "__main__":
    main()
