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
            raise BudgetSpent(f"{label} unpacks to more than {self.bytes / MB:,.0f} MB in all, the limit of one upload")

    def spend_pixels(self, n: int) -> None:
        """Charge an image's pixels before decoding it; BudgetSpent (nothing charged) when it would not fit."""
        if self.pixels is not None and self.spent_pixels + n > self.pixels:
            raise BudgetSpent(f"the upload's decoding budget of {self.pixels / 1e6:,.0f} megapixels is spent "
                              f"({self.spent_pixels / 1e6:,.0f} decoded)")
        self.spent_pixels += n

    def spend_audio(self, seconds: float) -> None:
        """Charge a clip's declared duration before decoding it; BudgetSpent (nothing charged) when it would not fit."""
        if self.audio is not None and self.spent_audio + seconds > self.audio:
            raise BudgetSpent(f"the upload's budget of {self.audio / 60:,.0f} minutes of audio is spent "
                              f"({self.spent_audio / 60:,.1f} decoded)")
        self.spent_audio += seconds

    def check_time(self) -> None:
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            raise BudgetSpent(f"the upload's decoding time budget of {self.seconds:g} s is spent")


# ---- zips -------------------------------------------------------------------------------------------------

def unsafe_path(name: str) -> bool:
    n = name.replace("\\", "/")
    return n.startswith("/") or (len(n) > 1 and n[1] == ":" and n[0].isalpha()) or ".." in n.split("/")


def open_zip(source, label: str) -> zipfile.ZipFile:
    """A ZipFile over bytes, a path or a file object; RefusedFile (one line) for anything that is not a zip."""
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise RefusedFile(f"{label} is not a zip file (or a damaged one)") from None


def check_entries(infos: list[zipfile.ZipInfo], label: str, *, max_entries: int, max_total: int,
                  max_ratio: float, ratio_floor: int) -> None:
    """Refuse a zip from its directory alone, before anything is decompressed."""
    if len(infos) > max_entries:
        raise RefusedFile(f"{label} refused: {len(infos):,} entries, more than the limit of {max_entries:,} files")
    bad = [i.filename for i in infos if unsafe_path(i.filename)]
    if bad:
        raise RefusedFile(f"{label} refused: unsafe paths (absolute or with '..') such as {bad[0]!r}; "
                          f"nothing was extracted")
    total = sum(i.file_size for i in infos)
    if total > max_total:
        raise RefusedFile(f"{label} refused: it would unpack to {total / MB:,.0f} MB, more than the limit of "
                          f"{max_total // MB:,} MB (could be a zip bomb)")
    for i in infos:
        if i.file_size > ratio_floor and i.file_size > max_ratio * max(i.compress_size, 1):
            raise RefusedFile(f"{label} refused: {i.filename!r} compresses {i.file_size / max(i.compress_size, 1):,.0f}"
                              f":1, more than the limit of {max_ratio:g}:1 (a zip bomb?)")


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, budget: Budget | None = None,
               limit: int | None = None, name: str | None = None) -> bytes:
    """One entry's bytes, read in chunks through a counter: never more than its declared size (one byte more and
    it is refused as lying), never more than `limit`, each chunk charged to `budget`. RefusedFile (one line) for an
    encrypted entry, a compression other than stored/deflated, or a damaged one (`name`: how messages call the
    entry, default "<label>: <its path>")."""
    name = name or f"{label}: {info.filename}"
    if info.compress_type not in METHODS:
        raise RefusedFile(f"{name} is compressed with {method_name(info)}; only stored or deflated zip entries are "
                          f"read (zip it again with a standard zip tool)")
    if info.flag_bits & 0x1:
        raise RefusedFile(f"{name} is password-protected")
    if limit is not None and info.file_size > limit:
        raise RefusedFile(f"{name} is larger than {limit / MB:g} MB")
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
                    raise RefusedFile(f"{name} inflates to more than the {info.file_size:,} bytes its header declares "
                                      f"(a zip bomb?)")
    except RefusedFile:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, RuntimeError, ValueError) as err:
        raise RefusedFile(f"{name} is corrupt ({type(err).__name__}: {err})") from None
    if out.tell() != info.file_size:
        raise RefusedFile(f"{name} is corrupt: {out.tell():,} bytes where its header declares {info.file_size:,}")
    if crc != info.CRC:
        raise RefusedFile(f"{name} is corrupt (bad CRC-32)")
    return out.getvalue()


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
        raise RefusedFile(f"{name}: not a PyTorch file, or a corrupt or truncated one (its zip directory cannot be "
                          f"read)") from None
    packed = [i for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        i = packed[0]
        raise RefusedFile(f"{name}: refused — its record {i.filename!r} is compressed ({method_name(i)}, declared "
                          f"{i.file_size:,} bytes from {i.compress_size:,}); torch.save never compresses records, and "
                          f"a compressed one could unpack to far more than was uploaded: save it again with torch.save")
    total = sum(i.file_size for i in infos)
    lying = [i for i in infos if i.file_size != i.compress_size or i.header_offset + i.compress_size > len(raw)]
    if lying or total > len(raw):
        what = (f"record {lying[0].filename!r} declares {lying[0].file_size:,} bytes" if lying else
                f"its records declare {total:,} bytes in all")
        raise RefusedFile(f"{name}: refused — {what}, more than the file's {len(raw):,} bytes hold: a damaged or "
                          f"forged file")
    if total > limit:
        raise RefusedFile(f"{name}: its tensors are {total / MB:,.0f} MB, over the {limit / MB:g} MB limit")


def load_tensors(raw: bytes, name: str, limit: int):
    """torch.load(weights_only=True) of a checked .pt's bytes (`torch_zip` first). RefusedFile by the check; torch's
    own exceptions pass through for the caller to word."""
    import torch

    torch_zip(raw, name, limit)
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


# ---- text -------------------------------------------------------------------------------------------------

def text_prefix(raw: bytes, limit: int, name: str = "the file") -> tuple[str, bool]:
    """(the first `limit` bytes of an uploaded text decoded as UTF-8, whether it was cut). A cut inside a
    multi-byte character drops that character; a byte that is not UTF-8 is a ValueError naming its position."""
    cut = len(raw) > limit
    head = raw[:limit] if cut else raw
    try:
        return head.decode("utf-8-sig"), cut
    except UnicodeDecodeError as err:
        if cut and err.start >= len(head) - 3 and err.reason == "unexpected end of data":
            return head[:err.start].decode("utf-8-sig"), cut
        raise ValueError(f"{name} is not UTF-8 text (byte 0x{head[err.start]:02x} at position {err.start}): "
                         f"save it as UTF-8 and upload it again") from None
