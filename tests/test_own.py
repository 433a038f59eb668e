"""Your own images: zip / webcam reading and every bad input of the issue's table, the class-balanced
split, training end to end, export → re-import → the same predictions, the CLI twins and the page.

Zips are built from the real photos that ship with scikit-image (cat, coffee, astronaut): tests/fixtures.py.
"""
import io
import json
import struct
import zipfile
import zlib

import fakes
import numpy as np
import pytest
import torch
from fixtures import crops, encode, make_zip, photos_zip
from PIL import Image
from skimage import data as skdata

from tl_core import cli, data, export, train, userdata
from tl_core.experiments import finetune
from tl_core.userdata import UserImages


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width × height but holds almost nothing: a decompression bomb's signature."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ---- formats --------------------------------------------------------------------------------------------

def test_every_format_and_mode_becomes_an_rgb_square():
    cat = skdata.chelsea()
    gray = skdata.camera()
    rgba = np.dstack([cat, np.full(cat.shape[:2], 255, np.uint8)])
    rgba[:50, :, 3] = 0                                                # a transparent top band
    red, blue = Image.new("RGB", (60, 40), (255, 0, 0)), Image.new("RGB", (60, 40), (0, 0, 255))
    gif = io.BytesIO()
    red.convert("P").save(gif, "GIF", save_all=True, append_images=[blue.convert("P")])
    cases = {
        "jpeg": encode(cat), "png gray": encode(gray, "PNG"), "png rgba": encode(rgba, "PNG"),
        "jpeg cmyk": encode(Image.fromarray(cat).convert("CMYK"), "JPEG"),
        "png 16-bit": encode(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"),
        "gif animated": gif.getvalue(), "webp": encode(cat, "WEBP"), "bmp": encode(cat, "BMP"),
        "tiff": encode(cat, "TIFF"), "palette png": encode(Image.fromarray(cat).convert("P"), "PNG"),
    }
    out = {name: userdata.decode(raw) for name, raw in cases.items()}
    for name, arr in out.items():
        assert arr.shape == (userdata.STORE_SIZE, userdata.STORE_SIZE, 3) and arr.dtype == np.uint8, name
    # 16-bit scaled to the same picture as 8-bit (not clipped to white), gray as R = G = B
    assert abs(out["png 16-bit"].astype(float).mean() - out["png gray"].astype(float).mean()) < 2
    assert (out["png gray"][..., 0] == out["png gray"][..., 2]).all()
    assert out["png rgba"][0, 0].tolist() == [255, 255, 255]            # transparency onto white
    assert out["gif animated"][20, 20].tolist() == [255, 0, 0]          # the first frame
    assert np.abs(out["jpeg cmyk"].astype(int) - out["jpeg"].astype(int)).mean() < 12


# ---- the bad-input table, row by row ----------------------------------------------------------------------

@pytest.mark.parametrize("evil", ["../evil.txt", "/abs/cat/1.jpg", "C:/cat/1.jpg", "cat/../../escape.jpg",
                                  "..\\win.jpg"])
def test_unsafe_paths_are_refused_and_nothing_is_written(evil, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab").mkdir()
    monkeypatch.chdir(tmp_path / "lab")
    raw = make_zip({"cat/1.jpg": encode(crops("cat", 1)[0]), "dog/1.jpg": encode(crops("coffee", 1)[0]),
                    evil: b"payload"})
    with pytest.raises(ValueError, match="unsafe paths"):
        userdata.read_zip(raw, "evil.zip")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["lab"]  # nothing written anywhere


def test_zip_bombs_are_refused_before_anything_is_decompressed(monkeypatch):
    ratio = make_zip({"cat/flat.bmp": b"\0" * (20 * 2 ** 20), "dog/1.jpg": b"x"})
    many = make_zip({f"cat/{i}.jpg": b"" for i in range(userdata.MAX_ENTRIES + 1)})
    noise = np.random.default_rng(0).bytes(3 * 2 ** 20 // 2)
    big = make_zip({"cat/a.bmp": noise, "dog/b.bmp": noise})

    def no_reading(*a, **k):
        raise AssertionError("a zip entry was decompressed before the checks")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    with pytest.raises(ValueError, match=r"compresses .*:1, more than the limit of 100:1"):
        userdata.read_zip(ratio, "bomb.zip")
    with pytest.raises(ValueError, match="5,001 entries, more than the limit of 5,000 files"):
        userdata.read_zip(many, "many.zip")
    monkeypatch.setattr(userdata, "MAX_TOTAL_BYTES", 2 ** 20)  # 1 MB here; the real limit is 1,000 MB
    with pytest.raises(ValueError, match="would unpack to 3 MB, more than the limit of 1 MB"):
        userdata.read_zip(big, "big.zip")


def test_non_images_and_corrupt_files_are_skipped_into_a_report():
    good = photos_zip(per_class=3)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    jpeg = entries["cat/cat_0.jpeg"]
    entries.update({"cat/notes.txt": b"hello", "cat/broken.jpg": jpeg[: len(jpeg) // 3],
                    "coffee/random.png": np.random.default_rng(1).bytes(500), "coffee/fake.jpg": b"%PDF-1.4 ...",
                    "__MACOSX/cat/._cat_0.jpeg": b"junk", "cat/.DS_Store": b"junk", "Thumbs.db": b"junk"})
    imgs = userdata.read_zip(make_zip(entries), "mixed.zip")
    assert imgs.counts() == {"astronaut": 3, "cat": 3, "coffee": 3}
    report = {s.name: s.reason for s in imgs.skipped}
    assert set(report) == {"cat/notes.txt", "cat/broken.jpg", "coffee/random.png", "coffee/fake.jpg"}
    assert "not an image file (.txt)" in report["cat/notes.txt"]
    assert "corrupt" in report["cat/broken.jpg"] and "not an image" in report["coffee/fake.jpg"]


def test_huge_images_are_refused_or_safely_downscaled(monkeypatch):
    bomb = png_header(20000, 20000)  # 400 megapixels: Pillow's own bomb check refuses it at open
    with pytest.raises(userdata.BadImage, match="decompression bomb"):
        userdata.decode(bomb)
    with pytest.raises(userdata.BadImage, match="12000×12000 px is 144 megapixels, over the 40-megapixel limit"):
        userdata.decode(png_header(12000, 12000))  # under Pillow's limit, over ours: refused before decoding
    imgs = userdata.read_zip(make_zip({"cat/huge.png": bomb, "cat/1.jpg": encode(crops("cat", 1)[0]),
                                       "dog/1.jpg": encode(crops("coffee", 1)[0])}), "huge.zip")
    assert [s.name for s in imgs.skipped] == ["cat/huge.png"] and imgs.counts() == {"cat": 1, "dog": 1}
    # a big JPEG is decoded at reduced scale (draft) instead: here "big" is anything over 0.1 megapixel
    monkeypatch.setattr(userdata, "MAX_PIXELS", 100_000)
    cat = skdata.chelsea()                        # 451 × 300 = 135,300 px
    assert userdata.decode(encode(cat)).shape == (128, 128, 3)
    with pytest.raises(userdata.BadImage, match="over the 0-megapixel limit"):
        userdata.decode(encode(cat, "PNG"))       # no reduced-scale decoding for PNG: refused


def test_class_counts_give_clear_messages():
    one = userdata.read_zip(photos_zip(3, classes=("cat",)), "one.zip")
    assert "at least 2 classes with images" in one.problems()[0]
    with pytest.raises(ValueError, match="at least 2 classes"):
        one.to_imageset(32)
    entries = {"cat/1.jpg": encode(crops("cat", 1)[0]), "empty/": b""}
    entries.update({f"coffee/{i}.jpg": encode(a) for i, a in enumerate(crops("coffee", 6))})
    imgs = userdata.read_zip(make_zip(entries), "mixed.zip")
    assert imgs.counts() == {"cat": 1, "coffee": 6, "empty": 0} and imgs.problems() == []
    text = " ".join(imgs.warnings())
    assert "'empty' has no images" in text and "'cat' has only 1 image" in text
    ds = imgs.to_imageset(32)
    assert ds.classes == ["cat", "coffee"]            # the empty class is left out
    train, val = data.fraction_split(ds, 0.15, seed=0)
    assert train.counts() == {"cat": 1, "coffee": 5} and val.counts() == {"cat": 0, "coffee": 1}
    singles = userdata.read_zip(make_zip({"a/1.jpg": entries["cat/1.jpg"], "b/1.jpg": entries["coffee/0.jpg"]}))
    assert "only 1 image, so none is left for validation" in singles.problems()[0]


def test_layouts_one_or_two_wrapper_folders_and_flat_zips():
    for top in ("my_photos/", "outer/inner/"):
        imgs = userdata.read_zip(photos_zip(2, top=top), "wrapped.zip")
        assert imgs.classes == ("astronaut", "cat", "coffee") and len(imgs) == 6
    loose = make_zip({"my_photos/readme.txt": b"hi", "my_photos/cat/1.jpg": encode(crops("cat", 1)[0]),
                      "my_photos/dog/1.jpg": encode(crops("coffee", 1)[0])})
    imgs = userdata.read_zip(loose, "loose.zip")
    assert imgs.classes == ("cat", "dog") and imgs.skipped[0].reason == "not inside a class folder"
    flat = make_zip({"1.jpg": encode(crops("cat", 1)[0]), "2.jpg": encode(crops("cat", 1)[0])})
    with pytest.raises(ValueError, match=r"no class folders.*Expected layout: one folder per class"):
        userdata.read_zip(flat, "flat.zip")


def test_not_a_zip_gets_a_clear_message(tmp_path):
    for raw in (b"", b"hello, I am a text file", encode(skdata.chelsea())):
        with pytest.raises(ValueError, match="is not a zip file.*Expected layout"):
            userdata.read_zip(raw, "upload.zip")


def test_cli_bad_zips_exit_2_with_one_line(tmp_path, capsys):
    cases = {"notzip.zip": b"not a zip", "evil.zip": make_zip({"../x.jpg": b"x"}),
             "one.zip": photos_zip(2, classes=("cat",))}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        rc = cli.main(["finetune", "--data-zip", str(tmp_path / name), "--backbone", "shapes_cnn", "--json"])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "", name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("python -m tl_core finetune: error:"), err
        assert {"notzip.zip": "is not a zip file", "evil.zip": "unsafe paths",
                "one.zip": "at least 2 classes"}[name] in lines[0]
    assert cli.main(["finetune", "--data-zip", str(tmp_path / "nothere.zip")]) == 2
    assert "no such file" in capsys.readouterr().err


# ---- split, edits, webcam set, round trip -----------------------------------------------------------------

def test_fraction_split_is_class_balanced_disjoint_and_seeded():
    labels = torch.tensor([0] * 20 + [1] * 7 + [2] * 2)
    from tl_core.data import ImageSet
    ds = ImageSet("t", torch.arange(len(labels)).float().view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone(), labels,
                  ["a", "b", "c"])
    train, val = data.fraction_split(ds, 0.15, seed=0)
    assert val.counts() == {"a": 3, "b": 1, "c": 1} and train.counts() == {"a": 17, "b": 6, "c": 1}
    ids = lambda s: set(s.images[:, 0, 0, 0].long().tolist())  # noqa: E731
    assert not ids(train) & ids(val) and len(ids(train) | ids(val)) == 29
    assert ids(data.fraction_split(ds, 0.15, seed=0)[1]) == ids(val)
    assert ids(data.fraction_split(ds, 0.15, seed=1)[1]) != ids(val)
    assert data.fraction_split(ds, 0.3, seed=0)[1].counts() == {"a": 6, "b": 2, "c": 1}


def test_webcam_set_edits_and_zip_round_trip():
    imgs = UserImages.empty("webcam").add_class("thumbs up")
    for i, arr in enumerate(crops("cat", 3)):
        imgs = imgs.add_image("thumbs up", encode(arr), f"webcam {i}")
    imgs = imgs.add_image("flat hand", encode(crops("coffee", 1)[0]), "webcam 9")   # a new class on the fly
    assert imgs.counts() == {"thumbs up": 3, "flat hand": 1}
    with pytest.raises(userdata.BadImage, match="not an image"):
        imgs.add_image("thumbs up", b"not an image", "x")
    again = userdata.read_zip(imgs.to_zip(), "my_classes.zip")                      # download, upload later
    assert again.counts() == {"flat hand": 1, "thumbs up": 3}
    assert torch.equal(again.of_class("thumbs up"), imgs.of_class("thumbs up"))    # PNG: lossless
    edited = imgs.edited({"thumbs up": "yes"}, drop=["flat hand"])
    assert edited.counts() == {"yes": 3} and imgs.counts()["flat hand"] == 1       # the original is unchanged
    with pytest.raises(ValueError, match="two classes would be named 'yes'"):
        imgs.edited({"thumbs up": "yes", "flat hand": "yes"})
    assert edited.fingerprint != imgs.fingerprint


# ---- end to end ------------------------------------------------------------------------------------------

def test_train_predict_export_reimport_same_predictions(tmp_path):
    imgs = userdata.read_zip(photos_zip(6), "photos.zip")
    cfg = finetune.FinetuneConfig(backbone="shapes_cnn", weights="pretrained", dataset="own: mine.zip", shots=None,
                                  epochs=4, image_size=32, lr=3e-3)
    result = finetune.run(cfg, dataset=imgs.to_imageset(32))
    assert result.status == "finished" and result.classes == ["astronaut", "cat", "coffee"]
    assert result.runs[0].confusion.sum() == 3              # 15% of 6 per class → 1 validation image each
    assert json.loads(json.dumps(result.to_json()))["config"]["val_fraction"] == 0.15
    clf = export.from_result(result)
    paths = export.save(clf, tmp_path / "exported")
    meta = json.loads((tmp_path / "exported" / "model.json").read_text())
    assert meta["classes"] == result.classes and meta["image_size"] == 32 and meta["backbone"] == "shapes_cnn"
    assert "weights_only=True" in (tmp_path / "exported" / "predict.py").read_text()
    again, from_zip = export.load(paths["model.pt"]), export.from_zip(export.to_zip(clf))
    probe = imgs.to_imageset(32).images
    p = clf.probabilities(probe)
    assert torch.allclose(again.probabilities(probe), p, atol=1e-6)
    assert torch.allclose(from_zip.probabilities(probe), p, atol=1e-6)
    assert torch.allclose(p, train.predict(_model(result), probe), atol=1e-6)  # what the lab trained
    photo = encode(skdata.chelsea())
    assert again.topk(photo, 2) == clf.topk(photo, 2) and len(clf.topk(photo, 5)) == 3


def _model(result):
    from tl_core import backbones

    m = backbones.create(result.config.backbone, "scratch", len(result.classes))
    m.load_state_dict(result.model_state)
    return m


def test_export_refuses_bad_files(tmp_path):
    imgs = userdata.read_zip(photos_zip(3), "photos.zip")
    cfg = finetune.FinetuneConfig(backbone="shapes_cnn", weights="pretrained", dataset="own: mine.zip", shots=None,
                                  epochs=1, image_size=32)
    clf = export.from_result(finetune.run(cfg, dataset=imgs.to_imageset(32)))
    paths = export.save(clf, tmp_path)
    meta = json.loads(open(paths["model.json"]).read())
    evil = io.BytesIO()
    torch.save({"x": torch.zeros(1), "obj": print}, evil)  # a pickled callable: refused by weights_only
    with pytest.raises(ValueError, match="weights_only=True"):
        export.from_bytes(evil.getvalue(), json.dumps(meta))
    with pytest.raises(ValueError, match="does not fit shapes_cnn with 2 classes"):
        export.from_bytes(open(paths["model.pt"], "rb").read(), json.dumps({**meta, "classes": ["a", "b"]}))
    with pytest.raises(ValueError, match="not a Transfer Lab export"):
        export.from_bytes(b"", "{}")
    (tmp_path / "model.json").unlink()
    with pytest.raises(ValueError, match="model.json .* is missing"):
        export.load(tmp_path / "model.pt")


@pytest.mark.slow   # EfficientNet-Lite0 at 64 px, 2 seeds x 15 epochs, then ONNX
def test_cli_finetune_zip_export_then_predict(tmp_path, capsys):
    (tmp_path / "photos.zip").write_bytes(photos_zip(8))
    Image.fromarray(crops("coffee", 1, seed=99)[0]).save(tmp_path / "mug.jpg")
    rc = cli.main(["finetune", "--data-zip", str(tmp_path / "photos.zip"), "--backbone", "efficientnet_lite0",
                   "--freeze", "all", "--image-size", "64", "--epochs", "15", "--lr", "0.003", "--seeds", "2",
                   "--export", str(tmp_path / "model"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["counts"] == {"astronaut": 8, "cat": 8, "coffee": 8}
    assert out["config"]["dataset"] == "own: photos.zip" and out["config"]["shots"] is None
    assert len(out["val_acc_seeds"]) == 2 and out["val_acc"] >= 0.6     # chance is 1/3: ImageNet features transfer
    assert set(out["export"]) == {"model.pt", "model.onnx", "model.json", "predict.py"}
    assert out["onnx_path"] == out["export"]["model.onnx"] and 0 <= out["onnx_max_abs_diff"] <= 1e-4
    rc = cli.main(["predict", "--model", out["export"]["model.pt"], str(tmp_path / "mug.jpg"), "--top-k", "2",
                   "--json"])
    pred = json.loads(capsys.readouterr().out)
    top = pred["predictions"][0]["top"]
    assert rc == 0 and len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
    assert [t["class"] for t in top] == [c for c, _ in export.load(tmp_path / "model").topk(
        (tmp_path / "mug.jpg").read_bytes(), 2)]
    assert cli.main(["predict", "--model", out["export"]["model.pt"], str(tmp_path / "photos.zip")]) == 2
    assert "not an image" in capsys.readouterr().err


# ---- the page ----------------------------------------------------------------------------------------------

def _small_training(app):
    assert app.radio(key="own_weights").value == finetune.FinetuneConfig().weights   # the lab's default: both
    app.radio(key="own_weights").set_value("pretrained")
    app.selectbox(key="own_backbone").set_value("shapes_cnn")
    app.select_slider(key="own_size").set_value(32)
    app.slider(key="own_epochs").set_value(3)
    app.slider(key="own_seeds").set_value(2)
    app.run()


def test_page_upload_train_predict_and_keep_everything(app, monkeypatch):
    calls = fakes.count_trainings(monkeypatch)
    app.switch_page("app_pages/own.py").run()
    assert not app.exception and "Upload a zip" in app.info[0].value
    app.file_uploader(key="own_zip").set_value(("broken.zip", b"no zip here", "application/zip")).run()
    assert not app.exception and "is not a zip file" in app.error[0].value
    app.file_uploader(key="own_zip").set_value(("photos.zip", photos_zip(5), "application/zip")).run()
    assert not app.exception and not app.error
    assert app.subheader[0].value == "Your classes: 15 images from photos.zip"
    assert "up to 200 MB" in " ".join(c.value for c in app.caption)
    _small_training(app)
    app.button(key="own_train").click().run()
    assert not app.exception and len(calls) == 1
    assert "pretrained: validation accuracy" in " ".join(i.value for i in app.info)
    assert len(app.get("plotly_chart")) == 3                  # curves, per-class accuracy, confusion
    app.file_uploader(key="own_predict_file").set_value(("mug.jpg", encode(crops("coffee", 1, 7)[0]), "image/jpeg"))
    app.run()
    assert not app.exception and len(app.get("plotly_chart")) == 4
    assert "Prediction: " in str(app.get("plotly_chart")[3].proto.spec)
    app.switch_page("app_pages/home.py").run()
    app.switch_page("app_pages/own.py").run()                  # a page switch loses nothing, retrains nothing
    assert not app.exception and len(calls) == 1 and app.button(key="own_train").disabled
    assert app.subheader[0].value == "Your classes: 15 images from photos.zip"
    assert len(app.get("plotly_chart")) >= 3


def test_an_upload_adds_to_the_images_collected_and_never_drops_them():
    collected = userdata.read_zip(photos_zip(4), "photos.zip")
    one_class = userdata.read_zip(photos_zip(3, classes=("cat",)), "rocket.zip").edited({"cat": "rocket"})
    both = collected.merged(one_class)
    assert both.counts() == {"cat": 4, "coffee": 4, "astronaut": 4, "rocket": 3} and not both.problems()
    assert both.source == "photos.zip + rocket.zip" and len(both.names) == len(both)
    again = both.merged(collected)                                   # the same zip twice: nothing added twice
    assert again.counts() == both.counts() and any("already in their class" in n for n in again.notes)
    assert UserImages.empty().merged(one_class) is one_class          # nothing collected yet: the upload itself


def test_page_a_one_class_zip_after_a_collected_set_keeps_every_image(app):
    app.switch_page("app_pages/own.py").run()
    app.button(key="own_sample").click().run()
    assert not app.exception and len(app.session_state["own_data"]) == 40
    app.file_uploader(key="own_zip").set_value(("rocket.zip", photos_zip(3, classes=("cat",)), "application/zip"))
    app.run()
    kept = app.session_state["own_data"]
    assert not app.exception and len(kept) == 43 and kept.counts()["cat"] == 13, kept.counts()
    assert any("Added 3 images from rocket.zip to the 40 collected" in s.value for s in app.success)
    app.file_uploader(key="own_zip").set_value(("broken.zip", b"no zip here", "application/zip")).run()
    assert len(app.session_state["own_data"]) == 43 and "43 images collected so far are kept" in app.error[0].value
    app.button(key="own_clear").click().run()
    assert not app.exception and len(app.session_state["own_data"]) == 0


@pytest.mark.slow
def test_page_webcam_rename_drop_and_import(app):
    app.switch_page("app_pages/own.py").run()
    for name in ("yes", "no", "maybe"):
        app.text_input(key="own_new_class").set_value(name)
        app.button(key="own_add_class").click().run()
    shots = {"yes": crops("cat", 4), "no": crops("coffee", 4), "maybe": crops("astronaut", 1)}
    for i, name in enumerate(("yes", "no", "maybe")):
        for j, arr in enumerate(shots[name]):
            app.camera_input(key=f"own_cam_0_{i}").set_value((f"shot{j}.jpg", encode(arr), "image/jpeg")).run()
    app.run()                                                    # the last shot is not added twice
    assert not app.exception and app.session_state["own_data"].counts() == {"yes": 4, "no": 4, "maybe": 1}
    assert any("'maybe' has only 1 image" in w.value for w in app.warning)
    app.text_input(key="own_rename_0_0").set_value("cat")
    app.checkbox(key="own_drop_0_2").check()
    _small_training(app)
    app.button(key="own_train").click().run()
    assert not app.exception
    result = next(iter(app.session_state["own_results"].values()))
    assert result.classes == ["cat", "no"]
    bundle = export.to_zip(export.from_result(result))
    app.radio(key="own_model_source").set_value("imported").run()
    app.file_uploader(key="own_import").set_value(("model.zip", bundle, "application/zip")).run()
    assert not app.exception and any("Imported shapes_cnn for cat, no at 32 px" in c.value for c in app.caption)
    app.file_uploader(key="own_predict_file").set_value(("x.png", encode(crops("cat", 1, 5)[0], "PNG"), "image/png"))
    app.run()
    assert not app.exception and "Prediction: " in str(app.get("plotly_chart")[-1].proto.spec)


@pytest.mark.parametrize("meta,message", [
    ({"backbone": ["shapes_cnn"], "classes": ["a", "b"], "image_size": 32}, "backbone must be one of"),
    ({"backbone": "shapes_cnn", "classes": ["a", "b"], "image_size": None}, "image_size must be a whole number"),
])
def test_an_export_with_malformed_model_json_is_refused_in_one_line(meta, message):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", json.dumps({"format": export.FORMAT, **meta}))
        zf.writestr("model.pt", b"not read")
    with pytest.raises(ValueError, match=message):
        export.from_zip(buf.getvalue())


def test_an_export_zip_bomb_or_corrupt_member_is_refused_before_reading():
    meta = json.dumps({"format": export.FORMAT, "backbone": "shapes_cnn", "classes": ["a", "b"], "image_size": 32})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", meta)
        zf.writestr("model.pt", b"\0" * 20_000_000)       # 20 MB of zeros in a few KB
    with pytest.raises(ValueError, match="zip bomb"):
        export.from_zip(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("model.json", meta)
        zf.writestr("model.pt", b"weights" * 100)
    raw = bytearray(buf.getvalue())
    raw[raw.index(b"weights") + 3] ^= 0xFF                # flip a byte: bad CRC
    with pytest.raises(ValueError, match="corrupt"):
        export.from_zip(bytes(raw))


def test_page_sample_set_defaults_card_and_a_damaged_onnx_import(app, monkeypatch):
    from tl_core import backbones

    read = []
    real = userdata.read_zip
    monkeypatch.setattr(userdata, "read_zip", lambda *a, **k: read.append(a) or real(*a, **k))
    app.switch_page("app_pages/own.py").run()
    app.button(key="own_sample").click().run()                    # one click: the upload path, from memory
    assert not app.exception and read and isinstance(read[0][0], bytes)
    assert app.subheader[0].value == f"Your classes: 40 images from {userdata.SAMPLE_NAME}"
    d = finetune.FinetuneConfig()                                  # the lab's defaults are the page's
    n = len(backbones.stage_names(d.backbone))
    assert {k: app.session_state[f"own_{k}"] for k in ("backbone", "weights", "strategy", "epochs", "lr", "size",
                                                       "seeds", "val", "freeze")} == {
        "backbone": d.backbone, "weights": d.weights, "strategy": d.strategy, "epochs": d.epochs, "lr": d.lr,
        "size": d.image_size, "seeds": d.seeds, "val": d.val_fraction, "freeze": n - 1}
    assert any(e.label.startswith("Model card: efficientnet_lite0 at 64 px") for e in app.sidebar.expander)
    meta = {"format": export.FORMAT, "backbone": "shapes_cnn", "classes": ["a", "b"], "image_size": 32}
    bundle = export.to_zip(export.Classifier(backbones.create("shapes_cnn", "pretrained", 2).eval(), meta))
    damaged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bundle)) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info)[:500] if info.filename == "model.onnx" else src.read(info))
    app.radio(key="own_model_source").set_value("imported").run()
    app.file_uploader(key="own_import").set_value(("model.zip", damaged.getvalue(), "application/zip")).run()
    assert not app.exception and [e.value for e in app.error] == [
        next(e.value for e in app.error if "model.onnx is not a valid ONNX model" in e.value)]
