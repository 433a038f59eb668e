"""What the tests share, in one place: paths, the tiny configs, and helpers (the pytest fixtures built on them are
in conftest.py). No test module imports another test module: what two of them need is here.

Import it by name, as conftest.py is (`from fixtures import open_page`: pytest puts tests/ on sys.path); a
subprocess started with PYTHONPATH at the repository root imports it as `tests.fixtures`.

The tiny configs are plain settings (no experiment's config class: a renamed module breaks the tests that use it,
not every test), each written once and handed to a test in the form it needs: a config
(`FinetuneConfig(**TINY_LAB, epochs=2)`), command-line flags (`argv("finetune", {**TINY_LAB, "epochs": 2})`) or a
page's link (`link("ft", TINY_LAB)`, and `query(...)` for a browser's URL). A test adds what it varies (epochs,
seeds, weights, shots) and keeps its own numbers.
"""
from __future__ import annotations

import io
import shutil
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from tl_core import contract

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
APP_TIMEOUT = 120  # seconds: training on a 2-core CPU is slow compared with AppTest's default 3 s
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync"]


# ---- the tiny configs ------------------------------------------------------------------------------------------

# THE tiny lab run: Transfer Lab's own small CNN (weights shipped, offline) on textures at 32 px; a test adds its
# epochs, seeds, weights, shots. A lab run of it takes a second or two on 2 cores.
TINY_LAB = {"backbone": "shapes_cnn", "dataset": "textures", "image_size": 32}
# the lab's default backbone (EfficientNet-Lite0, and its scratch twin) long enough to be training minutes later
LONG_LAB = {"epochs": 40, "seeds": 5, "image_size": 96}
# the regularisation toy: its smallest run (a second; on a page its pretraining keeps the page's default), one a
# little longer, and the smallest from the command line
TINY_TOY = {"seeds": 3, "epochs": 20}
FAST_TOY = {"seeds": 5, "epochs": 50}
# Guided Transfer Learning and its sweep: a few seconds on 2 busy cores
TINY_GTL = {"pretrain_epochs": 3, "scouts": 4, "scout_epochs": 2, "seeds": 2, "val_per_class": 10}
# parameter-efficient fine-tuning: 32 px, 2 shots, 2 seeds, 2 epochs, 3 classes
TINY_PEFT = {"shots": 2, "epochs": 2, "seeds": 2, "image_size": 32, "probe_size": 32, "val_per_class": 4}
# self-supervised pretraining: small enough for a busy 2-core CPU, big enough that the effect is real
SMALL_SSL = {"data": "expression", "labels": 2, "mask_ratio": 0.5, "seeds": 3, "pretrain_epochs": 8, "epochs": 60}
# transfer for text: fine-tuning the last layers on 2 sentences per topic
TINY_TEXT = {"conditions": ("feature", "last_k"), "shots": 2, "seeds": 2, "epochs": 2, "val_per_class": 4}
# which strategy: a small real grid, one near and one far dataset, few and more shots
SMALL_DOMAINS = {"datasets": ("textures", "microscopy"), "shots": (5, 15),
                 "strategies": ("feature_extraction", "scratch"), "seeds": 2, "epochs": 6, "image_size": 32}


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def argv(command: str | None, settings: dict) -> list[str]:
    """Command-line flags for settings (a tuple as a comma-separated list), after the command when one is named."""
    flags = []
    for name, value in settings.items():
        flags += [f"--{name.replace('_', '-')}",
                  ",".join(map(_text, value)) if isinstance(value, (tuple, list)) else _text(value)]
    return [command, *flags] if command else flags


def link(prefix: str, settings: dict) -> dict:
    """A page's link parameters for settings (a tuple as repeated values), as AppTest's query_params take them."""
    return {f"{prefix}_{name}": [_text(v) for v in value] if isinstance(value, (tuple, list)) else _text(value)
            for name, value in settings.items()}


def query(params: dict) -> str:
    """A URL's query string for link parameters."""
    return urlencode(params, doseq=True)


TINY_TOY_ARGV = argv("toy", {**TINY_TOY, "pretrain_epochs": 20})


# ---- pages and servers ---------------------------------------------------------------------------------------

def open_page(page: str, params: dict):
    """A fresh browser session opening `page` with `params` in its URL, as a shared link would."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT)
    at.run()
    at.switch_page(page)
    at.query_params.update(params)
    return at.run()


def train_small_lab(app, dataset: str, epochs: int, seeds: int) -> None:
    """Set the lab page to a fast offline run (the shapes CNN at 32 px) and press Train."""
    app.selectbox(key="ft_backbone").set_value(TINY_LAB["backbone"])
    app.selectbox(key="ft_dataset").set_value(dataset)
    app.select_slider(key="ft_image_size").set_value(TINY_LAB["image_size"])
    app.slider(key="ft_epochs").set_value(epochs)
    app.slider(key="ft_seeds").set_value(seeds)
    app.run()
    app.button(key="ft_train").click().run()
    assert not app.exception


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- your own images: zips of real photos (scikit-image's cat, coffee, astronaut) ------------------------------

def _photos():
    from skimage import data as skdata

    return {"cat": skdata.chelsea, "coffee": skdata.coffee, "astronaut": skdata.astronaut}


def encode(arr, fmt="JPEG", **kw) -> bytes:
    from PIL import Image

    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def make_zip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buf.getvalue()


def crops(name: str, n: int, seed: int = 0, side: int = 200) -> list[np.ndarray]:
    img = _photos()[name]()
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    return [img[y:y + side, x:x + side] for y, x in zip(rng.integers(0, h - side, n), rng.integers(0, w - side, n))]


def photos_zip(per_class: int = 6, top: str = "", classes=("cat", "coffee", "astronaut")) -> bytes:
    entries = {}
    for c in classes:
        for i, arr in enumerate(crops(c, per_class, seed=len(c))):
            fmt = "PNG" if i % 2 else "JPEG"
            entries[f"{top}{c}/{c}_{i}.{fmt.lower()}"] = encode(arr, fmt)
    return make_zip(entries)


# ---- a stand-in result for the run history ---------------------------------------------------------------------

@dataclass
class Fake(contract.Result):
    """A result that names one metric and one curve, as every experiment's result does."""
    config: dict
    val_acc: float
    curve: list = field(default_factory=list)
    kind = "finetune"
    headline = "val_acc"

    def to_json(self) -> dict:
        return {"config": self.config, "status": self.status, "val_acc": self.val_acc,
                "history": {"val_acc": self.curve}}

    def metrics(self) -> dict:
        return {"val_acc": self.val_acc, "not_a_number": float("nan")}

    def curves(self) -> dict:
        return {"history.val_acc": self.curve}


def fake_result(i: int, epochs: int = 50) -> Fake:
    return Fake({"i": i, "dataset": "digits"}, i / 100, [i / 100] * epochs, seconds=0.1, device="cpu")
