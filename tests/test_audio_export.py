"""The listening page's model, exported like the image ones (model.pt + model.onnx checked against torch +
model.json) and used on WAV files: `audio --export DIR`, then `audio-predict --model M --wav W [--onnx] --json`."""
import json

import pytest
import torch

from tl_core import audio, audio_export, cli, export, userclips

pytestmark = pytest.mark.slow   # one real training run (the last LSTM layer, 5 clips a digit, 6 epochs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio_export")
    rc = cli.main(["audio", "--conditions", "last_layer", "--shots", "5", "--epochs", "6", "--seeds", "1",
                   "--seed", "0", "--export", str(folder / "model"), "--json", "--no-record"])
    assert rc == 0
    return folder


def _clips(folder, rows) -> list[str]:
    ds, paths = audio.spoken_words(), []
    for i in rows:
        raw = userclips.to_wav(ds.waves[i])
        try:
            userclips.decode(raw)
        except userclips.BadClip:   # a few built-in takes are under 0.3 s once trimmed: the reader refuses them
            continue
        path = folder / f"{i}_{ds.words[i]}.wav"
        path.write_bytes(raw)
        paths.append(str(path))
    return paths


def test_the_export_holds_weights_onnx_and_meta_with_onnx_matching_torch(exported):
    meta = json.loads((exported / "model" / "model.json").read_text())
    assert meta["format"] == audio_export.FORMAT and meta["classes"] == audio.vocabulary("es")
    assert meta["trained"]["condition"] == "last_layer" and meta["onnx"]["max_abs_diff"] <= export.PARITY_LIMIT
    torch_clf, onnx_clf = audio_export.load(exported / "model"), audio_export.load(exported / "model", onnx=True)
    assert (torch_clf.runtime, onnx_clf.runtime) == ("torch", "onnxruntime")
    feats = audio.spoken_words().feats[audio.spoken_words().rows("es")[:200]]
    p_torch, p_onnx = torch_clf.probabilities(feats), onnx_clf.probabilities(feats)
    assert p_torch.shape == (200, 10) and torch.allclose(p_torch.sum(1), torch.ones(200), atol=1e-5)
    assert (p_torch - p_onnx).abs().max() <= export.PARITY_LIMIT


def test_predict_on_shipped_clips_gives_their_words_with_torch_and_with_onnx(exported, capsys):
    ds = audio.spoken_words()
    split = audio.word_split(ds, "es", 5, 0, 4)
    # three clips it was trained on (it fits them), then every clip of a voice it never heard
    trained = _clips(exported, [split.train[k] for k in (0, 17, 33)])
    held = _clips(exported, [i for i in split.val if ds.voices[i] == split.voices_val[0]])
    seen = {}
    for runtime in ([], ["--onnx"]):
        assert cli.main(["audio-predict", "--model", str(exported / "model" / "model.pt"), "--wav", *trained, *held,
                         "--top-k", "2", "--json", *runtime]) == 0
        out = json.loads(capsys.readouterr().out)
        words = [p["top"][0]["class"] for p in out["predictions"]]
        truth = [p.split("_")[-1][:-4] for p in trained + held]
        n = len(trained)
        assert n >= 2 and words[:n] == truth[:n] and all(len(p["top"]) == 2 for p in out["predictions"])
        right = sum(w == t for w, t in zip(words[n:], truth[n:]))
        assert right >= 0.5 * len(held) > 3, (words, truth)   # a new voice: most words right (chance 10%)
        seen[out["runtime"]] = words
    assert seen["onnxruntime"] == seen["torch"]


def test_predict_refuses_bad_files_and_models_with_one_line(exported, tmp_path, capsys):
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"this is a text file, not audio" * 20)
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(userclips.to_wav(torch.zeros(16_000, dtype=torch.int16).numpy()))
    bad_onnx = tmp_path / "bad"
    bad_onnx.mkdir()
    (bad_onnx / "model.json").write_text((exported / "model" / "model.json").read_text())
    (bad_onnx / "model.onnx").write_bytes(b"not a model")
    image_meta = tmp_path / "image"
    image_meta.mkdir()
    (image_meta / "model.pt").write_bytes((exported / "model" / "model.pt").read_bytes())
    (image_meta / "model.json").write_text(json.dumps({"format": export.FORMAT, "classes": ["a", "b"]}))
    cases = [(["--model", str(exported / "model"), "--wav", str(fake)], "not an audio file"),
             (["--model", str(exported / "model"), "--wav", str(quiet)], "silent"),
             (["--model", str(exported / "model"), "--wav", str(tmp_path / "none.wav")], "no such file"),
             (["--model", str(bad_onnx), "--onnx", "--wav", str(quiet)], "not a valid ONNX model"),
             (["--model", str(image_meta), "--wav", str(quiet)], "not a Transfer Lab audio export")]
    for args, words in cases:
        rc = cli.main(["audio-predict", *args, "--json"])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and words in err, (args, err)


def test_the_page_offers_the_trained_model_with_its_parity_after_a_run(app):
    app.switch_page("app_pages/listen.py").run()
    app.multiselect(key="listen_conditions").set_value(["frozen", "last_layer"])
    app.slider(key="listen_epochs").set_value(3)
    app.slider(key="listen_seeds").set_value(1)
    app.run()
    app.button(key="listen_train").click().run()
    assert not app.exception
    labels = [b.proto.label for b in app.get("download_button")]
    assert any(label.startswith("Download the trained model (last LSTM layer fine-tuned") for label in labels), labels
    assert any(c.value.startswith("ONNX parity: max |p_torch - p_onnxruntime|") and "audio-predict" in c.value
               for c in app.caption)
