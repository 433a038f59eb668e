"""What tl_core itself says to a user speaks the reader's language (issue #39): an upload refused, the state_dict
load report, a shared server's refusal, a bad command-line option. In Spanish through the catalogue; in English
byte for byte what it said before (the expected texts here are the old f-strings' output)."""
import io
import subprocess
import sys
import zipfile

import fakes
import pytest
import torch
from PIL import Image

from tl_core import i18n, safeio, serve, state, text, userdata


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (120, 30, 200)).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict, method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _said(lang: str, fn) -> str:
    """The one line `fn` raises (ValueError, as every refusal is), in `lang`."""
    with i18n.using(lang), pytest.raises(ValueError) as err:
        fn()
    return str(err.value)


# ---- uploads ---------------------------------------------------------------------------------------------

def test_a_zip_with_one_class_says_what_is_missing_in_each_language():
    one = userdata.read_zip(_zip({"cat/1.png": _png(), "cat/2.png": _png(), "cat/notes.txt": b"x"}), "cats.zip")
    with i18n.using("en"):
        assert one.problems() == ["Transfer Lab needs at least 2 classes with images to tell apart; found 1 with "
                                  "images (classes: 'cat' (2 images)). Add another class folder (or webcam class) "
                                  "with images."]
        assert one.warnings() == ["Class 'cat' has only 2 images (1 to train, 1 to validate): 5 or more per class "
                                  "give a steadier result."]
    with i18n.using("es"):
        assert one.problems() == ["Transfer Lab necesita al menos 2 clases con imágenes para distinguir; encontró 1 "
                                  "con imágenes (clases: 'cat' (2 imágenes)). Añade otra carpeta de clase (o una "
                                  "clase de la webcam) con imágenes."]
        assert one.warnings()[0].startswith("La clase 'cat' tiene solo 2 imágenes (1 para entrenar, 1 para validar)")
        skipped = userdata.read_zip(_zip({"cat/1.png": _png(), "cat/notes.txt": b"x"}), "cats.zip").skipped
    assert [s.reason for s in skipped] == ["no es un archivo de imagen (.txt)"]   # said as the zip is read


def test_a_file_that_is_not_a_zip_is_refused_in_each_language():
    read = lambda: userdata.read_zip(b"this is no zip", "photos.zip")   # noqa: E731
    assert _said("en", read) == (
        "photos.zip is not a zip file (or a damaged one). Make a zip of your class folders. Expected layout: one "
        "folder per class with its images inside, e.g. cat/1.jpg, cat/2.jpg, dog/1.jpg (one extra top folder, like "
        "my_photos/cat/1.jpg, is fine).")
    assert _said("es", read) == (
        "photos.zip no es un archivo zip (o está dañado). Haz un zip de tus carpetas por clase. Estructura esperada: "
        "una carpeta por clase con sus imágenes dentro, p. ej. cat/1.jpg, cat/2.jpg, dog/1.jpg (una carpeta superior "
        "extra, como my_photos/cat/1.jpg, no es problema).")
    with i18n.using("es"):   # the limits the page states beside the uploader, numbers as Spanish writes them
        assert userdata.limits_text().startswith("subidas de hasta 200 MB; como máximo 5.000 archivos en el zip")


def test_a_zip_that_would_unpack_too_far_is_refused_in_each_language():
    big = zipfile.ZipInfo("cat/huge.png")
    big.file_size = 5 * 2 ** 30
    check = lambda: userdata.check_entries([big], "bomb.zip")   # noqa: E731
    assert _said("en", check) == ("bomb.zip refused: it would unpack to 5,120 MB, more than the limit of 1,000 MB "
                                  "(could be a zip bomb)")
    assert _said("es", check) == ("bomb.zip rechazado: se descomprimiría en 5.120 MB, más que el límite de 1.000 MB "
                                  "(podría ser una bomba zip)")


def test_a_long_text_upload_is_cut_with_a_note_and_bad_bytes_are_refused_in_each_language():
    raw = b"word " * 200_000
    with i18n.using("en"):
        assert text.read_upload(raw, "big.txt")[1] == "big.txt is 977 KB: only its first 64 KB are read."
    with i18n.using("es"):
        assert text.read_upload(raw, "big.txt")[1] == "big.txt pesa 977 KB: solo se leen sus primeros 64 KB."
    bad = lambda: text.read_upload(b"abc\xff" + b"x" * 100)   # noqa: E731  (no name: "the file")
    assert _said("en", bad) == ("the file is not UTF-8 text (byte 0xff at position 3): save it as UTF-8 and upload "
                                "it again")
    assert _said("es", bad) == ("el archivo no es texto UTF-8 (byte 0xff en la posición 3): guárdalo como UTF-8 y "
                                "vuelve a subirlo")


def test_a_pt_file_that_is_not_a_state_dict_is_refused_in_each_language():
    buf = io.BytesIO()
    torch.save(torch.zeros(3, 4), buf)
    read = lambda: state.read(buf.getvalue(), "tensor.pt")   # noqa: E731
    assert _said("en", read) == ("tensor.pt: the file holds one tensor of shape (3, 4), not a state_dict (a dict of "
                                 "named tensors)")
    assert _said("es", read) == ("tensor.pt: el archivo contiene un solo tensor de forma (3, 4), no un state_dict (un "
                                 "dict de tensores con nombre)")
    assert _said("es", lambda: state.read(b"", "empty.pt")) == "empty.pt: el archivo está vacío (0 bytes)"
    packed = _zip({"archive/data.pkl": b"0" * 4000}, zipfile.ZIP_DEFLATED)   # refused before torch.load
    assert _said("es", lambda: safeio.torch_zip(packed, "packed.pt", 2 ** 20)).startswith(
        "packed.pt: rechazado — su registro 'archive/data.pkl' está comprimido (deflated")


# ---- the state_dict load report ---------------------------------------------------------------------------

def test_the_load_report_reads_in_each_language_and_its_json_keeps_its_keys():
    sd = state.export("shapes_cnn", "scratch")
    encoder = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    report = state.load_into(encoder, state.LoadConfig("shapes_cnn"), "enc.pt")
    with i18n.using("en"):
        assert report.message() == (
            "Strict loading into shapes_cnn refused the file: every tensor in it matches the model, but 2 of the "
            "model's keys are not in it (fc.weight, fc.bias), and strict asks for all of them. Nothing was loaded; "
            "with strict off the matching tensors load.")
        english = report.to_json()
    with i18n.using("es"):   # the message is worded when shown: a report kept in the session reads in the new one
        assert report.message() == (
            "La carga estricta en shapes_cnn rechazó el archivo: cada tensor que contiene coincide con el modelo, pero "
            "2 de las claves del modelo no están en él (fc.weight, fc.bias), y strict las exige todas. No se cargó "
            "nada; con strict desactivado se cargan los tensores que coinciden.")
        assert [i18n.tr(title) for title, _, _ in report.lists()] == ["Faltantes", "Inesperadas", "Con forma distinta"]
        assert set(report.to_json()) == set(english)
        partial = state.load_into(sd, state.LoadConfig("shapes_cnn", num_classes=3, strict=False), "six.pt")
        assert partial.message().startswith("con strict desactivado: se cargaron 24 tensores coincidentes en "
                                            "shapes_cnn; el resto no se cargó (0 faltantes, 0 inesperadas, 2 con "
                                            "forma distinta)")
        assert partial.hints == ["solo difiere la cabeza: la cabeza del archivo tiene 6 salidas; dale a la "
                                 "arquitectura una cabeza de ese tamaño, o carga con strict desactivado y entrena una "
                                 "cabeza nueva"]
    with i18n.using("en"):
        assert partial.message() == ("strict off: loaded 24 matching tensors into shapes_cnn; the rest did not load "
                                     "(0 missing, 0 unexpected, 2 shape-mismatched). Missing keys keep their scratch "
                                     "values.")


# ---- an experiment's verdict around the claims rule's sentence ------------------------------------------------

def test_a_verdict_s_own_words_read_in_each_language():
    from tl_core import contract
    from tl_core.experiments import finetune, toy

    stopped = contract.Result(status="stopped")
    with i18n.using("en"):
        assert stopped.ended_early().text == "The run ended early (stopped)."
        assert finetune._depth_words(4, 5) == "pretrained, 4 of 5 stages frozen (feature extraction)"
        assert toy.verdict(_diverged()).text == (
            "Training diverged (the loss became NaN/inf), so these numbers say nothing about transfer. Lower the "
            "learning rate.")
    with i18n.using("es"):   # worded when shown: a result kept in the session reads in the page's language
        assert stopped.ended_early().text == "La ejecución terminó antes de tiempo (stopped)."
        assert finetune._depth_words(4, 5) == "preentrenado, 4 de 5 etapas congeladas (extracción de características)"
        assert toy.verdict(_diverged()).text.startswith("El entrenamiento divergió (la pérdida se volvió NaN/inf)")


def _diverged():
    from types import SimpleNamespace

    return SimpleNamespace(status="diverged", message="")


# ---- a shared server's refusal ------------------------------------------------------------------------------

def test_a_run_over_the_class_limit_is_refused_in_each_language(tmp_path, monkeypatch):
    monkeypatch.setenv(serve.RUN_MINUTES, "1")
    before = serve.use(serve.Server())
    try:
        ask = lambda: serve.server().submit(fakes.request(n=1), root=str(tmp_path), session="s",   # noqa: E731
                                            estimate=3600.0, limited=True)
        with i18n.using("en"), pytest.raises(serve.Refused) as err:
            ask()
        assert str(err.value) == ("This run would take about 60 min on this server, over the class's limit of 1 min "
                                  "for one run: choose fewer epochs, seeds or images (or ask the teacher).")
        with i18n.using("es"), pytest.raises(serve.Refused) as err:
            ask()
        assert str(err.value) == ("Esta ejecución tardaría unos 60 min en este servidor, más que el límite de la clase "
                                  "de 1 min por ejecución: elige menos épocas, semillas o imágenes (o pregúntale al "
                                  "profesor).")
        assert not serve.server().jobs()   # refused before anything was queued
    finally:
        serve.use(before)


# ---- the command line ------------------------------------------------------------------------------------------

def test_a_bad_option_is_one_line_in_spanish_with_lang_es():
    """(In English, tests/test_cli.py: "b-points must be between 1 and 20".)"""
    proc = subprocess.run([sys.executable, "-m", "tl_core", "toy", "--b-points", "0", "--lang", "es"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["python -m tl_core toy: error: b-points debe estar entre 1 y 20; se "
                                                "recibió 0"]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_flag_of_the_wrong_type_is_said_in_spanish_too(capsys):
    """A flag's type is checked while the arguments are parsed: --lang is read before that."""
    from tl_core import cli

    with pytest.raises(SystemExit) as ended, i18n.using(None):   # main sets this context's language: reset after
        cli.main(["toy", "--lr", "fast", "--lang", "es"])
    assert ended.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("lr debe ser un número; se recibió 'fast'"), err
