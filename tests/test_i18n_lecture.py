"""The lecture in Spanish as well as English: what each step says of its run (tl_core/narration.py), its status lines
and the handout, from constructed runs (nothing trains). English stays word for word what it was."""
import re

import pytest

from tl_core import cli, i18n, lecture, lecture_cli, narration, store

NBSP = "\xa0"


def claim(kind, gap, low, high, a=0.875, b=0.333, subject="pretrained", against="scratch", seeds=4, **extra):
    return {"kind": kind, "subject": subject, "against": against, "gap": gap, "low": low, "high": high, "seeds": seeds,
            "subject_mean": a, "against_mean": b, "metric": "accuracy", **extra}


KINDS = {"helped": claim("helped", 0.545, 0.38, 0.69),
         "hurt": claim("hurt", -0.2875, -0.4125, -0.165, a=0.575, b=0.6125),
         "tie": claim("tie", 0.0125, -0.05, 0.075, a=0.6375, b=0.625),   # 63.7%: as f"{0.6375:.1%}" rounds it
         "single": claim("single", 0.1, None, None, seeds=1)}
AUDIO = {"frozen": {"label": "frozen encoder + head"}, "last_layer": {"label": "last LSTM layer fine-tuned"},
         "scratch": {"label": "same network from scratch"}}
PEFT = [{"condition": "lora_r4", "label": "LoRA r=4", "trainable_fraction": 0.0123},
        {"condition": "full", "label": "full fine-tuning", "trainable_fraction": 1.0}]
LM = [{"method": "feature", "label": "frozen features + head"}, {"method": "last_k", "label": "last 2 layers trained"}]

# each narration that speaks from one claim: the out of a run whose claim is c
ONE_CLAIM = {
    "idea": lambda c: narration.say_idea({"claim": c, "config": {"shots": 3}}),
    "toy": lambda c: narration.say_toy({"claim": {**c, "metric": "test MSE", "subject_mean": 0.0123,
                                                  "against_mean": 0.0389}, "config": {"b_points": 2}}),
    "layers": lambda c: narration.say_layers({"claim": {**c, "metric": "relative change"}}),
    "ssl": lambda c: narration.say_ssl({"claim": {**c, "subject": "ssl_frozen"}, "config": {"labels": 5}}),
    "text": lambda c: narration.say_text({"claim": {**c, "subject": "feature"}, "config": {"shots": 2}}),
    "audio": lambda c: narration.say_audio({"task": "words", "config": {"shots": 5}, "conditions": AUDIO,
                                            "pretraining_claim": {**c, "subject": "frozen"},
                                            "claim": {**KINDS["tie"], "subject": "last_layer", "against": "frozen"}}),
    "lm": lambda c: narration.say_lm({"claim": {**c, "subject": "feature", "against": "last_k"}, "methods": LM,
                                      "config": {"shots": 2, "layers": 2},
                                      "claims": {"prompting": {**KINDS["tie"], "subject": "prompt"}}}),
    "peft": lambda c: narration.say_peft({"claim": {**c, "subject": "lora_r4", "against": "full"}, "methods": PEFT,
                                          "forgetting_claim": {**KINDS["helped"], "subject_mean": 0.935,
                                                               "against_mean": 0.025, "low": 0.855, "high": 0.965}}),
    "words": lambda c: narration.Verdict(c["kind"], narration.claim_words(c, "LoRA r=4", "scratch")),
}


def _hist(train, val):
    return {"train_acc": [0.5, train], "val_acc": [0.3, val]}


def _freeze_records():
    return [{"weights": "pretrained", "seed": seed, "freeze": depth, "shots": shots, "val_acc": acc}
            for seed, wiggle in enumerate((0.0, 0.01, -0.01))
            for shots, by in ((2, {"9": 0.70, "7": 0.60}), (20, {"9": 0.85, "7": 0.92}))
            for depth, acc in ((d, a + wiggle * (1 if d == "9" else -1)) for d, a in by.items())]


def _gtl(source, kind, shots, gap, against):
    return {"source": source, "question": "guidance", "kind": kind, "shots": shots, "gap": gap, "against": against}


# the narrations that read more than one claim, each with its own out
OTHERS = {
    "overfit": lambda: narration.say_overfit({"config": {"shots": 2}, "conditions": {"scratch": {"histories": [
        _hist(1.0, 0.4), _hist(1.0, 0.42), _hist(0.98, 0.38), _hist(1.0, 0.41)]}}}),
    "freeze": lambda: narration.say_freeze({"shots": [2, 20], "stages": [str(i) for i in range(10)],
                                            "records": _freeze_records()}),
    "negative": lambda: narration.say_negative({"config": {"backbone": "shapes_cnn", "seeds": 4}, "negative_transfer": [
        {"shots": 2, "scratch_acc": 0.575, "pretrained": "feature_extraction", "pretrained_acc": 0.2875}]}),
    "no_negative": lambda: narration.say_negative({"config": {"backbone": "shapes_cnn", "seeds": 4},
                                                   "negative_transfer": [],
                                                   "gain_claims": [{**KINDS["tie"], "subject": "feature_extraction",
                                                                    "shots": 2}]}),
    "gtl": lambda: narration.say_gtl({"config": {"sources": ["related", "unrelated"]}, "claims": [
        _gtl("related", "helped", 2, 0.1, "freeze_head_only"), _gtl("related", "hurt", 10, -0.05, "plain"),
        _gtl("unrelated", "hurt", 2, -0.13, "freeze_head_only"), _gtl("unrelated", "hurt", 5, -0.28, "plain")]}),
    "domains": lambda: narration.say_domains({"quadrants": [
        {"size": "few", "shots": [2], "kind": "helped", "winner": "feature_extraction", "runner_up": "partial",
         "means": {"feature_extraction": 0.91, "partial": 0.63}, "tied": ["feature_extraction"],
         "claim": {"low": 0.22, "high": 0.35}, "rule_strategies": ["feature_extraction"], "agrees": True},
        {"size": "more", "shots": [10], "kind": "tie", "means": {"partial": 0.86, "full": 0.83, "scratch": 0.3},
         "tied": ["partial", "full"], "rule_strategies": ["partial", "full"], "agrees": None}]}),
    "weights": lambda: narration.say_weights({"verdict_kind": "single", "strict": {
        "config": {"arch": "shapes_cnn", "init": "scratch"}, "outcome": "refused", "n_loaded": 0,
        "missing": ["fc.weight", "fc.bias", "fc2.weight", "fc2.bias"], "unexpected": [], "mismatched": []}, "loose": {
        "config": {"arch": "shapes_cnn", "init": "scratch"}, "outcome": "partial", "n_loaded": 24,
        "missing": ["fc.weight", "fc.bias"], "unexpected": [], "mismatched": []}}),
}


def _english_left(text: str) -> list[str]:
    """The English of the catalogue still in `text`: any run of three words or more of a translated message."""
    left = set()
    for m, t in i18n.catalogue("es").items():
        for chunk in re.split(r"{\w*}", m):
            chunk = chunk.strip(" ,.;:()")
            if len(chunk.split()) >= 3 and chunk not in t and chunk in text:
                left.add(chunk)
    return sorted(left)


@pytest.mark.parametrize("name", ONE_CLAIM)
@pytest.mark.parametrize("kind", KINDS)
def test_each_narration_speaks_spanish_for_every_kind_of_claim(name, kind):
    with i18n.using("es"):
        v = ONE_CLAIM[name](KINDS[kind])
    assert v.text and not _english_left(v.text), (name, kind, v.text, _english_left(v.text))
    if name not in ("toy", "words"):   # the toy speaks in test errors, claim_words in points only
        assert re.search(rf"\d{NBSP}%", v.text), v.text
    if kind != "single" and name not in ("toy", "layers"):   # toy and layers: test errors, shares of the weights
        assert re.search(r"[+-]\d+ puntos", v.text), v.text
    if name == "words":
        assert {"helped": "va claramente por delante", "hurt": "va claramente por detrás", "tie": "empate",
                "single": "una sola semilla"}[kind] in v.text, v.text
    if kind == "tie":   # called a tie (the layers: the seeds cannot tell the stages apart)
        assert "empate" in v.text.lower() or name == "layers" and "no permiten distinguir" in v.text, v.text
    assert not re.search(r"\d\.\d", v.text.replace("r=4", "")), v.text   # no English decimal point
    assert i18n.language() == "en"


@pytest.mark.parametrize("name", OTHERS)
def test_the_narrations_of_several_claims_speak_spanish(name):
    with i18n.using("es"):
        text = OTHERS[name]().text
    assert text and not _english_left(text), (name, text, _english_left(text))


def test_a_step_says_its_run_in_spanish_word_for_word():
    with i18n.using("es"):
        assert ONE_CLAIM["idea"](KINDS["helped"]).text == (
            "En imágenes nuevas, tras entrenar con 3 por clase: preentrenado 88\xa0%, desde cero 33\xa0%. Preentrenado "
            "va claramente por delante (+55 puntos; intervalo del 95 %: de +38 a +69).")
        assert ONE_CLAIM["idea"](KINDS["tie"]).text.startswith(
            "En imágenes nuevas, tras entrenar con 3 por clase: preentrenado 64\xa0%, desde cero 62\xa0%. Empate: las "
            "semillas discrepan demasiado para distinguirlos (+1 puntos; intervalo del 95 %: de -5 a +8). Las "
            "diapositivas dicen que un punto de partida preentrenado gana con pocos datos")
        # condition names as the pages show them (names.condition), a recorded label in the catalogue's words
        assert "fine-tuning de las últimas 2 capas 33\xa0%" in ONE_CLAIM["lm"](KINDS["helped"]).text
        assert "(codificador congelado + cabeza)" in ONE_CLAIM["audio"](KINDS["helped"]).text
        assert "fine-tuning parcial (las últimas 3 etapas) 92\xa0% supera a extracción de características 85\xa0%" in \
            OTHERS["freeze"]().text
        assert "13 puntos por detrás de congelar todo salvo la cabeza (2 ejemplos por clase)" in OTHERS["gtl"]().text
        assert OTHERS["weights"]().text.endswith("Las claves que faltan conservan sus valores iniciales (desde cero).")


ENGLISH = {
    ("idea", "helped"): "On new images after training on 3 per class: pretrained 88%, from scratch 33%. Pretrained is "
                        "clearly ahead (+55 points; 95% interval +38 to +69).",
    ("idea", "tie"): "On new images after training on 3 per class: pretrained 64%, from scratch 62%. A tie: the seeds "
                     "disagree too much to tell them apart (+1 points; 95% interval -5 to +8). The decks say a "
                     "pretrained start wins with little data; this run does not show it.",
    ("idea", "single"): "On new images after training on 3 per class: pretrained 88%, from scratch 33%. One seed says "
                        "little: run it with more seeds before believing either. The decks say a pretrained start "
                        "wins with little data; this run does not show it.",
    ("toy", "hurt"): "Both fit B's 2 points; away from them the networks from scratch stay ×1.9 closer to B's line "
                     "(test error 0.0123 vs 0.0389, 4 networks each): pretraining clearly hurt. The decks say a "
                     "pretrained start acts as a prior; this run does not show it.",
    ("audio", "helped"): "Telling which word was said from 5 clips per class, the speech encoder pretrained on "
                         "LibriSpeech and VoxCeleb (frozen encoder + head): pretrained 88%, the same network from "
                         "scratch 33%. The pretrained encoder is clearly ahead (+55 points; 95% interval +38 to +69). "
                         "Best of all: last LSTM layer fine-tuned 64%, frozen encoder + head 62%; a tie: the seeds "
                         "disagree too much to tell them apart (+1 points; 95% interval -5 to +8).",
    ("lm", "hurt"): "With 2 labelled sentences per topic: frozen features + head 57%, last 2 layers trained 61%. "
                    "Frozen features + head is clearly behind (-29 points; 95% interval -41 to -16). Writing the "
                    "examples into the prompt, with no training at all, ties fine-tuning here: that is today's lesson "
                    "too.",
    ("peft", "helped"): "LoRA r=4 88%, full fine-tuning 33%: LoRA r=4 is clearly ahead (+55 points; 95% interval +38 "
                        "to +69), training 1.2% of the weights. LoRA r=4 forgets far less: agreement with the original "
                        "model 0.94 vs 0.03 (95% interval of the gap +0.85 to +0.96), 1 = forgot nothing.",
    ("layers", "tie"): "Under full fine-tuning the late stages moved 63.7% of their size, the early ones 62.5% (mean "
                       "of 4 seeds): the seeds cannot tell the two apart. The decks say the early, general stages "
                       "change least; this run does not show it.",
    "freeze": "With 2 images per class, feature extraction 70% beats partial fine-tuning (the last 3 stages) 60% (+10 "
              "points; 95% interval +5 to +15): freezing protects the pretrained features; with 20 images per class, "
              "partial fine-tuning (the last 3 stages) 92% beats feature extraction 85% (-7 points; 95% interval -12 "
              "to -2): letting the last stages adapt pays.",
    "gtl": "Related source: guided fine-tuning beats the stronger of freezing the body and plain fine-tuning at 2 "
           "shots, and trails at 10 shots: 5 points behind plain fine-tuning. Unrelated source: guided fine-tuning "
           "trails at 2 and 5 shots: 13 points behind freezing all but the head (2 shots); 28 points behind plain "
           "fine-tuning (5 shots). From a source that does not fit, the guide keeps the wrong weights: guidance hurts.",
    "domains": "Few images (2 per class): feature extraction wins, 91% vs partial 63% (95% interval +22 to +35 "
               "points); the decks say feature extraction: as measured. More images (10 per class): a tie, partial "
               "86%, full 83% (scratch behind); the decks say partial or full: the data can't tell. A tie is an answer "
               "too: at this size the strategy moves accuracy less than the luck of which images were drawn, so any "
               "of the tied ones will do.",
    "negative": "Negative transfer, as the decks warn: the frozen features of shapes_cnn lose to the same network from "
                "scratch, at 2 images per class, scratch 57% vs feature extraction 29% (by the claims rule over 4 "
                "seeds). The source task is too far from the target.",
    "weights": "Strict loading into shapes_cnn refused the file: every tensor in it matches the model, but 4 of the "
               "model's keys are not in it (fc.weight, fc.bias, fc2.weight and 1 more), and strict asks for all of "
               "them. Nothing was loaded; with strict off the matching tensors load. Then, strict off: loaded 24 "
               "matching tensors into shapes_cnn; the rest did not load (2 missing, 0 unexpected, 0 "
               "shape-mismatched). Missing keys keep their scratch values.",
}


@pytest.mark.parametrize("key", ENGLISH, ids=str)
def test_english_is_word_for_word_what_it_was(key):
    said = ONE_CLAIM[key[0]](KINDS[key[1]]) if isinstance(key, tuple) else OTHERS[key]()
    assert said.text == ENGLISH[key]


def test_the_weights_step_says_what_the_state_page_says_in_english():
    step = next(s for s in lecture.STEPS if s.key == "weights")
    out = step.compute(step.experiment())
    assert step.verdict(out).text == out["verdict"]   # the state page's own messages, word for word
    with i18n.using("es"):
        said = step.verdict(out).text
    assert said.startswith("La carga estricta en shapes_cnn rechazó el archivo") and not _english_left(said)


class _Run:
    id, created, seconds, device = 7, 1717243200.0, 12.345, "cpu"


class _Chart:
    def to_html(self, **kw):
        return "<div>chart</div>"


@pytest.fixture
def one_step_shown(monkeypatch):
    """Step 1 shows a constructed run (its chart a stub), the other steps an empty history."""
    import dataclasses

    shown = lecture.shown
    monkeypatch.setattr(lecture, "shown", lambda step, db: ({"claim": KINDS["tie"], "config": {"shots": 3}}, _Run())
                        if step.key == "idea" else shown(step, db))
    monkeypatch.setattr(lecture_cli, "STEPS", (dataclasses.replace(lecture.STEPS[0], chart=lambda out: _Chart()),
                                               *lecture.STEPS[1:]))


def test_the_handout_in_spanish(lecture_env, tmp_path, one_step_shown):
    text = lecture_cli.handout(store.Store(tmp_path), lang="es")
    assert i18n.language() == "en"   # the handout's language ends with it
    assert '<html lang="es">' in text and "<title>Transfer Lab: material de la clase</title>" in text
    assert "<h1>Aprendizaje por transferencia, paso a paso</h1>" in text and "percentiles 10 a 90" in text
    assert "<h2>2. Sobreajuste con pocos datos</h2>" in text and "Sin preparar: todavía no hay" in text
    assert "<b>Preparar la clase</b>" in text
    assert "Empate: las semillas discrepan demasiado" in text and f"preentrenado 64{NBSP}%" in text
    assert re.search(r"Ejecución #7 del historial, \d\d-\d\d-\d{4} \d\d:\d\d, 12,3 s en cpu\.", text)
    assert re.search(r"Generado el \d\d-\d\d-\d{4} \d\d:\d\d\.", text)
    words = re.sub(r"<script.*?</script>|<[^>]+>", " ", text, flags=re.S)
    assert not _english_left(words), _english_left(words)
    for english in ("Not prepared", "Run #", "Made ", "the lecture's handout", "step by step", "90th percentile"):
        assert english not in text


def test_the_handout_in_english_is_as_it_was(lecture_env, tmp_path, one_step_shown):
    text = lecture_cli.handout(store.Store(tmp_path), lang="en")
    assert '<html lang="en">' in text and "<title>Transfer Lab: the lecture's handout</title>" in text
    assert ("<h1>Transfer learning, step by step</h1>\n<p>Transfer Lab's lecture: every chart is a real run, over "
            "several seeds (line: mean, band: 10th-90th percentile).\nMade ") in text
    assert ("<p class='note'>Not prepared: no run of this step's settings in the history yet (press <b>Prepare the "
            "lecture</b>, or run <code>python -m tl_core lecture</code>).</p>") in text
    assert re.search(r"<p class='source'>Run #7 of the history, \d{4}-\d\d-\d\d \d\d:\d\d, 12\.3 s on cpu\.</p>", text)
    assert "<h2>2. Overfitting with little data</h2>" in text and "A tie: the seeds disagree" in text
    assert '<html lang="en">' in lecture_cli.handout(store.Store(tmp_path))   # default: the context's language
    with i18n.using("es"):
        assert '<html lang="es">' in lecture_cli.handout(store.Store(tmp_path))


def test_the_cli_writes_the_handout_in_the_language_asked_for(lecture_env, tmp_path, monkeypatch):
    monkeypatch.setattr(lecture, "prepare", lambda *a, **k: [])   # nothing to train: the handout of what is there
    monkeypatch.setattr(lecture, "workers_for", lambda device: 1)
    out = tmp_path / "handout.html"
    try:
        assert cli.main(["lecture", "--data-dir", str(tmp_path), "--handout", str(out), "--lang", "es", "--json"]) == 0
    finally:
        i18n.set_language(None)
    text = out.read_text(encoding="utf-8")
    assert '<html lang="es">' in text and "Sin preparar" in text and "Not prepared" not in text


def test_a_steps_status_line_speaks_the_readers_language(monkeypatch):
    from tl_core import causal_lm

    monkeypatch.setattr(causal_lm, "available", lambda: "pip install llama")
    step = next(s for s in lecture.STEPS if s.key == "lm")
    assert lecture.status(step) == "The language model is not installed here: pip install llama."
    with i18n.using("es"):
        assert lecture.status(step) == "El modelo de lenguaje no está instalado aquí: pip install llama."
