"""Export the listening page's fine-tuned classifier and predict with it on a WAV file: the audio twin of
`tl_core.export`, with the same files and the same checks.

- `model.pt`: the speech encoder's state_dict with its trained head (tensors only; read back with
  `torch.load(..., weights_only=True)`).
- `model.json`: the encoder's name, the class names, the condition and seed it was trained as, the features it
  reads (FEATURES) and, once exported, the ONNX parity figure.
- `model.onnx`: the same classifier for onnxruntime (TorchScript exporter, opset `export.ONNX_OPSET`): features in
  (`features`, float32 (N, 64, 40) power mel), class probabilities out. Exporting checks that torch and
  onnxruntime give the same probabilities on the run's validation clips to within `export.PARITY_LIMIT`, else it
  fails with one line.
A WAV/FLAC/OGG file to predict goes through `userclips.decode` (the page's safe reader: the same budgets and the
same one-line refusals), then `audio.features`: the path a recorded clip takes on the page.
"""
from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tl_core import audio, backbones, export, safeio, train, userclips, userdata

FORMAT = "transfer-lab-audio-classifier"
VERSION = 1
ONNX_INPUT, ONNX_OUTPUT = "features", "probabilities"
FEATURES = (f"mono 16 kHz, trimmed to its sound, volume raised to {audio.TARGET_DBFS:g} dBFS; {audio.N_MELS}-band "
            f"power mel spectrogram (25 ms windows every 10 ms), fitted to {audio.FRAMES} frames: float32 (N, "
            f"{audio.FRAMES}, {audio.N_MELS}); tl_core.audio.features does it")
MAX_META_BYTES = export.MAX_META_BYTES
MAX_MODEL_BYTES = 100 * 2 ** 20    # the encoder with its head is about 6 MB


@dataclass
class AudioClassifier:
    """The speech encoder with a trained head, and what it needs to be fed (`meta`). `check_feats`: the clips the
    ONNX parity check runs on (the run's validation clips)."""
    model: torch.nn.Module | None
    meta: dict
    check_feats: torch.Tensor | None = field(default=None, repr=False)
    onnx: bytes | None = field(default=None, repr=False)
    session: object = field(default=None, repr=False)   # onnxruntime, when loaded from model.onnx

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.session is not None else "torch"

    def probabilities(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, len(classes)) for features (N, FRAMES, 40)."""
        if self.session is not None:
            x = feats.detach().cpu().float().contiguous().numpy()
            return torch.from_numpy(self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0].copy())
        return train.predict(self.model.eval(), feats)

    def topk(self, raw: bytes, k: int = 3) -> list[tuple[str, float]]:
        """The k most likely classes of one clip's bytes; userclips.BadClip (one line) for a clip it cannot use."""
        wave = userclips.decode(raw, userclips.upload_budget())
        probs = self.probabilities(torch.from_numpy(audio.features(audio.as_float(wave)))[None])[0]
        values, idx = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]


def from_result(result) -> AudioClassifier:
    """The model an AudioResult kept (the first seed of its best pretrained condition), ready to save."""
    if getattr(result, "model_state", None) is None:
        raise ValueError("this run kept no trained model: run a pretrained condition (frozen, last layer or full)")
    model = backbones.create(audio.ENCODER, "scratch", len(result.classes))
    model.load_state_dict(result.model_state)
    cond, seed = result.model_of
    run = next(r for r in result.runs_of(cond) if r.seed == seed)
    meta = {"format": FORMAT, "version": VERSION, "backbone": audio.ENCODER, "classes": list(result.classes),
            "features": FEATURES, "frames": audio.FRAMES, "n_mels": audio.N_MELS, "rate": audio.RATE,
            "trained": {"condition": cond, "label": result.config.label(cond), "seed": seed, "val_acc": run.val_acc,
                        "train_acc": run.train_acc, "data": result.data.get("source", ""),
                        "config": asdict(result.config), "device": result.device},
            "torch": torch.__version__}
    return AudioClassifier(model.eval(), meta, check_feats=getattr(result, "check_feats", None))


def onnx_session(raw: bytes, label: str = "model.onnx"):
    """An onnxruntime CPU session of `raw`, or ValueError (one line): not a usable ONNX model, or not this export."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(bytes(raw), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a bad protobuf or graph
        raise ValueError(f"{label} is not a valid ONNX model: onnxruntime cannot load it "
                         f"({export.first_line(err)})") from None
    names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    if names != ([ONNX_INPUT], [ONNX_OUTPUT]):
        raise ValueError(f"{label} is not a Transfer Lab audio export: expected input {ONNX_INPUT!r} and output "
                         f"{ONNX_OUTPUT!r}, found {names[0]} and {names[1]}")
    return session


def parity(clf: AudioClassifier, session, feats: torch.Tensor) -> float:
    """The largest |p_torch - p_onnxruntime| over `feats`."""
    p_torch = train.predict(clf.model.eval(), feats)
    p_onnx = AudioClassifier(None, clf.meta, session=session).probabilities(feats)
    if p_onnx.shape != p_torch.shape:
        raise ValueError(f"model.onnx gives outputs of shape {tuple(p_onnx.shape)}, the model {tuple(p_torch.shape)}")
    return float((p_torch - p_onnx).abs().max())


def _check_feats(clf: AudioClassifier) -> tuple[torch.Tensor, str]:
    if clf.check_feats is not None and len(clf.check_feats):
        return clf.check_feats, f"{len(clf.check_feats)} validation clips"
    gen = torch.Generator().manual_seed(0)
    return torch.rand(8, audio.FRAMES, audio.N_MELS, generator=gen), "8 random spectrograms (no validation clips kept)"


def to_onnx(clf: AudioClassifier) -> bytes:
    """model.onnx of clf (exported once), checked against torch; its parity figure kept in clf.meta["onnx"].
    ValueError (one line) past export.PARITY_LIMIT."""
    if clf.onnx is not None:
        return clf.onnx
    import onnxruntime as ort

    model = clf.model.cpu().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():   # the TorchScript exporter is deprecated; LSTMs export fine through it
        warnings.simplefilter("ignore")
        torch.onnx.export(export.WithSoftmax(model), (torch.zeros(1, audio.FRAMES, audio.N_MELS),), buf, dynamo=False,
                          opset_version=export.ONNX_OPSET, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}})
    raw = buf.getvalue()
    feats, on = _check_feats(clf)
    diff = parity(clf, onnx_session(raw), feats)
    if not diff <= export.PARITY_LIMIT:
        raise ValueError(f"ONNX export failed its parity check: torch and onnxruntime probabilities differ by up to "
                         f"{diff:.2e} on {on}, more than the limit of {export.PARITY_LIMIT:g}")
    clf.meta["onnx"] = {"file": "model.onnx", "opset": export.ONNX_OPSET, "onnxruntime": ort.__version__,
                        "input": f"{ONNX_INPUT}: float32 (N, {audio.FRAMES}, {audio.N_MELS}) power mel",
                        "output": f"{ONNX_OUTPUT}: (N, {len(clf.classes)}), softmax included",
                        "max_abs_diff": diff, "checked_on": on, "limit": export.PARITY_LIMIT}
    clf.onnx = raw
    return raw


def parity_line(clf: AudioClassifier) -> str:
    o = clf.meta["onnx"]
    return (f"ONNX parity: max |p_torch - p_onnxruntime| = {o['max_abs_diff']:.2e} on {o['checked_on']} "
            f"(limit {o['limit']:g}, opset {o['opset']})")


def files(clf: AudioClassifier) -> dict[str, bytes]:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in clf.model.state_dict().items()}, buf)
    onnx = to_onnx(clf)   # first: it records the parity figure in meta
    return {"model.pt": buf.getvalue(), "model.onnx": onnx, "model.json": json.dumps(clf.meta, indent=2).encode()}


def save(clf: AudioClassifier, folder) -> dict[str, str]:
    """model.pt, model.onnx and model.json written into `folder`; nothing written when the parity check fails."""
    made, folder = files(clf), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in made.items():
        (folder / name).write_bytes(content)
    return {name: str(folder / name) for name in made}


def to_zip(clf: AudioClassifier) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files(clf).items():
            zf.writestr(name, content)
    return buf.getvalue()


def _meta(text: bytes | str) -> dict:
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"model.json is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"model.json is not a Transfer Lab audio export (format {FORMAT!r} expected; an image "
                         f"model is read by `predict`)")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ValueError("model.json: classes must be a list of at least 2 names")
    return meta


def _from_pt(raw: bytes, meta: dict, label: str) -> AudioClassifier:
    safeio.torch_zip(raw, label, MAX_MODEL_BYTES)
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors, refused globals, truncated files
        raise ValueError(f"{label} could not be loaded as tensors with weights_only=True "
                         f"({export.first_line(err)})") from None
    model = backbones.create(audio.ENCODER, "scratch", len(meta["classes"]))
    if not isinstance(state, dict) or set(state) != set(model.state_dict()) or any(
            getattr(state[k], "shape", None) != v.shape for k, v in model.state_dict().items()):
        raise ValueError(f"{label} does not fit the speech encoder with {len(meta['classes'])} classes")
    model.load_state_dict(state)
    return AudioClassifier(model.eval(), meta)


def _from_onnx(raw: bytes, meta: dict, label: str) -> AudioClassifier:
    clf = AudioClassifier(None, meta, session=onnx_session(raw, label))
    try:
        out = clf.probabilities(torch.zeros(1, audio.FRAMES, audio.N_MELS))
    except Exception as err:  # noqa: BLE001 - loads but cannot run a clip's features
        raise ValueError(f"{label} cannot run on a clip's features ({export.first_line(err)})") from None
    if tuple(out.shape) != (1, len(clf.classes)):
        raise ValueError(f"{label} gives {out.shape[-1]} outputs, model.json names {len(clf.classes)} classes")
    return clf


def load(path, onnx: bool = False) -> AudioClassifier:
    """An exported model from its model.pt (model.json beside it), model.onnx, folder or zip; ValueError (one
    line) for anything else."""
    path = Path(path)
    onnx = onnx or path.suffix.lower() == ".onnx"
    if path.is_dir():
        path = path / ("model.onnx" if onnx else "model.pt")
    elif onnx and path.suffix.lower() == ".pt":
        path = path.with_suffix(".onnx")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{path} is larger than {MAX_MODEL_BYTES // 2 ** 20} MB")
    if path.suffix.lower() == ".zip":
        with safeio.open_zip(path.read_bytes(), path.name) as zf:
            userdata.check_entries(zf.infolist(), path.name)
            budget, got = safeio.Budget(bytes=MAX_MODEL_BYTES), {}
            for info in zf.infolist():
                name = Path(info.filename).name
                if name in ("model.json", "model.pt", "model.onnx") and not userdata.unsafe_path(info.filename):
                    limit = MAX_META_BYTES if name == "model.json" else MAX_MODEL_BYTES
                    got[name] = safeio.read_entry(zf, info, path.name, budget, limit, name=f"{path.name}: {name}")
        want = "model.onnx" if onnx else "model.pt"
        if "model.json" not in got or want not in got:
            raise ValueError(f"{path.name} has no model.json and {want}: expected the zip the listening page exports")
        meta = _meta(got["model.json"])
        return (_from_onnx if onnx else _from_pt)(got[want], meta, f"{path.name}: {want}")
    meta_path = path.with_name("model.json")
    if not meta_path.is_file():
        raise ValueError(f"{path}: its model.json (class names, features) is missing; keep the export's files together")
    meta = _meta(meta_path.read_bytes()[:MAX_META_BYTES + 1])
    return (_from_onnx if onnx else _from_pt)(path.read_bytes(), meta, path.name)


def predict(args) -> int:
    """`audio-predict`: the top classes of each WAV/FLAC/OGG file with an exported listening model; one JSON
    object with --json. A bad file or model: ValueError (one line, exit 2)."""
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    clf = load(args.model, onnx=args.onnx)
    predictions = []
    for path in args.wav:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"{path}: no such file")
        if p.stat().st_size > userclips.MAX_FILE_BYTES:
            raise ValueError(f"{path}: larger than {userclips.MAX_FILE_BYTES // 2 ** 20} MB")
        try:
            top = clf.topk(p.read_bytes(), args.top_k)
        except (userclips.BadClip, safeio.BudgetSpent) as err:
            raise ValueError(f"{path}: {err}") from None
        predictions.append({"wav": path, "top": [{"class": c, "probability": q} for c, q in top]})
    if args.json:
        print(json.dumps({"model": str(args.model), "classes": clf.classes, "runtime": clf.runtime,
                          "predictions": predictions}))
    else:
        for pred in predictions:
            print(pred["wav"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in pred["top"]))
    return 0
