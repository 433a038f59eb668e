"""Self-supervised pretraining: masking, the masked loss, the deck's encoder-only flow, the downstream
comparison, the CLI twin and the page. One small pretraining is shared (tl_core caches it by config)."""
import contextlib
import io
import json

import pytest
import torch
from torch import nn

from tl_core import cli, ssl

# small enough for a busy 2-core CPU, big enough that the effect is real
SMALL = ssl.SSLConfig(data="expression", labels=2, mask_ratio=0.5, seeds=3, pretrain_epochs=8, epochs=60)


@pytest.fixture(scope="module")
def small():
    return ssl.run(SMALL, device="cpu")


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_mask_hides_exactly_the_requested_fraction_of_genes(ratio):
    mask = ssl.random_mask(64, torch.arange(500), ratio, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 500)
    assert (mask.sum(1) == round(ratio * 500)).all()          # every sample, not only on average
    assert not (mask[0] == mask[1]).all()                     # a different draw per sample


def test_image_mask_hides_whole_patches_and_exactly_that_fraction():
    ds = ssl.load("digits")
    mask = ssl.random_mask(32, ds.units, 0.25, torch.Generator().manual_seed(1))
    assert ds.image_side == 16 and int(ds.units.max()) + 1 == 16  # 16 patches of 4 × 4 pixels
    assert (mask.float().mean(1) == 0.25).all()
    per_patch = torch.zeros(32, 16).index_add_(1, ds.units, mask.float())
    assert set(per_patch.unique().tolist()) <= {0.0, 16.0}       # a patch is hidden whole or not at all
    assert ((per_patch == 16).sum(1) == 4).all()


def test_masked_loss_scores_only_the_hidden_features():
    target = torch.randn(5, 20)
    mask = ssl.random_mask(5, torch.arange(20), 0.5, torch.Generator().manual_seed(0)).float()
    recon = target.clone()
    recon[mask.bool()] += 1.0                                   # error 1 on every hidden feature
    out = torch.stack([recon, mask], 1)
    assert ssl.masked_mse(out, target).item() == pytest.approx(1.0)
    recon[~mask.bool()] += 100.0                                # visible features do not count
    assert ssl.masked_mse(torch.stack([recon, mask], 1), target).item() == pytest.approx(1.0)


def test_reconstruction_loss_falls_below_predicting_the_mean(small):
    rl = small.pretrained.recon_loss()
    assert len(rl["train"]) == SMALL.pretrain_epochs and small.pretrained.history.status == "finished"
    assert rl["last"] < rl["first"] - 0.1
    assert rl["val_last"] < rl["val_first"] and rl["val_last"] < 0.85  # 1.0 = each gene's mean


def test_ssl_encoder_beats_scratch_with_few_labels_on_every_seed(small):
    scratch, frozen = small.accs("scratch"), small.accs("ssl_frozen")
    assert len(scratch) == len(frozen) == 3
    assert all(f > s for f, s in zip(frozen, scratch)), (frozen, scratch)
    assert sum(frozen) / 3 - sum(scratch) / 3 > 0.1
    assert ssl.verdict(small)[0] == "helped"


def test_encoder_only_save_and_load_into_downstream_model_gives_identical_outputs():
    torch.manual_seed(0)
    auto = ssl.Autoencoder(ssl.Encoder(40, 16, 8), ssl.Decoder(40, 16, 8))
    buffer = io.BytesIO()
    torch.save(auto.encoder.state_dict(), buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert set(saved) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}  # no decoder keys
    model = ssl.DownstreamModel(ssl.Encoder(40, 16, 8), nn.Linear(8, 3))
    x = torch.randn(10, 40)
    assert not torch.equal(model.encoder(x), auto.encoder(x))
    model.encoder.load_state_dict(saved)
    assert torch.equal(model.encoder(x), auto.encoder(x))
    assert model(x).shape == (10, 3)
    assert torch.equal(ssl.load_encoder(ssl.encoder_bytes(auto.encoder), 40, 16, 8)(x), auto.encoder(x))


def test_frozen_downstream_keeps_the_pretrained_encoder_bit_identical(small):
    ds = ssl.load("expression")
    model, hist, acc = ssl.train_downstream(ds, SMALL, "ssl_frozen", small.pretrained.encoder, 2, 0, torch.device("cpu"))
    reference = ssl.load_encoder(small.pretrained.encoder, ds.features, SMALL.hidden, SMALL.latent)
    with torch.no_grad():
        assert torch.equal(model.encoder(ds.x[:50]), reference(ds.x[:50]))
    assert acc == small.accs("ssl_frozen")[0] and len(hist.train_loss) == SMALL.epochs  # the run it reports


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_pickle_carrying_code_is_refused_and_wrong_weights_are_named(capsys):
    buffer = io.BytesIO()
    torch.save({"net.0.weight": _Evil()}, buffer)
    with pytest.raises(ValueError, match="refused: this file is not a plain state_dict"):
        ssl.load_encoder(buffer.getvalue(), 40, 16, 8)
    assert "pickled code ran" not in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"do not fit Encoder\(50, 16, 8\)"):
        ssl.load_encoder(ssl.encoder_bytes(ssl.Encoder(40, 16, 8)), 50, 16, 8)


def test_changing_only_the_label_count_reuses_the_pretraining(small):
    again = ssl.run(ssl.SSLConfig(**{**SMALL.__dict__, "labels": 5, "seeds": 1}), device="cpu")
    assert again.pretrained is small.pretrained
    assert len(again.records) == 3 and again.label_counts == [5]


def test_digits_are_pretrained_by_patches_and_compared():
    cfg = ssl.SSLConfig(data="digits", labels=2, mask_ratio=0.25, seeds=1, pretrain_epochs=2, epochs=10)
    result = ssl.run(cfg, label_counts=[1], device="cpu")
    ex = result.pretrained.examples
    assert ex["raw"].shape == (6, 256) and ex["labels"] == ["0", "1", "2", "3", "4", "5"]
    assert (ex["mask"].float().mean(1) == 0.25).all()
    out = result.to_json()
    assert out["label_counts"] == [1, 2] and set(out["by_labels"]) == {"1", "2"}
    assert all(0 <= out[m]["val_acc"] <= 1 for m in ssl.MODES)


def test_cli_prints_one_json_object_with_the_comparison(small, capsys, tmp_path):
    enc = tmp_path / "encoder.pt"
    code = cli.main(["ssl", "--data", "expression", "--labels", "2", "--mask-ratio", "0.5", "--seed", "0",
                     "--pretrain-epochs", "8", "--epochs", "60", "--save-encoder", str(enc), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for mode in ("scratch", "ssl_frozen", "ssl_finetuned"):
        assert out[mode]["val_acc"] == pytest.approx(sum(small.accs(mode)) / 3)
        assert len(out[mode]["val_acc_seeds"]) == 3
    assert out["recon_loss"]["first"] > out["recon_loss"]["last"] and len(out["recon_loss"]["train"]) == 8
    assert out["seconds"] > 0 and out["config"]["labels"] == 2 and out["config"]["mask_ratio"] == 0.5
    assert out["status"] == "finished" and out["device"]
    encoder = ssl.Encoder(500, SMALL.hidden, SMALL.latent)
    encoder.load_state_dict(torch.load(enc, weights_only=True))   # the saved file is the encoder alone


@pytest.mark.parametrize("args,words", [
    (["--mask-ratio", "1.5"], "mask ratio must be between"),
    (["--labels", "0"], "labels must be"),
    (["--labels", "20", "--sweep", "1,900"], "label counts must be"),
    (["--data", "rna"], "invalid choice"),
])
def test_cli_bad_options_give_one_line_and_exit_2(args, words, capsys):
    with pytest.raises(SystemExit) if "invalid" in words else contextlib.nullcontext():
        assert cli.main(["ssl", *args, "--json"]) == 2
    err = capsys.readouterr()
    assert words in err.err and len(err.err.strip().splitlines()) == 1 and err.out == ""


def test_page_pretrains_compares_and_reuses_the_pretraining(app, small):
    app.switch_page("app_pages/ssl.py").run()
    assert not app.exception and "Pretrain and compare" in app.info[0].value
    assert "load_state_dict" in app.code[0].value                       # the deck's flow, before any run
    app.slider(key="ssl_pretrain_epochs").set_value(SMALL.pretrain_epochs)
    app.slider(key="ssl_epochs").set_value(SMALL.epochs)
    app.multiselect(key="ssl_curve").set_value([1, 2])
    app.run()
    app.button(key="ssl_run").click().run()
    assert not app.exception
    assert "Self-supervised pretraining helped" in app.success[0].value
    assert len(app.get("plotly_chart")) == 3                             # examples, loss curve, accuracy vs labels
    assert app.metric[1].value == f"{sum(small.accs('ssl_frozen')) / 3:.1%}"
    assert app.get("download_button")
    (key, first), = app.session_state["ssl_results"].items()
    assert key[1] == (1, 2) and first.label_counts == [1, 2]
    app.select_slider(key="ssl_labels").set_value(5).run()               # only the label count changes
    app.button(key="ssl_run").click().run()
    assert not app.exception and len(app.session_state["ssl_results"]) == 2
    assert all(r.pretrained is small.pretrained for r in app.session_state["ssl_results"].values())
