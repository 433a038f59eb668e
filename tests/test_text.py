"""Transfer for text: the encoder offline and against its reference, the tokenizer view and bad input,
feature extraction vs scratch over seeds, the frozen-feature cache, neighbours after fine-tuning, the CLI
twin and the page. The encoder and the sentence embeddings are cached for the whole test session."""
import json
import socket

import pytest
import torch
from fixtures import TINY_TEXT, open_page

from tl_core import backbones, cli, text
from tl_core.experiments import text as exp

TINY = exp.TextConfig(**TINY_TEXT)


@pytest.fixture(scope="session")
def quick():
    """The lecture's small config (feature extraction vs scratch at 2 shots, 3 seeds), trained once."""
    torch.set_num_threads(1)
    return exp.run(exp.QUICK, device="cpu")


@pytest.fixture(scope="session")
def tuned():
    """A fine-tuning run (last 2 layers) small enough for a test."""
    return exp.run(TINY, device="cpu")


def _cos(a, b):
    return float(a @ b)


def test_encoder_loads_offline_and_paraphrases_embed_closer_than_unrelated_sentences(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the text encoder tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    text._pretrained_state.cache_clear()
    text.tokenizer.cache_clear()
    model = backbones.create("minilm_l6", "pretrained", num_classes=3)
    v = text.embed(model, ["A man is playing a guitar.", "Someone plays the guitar.",
                           "The stock market fell sharply today.", "Shares lost a lot of value this morning."])
    assert v.shape == (4, text.HIDDEN)
    for a, b, far in ((0, 1, 2), (2, 3, 0), (1, 0, 3)):
        assert _cos(v[a], v[b]) > _cos(v[a], v[far]) + 0.3, (a, b, far)


def test_staged_encoder_matches_the_transformers_reference_with_padding():
    """Stages (ids → embeddings → 6 layers → mean pool), batch padding cut per batch, against the model as
    transformers runs it with sentence-transformers' mean pooling."""
    from transformers import AutoModel

    sentences = ["Short.", "A much longer sentence about the laws of thermodynamics and heat.", "Money talks."]
    ref = AutoModel.from_pretrained(str(text.model_dir()), local_files_only=True).eval()
    x = text.encode(sentences, 64)
    with torch.no_grad():
        hidden = ref(input_ids=x[:, 0], attention_mask=x[:, 1]).last_hidden_state
    mask = x[:, 1].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(text.embed(backbones.pretrained_text_model(), sentences, 64), expected, atol=1e-5)
    assert list(backbones.stage_names("minilm_l6")) == ["embeddings", *[f"layer {i}" for i in range(1, 6)],
                                                        "layer 6 + mean pool", "head"]


def test_tokenizer_view_pieces_truncation_and_bad_input():
    tok = text.tokens("Tokenizers split unbelievably long words")
    assert tok.pieces[0] == "[CLS]" and tok.pieces[-1] == "[SEP]" and any(p.startswith("##") for p in tok.pieces)
    assert len(tok.ids) == len(tok.pieces) and not tok.truncated
    long = text.tokens("word " * 1000)
    assert long.truncated and len(long.ids) == text.MAX_TOKENS and long.total > text.MAX_TOKENS
    with pytest.raises(ValueError, match="empty"):
        text.tokens("   \n ")
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0xe9 at position 3\)"):
        text.decode_upload("café".encode("latin-1") + b"\xff", "notes.txt")
    assert text.decode_upload("naïve café".encode("utf-8")) == "naïve café"


@pytest.mark.slow   # the lecture's config: fine-tuning MiniLM over 3 seeds
def test_feature_extraction_beats_scratch_at_two_shots_in_every_seed(quick):
    feature, scratch = quick.by_condition("feature"), quick.by_condition("scratch")
    assert len(feature) == len(scratch) == exp.QUICK.seeds
    assert all(f.val_acc > s.val_acc for f, s in zip(feature, scratch))
    assert quick.summary("feature")["val_acc"] - quick.summary("scratch")["val_acc"] > 0.15
    assert quick.verdict().kind == "helped"
    chance = 1 / len(quick.classes)
    assert quick.summary("feature")["val_acc"] > 2 * chance


def test_cached_and_uncached_feature_extraction_give_the_same_curves():
    cfg = exp.TextConfig(conditions=("feature",), shots=2, seeds=1, epochs=3, val_per_class=4)
    cached = exp.run(cfg, device="cpu")
    direct = exp.run(exp.TextConfig(**{**cfg.__dict__, "cache": False}), device="cpu")
    a, b = cached.runs[0].history, direct.runs[0].history
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), abs=1e-4), key


@pytest.mark.slow
def test_fine_tuning_moves_the_neighbours_and_keeps_frozen_layers(tuned):
    assert tuned.tuned is not None and tuned.tuned[0] == "last_k"
    model = tuned.tuned_model()
    before = backbones.pretrained_text_model()
    frozen = exp.TextConfig().frozen("last_k")
    for i, (a, b) in enumerate(zip(before.stages[:-1], model.stages[:-1])):
        same = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        assert same == (i < frozen), model.names[i]
    near = text.nearest(model, "How much money is in the bank?", tuned.train_texts, tuned.train_labels)
    assert len(near) == 3 and [n["similarity"] for n in near] == sorted((n["similarity"] for n in near), reverse=True)
    assert {n["text"] for n in near} <= set(tuned.train_texts)
    old = text.nearest(before, "How much money is in the bank?", tuned.train_texts, tuned.train_labels)
    assert [n["similarity"] for n in near] != pytest.approx([n["similarity"] for n in old], abs=1e-6)


@pytest.mark.slow
def test_cli_prints_the_issue_keys(capsys):
    code = cli.main(["text", "--conditions", "feature,scratch", "--shots", "1", "--seeds", "2", "--epochs", "2",
                     "--val-per-class", "3", "--device", "cpu", "--json", "--no-record"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert list(out["conditions"]) == ["feature", "scratch"]
    for c in out["conditions"].values():
        assert 0 <= c["val_acc"] <= 1 and len(c["val_acc_seeds"]) == 2
        lengths = {k: len(v) for k, v in c["history"].items()}
        assert lengths == {"train_loss": 2, "val_loss": 2, "train_acc": 2, "val_acc": 2}
    assert out["val_acc"] == out["conditions"]["feature"]["val_acc"]
    assert out["config"]["shots"] == 1 and out["config"]["conditions"] == ["feature", "scratch"]
    assert out["seconds"] > 0 and out["device"].startswith("cpu")


@pytest.mark.parametrize("args, reason", [
    (["--shots", "500"], "topic 'money' has 45 sentences"),
    (["--classes", "ai"], "at least 2 topics"),
    (["--conditions", "feature,bert"], "conditions must be one of"),
    (["--max-length", "1000"], "max length must be between 4 and 256"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, args, reason):
    assert cli.main(["text", *args, "--json", "--no-record"]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err and "Traceback" not in err


@pytest.mark.slow
def test_page_tokenizer_view_training_and_neighbours():
    at = open_page("app_pages/text.py", {"text_conditions": ["feature", "last_k"], "text_shots": "2",
                                         "text_seeds": "2", "text_epochs": "2"})
    assert not at.exception
    pieces = at.dataframe[0].value
    assert list(pieces["word piece"])[:3] == ["[CLS]", "transfer", "learning"]
    at.button(key="text_train").click().run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["feature extraction (frozen encoder)", "fine-tune last 2 layers"]
    assert any("Add 'scratch'" in i.value for i in at.info)
    assert len(at.dataframe) == 3   # tokens, neighbours before, neighbours after fine-tuning
    at.text_area(key="text_sentence").set_value("  ").run()
    assert any("empty" in w.value for w in at.warning) and not at.exception
    at.text_area(key="text_sentence").set_value("word " * 400).run()
    assert any("cut to the first 256" in w.value for w in at.warning)
