"""One safe reader for everything a user uploads: zips (image sets, exported models), `.pt` files, text.

An upload's own headers are never trusted for how much work or memory it costs:

- **zips**: only stored or deflated entries are read (bzip2, LZMA and the rest are refused: Python's zipfile
  inflates them a whole compressed block at a time, so a few hundred bytes become hundreds of MB before any size
  is checked). The directory is checked first (entry count, paths, declared sizes, compression ratio); then each
  entry is read in chunks through a counter that stops one byte past its *declared* size (more means the header
  lies: refused) and charges a `Budget` for the whole upload, so a lying header costs at most a chunk.
- **.pt files** (torch's zip format): every record must be stored, not compressed (torch.save never compresses
  one; a deflated record would let 1 KB inflate to gigabytes inside torch.load), and the records' sizes must fit
  inside the file, so torch.load never holds more tensor bytes than were uploaded.
- **decoding budgets**: `Budget` also counts decoded pixels, seconds of audio and seconds spent across an upload
  (userdata checks an image's size, userclips a clip's duration, from its header, before decoding, and charges it
  here).
- **text**: only a prefix of an uploaded text file is decoded (`text_prefix`).
- **identity**: `content_hash` (sha256 of the bytes) names an upload everywhere a result is keyed by it.

Every refusal is a ValueError subclass with a one-line message.
"""
from __future__ import annotations

import copy
import hashlib
import io
import time
import zipfile
import zlib
from dataclasses import dataclass, field

from tl_core.i18n import fmt, tr

MB = 2 ** 20
CHUNK = 2 ** 20                     # bytes asked of a zip entry per read (deflate output is bounded by it)
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64", 93: "Zstandard",
                95: "XZ", 98: "PPMd"}


class RefusedFile(ValueError):
    """An upload (or one entry of it) refused; the message is one line saying why."""


class BudgetSpent(RefusedFile):
    """The upload's budget (bytes unpacked, pixels decoded or seconds) is spent: stop reading it."""


def content_hash(raw: bytes) -> str:
    """The identity of an upload: the sha256 of its bytes (hex)."""
    return hashlib.sha256(raw).hexdigest()


def method_name(info: zipfile.ZipInfo) -> str:
    return METHODS.get(info.compress_type) or METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")


# ---- budgets ----------------------------------------------------------------------------------------------

@dataclass
class Budget:
    """What one upload may cost in all: bytes unpacked, pixels decoded, seconds spent, seconds of audio decoded
    (None: no limit)."""
    bytes: int | None = None
    pixels: int | None = None
    seconds: float | None = None
    audio: float | None = None
    spent_bytes: int = 0
    spent_pixels: int = 0
    spent_audio: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def spend_bytes(self, n: int, label: str) -> None:
        self.spent_bytes += n
        if self.bytes is not None and self.spent_bytes > self.bytes:
            raise BudgetSpent(tr("{label} unpacks to more than {mb} MB in all, the limit of one upload", label=label,
                                 mb=fmt(self.bytes / MB)))

    def spend_pixels(self, n: int) -> None:
        """Charge an image's pixels before decoding it; BudgetSpent (nothing charged) when it would not fit."""
        if self.pixels is not None and self.spent_pixels + n > self.pixels:
            raise BudgetSpent(tr("the upload's decoding budget of {mp} megapixels is spent ({done} decoded)",
                                 mp=fmt(self.pixels / 1e6), done=fmt(self.spent_pixels / 1e6)))
        self.spent_pixels += n

    def spend_audio(self, seconds: float) -> None:
        """Charge a clip's declared duration before decoding it; BudgetSpent (nothing charged) when it would not fit."""
        if self.audio is not None and self.spent_audio + seconds > self.audio:
            raise BudgetSpent(tr("the upload's budget of {minutes} minutes of audio is spent ({done} decoded)",
                                 minutes=fmt(self.audio / 60), done=fmt(self.spent_audio / 60, ",.1f")))
        self.spent_audio += seconds

    def check_time(self) -> None:
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            raise BudgetSpent(tr("the upload's decoding time budget of {s} s is spent", s=fmt(self.seconds, "g")))


# ---- zips -------------------------------------------------------------------------------------------------

def unsafe_path(name: str) -> bool:
    n = name.replace("\\", "/")
    return n.startswith("/") or (len(n) > 1 and n[1] == ":" and n[0].isalpha()) or ".." in n.split("/")


def open_zip(source, label: str) -> zipfile.ZipFile:
    """A ZipFile over bytes, a path or a file object; RefusedFile (one line) for anything that is not a zip."""
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise RefusedFile(tr("{label} is not a zip file (or a damaged one)", label=label)) from None


def check_entries(infos: list[zipfile.ZipInfo], label: str, *, max_entries: int, max_total: int,
                  max_ratio: float, ratio_floor: int) -> None:
    """Refuse a zip from its directory alone, before anything is decompressed."""
    if len(infos) > max_entries:
        raise RefusedFile(tr("{label} refused: {n} entries, more than the limit of {most} files", label=label,
                             n=fmt(len(infos), ","), most=fmt(max_entries, ",")))
    bad = [i.filename for i in infos if unsafe_path(i.filename)]
    if bad:
        raise RefusedFile(tr("{label} refused: unsafe paths (absolute or with '..') such as {path}; nothing was "
                             "extracted", label=label, path=repr(bad[0])))
    total = sum(i.file_size for i in infos)
    if total > max_total:
        raise RefusedFile(tr("{label} refused: it would unpack to {mb} MB, more than the limit of {most} MB (could "
                             "be a zip bomb)", label=label, mb=fmt(total / MB), most=fmt(max_total // MB, ",")))
    for i in infos:
        if i.file_size > ratio_floor and i.file_size > max_ratio * max(i.compress_size, 1):
            raise RefusedFile(tr("{label} refused: {path} compresses {ratio}:1, more than the limit of {most}:1 (a zip "
                                 "bomb?)", label=label, path=repr(i.filename),
                                 ratio=fmt(i.file_size / max(i.compress_size, 1)), most=fmt(max_ratio, "g")))


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, budget: Budget | None = None,
               limit: int | None = None, name: str | None = None) -> bytes:
    """One entry's bytes, read in chunks through a counter: never more than its declared size (one byte more and
    it is refused as lying), never more than `limit`, each chunk charged to `budget`. RefusedFile (one line) for an
    encrypted entry, a compression other than stored/deflated, or a damaged one (`name`: how messages call the
    entry, default "<label>: <its path>")."""
    name = name or f"{label}: {info.filename}"
    if info.compress_type not in METHODS:
        raise RefusedFile(tr("{name} is compressed with {method}; only stored or deflated zip entries are read (zip "
                             "it again with a standard zip tool)", name=name, method=method_name(info)))
    if info.flag_bits & 0x1:
        raise RefusedFile(tr("{name} is password-protected", name=name))
    if limit is not None and info.file_size > limit:
        raise RefusedFile(tr("{name} is larger than {mb} MB", name=name, mb=fmt(limit / MB, "g")))
    # ask zipfile for one byte past the declared size, with no CRC of its own to check: an entry that inflates
    # further shows it (refused before a byte more is made), and the CRC is checked here over what was read
    probe = copy.copy(info)
    probe.file_size = info.file_size + 1
    del probe.CRC
    out, crc = io.BytesIO(), 0
    try:
        with zf.open(probe) as stream:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
                crc = zlib.crc32(chunk, crc)
                if budget is not None:
                    budget.spend_bytes(len(chunk), label)
                if out.tell() > info.file_size:
                    raise RefusedFile(tr("{name} inflates to more than the {n} bytes its header declares (a zip "
                                         "bomb?)", name=name, n=fmt(info.file_size, ",")))
    except RefusedFile:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, RuntimeError, ValueError) as err:
        raise RefusedFile(tr("{name} is corrupt ({error})", name=name, error=f"{type(err).__name__}: {err}")) from None
    if out.tell() != info.file_size:
        raise RefusedFile(tr("{name} is corrupt: {n} bytes where its header declares {declared}", name=name,
                             n=fmt(out.tell(), ","), declared=fmt(info.file_size, ",")))
    if crc != info.CRC:
        raise RefusedFile(tr("{name} is corrupt (bad CRC-32)", name=name))
    return out.getvalue()


def no_class_folders(label: str, loose: list[str], layout: str) -> str:
    """Why a class-folder zip (images, clips) holds nothing to read: only loose files, or none; then `layout`."""
    if loose:
        return tr("{label} has no class folders with files. It holds only loose files such as {file}. {layout}",
                  label=label, file=repr(loose[0]), layout=layout)
    return tr("{label} has no class folders with files. It holds no files. {layout}", label=label, layout=layout)


# ---- .pt files --------------------------------------------------------------------------------------------

def torch_zip(raw: bytes, name: str, limit: int) -> None:
    """Check a .pt before torch.load: torch's zip format must hold stored records whose sizes fit inside the file
    (torch.save never compresses a record), so loading it holds no more tensor bytes than were uploaded. A file that
    is not a zip (torch's legacy format) reads its tensors from the file itself and passes. RefusedFile otherwise."""
    if raw[:4] != b"PK\x03\x04":
        return
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise RefusedFile(tr("{name}: not a PyTorch file, or a corrupt or truncated one (its zip directory cannot be "
                             "read)", name=name)) from None
    packed = [i for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        i = packed[0]
        raise RefusedFile(tr("{name}: refused — its record {record} is compressed ({method}, declared {n} bytes from "
                             "{packed}); torch.save never compresses records, and a compressed one could unpack to far "
                             "more than was uploaded: save it again with torch.save", name=name,
                             record=repr(i.filename), method=method_name(i), n=fmt(i.file_size, ","),
                             packed=fmt(i.compress_size, ",")))
    total = sum(i.file_size for i in infos)
    lying = [i for i in infos if i.file_size != i.compress_size or i.header_offset + i.compress_size > len(raw)]
    if lying or total > len(raw):
        fill = dict(name=name, size=fmt(len(raw), ","))
        raise RefusedFile(tr("{name}: refused — record {record} declares {n} bytes, more than the file's {size} bytes "
                             "hold: a damaged or forged file", record=repr(lying[0].filename),
                             n=fmt(lying[0].file_size, ","), **fill) if lying else
                          tr("{name}: refused — its records declare {n} bytes in all, more than the file's {size} "
                             "bytes hold: a damaged or forged file", n=fmt(total, ","), **fill))
    if total > limit:
        raise RefusedFile(tr("{name}: its tensors are {mb} MB, over the {most} MB limit", name=name,
                             mb=fmt(total / MB), most=fmt(limit / MB, "g")))


def load_tensors(raw: bytes, name: str, limit: int):
    """torch.load(weights_only=True) of a checked .pt's bytes (`torch_zip` first). RefusedFile by the check; torch's
    own exceptions pass through for the caller to word."""
    import torch

    torch_zip(raw, name, limit)
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


# ---- text -------------------------------------------------------------------------------------------------

def text_prefix(raw: bytes, limit: int, name: str | None = None) -> tuple[str, bool]:
    """(the first `limit` bytes of an uploaded text decoded as UTF-8, whether it was cut). A cut inside a
    multi-byte character drops that character; a byte that is not UTF-8 is a ValueError naming its position."""
    cut = len(raw) > limit
    head = raw[:limit] if cut else raw
    try:
        return head.decode("utf-8-sig"), cut
    except UnicodeDecodeError as err:
        if cut and err.start >= len(head) - 3 and err.reason == "unexpected end of data":
            return head[:err.start].decode("utf-8-sig"), cut
        raise ValueError(tr("{name} is not UTF-8 text (byte {byte} at position {at}): save it as UTF-8 and upload it "
                            "again", name=name or tr("the file"), byte=f"0x{head[err.start]:02x}",
                            at=err.start)) from None
