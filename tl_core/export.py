"""Export a fine-tuned classifier and load it again: `model.pt` + `model.json` + `predict.py`.

- `model.pt`: the model's state_dict only (tensors, no pickled code), loaded with
  `torch.load(..., weights_only=True)` so a file from someone else cannot run code.
- `model.json`: what is needed to rebuild and feed it: backbone name, class names, input size, the
  preprocessing, the normalisation (applied inside the model's first stage), and how it was trained.
- `predict.py`: a short script that loads both and prints the top classes of images.
The page offers the three as one zip; `load` reads a .pt (with its .json beside it), a folder, or that zip.
"""
from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tl_core import backbones, train, userdata

FORMAT = "transfer-lab-classifier"
VERSION = 1
MAX_MODEL_BYTES = 1_000 * 2 ** 20   # the largest registry model (VGG-11) is about 510 MB
MAX_META_BYTES = 2 ** 20           # model.json is a few hundred bytes
PREPROCESS = (f"RGB; centre-cropped to a square and resized to {userdata.STORE_SIZE} px (bilinear), then to "
              f"image_size (antialiased bilinear); float in [0, 1], shape (N, 3, image_size, image_size). "
              f"The model subtracts `mean` and divides by `std` itself, in its first stage.")

SNIPPET = '''"""Classify images with the model Transfer Lab exported beside this file.

    python predict.py photo.jpg [more.jpg ...]

Needs Transfer Lab's tl_core importable (run it from the repository, or put the repository on
PYTHONPATH). The same from the command line: python -m tl_core predict --model model.pt photo.jpg --json
"""
import sys
from pathlib import Path

from tl_core import export

# export.load reads model.json (backbone, classes, image size), rebuilds the backbone, and loads the
# weights with torch.load("model.pt", map_location="cpu", weights_only=True): tensors only, no code.
model = export.load(Path(__file__).with_name("model.pt"))
for path in sys.argv[1:]:
    top = model.topk(Path(path).read_bytes(), k=3)   # [(class name, probability), ...]
    print(path + ": " + ", ".join(f"{name} {p:.1%}" for name, p in top))
'''


@dataclass
class Classifier:
    """A trained model with what it needs to be fed: class names, input size, backbone."""
    model: backbones.StagedModel
    meta: dict

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, len(classes)) for float images (N, 3, image_size, image_size) in [0, 1]."""
        return train.predict(self.model, images)

    def topk(self, raw: bytes, k: int = 3) -> list[tuple[str, float]]:
        """The k most likely classes of one image's bytes; raises userdata.BadImage for a bad image."""
        probs = self.probabilities(userdata.to_input(raw, self.image_size))[0]
        values, idx = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]


def from_result(result) -> Classifier:
    """The model a FinetuneResult kept (its first run), ready to predict and to save."""
    if result.model_state is None:
        raise ValueError("this result kept no trained model")
    cfg = result.config
    model = backbones.create(cfg.backbone, "scratch", len(result.classes))
    model.load_state_dict(result.model_state)
    first = result.runs[0]
    e = backbones.entry(cfg.backbone)
    meta = {"format": FORMAT, "version": VERSION, "backbone": cfg.backbone, "classes": list(result.classes),
            "image_size": cfg.image_size, "preprocess": PREPROCESS, "mean": list(e.mean), "std": list(e.std),
            "trained": {"weights": first.weights, "seed": first.seed, "val_acc": first.val_acc,
                        "train_acc": first.train_acc, "data": cfg.dataset, "config": asdict(cfg),
                        "device": result.device, "weights_note": result.weights_note},
            "torch": torch.__version__}
    return Classifier(model.eval(), meta)


def _files(clf: Classifier) -> dict[str, bytes]:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in clf.model.state_dict().items()}, buf)
    return {"model.pt": buf.getvalue(), "model.json": json.dumps(clf.meta, indent=2).encode(),
            "predict.py": SNIPPET.encode()}


def save(clf: Classifier, folder) -> dict[str, str]:
    """Write model.pt, model.json and predict.py into `folder` (created); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, content in _files(clf).items():
        (folder / name).write_bytes(content)
        out[name] = str(folder / name)
    return out


def to_zip(clf: Classifier) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in _files(clf).items():
            zf.writestr(name, content)
    return buf.getvalue()


def from_bytes(weights: bytes, meta_text: bytes | str, label: str = "model.pt") -> Classifier:
    """Rebuild a Classifier from the two files' contents; ValueError saying what is wrong."""
    try:
        meta = json.loads(meta_text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"model.json is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"model.json is not a Transfer Lab export (format {FORMAT!r} expected)")
    missing = [k for k in ("backbone", "classes", "image_size") if k not in meta]
    if missing:
        raise ValueError(f"model.json lacks {', '.join(missing)}")
    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ValueError("model.json: classes must be a list of at least 2 names")
    if not isinstance(meta["backbone"], str) or meta["backbone"] not in backbones.IMAGE:
        raise ValueError(f"model.json: backbone must be one of {', '.join(backbones.IMAGE)}")
    if not isinstance(meta["image_size"], int) or isinstance(meta["image_size"], bool):
        raise ValueError("model.json: image_size must be a whole number of pixels")
    backbones.check_size(meta["backbone"], meta["image_size"])
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors, refused globals, truncated files
        raise ValueError(f"{label} could not be loaded as tensors with weights_only=True "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{label} is not a state_dict (a dict of tensors)")
    model = backbones.create(meta["backbone"], "scratch", len(classes))
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = (f"{len(missing)} missing (e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]}), "
                  f"{len(shapes)} of the wrong shape (e.g. {shapes[:1]})")
        raise ValueError(f"{label} does not fit {meta['backbone']} with {len(classes)} classes: {detail}")
    model.load_state_dict(state)
    return Classifier(model.eval(), meta)


def _read_member(zf: zipfile.ZipFile, name: str, label: str) -> bytes:
    hits = [i for i in zf.infolist() if Path(i.filename).name == name and not userdata.unsafe_path(i.filename)
            and "__MACOSX" not in i.filename]
    if not hits:
        raise ValueError(f"{label} has no {name}: expected the zip Transfer Lab exports (model.pt, model.json, "
                         f"predict.py)")
    limit = MAX_MODEL_BYTES if name == "model.pt" else MAX_META_BYTES
    if hits[0].file_size > limit:
        raise ValueError(f"{label}: {name} is larger than {limit / 2 ** 20:g} MB")
    try:
        return zf.read(hits[0])
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:  # a corrupt member: bad CRC, truncated
        raise ValueError(f"{label}: {name} is corrupt ({err})") from None


def from_zip(raw: bytes, label: str = "the export zip") -> Classifier:
    with userdata.open_zip(raw, label) as zf:
        userdata.check_entries(zf.infolist(), label)  # entry count, paths, unpacked size, ratio: before reading
        return from_bytes(_read_member(zf, "model.pt", label), _read_member(zf, "model.json", label), label)


def load(path) -> Classifier:
    """A Classifier from an exported .pt (model.json beside it, or <stem>.json), its folder, or its zip."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".zip":  # the bundle (a .pt is itself a zip inside, so go by the name)
        if path.stat().st_size > MAX_MODEL_BYTES:
            raise ValueError(f"{path} is larger than {MAX_MODEL_BYTES // 2 ** 20} MB")
        return from_zip(path.read_bytes(), path.name)
    meta = next((p for p in (path.with_suffix(".json"), path.with_name("model.json")) if p.exists()), None)
    if meta is None:
        raise ValueError(f"{path}: its model.json (class names, input size, backbone) is missing; keep the two "
                         f"files of the export together")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{path} is larger than {MAX_MODEL_BYTES // 2 ** 20} MB")
    return from_bytes(path.read_bytes(), meta.read_text(), path.name)
