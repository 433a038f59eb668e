"""Export a fine-tuned classifier and load it again: `model.pt` + `model.json` + `predict.py`.

- `model.pt`: the model's state_dict only (tensors, no pickled code), loaded with
  `torch.load(..., weights_only=True)` so a file from someone else cannot run code.
- `model.json`: what is needed to rebuild and feed it: backbone name, class names, input size, the
  preprocessing, the normalisation (applied inside the model's first stage), and how it was trained.
- `model.onnx`: the same classifier for onnxruntime (`torch.onnx.export`, the TorchScript exporter, opset
  ONNX_OPSET), image in, class probabilities out. Exporting checks it: torch and onnxruntime must give the
  same probabilities on the validation images to within PARITY_LIMIT (the largest absolute difference is kept
  in model.json under "onnx"), else the export fails with one line.
- `predict.py`: a short script that loads them and prints the top classes of images (`--onnx`: with onnxruntime).
The page offers the four as one zip; `load` reads a .pt (with its .json beside it), a .onnx, a folder, or that
zip (`onnx=True`: the model.onnx in it). A model.onnx that onnxruntime cannot load, or that does not predict
what model.pt predicts, is refused with one line.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tl_core import backbones, contract, safeio, train, userdata
from tl_core.i18n import tr

FORMAT = "transfer-lab-classifier"
VERSION = 1
MAX_MODEL_BYTES = 1_000 * 2 ** 20   # the largest registry model (VGG-11) is about 510 MB
MAX_META_BYTES = 2 ** 20           # model.json is a few hundred bytes
ONNX_OPSET = 17                    # TorchScript exporter (dynamo=False): needs neither onnxscript nor torch.export
PARITY_LIMIT = 1e-4                # largest allowed |p_torch - p_onnxruntime| over the validation images
ONNX_INPUT, ONNX_OUTPUT = "images", "probabilities"
PREPROCESS = (f"RGB; centre-cropped to a square and resized to {userdata.STORE_SIZE} px (bilinear), then to "
              f"image_size (antialiased bilinear); float in [0, 1], shape (N, 3, image_size, image_size). "
              f"The model subtracts `mean` and divides by `std` itself, in its first stage.")

SNIPPET = '''"""Classify images with the model Transfer Lab exported beside this file.

    python predict.py photo.jpg [more.jpg ...]           # model.pt with torch
    python predict.py --onnx photo.jpg [more.jpg ...]    # model.onnx with onnxruntime (the same probabilities)

Needs Transfer Lab's tl_core importable (run it from the repository, or put the repository on
PYTHONPATH). The same from the command line: python -m tl_core predict --model model.pt photo.jpg --json [--onnx]
"""
import sys
from pathlib import Path

from tl_core import export

# export.load reads model.json (backbone, classes, image size), rebuilds the backbone, and loads the
# weights with torch.load("model.pt", map_location="cpu", weights_only=True): tensors only, no code.
# With --onnx it runs model.onnx in an onnxruntime InferenceSession instead (no torch model is built).
onnx = "--onnx" in sys.argv[1:]
model = export.load(Path(__file__).with_name("model.onnx" if onnx else "model.pt"), onnx=onnx)
for path in [a for a in sys.argv[1:] if a != "--onnx"]:
    top = model.topk(Path(path).read_bytes(), k=3)   # [(class name, probability), ...]
    print(path + ": " + ", ".join(f"{name} {p:.1%}" for name, p in top))
'''


class _Predicts:
    """What both runtimes share: class names, input size, the top classes of an image's bytes."""
    meta: dict
    runtime = ""

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def topk(self, raw: bytes, k: int = 3) -> list[tuple[str, float]]:
        """The k most likely classes of one image's bytes; raises userdata.BadImage for a bad image."""
        probs = self.probabilities(userdata.to_input(raw, self.image_size))[0]
        values, idx = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]


@dataclass
class Classifier(_Predicts):
    """A trained model with what it needs to be fed: class names, input size, backbone. `check_images`: the
    images the ONNX parity check runs on (the validation images of the run it came from)."""
    model: backbones.StagedModel
    meta: dict
    check_images: torch.Tensor | None = field(default=None, repr=False)
    onnx: bytes | None = field(default=None, repr=False)     # model.onnx once exported and checked
    runtime = "torch"

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, len(classes)) for float images (N, 3, image_size, image_size) in [0, 1]."""
        return train.predict(self.model, images)


class OnnxClassifier(_Predicts):
    """model.onnx in an onnxruntime InferenceSession on the CPU, with the same interface as Classifier."""
    runtime = "onnxruntime"

    def __init__(self, session, meta: dict):
        self.session, self.meta = session, meta

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0].copy())


class WithSoftmax(torch.nn.Module):
    """The exported graph: the model's input (images in [0, 1], or a clip's features) → class probabilities (what
    `train.predict` returns)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(-1)


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def onnx_session(raw: bytes, label: str = "model.onnx"):
    """An onnxruntime CPU session of `raw`, or ValueError with one line saying it is not a usable ONNX model."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3      # errors only: a refused file is reported by the ValueError below
    try:
        session = ort.InferenceSession(bytes(raw), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a bad protobuf or graph
        raise ValueError(tr("{label} is not a valid ONNX model: onnxruntime cannot load it ({error})", label=label,
                            error=first_line(err))) from None
    names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    if names != ([ONNX_INPUT], [ONNX_OUTPUT]):
        raise ValueError(tr("{label} is not a Transfer Lab ONNX export: expected input {input} and output {output}, "
                            "found {inputs} and {outputs}", label=label, input=repr(ONNX_INPUT),
                            output=repr(ONNX_OUTPUT), inputs=names[0], outputs=names[1]))
    return session


def _parity_images(clf: Classifier) -> tuple[torch.Tensor, str]:
    if clf.check_images is not None and len(clf.check_images):
        return clf.check_images, f"{len(clf.check_images)} validation images"
    gen = torch.Generator().manual_seed(0)
    return torch.rand(8, 3, clf.image_size, clf.image_size, generator=gen), "8 random images (no validation set kept)"


def parity(session, model, images: torch.Tensor, label: str = "model.onnx") -> float:
    """The largest |p_torch - p_onnxruntime| over images (probabilities), checked to be one per class."""
    p_torch = train.predict(model, images)
    try:
        p_onnx = OnnxClassifier(session, {}).probabilities(images)
    except Exception as err:  # noqa: BLE001 - a graph that loads but cannot run these inputs
        raise ValueError(tr("{label} cannot run on {shape} images ({error})", label=label, shape=tuple(images.shape),
                            error=first_line(err))) from None
    if p_onnx.shape != p_torch.shape:
        raise ValueError(tr("{label} gives outputs of shape {shape}, the model {model}: it is not this model's export",
                            label=label, shape=tuple(p_onnx.shape), model=tuple(p_torch.shape)))
    return float((p_torch - p_onnx).abs().max())


def to_onnx(clf: Classifier) -> bytes:
    """model.onnx of clf (exported once, then kept), checked against torch on the validation images; records
    the opset and the largest difference in clf.meta["onnx"]. ValueError (one line) past PARITY_LIMIT."""
    if clf.onnx is not None:
        return clf.onnx
    import warnings

    import onnxruntime as ort

    model = clf.model.eval()
    dev = next(model.parameters()).device
    model.cpu()
    buf = io.BytesIO()
    dummy = torch.zeros(1, 3, clf.image_size, clf.image_size)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated in favour of dynamo (onnxscript)
        warnings.simplefilter("ignore")
        torch.onnx.export(WithSoftmax(model), (dummy,), buf, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}})
    raw = buf.getvalue()
    images, on = _parity_images(clf)
    diff = parity(onnx_session(raw), model, images)
    model.to(dev)
    if not diff <= PARITY_LIMIT:
        raise ValueError(f"ONNX export failed its parity check: torch and onnxruntime probabilities differ by up to "
                         f"{diff:.2e} on {on}, more than the limit of {PARITY_LIMIT:g}")
    clf.meta["onnx"] = {"file": "model.onnx", "opset": ONNX_OPSET, "exporter": "torch.onnx.export (TorchScript, "
                        "dynamo=False)", "onnxruntime": ort.__version__, "input": f"{ONNX_INPUT}: float32 (N, 3, "
                        f"{clf.image_size}, {clf.image_size}) in [0, 1]", "output": f"{ONNX_OUTPUT}: (N, "
                        f"{len(clf.classes)}), softmax included", "max_abs_diff": diff, "checked_on": on,
                        "limit": PARITY_LIMIT}
    clf.onnx = raw
    return raw


def parity_line(clf: Classifier) -> str:
    """The parity figure in words (after to_onnx)."""
    o = clf.meta["onnx"]
    return (f"ONNX parity: max |p_torch - p_onnxruntime| = {o['max_abs_diff']:.2e} on {o['checked_on']} "
            f"(limit {o['limit']:g}, opset {o['opset']})")


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
    from tl_core import card

    meta["card"] = card.card(cfg.backbone, cfg.image_size, model=model).to_json()
    val = getattr(result, "val", None)
    return Classifier(model.eval(), meta, check_images=val.images.cpu() if val is not None else None)


def _files(clf: Classifier) -> dict[str, bytes]:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in clf.model.state_dict().items()}, buf)
    onnx = to_onnx(clf)   # first: it records its opset and parity figure in clf.meta
    return {"model.pt": buf.getvalue(), "model.onnx": onnx, "model.json": json.dumps(clf.meta, indent=2).encode(),
            "predict.py": SNIPPET.encode()}


def save(clf: Classifier, folder) -> dict[str, str]:
    """Write model.pt, model.onnx, model.json and predict.py into `folder` (created); returns their paths.
    ValueError (nothing written) when model.onnx fails its parity check."""
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


def _meta(meta_text: bytes | str) -> dict:
    """model.json's contents, checked; ValueError saying what is wrong."""
    try:
        meta = json.loads(meta_text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(tr("model.json is not valid JSON ({error})", error=err)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(tr("model.json is not a Transfer Lab export (format {format} expected)", format=repr(FORMAT)))
    missing = [k for k in ("backbone", "classes", "image_size") if k not in meta]
    if missing:
        raise ValueError(tr("model.json lacks {keys}", keys=", ".join(missing)))
    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ValueError(tr("model.json: classes must be a list of at least 2 names"))
    if not isinstance(meta["backbone"], str) or meta["backbone"] not in backbones.IMAGE:
        raise ValueError(tr("model.json: backbone must be one of {choices}", choices=", ".join(backbones.IMAGE)))
    if not isinstance(meta["image_size"], int) or isinstance(meta["image_size"], bool):
        raise ValueError(tr("model.json: image_size must be a whole number of pixels"))
    backbones.check_size(meta["backbone"], meta["image_size"])
    return meta


def from_onnx_bytes(raw: bytes, meta_text: bytes | str, label: str = "model.onnx") -> OnnxClassifier:
    """An OnnxClassifier from model.onnx's and model.json's contents; ValueError (one line) for a file
    onnxruntime cannot load, or whose outputs do not fit model.json's classes."""
    meta = _meta(meta_text)
    session = onnx_session(raw, label)
    clf = OnnxClassifier(session, meta)
    try:
        out = clf.probabilities(torch.zeros(1, 3, clf.image_size, clf.image_size))
    except Exception as err:  # noqa: BLE001 - loads but cannot run an image of model.json's size
        raise ValueError(tr("{label} cannot run on a {size} px image ({error})", label=label, size=clf.image_size,
                            error=first_line(err))) from None
    if tuple(out.shape) != (1, len(clf.classes)):
        raise ValueError(tr("{label} gives {shape} outputs per image, model.json names {n} classes: it is not this "
                            "model's export", label=label, shape=tuple(out.shape)[1:], n=len(clf.classes)))
    return clf


def from_bytes(weights: bytes, meta_text: bytes | str, label: str = "model.pt") -> Classifier:
    """Rebuild a Classifier from the two files' contents; ValueError saying what is wrong."""
    meta = _meta(meta_text)
    classes = meta["classes"]
    safeio.torch_zip(weights, label, MAX_MODEL_BYTES)   # stored records inside the file: no inflating in torch.load
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors, refused globals, truncated files
        raise ValueError(tr("{label} could not be loaded as tensors with weights_only=True ({error})", label=label,
                            error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(tr("{label} is not a state_dict (a dict of tensors)", label=label))
    model = backbones.create(meta["backbone"], "scratch", len(classes))
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(tr("{label} does not fit {backbone} with {n} classes: {missing} missing (e.g. {a_missing}), "
                            "{unexpected} unexpected (e.g. {an_unexpected}), {shapes} of the wrong shape (e.g. "
                            "{a_shape})", label=label, backbone=meta["backbone"], n=len(classes),
                            missing=len(missing), a_missing=missing[:1], unexpected=len(unexpected),
                            an_unexpected=unexpected[:1], shapes=len(shapes), a_shape=shapes[:1]))
    model.load_state_dict(state)
    return Classifier(model.eval(), meta)


def _read_member(zf: zipfile.ZipFile, name: str, label: str, budget: safeio.Budget | None = None) -> bytes:
    hits = [i for i in zf.infolist() if Path(i.filename).name == name and not userdata.unsafe_path(i.filename)
            and "__MACOSX" not in i.filename]
    if not hits:
        raise ValueError(tr("{label} has no {name}: expected the zip Transfer Lab exports (model.pt, model.json, "
                            "predict.py)", label=label, name=name))
    limit = MAX_MODEL_BYTES if name in ("model.pt", "model.onnx") else MAX_META_BYTES
    # in chunks, never past the declared size (a lying header is refused), charged to the bundle's budget
    return safeio.read_entry(zf, hits[0], label, budget, limit, name=f"{label}: {name}")


def check_onnx(clf: Classifier, raw: bytes, label: str = "model.onnx") -> float:
    """A model.onnx shipped beside model.pt must load and predict what model.pt predicts (8 random images, to
    within PARITY_LIMIT); returns the difference, ValueError (one line) otherwise."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, clf.image_size, clf.image_size, generator=gen)
    diff = parity(onnx_session(raw, label), clf.model, images, label)
    if not diff <= PARITY_LIMIT:
        raise ValueError(tr("{label} does not predict what model.pt predicts (probabilities differ by up to {diff}): "
                            "the export is damaged", label=label, diff=f"{diff:.2e}"))
    return diff


def from_zip(raw: bytes, label: str = "the export zip", onnx: bool = False) -> Classifier | OnnxClassifier:
    """The bundle's model.pt (onnx=True: its model.onnx, with onnxruntime). A model.onnx in the bundle is
    checked either way: a damaged one refuses the bundle with one line."""
    budget = safeio.Budget(bytes=userdata.MAX_TOTAL_BYTES)
    with safeio.open_zip(raw, label) as zf:
        userdata.check_entries(zf.infolist(), label)  # entry count, paths, unpacked size, ratio: before reading
        meta = _read_member(zf, "model.json", label, budget)
        if onnx:
            return from_onnx_bytes(_read_member(zf, "model.onnx", label, budget), meta, f"{label}: model.onnx")
        clf = from_bytes(_read_member(zf, "model.pt", label, budget), meta, label)
        if any(Path(i.filename).name == "model.onnx" for i in zf.infolist()):
            check_onnx(clf, _read_member(zf, "model.onnx", label, budget), f"{label}: model.onnx")
        return clf


def _size_ok(path: Path) -> None:
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(tr("{path} is larger than {mb} MB", path=path, mb=MAX_MODEL_BYTES // 2 ** 20))


def load(path, onnx: bool = False) -> Classifier | OnnxClassifier:
    """A Classifier from an exported .pt (model.json beside it, or <stem>.json), its folder, or its zip.
    onnx=True (or a .onnx path): an OnnxClassifier running model.onnx with onnxruntime instead."""
    path = Path(path)
    onnx = onnx or path.suffix.lower() == ".onnx"
    if path.is_dir():
        path = path / ("model.onnx" if onnx else "model.pt")
    elif onnx and path.suffix.lower() == ".pt":
        path = path.with_suffix(".onnx")   # --model model.pt --onnx: the model.onnx beside it
    if not path.exists():
        raise ValueError(tr("{label}: no such file", label=path))
    if path.suffix.lower() == ".zip":  # the bundle (a .pt is itself a zip inside, so go by the name)
        _size_ok(path)
        return from_zip(path.read_bytes(), path.name, onnx=onnx)
    meta = next((p for p in (path.with_suffix(".json"), path.with_name("model.json")) if p.exists()), None)
    if meta is None:
        raise ValueError(tr("{path}: its model.json (class names, input size, backbone) is missing; keep the files "
                            "of the export together", path=path))
    _size_ok(path)
    if onnx:
        return from_onnx_bytes(path.read_bytes(), meta.read_text(), path.name)
    return from_bytes(path.read_bytes(), meta.read_text(), path.name)


class _Flag(contract.Option):
    """A CLI switch (store_true), for the commands that read an export."""

    def add(self, parser) -> None:
        parser.add_argument(self.flag, action="store_true", help=self.help)


ONNX_FLAG = _Flag("--onnx", "run model.onnx with onnxruntime instead of model.pt with torch (the same "
                            "probabilities, checked to within 1e-4 at export)")


def predict(args) -> int:
    """The `predict` command: the top `args.top_k` classes of each of `args.images` with the model exported at
    `args.model` (`args.onnx`: its model.onnx with onnxruntime); one JSON object with `args.json`."""
    if args.top_k < 1:
        raise ValueError(tr("--top-k must be at least 1, got {value}", value=args.top_k))
    clf = load(args.model, onnx=args.onnx)
    predictions = []
    for path in args.images:
        try:
            top = clf.topk(Path(path).read_bytes(), args.top_k)
        except userdata.BadImage as err:
            raise ValueError(f"{path}: {err}") from None
        predictions.append({"image": path, "top": [{"class": c, "probability": p} for c, p in top]})
    if args.json:
        print(json.dumps({"model": str(args.model), "backbone": clf.meta["backbone"], "classes": clf.classes,
                          "image_size": clf.image_size, "runtime": clf.runtime, "predictions": predictions}))
    else:
        for pred in predictions:
            print(pred["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in pred["top"]))
    return 0
