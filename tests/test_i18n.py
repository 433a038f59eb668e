"""Transfer Lab in Spanish as well as English: one catalogue per language, in step with the code; the claims rule's
sentences and numbers as each language writes them; the language from the link, the switch or the browser; the
CLI's --lang. JSON keys and recorded configs never change with the language."""
import json
import re
import subprocess
import sys

import pytest
from fixtures import ROOT, TINY_LAB, argv, open_page
from streamlit.testing.v1 import AppTest

from tl_core import i18n
from tl_core.claims import Claim

sys.path.insert(0, str(ROOT / "tools"))
import i18n_sync  # noqa: E402

FIELDS = re.compile(r"{(\w*)[^}]*}")


def test_every_message_in_the_code_is_in_every_catalogue_with_the_same_placeholders():
    ids = i18n_sync.used()
    assert "{a} and {b} tie" in ids and "Fine-tuning lab" in ids   # the claims rule's words, a page title
    for lang in i18n.LANGS:
        if lang == i18n.DEFAULT:
            continue
        cat = i18n.catalogue(lang)
        missing = [m for m in ids if not cat.get(m)]
        assert not missing, f"{lang}: no translation for {missing[:5]} (tools/i18n_sync.py, then translate)"
        unused = [m for m in cat if m not in ids]
        assert not unused, f"{lang}: entries the code no longer uses: {unused[:5]} (tools/i18n_sync.py drops them)"
        for m in ids:
            assert sorted(FIELDS.findall(m)) == sorted(FIELDS.findall(cat[m])), (lang, m, cat[m])


def test_the_sync_tool_reports_a_catalogue_out_of_step():
    assert i18n_sync.main(["--check"]) == 0


def _claim(kind, gap, low, high, seeds=5, metric="accuracy", a=0.925, b=0.894):
    return Claim(kind, "pretrained", "scratch", gap, low, high, seeds, a, b, metric)


@pytest.mark.parametrize("lang,helped,hurt,tie,single", [
    ("en", "Pretrained beats scratch by 3.1 points: validation accuracy 92.5% pretrained vs 89.4% scratch "
           "(95% interval +1.2 to +5.0 points; paired over 5 seeds).",
     "Pretrained trails scratch by 3.1 points: validation accuracy 92.5% pretrained vs 89.4% scratch "
     "(95% interval -5.0 to -1.2 points; paired over 5 seeds).",
     "Pretrained and scratch tie: validation accuracy 92.5% pretrained vs 89.4% scratch, a gap of +0.4 points "
     "(95% interval -1.5 to +2.3 points; paired over 5 seeds): its interval includes no difference.",
     "One seed says little: validation accuracy 92.5% pretrained vs 89.4% scratch (raise the seeds for an interval; "
     "the rule needs at least two)."),
    ("es", "Pretrained supera a scratch por 3,1 puntos: exactitud de validación: 92,5\xa0% pretrained frente a "
           "89,4\xa0% scratch (intervalo del 95 %: de +1,2 a +5,0 puntos; pareado en 5 semillas).",
     "Pretrained queda por detrás de scratch por 3,1 puntos: exactitud de validación: 92,5\xa0% pretrained frente a "
     "89,4\xa0% scratch (intervalo del 95 %: de -5,0 a -1,2 puntos; pareado en 5 semillas).",
     "Empate entre pretrained y scratch: exactitud de validación: 92,5\xa0% pretrained frente a 89,4\xa0% scratch, una "
     "diferencia de +0,4 puntos (intervalo del 95 %: de -1,5 a +2,3 puntos; pareado en 5 semillas): su intervalo "
     "incluye el cero (ninguna diferencia).",
     "Una sola semilla dice poco: exactitud de validación: 92,5\xa0% pretrained frente a 89,4\xa0% scratch (sube el "
     "número de semillas para tener un intervalo; la regla necesita al menos dos)."),
])
def test_the_claims_sentence_reads_in_each_language(lang, helped, hurt, tie, single):
    with i18n.using(lang):
        assert _claim("helped", 0.031, 0.012, 0.050).sentence() == helped
        assert _claim("hurt", -0.031, -0.050, -0.012).sentence() == hurt
        assert _claim("tie", 0.004, -0.015, 0.023).sentence() == tie
        assert _claim("single", 0.031, float("nan"), float("nan"), seeds=1).sentence() == single
    assert i18n.language() == "en"   # the block's language ends with it


def test_a_scale_metric_and_a_small_gap_read_in_spanish():
    mse = _claim("helped", 0.5, 0.2, 0.8, metric="test MSE", a=0.0123, b=0.0389)   # log10 ratios: ×3.16 lower
    small = _claim("tie", 0.005, 0.002, 0.008)                                      # clear, but under one point
    with i18n.using("es"):
        said = mse.sentence()
        assert said.startswith("Pretrained por delante de scratch: MSE de prueba: 0,0123 pretrained frente a "
                               "0,0389 scratch (media sobre las semillas); semilla a semilla, ×3,16 menor")
        assert "intervalo del 95 %: de ×1,58 a ×6,31" in said and "pareado en 5 semillas" in said
        assert small.sentence().endswith("por debajo del 1 punto que pide la regla.")
    with i18n.using("en"):
        assert small.sentence().endswith("under the 1 point the rule asks for.")
        assert "×3.16 lower for pretrained" in mse.sentence()


def test_numbers_as_each_language_writes_them():
    with i18n.using("es"):
        assert (i18n.percent(0.925), i18n.points(3.1), i18n.points(-0.5), i18n.number(12345.67, 1)) == \
            ("92,5\xa0%", "+3,1 puntos", "-0,5 puntos", "12.345,7")
    with i18n.using("en"):
        assert (i18n.percent(0.925), i18n.points(3.1), i18n.number(12345.67, 1)) == ("92.5%", "+3.1 points", "12,345.7")


def test_the_language_comes_from_the_link_else_the_browser_else_english():
    assert [i18n.normal(x) for x in ("es-CL", "es_ES", "EN-us", "fr-FR", None, "")] == ["es", "es", "en", None, None,
                                                                                       None]
    es = open_page("app_pages/home.py", {"lang": "es"})
    assert not es.exception
    assert [s.value for s in es.subheader] == ["Páginas", "Un recorrido de 30 segundos"]
    labels = [p.proto.label for p in es.get("page_link")]
    assert any(label.startswith("Laboratorio de fine-tuning: ") for label in labels)
    assert any("Drag and drop files here" in c.value and "inglés" in c.value for c in es.sidebar.caption)
    en = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert [s.value for s in en.subheader] == ["Pages", "A 30-second tour"]
    assert en.radio(key="lang_switch").value == "en" and "lang" not in en.query_params
    en.radio(key="lang_switch").set_value("es").run()    # the switch: the link carries it from now on
    assert en.query_params["lang"] in ("es", ["es"]) and en.subheader[0].value == "Páginas"


def test_a_link_in_spanish_raises_no_notice_on_a_page_with_settings(app):
    at = open_page("app_pages/state.py", {"lang": "es"})
    assert not at.exception and not [w.value for w in at.warning if "link" in w.value]
    assert at.query_params["lang"] in ("es", ["es"])


@pytest.mark.slow   # a fresh torch process
def test_the_cli_speaks_the_verdict_in_spanish_and_keeps_its_json(tmp_path):
    base = [sys.executable, "-m", "tl_core", *argv("finetune", {**TINY_LAB, "epochs": 2, "seeds": 2}), "--no-record"]
    said = subprocess.run([*base, "--lang", "es"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert said.returncode == 0, said.stderr
    assert re.search(r"exactitud de validación: \d+,\d\xa0% pretrained frente a", said.stdout), said.stdout
    env_json = subprocess.run([*base, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**__import__("os").environ, "TL_LANG": "es"})
    en_json = subprocess.run([*base, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert set(json.loads(env_json.stdout)) == set(json.loads(en_json.stdout))   # the same keys
    bad = subprocess.run([*base, "--lang", "fr"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "invalid choice: 'fr'" in bad.stderr and "Traceback" not in bad.stderr



def test_names_are_shown_in_spanish_and_keep_their_keys():
    from tl_core import names

    with i18n.using("es"):
        assert names.condition("scratch") == "desde cero" and names.condition("head") == "solo la cabeza"
        assert names.condition("last_k", k=2) == "fine-tuning de las últimas 2 capas"
        assert names.condition("lora_r4") == "LoRA r=4" and names.condition("my_run") == "my run"
        assert names.layer("blocks.6.0.conv_pwl.weight") == "pesos de bloque 6.0 conv 1×1 de proyección"
        assert names.layer("body.fc1.bias", sep="<br>") == "sesgos<br>de fc1" and names.layer("bias") == "sesgos"
        assert names.measure("val_acc") == "exactitud de validación"
    assert names.condition("scratch") == "from scratch" and names.layer("body.fc1.weight") == "fc1 weights"


def test_the_glossary_and_its_help_speak_the_readers_language():
    """A term's `?` help (glossary.help_for) and the Glossary page read in Spanish with ?lang=es, in English without."""
    from tl_core import glossary

    with i18n.using("es"):
        said = glossary.help_for("paired", "claims rule")
    assert "**pareado**" in said and "empate" in said and "página **Glosario**" in said
    assert "Two conditions compared" not in said
    with i18n.using("en"):
        assert glossary.help_for("paired").startswith("**paired**: Two conditions compared seed by seed")
    at = open_page("app_pages/glossary.py", {"lang": "es"})
    shown = " ".join(m.value for m in at.markdown)
    assert "aprendizaje por transferencia" in shown and "Reusing what a network" not in shown


def test_a_runs_condition_labels_are_drawn_in_the_readers_language():
    """A run keeps its labels in English (the same run in both languages); its charts and metrics show them in the
    reader's: a language model's methods from their templates (layers and shots filled in), the others from the
    catalogue, and a label it lacks ("LoRA r=4") as it is."""
    from tl_core import names
    from tl_core.lm_tuning import LABELS
    from tl_core.plots import audio as audio_plots
    from tl_core.plots import lm as lm_plots

    run = {"config": {"layers": 2, "shots": 4},
           "methods": [{"method": m, "label": LABELS[m].format(k=2, shots=4), "val_acc_mean": 0.6,
                        "val_acc_seeds": [0.5, 0.7], "perplexity_after": 20.0}
                       for m in ("feature", "last_k", "prompt")]}
    with i18n.using("es"):
        ticks = [t.x[0] for t in lm_plots.methods(run).data if t.type == "bar"]
        assert "características congeladas + cabeza" in ticks and "últimas 2 capas entrenadas" in ticks
        assert "prompting (4 ejemplos/tema)" in ticks and not any("layers" in t for t in ticks)
        bars = audio_plots.accuracy_bars({"conditions": {"scratch": {"label": "same network from scratch",
                                                                     "val_acc": 0.2, "val_acc_seeds": [0.2]}}})
        assert bars.data[0].x[0] != "same network from scratch"
        assert names.shown("LoRA r=4") == "LoRA r=4"
    with i18n.using("en"):
        ticks = [t.x[0] for t in lm_plots.methods(run).data if t.type == "bar"]
        assert "last 2 layers trained" in ticks and "prompting (4 examples/topic)" in ticks
