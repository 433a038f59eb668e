"""Machine listening: the speech encoder against a reference built straight from its file, unit-norm embeddings, one
path for a clip from the recorder and from a zip, every bad clip of the issue refused with one line, the voice split,
the claim by the rule (pretrained ahead of scratch on the built-in words), the CLI twins and the page."""
import dataclasses
import io
import json
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from tl_core import audio, backbones, claims, cli, userclips
from tl_core.experiments import audio as exp
from tl_core.userclips import UserClips


def voice(seconds: float = 0.6, rate: int = 16_000, pitch: float = 140.0, channels: int = 1) -> np.ndarray:
    """A vowel-like sound: a pitched pulse train through two formants, with a rise and fall of loudness."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 12))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 600 * t) * np.sin(2 * np.pi * 1200 * t)
    x = (0.3 * x / np.abs(x).max() * np.hanning(len(t))).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


def wav(x: np.ndarray, rate: int = 16_000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt)
    return buf.getvalue()


def clips_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, raw in files.items():
            zf.writestr(name, raw)
    return buf.getvalue()


# ---- the encoder ---------------------------------------------------------------------------------------------

def test_the_encoder_loads_every_key_and_matches_a_reference_built_from_its_file():
    state, unused = audio.mapped_state()
    model = backbones.create(audio.ENCODER, "pretrained")
    staged = {k.split(".", 2)[2] for k in model.state_dict() if not k.startswith("stages.4.")}
    assert {k.split(".", 1)[1] for k in state} == staged          # every encoder tensor comes from the file
    assert sorted(unused) == ["similarity_bias", "similarity_weight"]   # only the GE2E loss's own two scalars left
    # the reference: resemblyzer's own network (nn.LSTM of 3 layers, last hidden state, Linear, ReLU, L2) from the file
    raw = audio.checkpoint_state()
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    lstm.load_state_dict({k[5:]: v for k, v in raw.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in raw.items() if k.startswith("linear.")})
    x = torch.from_numpy(np.stack([audio.features(voice(0.5, pitch=p)) for p in (110, 180, 240)]))
    with torch.no_grad():
        _, (h, _) = lstm(x)
        ref = torch.nn.functional.normalize(torch.relu(linear(h[-1])), dim=1)
    mine = audio.embed(x, backbones.speech_encoder())
    assert torch.allclose(mine, ref, atol=1e-5)
    assert torch.allclose(mine.norm(dim=1), torch.ones(3), atol=1e-5)   # unit norm
    assert backbones.stage_names(audio.ENCODER) == ("lstm 1", "lstm 2", "lstm 3", "embedding", "classifier")


def test_features_are_the_encoders_mel_power_frames():
    f = audio.features(voice(0.3))
    assert f.shape == (audio.FRAMES, audio.N_MELS) and f.dtype == np.float32 and (f >= 0).all()
    assert (f[:30] == 0).all() and f[-5:].sum() > 0          # silence before a short word, so the LSTM ends on it
    long = audio.features(np.concatenate([np.zeros(16_000, np.float32), voice(1.0)]))
    assert long.shape == (audio.FRAMES, audio.N_MELS) and long.sum() > 0   # the loudest stretch of a long clip


# ---- your own clips --------------------------------------------------------------------------------------------

def test_a_clip_is_the_same_through_the_recorder_and_through_a_zip():
    raw = wav(voice())
    recorded = UserClips().add_clip("ah", raw, "recording.wav").add_clip("oh", wav(voice(pitch=220)), "r2.wav")
    zipped = userclips.read_zip(clips_zip({"mine/ah/1.wav": raw, "mine/oh/1.wav": wav(voice(pitch=220))}), "c.zip")
    assert zipped.classes == recorded.classes == ("ah", "oh") and not zipped.skipped
    assert torch.equal(audio.embed(recorded.feats(), backbones.speech_encoder()),
                       audio.embed(zipped.feats(), backbones.speech_encoder()))
    again = UserClips.from_bytes(recorded.to_bytes())                 # what a run request carries
    assert again.fingerprint == recorded.fingerprint and torch.equal(again.feats(), recorded.feats())
    assert userclips.read_zip(recorded.to_zip()).fingerprint != "" and len(userclips.read_zip(recorded.to_zip())) == 2


@pytest.mark.slow   # librosa's resampler: seconds of import
def test_stereo_at_44_1_khz_becomes_16_khz_mono():
    out = userclips.decode(wav(voice(0.6, 44_100, channels=2), 44_100))
    assert out.dtype == np.int16 and abs(len(out) / audio.RATE - 0.6) < 0.15


@pytest.mark.parametrize("raw,message", [
    (wav(np.zeros(16_000, np.float32)), "silent"),
    (wav(voice(0.15)), "at least 0.3 s"),
    (b"RIFF....WAVEfmt this is not audio at all" * 10, "not an audio file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "not an audio file"),
    (wav(voice(0.5, 8_000), 4_000), "sample rate"),
])
def test_bad_clips_are_refused_with_one_line(raw, message):
    with pytest.raises(userclips.BadClip, match=message) as err:
        userclips.decode(raw)
    assert "\n" not in str(err.value)


def test_a_tiny_file_claiming_ten_minutes_is_refused_before_decoding():
    flac = wav(np.zeros(16_000 * 600, np.float32), fmt="FLAC")      # ten minutes of silence: a few KB of FLAC
    assert len(flac) < 200_000
    start = time.perf_counter()
    with pytest.raises(userclips.BadClip, match="600 s long: the limit is 30 s"):
        userclips.decode(flac)
    assert time.perf_counter() - start < 0.5
    budget = userclips.upload_budget()
    budget.spent_audio = userclips.MAX_AUDIO_SECONDS - 0.1
    with pytest.raises(userclips.safeio.BudgetSpent, match="minutes of audio is spent"):
        userclips.decode(wav(voice()), budget)


def test_a_zip_keeps_what_it_can_and_says_why_for_the_rest():
    z = clips_zip({"yes/1.wav": wav(voice()), "yes/2.flac": wav(voice(pitch=200), fmt="FLAC"),
                   "yes/quiet.wav": wav(np.zeros(8000, np.float32)), "no/1.ogg": wav(voice(pitch=90), fmt="OGG"),
                   "no/notes.txt": b"hello", "no/fake.wav": b"not audio", "loose.wav": wav(voice())})
    got = userclips.read_zip(z, "mine.zip")
    assert got.counts() == {"no": 1, "yes": 2}
    reasons = {s.name: s.reason for s in got.skipped}
    assert "silent" in reasons["yes/quiet.wav"] and "not a WAV" in reasons["no/notes.txt"]
    assert "not an audio file" in reasons["no/fake.wav"] and "not inside a class folder" in reasons["loose.wav"]
    assert "only 1 clip" in got.ready().problems()[0]
    one = UserClips().add_clip("yes", wav(voice()), "a").add_clip("yes", wav(voice(pitch=200)), "b")
    assert "at least 2 classes" in one.problems()[0]
    with pytest.raises(ValueError, match="unsafe paths"):
        userclips.read_zip(clips_zip({"../yes/1.wav": wav(voice())}))


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "one.zip").write_bytes(clips_zip({"yes/1.wav": wav(voice()), "yes/2.wav": wav(voice(pitch=200))}))
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    for name, words in (("one.zip", "at least 2 classes"), ("bad.zip", "is not a zip file")):
        rc = cli.main(["audio", "--data-zip", str(tmp_path / name), "--json"])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and words in err, err
    with pytest.raises(SystemExit) as bad:
        cli.main(["audio", "--task", "sounds"])
    assert bad.value.code == 2 and "invalid choice: 'sounds'" in capsys.readouterr().err


# ---- the built-in words (decoded and featurised once per process: a few seconds) --------------------------------

@pytest.mark.slow
def test_the_voice_split_holds_and_the_speaker_split_holds_out_words():
    ds = audio.spoken_words()
    assert len(ds) == 1200 and set(ds.languages) == {"en", "es"}
    assert not set(audio.voices_of("en")) & set(audio.voices_of("es"))
    for seed in range(3):
        s = audio.word_split(ds, "es", 5, seed, 4)
        assert len(s.voices_val) == 4 and not set(s.voices_val) & {ds.voices[i] for i in s.train}
        assert {ds.voices[i] for i in s.val} == set(s.voices_val) and len(s.train) == 50
        sp = audio.speaker_split(ds, "es", 5, seed, 3)
        assert not {ds.words[i] for i in sp.val} & {ds.words[i] for i in sp.train}
        assert np.bincount(sp.labels[sp.train].numpy()).tolist() == [5] * 20


@pytest.mark.slow
def test_cli_pretrained_beats_scratch_by_the_rule(capsys):
    rc = cli.main(["audio", "--task", "words", "--shots", "5", "--seeds", "3", "--seed", "0", "--epochs", "6",
                   "--conditions", "frozen,scratch", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out["conditions"]) == {"frozen", "scratch"}
    for s in out["conditions"].values():
        assert {"val_acc_mean", "val_acc_seeds"} <= set(s) and len(s["val_acc_seeds"]) == 3
    assert set(out["data"]) >= {"clips", "classes", "voices_train", "voices_val"}
    assert not set(out["data"]["voices_train"]) & set(out["data"]["voices_val"])
    values = {c: dict(zip(s["seeds"], s["val_acc_seeds"])) for c, s in out["conditions"].items()}
    assert out["claim"] == claims.compare("frozen", values, ["scratch"]).to_json()   # the rule, recomputed
    assert out["claim"]["kind"] == "helped" and out["conditions"]["frozen"]["val_acc_mean"] > 0.5


@pytest.mark.slow
def test_the_page_shows_a_clip_and_takes_recorded_clips(app):
    app.switch_page("app_pages/listen.py").run()
    assert not app.exception and any("Log-mel spectrogram" in str(c.proto.spec) for c in app.get("plotly_chart"))
    app.radio(key="listen_source").set_value("your own clips").run()
    assert not app.exception and any("Add a class" in i.value for i in app.info)
    clips = UserClips()
    for word, pitch in (("ah", 120), ("oh", 200)):
        for k in range(3):
            clips = clips.add_clip(word, wav(voice(0.5 + 0.05 * k, pitch=pitch + 7 * k)), f"{word}{k}.wav")
    app.session_state["listen_clips"] = clips
    app.run()
    assert not app.exception and app.button(key="listen_train").disabled is False
    assert any("Your clips (6" in c.value for c in app.caption)


@pytest.mark.slow
def test_the_speed_path_gives_the_reference_paths_numbers(monkeypatch):
    # one thread and validation in one pass (FAST) against the path before it; cached frozen layers against running
    # them every epoch: the same accuracies (a tiny run: 2 clips a word, 2 epochs, the LSTM conditions)
    cfg = exp.AudioConfig(conditions=("frozen", "last_layer"), shots=2, epochs=2, seeds=1, seed=3)

    def accs(fast: bool, **change):
        monkeypatch.setattr(exp, "FAST", fast)
        r = exp.run(dataclasses.replace(cfg, **change), device="cpu")
        return {c: (s["val_acc_seeds"], s["histories"][0]["val_acc"]) for c, s in r.to_json()["conditions"].items()}

    threads = torch.get_num_threads()
    fast = accs(True)
    assert torch.get_num_threads() == threads   # one thread while it trains; the process's count restored after
    for c, (final, curve) in accs(False).items():
        assert np.allclose(final, fast[c][0], atol=1 / 80) and np.allclose(curve, fast[c][1], atol=1 / 80)
    for c, (final, curve) in accs(True, cache=False).items():
        assert np.allclose(final, fast[c][0]) and np.allclose(curve, fast[c][1])


@pytest.mark.slow
def test_the_language_shift_runs_and_its_claims_follow_the_rule(capsys):
    rc = cli.main(["audio-shift", "--pretrain-epochs", "1", "--epochs", "2", "--seeds", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out["conditions"]) == {"frozen_en", "finetune_en", "scratch_cnn"}
    values = {c: dict(zip(s["seeds"], s["val_acc_seeds"])) for c, s in out["conditions"].items()}
    best = claims.best_of(values, list(values))
    assert out["claim"] == claims.compare(best, values).to_json()        # the best against the strongest other
    pre = claims.best_of(values, ["frozen_en", "finetune_en"])
    assert out["pretraining_claim"] == claims.compare(pre, values, ["scratch_cnn"]).to_json()
    assert all(len(s["interval"]) == 2 for s in out["conditions"].values()) and out["pretrain"]["classes"] == 20


def test_the_experiments_declare_their_pieces():
    assert exp.EXPERIMENTS[1].private and not exp.EXPERIMENTS[0].private
    assert exp.claim_of({"frozen": {0: .8, 1: .7, 2: .75}, "scratch": {0: .1, 1: .2, 2: .15}}).kind == "helped"
    assert exp.claim_of({"frozen": {0: 0.8}}) is None
    # every verdict: the best condition against the strongest other, then the best pretrained one against scratch
    values = {"frozen": {0: .6, 1: .7, 2: .65}, "last_layer": {0: .9, 1: .95, 2: .97}, "scratch": {0: .1, 1: .2, 2: .1}}
    best, pre = exp.claim_of(values), exp.pretraining_of(values)
    assert best.to_json() == claims.compare("last_layer", values, ["frozen", "scratch"]).to_json()
    assert (best.against, pre.against, pre.subject) == ("frozen", "scratch", "last_layer")
    words = exp.compare(values, "5 clips per class").text
    assert "frozen encoder + head" in words and "same network from scratch" in words
