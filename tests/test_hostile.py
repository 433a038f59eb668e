"""Hostile uploads (issue #33: no upload can take the class's server down). Each test builds its hostile file
here, checks the one-line message, and measures the reader in a subprocess: it imports everything and warms up,
records its peak RSS (ru_maxrss), reads the upload, and the peak may grow by less than MEMORY beyond the upload's own
size. Cases: zip entries whose headers lie about their size (deflate, bzip2, LZMA), a .pt whose records are
deflated (inside an export zip too), a zip of many flat 39.7-megapixel PNGs, a huge text upload; and the identity of
an uploaded state_dict (its content hash), with the workshop's eviction of old uploads by bytes."""
import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tl_core import export, safeio, state, text, userdata

ROOT = Path(__file__).resolve().parent.parent
MB = 2 ** 20
MEMORY = 64 * MB          # what reading a hostile upload may add to the peak, beyond the upload's own bytes
BOMB_MB = 200             # what each bomb really inflates to


# ---- building hostile files ------------------------------------------------------------------------------

def png(width: int, height: int, colour=(120, 30, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


SMALL = png(40, 40)


def _entry(zf: zipfile.ZipFile, name: str, method: int, mb: int) -> None:
    """`mb` MB of zeros written as one entry, streamed (never held whole)."""
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.compress_type = method
    with zf.open(info, "w") as w:
        for _ in range(mb):
            w.write(bytes(MB))


def lie(raw: bytes, name: str, declared: int) -> bytes:
    """The zip with `name`'s uncompressed size set to `declared` in its local and central headers (the data and
    its CRC left as they are): a header that lies."""
    raw = bytearray(raw)
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info, start = zf.getinfo(name), zf.start_dir
    struct.pack_into("<I", raw, info.header_offset + 22, declared)          # local header: uncompressed size
    at = start
    while raw[at:at + 4] == b"PK\x01\x02":                                  # central directory
        n, x, c = struct.unpack_from("<HHH", raw, at + 28)
        if raw[at + 46:at + 46 + n].decode() == name:
            struct.pack_into("<I", raw, at + 24, declared)
        at += 46 + n + x + c
    return bytes(raw)


def image_bomb(method: int, mb: int = BOMB_MB) -> bytes:
    """A class-folder zip: two good PNGs and cat/bomb.png, whose header says 100 bytes and which inflates to `mb` MB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cat/1.png", SMALL)
        zf.writestr("dog/1.png", SMALL)
        _entry(zf, "cat/bomb.png", method, mb)
    return lie(buf.getvalue(), "cat/bomb.png", 100)


def pt_bomb(mb: int = BOMB_MB) -> bytes:
    """A .pt in torch's zip format holding {"w": a tensor of `mb` MB of zeros} whose data record is deflated: a
    few hundred KB that torch.load unpacks to `mb` MB (every header honest)."""
    small, big = 70_000, mb * MB // 4                 # numels whose pickle encoding is 4 bytes (BININT)
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(small)}, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("/data.pkl"):
                assert body.count(struct.pack("<i", small)) == 2   # the storage's numel and the tensor's size
                zf.writestr(info.filename, body.replace(struct.pack("<i", small), struct.pack("<i", big)))
            elif info.filename.endswith("/data/0"):
                _entry(zf, info.filename, zipfile.ZIP_DEFLATED, mb)
            else:
                zf.writestr(info.filename, body)
    return out.getvalue()


def export_zip(model_pt: bytes | None = None, bomb_mb: int = 0) -> bytes:
    meta = json.dumps({"format": export.FORMAT, "backbone": "shapes_cnn", "classes": ["a", "b"], "image_size": 32})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", meta)
        if model_pt is not None:
            zf.writestr("model.pt", model_pt)
        else:
            _entry(zf, "model.pt", zipfile.ZIP_DEFLATED, bomb_mb)
    return buf.getvalue() if model_pt is not None else lie(buf.getvalue(), "model.pt", 100)


@pytest.fixture(scope="module")
def bombs():
    """Each bomb made when a test first asks for it (bzip2 and LZMA take seconds to compress their 200 MB)."""
    methods = {"deflate": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}

    class Made(dict):
        def __missing__(self, method):
            self[method] = image_bomb(methods[method])
            return self[method]
    return Made()


# ---- the reader in a subprocess, its peak memory measured ---------------------------------------------------

PROBE = """
import gc, json, resource, sys, time
sys.path.insert(0, {root!r})
import torch
from tl_core import export, state, text, userdata
from tl_core.experiments import finetune
{warmup}
gc.collect()
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before = peak()
raw = open({path!r}, "rb").read()
t = time.perf_counter()
try:
    out = {call}
except Exception as err:
    out = f"{{type(err).__name__}}: {{err}}"
print(json.dumps({{"grew": peak() - before, "size": len(raw), "seconds": time.perf_counter() - t, "out": str(out)}}))
"""
SUMMARY = """
def summary(imgs):
    return (f"{len(imgs)} images; skipped: " + " | ".join(f"{s.name}: {s.reason}" for s in imgs.skipped)
            + "; notes: " + " | ".join(imgs.notes))
userdata.read_zip(userdata.sample_zip(2), "warm-up.zip")
"""


def probe(tmp_path, raw: bytes, call: str, warmup: str = "", timeout: float = 120) -> dict:
    path = tmp_path / "upload.bin"
    path.write_bytes(raw)
    code = PROBE.format(root=str(ROOT), warmup=SUMMARY + warmup, path=str(path), call=call)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_bounded(m: dict) -> None:
    assert m["grew"] < m["size"] + MEMORY, (f"reading a {m['size'] / 1024:,.1f} KB upload grew the peak by "
                                            f"{m['grew'] / MB:,.0f} MB: {m['out'][:300]}")


# ---- 2: zip entries whose headers lie ----------------------------------------------------------------------

@pytest.mark.parametrize("method,message", [
    pytest.param("deflate", "inflates to more than the 100 bytes its header declares",
                 marks=pytest.mark.slow),
    pytest.param("bzip2", "is compressed with bzip2; only stored or deflated zip entries are read",
                 marks=pytest.mark.slow),   # a fresh process each, importing torch
    pytest.param("lzma", "is compressed with LZMA; only stored or deflated zip entries are read",
                 marks=pytest.mark.slow),
])
def test_a_zip_entry_that_inflates_past_its_header_is_refused_in_bounded_memory(bombs, tmp_path, method, message):
    raw = bombs[method]
    assert len(raw) < 400 * 1024                                        # a few hundred bytes to 200 KB uploaded
    m = probe(tmp_path, raw, "summary(userdata.read_zip(raw, 'bomb.zip'))")
    assert_bounded(m)
    assert m["out"].startswith("2 images;") and f"cat/bomb.png: this file {message}" in m["out"]  # the rest kept
    imgs = userdata.read_zip(raw, "bomb.zip")
    assert len(imgs) == 2 and [s.name for s in imgs.skipped] == ["cat/bomb.png"]
    assert "\n" not in imgs.skipped[0].reason


def test_the_safe_reader_counts_every_entry_against_its_declared_size_and_the_budget():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", b"\0" * 300_000)
        zf.writestr("b.bin", b"x" * 10)
    raw = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert safeio.read_entry(zf, zf.getinfo("a.bin"), "up.zip") == b"\0" * 300_000
        with pytest.raises(safeio.BudgetSpent, match="up.zip unpacks to more than"):
            safeio.read_entry(zf, zf.getinfo("a.bin"), "up.zip", safeio.Budget(bytes=100_000))
        with pytest.raises(safeio.RefusedFile, match="larger than"):
            safeio.read_entry(zf, zf.getinfo("a.bin"), "up.zip", limit=1000)
    with zipfile.ZipFile(io.BytesIO(lie(raw, "a.bin", 1000))) as zf:        # a header that says less
        with pytest.raises(safeio.RefusedFile, match="inflates to more than the 1,000 bytes its header declares"):
            safeio.read_entry(zf, zf.getinfo("a.bin"), "up.zip")
    with zipfile.ZipFile(io.BytesIO(lie(raw, "b.bin", 20))) as zf:          # ... or more
        with pytest.raises(safeio.RefusedFile, match="corrupt: 10 bytes where its header declares 20"):
            safeio.read_entry(zf, zf.getinfo("b.bin"), "up.zip")


def test_entries_that_fail_count_toward_the_image_limit(monkeypatch):
    monkeypatch.setattr(userdata, "MAX_IMAGES", 3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(5):
            zf.writestr(f"cat/{i}.png", b"not a png")
        zf.writestr("dog/9.png", SMALL)
        zf.writestr("dog/z.png", SMALL)
    imgs = userdata.read_zip(buf.getvalue(), "junk.zip")
    assert len(imgs) == 0 and len(imgs.skipped) == 3
    assert imgs.notes == ("Only the first 3 image files were read (the limit); the rest were skipped.",)


# ---- 3: a .pt that is itself a compressed bomb ----------------------------------------------------------------

@pytest.mark.slow   # a fresh process importing torch, its peak memory measured
def test_a_pt_with_deflated_records_is_refused_before_torch_load(tmp_path):
    raw = pt_bomb()
    assert len(raw) < 400 * 1024
    m = probe(tmp_path, raw, "state.read(raw, 'bomb.pt')", warmup="state.read(state.to_bytes({'w': torch.ones(3)}))")
    assert_bounded(m)
    assert m["out"].startswith("RefusedFile: bomb.pt: refused — its record 'archive/data/0' is compressed (deflated")
    with pytest.raises(ValueError, match=r"^bomb.pt: refused .* save it again with torch.save$"):
        state.read(raw, "bomb.pt")


def test_a_pt_whose_records_overlap_or_outgrow_the_file_is_refused():
    raw = bytearray(state.to_bytes({"w": torch.ones(1000)}))
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        name = next(i.filename for i in zf.infolist() if i.filename.endswith("/data/0"))
    forged = lie(bytes(raw), name, 40_000_000)                              # a stored record claiming 40 MB
    with pytest.raises(ValueError, match="declares 40,000,000 bytes, more than the file's"):
        state.read(forged, "forged.pt")
    assert set(state.read(bytes(raw), "fine.pt").state) == {"w"}            # torch.save's own files pass


@pytest.mark.slow   # three fresh processes, each importing torch, reading a 200 MB bomb
def test_an_export_zip_with_a_pt_bomb_or_a_lying_member_is_refused_in_bounded_memory(tmp_path):
    warm = "from tl_core import backbones; backbones.create('shapes_cnn', 'scratch', 2)"
    m = probe(tmp_path, export_zip(pt_bomb()), "export.from_zip(raw, 'bundle.zip')", warmup=warm)
    assert_bounded(m)
    assert "is compressed (deflated" in m["out"]
    m = probe(tmp_path, export_zip(bomb_mb=BOMB_MB), "export.from_zip(raw, 'bundle.zip')", warmup=warm)
    assert_bounded(m)
    assert "bundle.zip: model.pt inflates to more than the 100 bytes its header declares" in m["out"]


# ---- 4: pixels and text without a budget ---------------------------------------------------------------------

@pytest.mark.slow   # a fresh process importing torch, its peak memory measured
def test_a_zip_of_many_large_pixel_pngs_stops_at_the_decoding_budget(tmp_path):
    big = png(7300, 5440)                                                   # 39.7 megapixels in about 128 KB
    assert 7300 * 5440 < userdata.MAX_PIXELS and len(big) < 200 * 1024
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(12):
            zf.writestr(f"{'ab'[i % 2]}/{i:02d}.png", big)
    # the budget is set to 1.5 such images here (the real one: MAX_UPLOAD_PIXELS), so the test takes seconds;
    # the warm-up decodes one, so the peak already holds one decoded image and must not grow per image
    warm = f"userdata.decode(open({str(tmp_path / 'big.png')!r}, 'rb').read()); userdata.MAX_UPLOAD_PIXELS = 60_000_000"
    (tmp_path / "big.png").write_bytes(big)
    m = probe(tmp_path, buf.getvalue(), "summary(userdata.read_zip(raw, 'pixels.zip'))", warmup=warm, timeout=240)
    assert_bounded(m)
    assert m["out"].startswith("1 images;"), m["out"]
    assert ("Stopped after 1 image file: the upload's decoding budget of 60 megapixels is spent (40 decoded); "
            "the remaining 11 were skipped.") in m["out"]
    assert m["seconds"] < 20
    # the defaults: an upload decodes at most ~50 such images, and stops after MAX_DECODE_SECONDS anyway
    assert userdata.MAX_UPLOAD_PIXELS // userdata.MAX_PIXELS <= 50 and userdata.MAX_DECODE_SECONDS <= 60


def test_the_decoding_time_budget_stops_an_upload_and_keeps_what_was_read(monkeypatch):
    monkeypatch.setattr(userdata, "MAX_DECODE_SECONDS", 0.0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"{'ab'[i % 2]}/{i}.png", SMALL)
    imgs = userdata.read_zip(buf.getvalue(), "slow.zip")
    assert len(imgs) == 1 and imgs.notes == ("Stopped after 1 image file: the upload's decoding time budget of 0 s "
                                             "is spent; the remaining 3 were skipped.",)


def test_jpegs_decode_at_the_scale_needed_and_count_only_those_pixels():
    arr = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    budget = safeio.Budget(pixels=10 ** 9)
    out = userdata.decode(buf.getvalue(), budget=budget)
    assert out.shape == (userdata.STORE_SIZE, userdata.STORE_SIZE, 3)
    assert budget.spent_pixels == 500 * 375                 # decoded at 1/8 scale: 12 MP cost 0.19 MP
    with pytest.raises(safeio.BudgetSpent, match="decoding budget of 0 megapixels"):
        userdata.decode(png(300, 300), budget=safeio.Budget(pixels=10_000))


@pytest.mark.slow   # a fresh process importing torch, its peak memory measured
def test_a_huge_text_upload_is_read_and_tokenized_as_a_prefix_once(tmp_path, monkeypatch):
    raw = b"Transfer learning reuses features. " * (32 * MB // 35)
    m = probe(tmp_path, raw, "(lambda t: (t[1], text.tokens(t[0]).total))(text.read_upload(raw, 'huge.txt'))",
              warmup="text.tokens('warm up the tokenizer')")
    assert_bounded(m)
    assert m["seconds"] < 5
    assert m["out"].startswith(f"('huge.txt is {len(raw) / MB:,.0f} MB: only its first "
                               f"{text.MAX_UPLOAD_BYTES // 1024} KB are read.', ")
    body, note = text.read_upload(b"a" + "é".encode() * 40_000, "accents.txt")  # a cut inside a character drops it
    assert body == "a" + "é" * (text.MAX_UPLOAD_BYTES // 2 - 1) and note.startswith("accents.txt is 78 KB: only")
    body = text.read_upload(b"word " * 40_000, "words.txt")[0]
    tok = text.tokens(body)
    assert tok.truncated and tok.total > text.MAX_TOKENS and tok.counted_all
    assert not text.tokens("word " * 20_000).counted_all                  # counted in a prefix: "or more"
    calls = []
    real = text.tokenizer
    monkeypatch.setattr(text, "tokenizer", lambda: calls.append(1) or real())
    assert text.tokens(body) == tok and not calls                     # cached by content: not tokenized again
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0xff at position 3\)"):
        text.read_upload(b"abc\xff" + b"x" * (text.MAX_UPLOAD_BYTES * 2), "bad.txt")


# ---- 1 (page side): an upload's identity is its content; the workshop's uploads are bounded -------------------

def _same_size_state_dicts() -> tuple[bytes, bytes]:
    a = state.to_bytes(state.export("shapes_cnn", "pretrained"))
    b = state.to_bytes(state.export("shapes_cnn", "scratch"))
    assert len(a) == len(b) and a != b
    return a, b


def test_two_same_size_state_dicts_get_different_run_identities(monkeypatch):
    """Two students upload weights.pt files of one architecture and the same size; each continues fine-tuning with
    the same settings: the runs' identities (what the shared server keys results by) differ."""
    from streamlit.testing.v1 import AppTest

    from app_pages import ui
    from tl_core.run_request import RunRequest

    asked = []

    def run_button(prefix, label, kind, cfg, *, results, key=None, inputs=None, extra=None, **kw):
        fingerprints = {name: fp for name, (fp, _) in (inputs or {}).items()}
        asked.append(RunRequest.of(kind, cfg, extra, inputs=fingerprints).identity())
        return None

    monkeypatch.setattr(ui, "run_button", run_button)
    for raw in _same_size_state_dicts():
        at = AppTest.from_file(str(ROOT / "app_pages" / "state.py"), default_timeout=120).run()
        at.file_uploader(key="sd_upload").upload("weights.pt", raw).run()
        at.button(key="sd_load").click().run()
        assert not at.exception and "Loaded all 26 tensors" in at.success[0].value
    assert len(asked) == 2 and asked[0] != asked[1]
    a, b = _same_size_state_dicts()
    assert state.read(a, "weights.pt").digest == safeio.content_hash(a) != state.read(b, "weights.pt").digest


def test_the_workshop_keeps_uploads_within_a_byte_budget_oldest_dropped(monkeypatch):
    from streamlit.testing.v1 import AppTest

    a, b = _same_size_state_dicts()
    size = state.read(a, "a.pt").nbytes
    monkeypatch.setattr(state, "KEPT_MB", 1.5 * size / MB)              # room for one file and a half
    at = AppTest.from_file(str(ROOT / "app_pages" / "state.py"), default_timeout=120).run()
    at.file_uploader(key="sd_upload").upload("first.pt", a).run()
    at.file_uploader(key="sd_upload").upload("second.pt", b).run()
    assert not at.exception
    assert [o for o in at.selectbox(key="sd_file").options] == [f"second.pt ({len(b):,} bytes)"]
    assert any("Dropped first.pt" in i.value and "upload it again" in i.value for i in at.info)
    files = {"x": state.read(a, "x.pt"), "y": state.read(b, "y.pt"), "z": state.read(a, "z.pt")}
    assert state.keep_within(files, int(2.5 * size)) == ["x.pt"] and list(files) == ["y", "z"]
    assert state.keep_within(files, 1) == ["y.pt"] and list(files) == ["z"]   # the newest always stays
