"""Your own images: a class-folder zip, webcam shots or single uploads → a labelled image set.

A separate module from `data.py` because everything here reads *untrusted* bytes: `data.py` builds the
shipped datasets, this one defends against what a user uploads. Nothing is ever extracted to disk:
every zip entry is checked (name, count, declared sizes, compression ratio) before a single byte is
decompressed, then each entry is read through `safeio.read_entry` (stored or deflated only, counted against
its declared size and the upload's `safeio.Budget`) and decoded one at a time in memory, so no entry can write
anywhere, and no header (zip or image) decides how much memory or time an upload costs: an image's size is
read from its header and charged to the upload's pixel budget before it is decoded, JPEGs are decoded at the
scale needed (draft), and an upload stops, keeping what it read, when its pixel or time budget is spent.
Every image becomes an RGB square of STORE_SIZE px (centre crop, like Teachable Machine), kept as uint8;
training resizes from there to the chosen input size.

Layout of a zip (one or more extra top folders are understood):
    my_classes.zip
        cat/   img001.jpg img002.png ...
        dog/   ...
"""
from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import cached_property
from hashlib import sha256
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from tl_core import data, safeio
from tl_core.i18n import N_, fmt, tr

# ---- limits: stated in every refusal and on the page ------------------------------------------------
UPLOAD_LIMIT_MB = 200                 # .streamlit/config.toml server.maxUploadSize (the page's upload cap)
MAX_ENTRIES = 5_000                   # files and folders in one zip
MAX_IMAGES = 2_000                    # images kept (2,000 × 128² RGB = 98 MB in memory)
MAX_TOTAL_BYTES = 1_000 * 2 ** 20     # declared uncompressed size of the whole zip
MAX_FILE_BYTES = 50 * 2 ** 20         # one file, uncompressed
MAX_RATIO = 100                       # uncompressed / compressed, for entries over RATIO_FLOOR
RATIO_FLOOR = 2 ** 20                 # small files may compress well (a flat BMP): only big ones count
MAX_PIXELS = 40_000_000               # decoded at full size; JPEGs above it are decoded at 1/2..1/8 scale
MAX_UPLOAD_PIXELS = 2_000_000_000     # decoded in all from one upload (50 images at MAX_PIXELS; JPEGs count scaled)
MAX_DECODE_SECONDS = 60               # spent reading one upload; then it stops, keeping what it read
STORE_SIZE = 128                      # every image is kept as a STORE_SIZE × STORE_SIZE RGB square
MAX_CLASS_NAME = 60

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"}
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
LAYOUT = N_("Expected layout: one folder per class with its images inside, e.g. cat/1.jpg, cat/2.jpg, dog/1.jpg "
            "(one extra top folder, like my_photos/cat/1.jpg, is fine).")   # tr(LAYOUT) where it is shown


def limits_text() -> str:
    return tr("upload up to {upload} MB; at most {entries} files in the zip, {images} images, {total} MB uncompressed "
              "in all, {file} MB per file, compression ratio {ratio}:1 per file over 1 MB, {pixels} megapixels per "
              "image (bigger JPEGs are decoded at reduced scale), {upload_pixels} megapixels decoded and {seconds} s "
              "per upload (JPEGs count at the scale they are decoded at)", upload=UPLOAD_LIMIT_MB,
              entries=fmt(MAX_ENTRIES, ","), images=fmt(MAX_IMAGES, ","), total=fmt(MAX_TOTAL_BYTES // 2 ** 20, ","),
              file=MAX_FILE_BYTES // 2 ** 20, ratio=MAX_RATIO, pixels=fmt(MAX_PIXELS / 1e6, ".0f"),
              upload_pixels=fmt(MAX_UPLOAD_PIXELS / 1e6), seconds=MAX_DECODE_SECONDS)


class BadImage(ValueError):
    """One file that is not a usable image; the message is the reason shown in the report."""


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


# ---- one image --------------------------------------------------------------------------------------

def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB: 16-bit and float scaled (not clipped), transparency onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        if img.mode == "F":
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / max(hi - lo, 1e-6)
        else:  # 16-bit (and 32-bit int holding 16-bit PNG data): full scale is 65535
            a = a / (65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0)
        return Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")  # a palette may carry transparency
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        white = Image.new("RGB", img.size, (255, 255, 255))
        white.paste(img, mask=img.getchannel("A"))
        return white
    return img if img.mode == "RGB" else img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX


def upload_budget() -> safeio.Budget:
    """What one upload (a zip, or a batch of single images) may cost: bytes unpacked, pixels decoded, seconds."""
    return safeio.Budget(bytes=MAX_TOTAL_BYTES, pixels=MAX_UPLOAD_PIXELS, seconds=MAX_DECODE_SECONDS)


def decode(raw: bytes, size: int = STORE_SIZE, budget: safeio.Budget | None = None) -> np.ndarray:
    """Image bytes → uint8 (size, size, 3) RGB, centre-cropped square. Raises BadImage with the reason, and
    safeio.BudgetSpent (before decoding) when the image's pixels would overrun `budget`."""
    with warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that; our own MAX_PIXELS check decides instead
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw))
        except Image.DecompressionBombError as err:
            raise BadImage(tr("refused: too many pixels, could be a decompression bomb ({error})", error=err)) from None
        except Image.UnidentifiedImageError:
            raise BadImage(tr("not an image Pillow can read")) from None
        except Exception as err:  # noqa: BLE001 - any parser failure is a corrupt file
            raise BadImage(tr("corrupt image ({error})", error=f"{type(err).__name__}: {err}")) from None
        with img:
            if img.format not in FORMATS:
                raise BadImage(tr("{format} images are not supported (use JPEG, PNG, WebP, BMP, GIF or TIFF)",
                                  format=img.format))
            w, h = img.size
            if w < 1 or h < 1:
                raise BadImage(tr("image has no pixels"))
            if img.format in ("JPEG", "MPO"):
                # decode at 1/2..1/8 scale: draft picks the smallest scale at least as big as asked. Over the limit,
                # asking for half of what fits under it lands between half and all of it; under it, twice the
                # stored size is plenty for the antialiased resize below (a 12 MP photo decodes as 0.2 MP)
                s = (MAX_PIXELS / (w * h)) ** 0.5 / 2
                img.draft(None, (max(size, int(w * s)), max(size, int(h * s))) if w * h > MAX_PIXELS
                          else (2 * size, 2 * size))
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise BadImage(tr("refused: {w}×{h} px is {mp} megapixels, over the {most}-megapixel limit (save it "
                                  "smaller, or as JPEG)", w=w, h=h, mp=fmt(w * h / 1e6, ".0f"),
                                  most=fmt(MAX_PIXELS / 1e6, ".0f")))
            if budget is not None:
                budget.spend_pixels(img.size[0] * img.size[1])   # from the header, before a pixel is decoded
            try:
                img.seek(0)                       # GIF / multi-page TIFF: the first frame
                img = ImageOps.exif_transpose(img)  # phone photos: upright as the camera held them
                img.load()
                rgb = _to_rgb(img)
            except Exception as err:  # noqa: BLE001 - truncated data, bad chunks, unsupported modes
                raise BadImage(tr("corrupt image ({error})", error=f"{type(err).__name__}: {err}")) from None
    w, h = rgb.size
    side = min(w, h)  # centre crop to a square, then resize (reducing_gap: fast and still antialiased)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    square = rgb.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    return np.asarray(square, dtype=np.uint8).copy()


_DECODED: OrderedDict[str, np.ndarray] = OrderedDict()   # content hash → decoded square: pages rerun often
_DECODED_MOST = 64                                       # 64 × 48 KB


def decode_once(raw: bytes) -> np.ndarray:
    """`decode(raw)`, remembered by the bytes' content hash: a page showing an uploaded image on every rerun decodes
    it once (a 40-megapixel PNG takes a second or more)."""
    key = safeio.content_hash(raw)
    hit = _DECODED.get(key)
    if hit is None:
        hit = _DECODED[key] = decode(raw)
        while len(_DECODED) > _DECODED_MOST:
            _DECODED.popitem(last=False)
    return hit.copy()


def to_input(raw: bytes, size: int) -> torch.Tensor:
    """One image's bytes → the float (1, 3, size, size) tensor a trained model takes: the same path as
    training (decode to STORE_SIZE, then the same resize)."""
    img = torch.from_numpy(decode_once(raw)).permute(2, 0, 1)[None]
    return resize(img, size)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, S, S) → float32 (N, 3, size, size) in [0, 1]."""
    x = images.float() / 255.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
    return x.contiguous()


def check_class_name(name: str) -> str:
    name = str(name).strip()
    if not name:
        raise ValueError(tr("a class needs a name"))
    if len(name) > MAX_CLASS_NAME:
        raise ValueError(tr("class name {name}… is longer than {n} characters", name=repr(name[:20]), n=MAX_CLASS_NAME))
    if re.search(r"[/\\\x00-\x1f]", name) or name in (".", ".."):
        raise ValueError(tr("class name {name} may not contain '/', '\\' or control characters", name=repr(name)))
    return name


# ---- a set of user images -----------------------------------------------------------------------------

@dataclass(frozen=True)
class UserImages:
    """The user's labelled images. Immutable: every edit returns a new set (so a page can keep both)."""
    images: torch.Tensor                    # uint8 (N, 3, STORE_SIZE, STORE_SIZE)
    labels: torch.Tensor                    # int64 (N,)
    classes: tuple[str, ...]                # may include classes with no images yet (webcam flow)
    names: tuple[str, ...] = ()             # where each image came from (file in the zip, "webcam 3", ...)
    skipped: tuple[Skipped, ...] = ()       # files not used, with the reason: the report
    notes: tuple[str, ...] = ()             # warnings about the whole set (empty folders, limits reached)
    source: str = "your images"

    @classmethod
    def empty(cls, source: str = "your images") -> "UserImages":
        return cls(torch.zeros(0, 3, STORE_SIZE, STORE_SIZE, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                   (), (), source=source)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def fingerprint(self) -> str:
        """A content hash (sha256) of the images, labels and class names: the key of trained results, so two sets
        differ in identity whenever an image, label or class name does, whatever the files were called."""
        h = sha256(self.images.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        h.update("\x00".join(self.classes).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        return dict(zip(self.classes, torch.bincount(self.labels, minlength=len(self.classes)).tolist()))

    def of_class(self, name: str) -> torch.Tensor:
        return self.images[self.labels == self.classes.index(name)]

    # -- edits
    def add_class(self, name: str) -> "UserImages":
        name = check_class_name(name)
        if name in self.classes:
            raise ValueError(tr("there is already a class named {name}", name=repr(name)))
        return replace(self, classes=self.classes + (name,))

    def add_image(self, class_name: str, raw: bytes, name: str, budget: safeio.Budget | None = None) -> "UserImages":
        """Decode and append one image to `class_name` (created if new). Raises BadImage with the reason, and
        safeio.BudgetSpent when `budget` (one batch of uploads) is spent."""
        if len(self) >= MAX_IMAGES:
            raise BadImage(tr("the set already holds the maximum of {n} images", n=fmt(MAX_IMAGES, ",")))
        if len(raw) > MAX_FILE_BYTES:
            raise BadImage(tr("larger than {mb} MB", mb=MAX_FILE_BYTES // 2 ** 20))
        if budget is not None:
            budget.check_time()
        img = torch.from_numpy(decode(raw, budget=budget)).permute(2, 0, 1)[None]
        s = self if check_class_name(class_name) in self.classes else self.add_class(class_name)
        label = torch.tensor([s.classes.index(class_name.strip())])
        return replace(s, images=torch.cat([s.images, img]), labels=torch.cat([s.labels, label]),
                       names=s.names + (name,))

    def edited(self, renames: dict[str, str] | None = None, drop=()) -> "UserImages":
        """Classes renamed (old → new) and dropped (with their images), in the same order."""
        renames, drop = renames or {}, set(drop)
        keep = [c for c in self.classes if c not in drop]
        new = [check_class_name(renames.get(c, c)) for c in keep]
        dupes = sorted({n for n in new if new.count(n) > 1})
        if dupes:
            raise ValueError(tr("two classes would be named {name}: give each class its own name", name=repr(dupes[0])))
        remap = torch.tensor([keep.index(c) if c in keep else -1 for c in self.classes] or [0], dtype=torch.long)
        labels = remap[self.labels] if len(self) else self.labels
        rows = (labels >= 0).nonzero().flatten()
        return replace(self, images=self.images[rows], labels=labels[rows], classes=tuple(new),
                       names=tuple(self.names[i] for i in rows.tolist()) if self.names else ())

    def merged(self, other: "UserImages") -> "UserImages":
        """This set with `other`'s images added (an upload to images already collected: nothing collected is ever
        dropped). Classes by name, new ones after these; an image its class already holds is not added twice; at
        most MAX_IMAGES in all, a note saying how many did not fit."""
        if not len(self) and not self.classes:
            return other
        classes = self.classes + tuple(c for c in other.classes if c not in self.classes)
        seen = {(int(y), sha256(x.numpy().tobytes()).digest()) for x, y in zip(self.images, self.labels)}
        rows, labels, twice = [], [], 0
        for i, (x, y) in enumerate(zip(other.images, other.labels.tolist())):
            key = (classes.index(other.classes[y]), sha256(x.numpy().tobytes()).digest())
            twice += key in seen
            if key not in seen and len(self) + len(rows) < MAX_IMAGES:
                seen.add(key)
                rows.append(i)
                labels.append(key[0])
        cut = len(other) - twice - len(rows)
        notes = ((tr("{n} image(s) of {source} were already in their class: added once.", n=twice,
                     source=other.source),) * bool(twice)
                 + (tr("{n} image(s) of {source} did not fit: a set holds at most {most}.", n=cut, source=other.source,
                       most=fmt(MAX_IMAGES, ",")),) * bool(cut))
        names = (self.names + tuple(other.names[i] for i in rows)
                 if len(self.names) == len(self) and len(other.names) == len(other) else ())
        return UserImages(torch.cat([self.images, other.images[rows]]),
                          torch.cat([self.labels, torch.tensor(labels, dtype=torch.long)]), classes, names,
                          self.skipped + other.skipped, self.notes + other.notes + notes,
                          other.source if not len(self) else f"{self.source} + {other.source}")

    # -- checks
    def problems(self) -> list[str]:
        """What blocks training, as sentences saying what is needed (empty list: ready)."""
        counts = self.counts()
        with_images = [c for c, n in counts.items() if n > 0]
        if len(with_images) < 2:
            found = ", ".join(tr("{name} ({n} image)", name=repr(c), n=n) if n == 1 else
                              tr("{name} ({n} images)", name=repr(c), n=n) for c, n in counts.items()) or tr("none")
            return [tr("Transfer Lab needs at least 2 classes with images to tell apart; found {n} with images "
                       "(classes: {found}). Add another class folder (or webcam class) with images.",
                       n=len(with_images), found=found)]
        if max(counts.values()) < 2:
            return [tr("Every class has only 1 image, so none is left for validation: add at least 2 images to "
                       "some class (5 or more per class is better).")]
        return []

    def warnings(self, val_fraction: float = 0.15) -> list[str]:
        out = list(self.notes)
        for c, n in self.counts().items():
            if n == 0:
                out.append(tr("Class {name} has no images: it is left out of training.", name=repr(c)))
            elif n == 1:
                out.append(tr("Class {name} has only 1 image: it is used for training and the class gets no "
                              "validation image, so its accuracy cannot be measured. Add at least one more.",
                              name=repr(c)))
            else:
                v = data.val_count(n, val_fraction)
                if n < 5:
                    out.append(tr("Class {name} has only {n} images ({train} to train, {val} to validate): 5 or more "
                                  "per class give a steadier result.", name=repr(c), n=n, train=n - v, val=v))
        return out

    # -- conversions
    def to_imageset(self, size: int) -> data.ImageSet:
        """The classes with images, as float images of size × size ready for the fine-tuning lab."""
        problems = self.problems()
        if problems:
            raise ValueError(problems[0])
        s = self.edited(drop=[c for c, n in self.counts().items() if n == 0])
        return data.ImageSet(self.source, resize(s.images, size), s.labels.clone(), list(s.classes))

    def to_bytes(self) -> bytes:
        """The set as plain data for a run request (safetensors: the images, the labels, the class names as
        metadata; no pickle), read back by `from_bytes`."""
        from safetensors.torch import save

        return save({"images": self.images.contiguous(), "labels": self.labels.contiguous()},
                    metadata={"classes": json.dumps(list(self.classes)), "source": self.source})

    @classmethod
    def from_bytes(cls, blob: bytes) -> "UserImages":
        """A set written by `to_bytes` (its shapes and labels checked: a blob is never trusted)."""
        from safetensors.torch import load

        try:
            tensors = load(blob)
            meta = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")]).get("__metadata__") or {}
            classes, source = tuple(json.loads(meta["classes"])), meta.get("source", "your images")
        except Exception as err:  # noqa: BLE001 - the library's own errors for a corrupt blob
            raise ValueError(tr("the images sent with the run could not be read ({error})", error=err)) from None
        images, labels = tensors.get("images"), tensors.get("labels")
        if (images is None or labels is None or images.dtype != torch.uint8 or images.ndim != 4
                or tuple(images.shape[1:]) != (3, STORE_SIZE, STORE_SIZE) or labels.shape != (images.shape[0],)
                or (len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)))):
            raise ValueError(tr("the images sent with the run are not a set of labelled images"))
        return cls(images, labels.long(), classes, source=source)

    def to_zip(self) -> bytes:
        """The set in the layout `read_zip` reads (class folders of PNGs), to download and upload later."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
            for c in self.classes:
                zf.writestr(f"{c}/", b"")  # keeps an empty class a class
            for i, (img, label) in enumerate(zip(self.images, self.labels.tolist())):
                png = io.BytesIO()
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(png, "PNG")
                stem = Path(self.names[i]).stem if i < len(self.names) else "image"
                stem = re.sub(r"[^\w.-]+", "_", stem)[:40] or "image"
                zf.writestr(f"{self.classes[label]}/{i:04d}_{stem}.png", png.getvalue())
        return buf.getvalue()


# ---- zips -----------------------------------------------------------------------------------------------

unsafe_path = safeio.unsafe_path


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(p == "__MACOSX" or p.startswith(".") for p in parts) or parts[-1].lower() in IGNORED_NAMES


def open_zip(source, label: str) -> zipfile.ZipFile:
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise ValueError(tr("{label}: no such file", label=label))
    try:
        return safeio.open_zip(source, label)
    except safeio.RefusedFile:
        raise safeio.RefusedFile(tr("{label} is not a zip file (or a damaged one). Make a zip of your class folders. "
                                    "{layout}", label=label, layout=tr(LAYOUT))) from None


def check_entries(infos: list[zipfile.ZipInfo], label: str) -> None:
    """Refuse a zip from its directory alone, before anything is decompressed (this module's limits)."""
    safeio.check_entries(infos, label, max_entries=MAX_ENTRIES, max_total=MAX_TOTAL_BYTES, max_ratio=MAX_RATIO,
                         ratio_floor=RATIO_FLOOR)


def read_zip(source, label: str | None = None) -> UserImages:
    """A class-folder zip (bytes, a path or a file object) → UserImages, with unusable files in `skipped`.
    Raises ValueError, saying why and what is expected, for a zip that is unsafe, too big or has no class
    folders."""
    label = label or (Path(source).name if isinstance(source, (str, Path)) else "the upload")
    with open_zip(source, label) as zf:
        infos = zf.infolist()
        check_entries(infos, label)
        skipped: list[Skipped] = []
        files, folders = [], set()
        for info in infos:
            parts = tuple(p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p)
            if not parts or _ignored(parts):
                continue
            if info.is_dir():
                folders.add(parts)
            else:
                files.append((parts, info))
        # one or more wrapper folders (my_photos/cat/1.jpg): strip while every file shares the top folder,
        # some sit in folders below it, and no image sits in it directly (that would make it a class)
        while (files and len({p[0] for p, _ in files}) == 1 and any(len(p) >= 3 for p, _ in files)
               and not any(len(p) == 2 and Path(p[1]).suffix.lower() in IMAGE_SUFFIXES for p, _ in files)):
            top = files[0][0][0]
            files = [(p[1:], i) for p, i in files]
            folders = {f[1:] for f in folders if f[0] == top and len(f) > 1}
        loose = [i.filename for p, i in files if len(p) == 1]
        files = [(p, i) for p, i in files if len(p) > 1]
        if not files:
            raise ValueError(safeio.no_class_folders(label, loose, tr(LAYOUT)))
        skipped += [Skipped(n, tr("not inside a class folder")) for n in loose]
        classes = sorted({p[0] for p, _ in files} | {f[0] for f in folders}, key=str.lower)
        classes = tuple(check_class_name(c) for c in classes)
        images, labels, names, notes = [], [], [], []
        budget, tried = upload_budget(), 0   # every image file read counts, decoded or not
        files = sorted(files, key=lambda f: f[1].filename)
        left = sum(Path(p[-1]).suffix.lower() in IMAGE_SUFFIXES for p, _ in files)
        for parts, info in files:
            name = info.filename
            if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(Skipped(name, tr("not an image file ({suffix})",
                                                suffix=Path(parts[-1]).suffix or tr("no extension"))))
                continue
            if info.flag_bits & 0x1:
                skipped.append(Skipped(name, tr("password-protected")))
                left -= 1
                continue
            if info.file_size > MAX_FILE_BYTES:
                skipped.append(Skipped(name, tr("larger than {mb} MB", mb=MAX_FILE_BYTES // 2 ** 20)))
                left -= 1
                continue
            if tried >= MAX_IMAGES:
                notes.append(tr("Only the first {n} image files were read (the limit); the rest were skipped.",
                                n=fmt(MAX_IMAGES, ",")))
                break
            read = tried
            try:
                if tried:
                    budget.check_time()
                tried += 1
                images.append(decode(safeio.read_entry(zf, info, label, budget, MAX_FILE_BYTES,
                                                       name=tr("this file")), budget=budget))
            except safeio.BudgetSpent as err:
                fill = dict(n=fmt(read, ","), why=err, left=fmt(left, ","))
                notes.append(tr("Stopped after {n} image file: {why}; the remaining {left} were skipped.", **fill)
                             if read == 1 else
                             tr("Stopped after {n} image files: {why}; the remaining {left} were skipped.", **fill))
                break
            except ValueError as err:   # BadImage, or safeio.RefusedFile: a lying, damaged or bzip2/LZMA entry
                skipped.append(Skipped(name, str(err)))
                continue
            finally:
                left -= 1
            labels.append(classes.index(parts[0]))
            names.append(name)
    stacked = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous() if images
               else UserImages.empty().images)
    return UserImages(stacked, torch.tensor(labels, dtype=torch.long), classes, tuple(names), tuple(skipped),
                      tuple(notes), source=label)


# ---- a sample set: real photos that ship with scikit-image, to try the flow before collecting any --------

SAMPLE_NAME = "sample set (scikit-image photos).zip"
SAMPLE_PHOTOS = {"astronaut": "astronaut", "cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}  # → skimage.data
SAMPLE_PER_CLASS = 10


def sample_zip(per_class: int = SAMPLE_PER_CLASS, seed: int = 0) -> bytes:
    """A class-folder zip built in memory from photos installed with scikit-image (its `skimage.data` images:
    Eileen Collins the astronaut, Chelsea the cat, a cup of coffee, a rocket on its launch pad): per class,
    `per_class` random square crops (50-90% of the short side), half of them mirrored, as JPEG and PNG. The
    same bytes every call for a seed; read it with `read_zip` like any upload."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:   # JPEG/PNG are compressed already
        for name, photo in SAMPLE_PHOTOS.items():
            img = getattr(skdata, photo)()
            h, w = img.shape[:2]
            for i in range(per_class):
                side = int(min(h, w) * rng.uniform(0.5, 0.9))
                y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                crop = Image.fromarray(img[y:y + side, x:x + side]).resize((160, 160), Image.Resampling.BILINEAR)
                if i % 2:
                    crop = ImageOps.mirror(crop)
                fmt = "PNG" if i % 3 == 0 else "JPEG"
                out = io.BytesIO()
                crop.save(out, fmt)
                zf.writestr(f"{name}/{name}_{i:02d}.{fmt.lower()}", out.getvalue())
    return buf.getvalue()


def sample_set(per_class: int = SAMPLE_PER_CLASS, seed: int = 0) -> UserImages:
    """The sample set as an upload becomes: `sample_zip` through `read_zip`, the path every zip takes."""
    return read_zip(sample_zip(per_class, seed), SAMPLE_NAME)
