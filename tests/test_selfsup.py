"""Self-supervised pretraining: masking, the masked loss, the deck's encoder-only flow, the downstream
comparison, the CLI twin and the page. One small pretraining is shared (tl_core caches it by config)."""
import contextlib
import io
import json
from dataclasses import replace

import pytest
import torch
from fixtures import SMALL_SSL, argv
from torch import nn

from tl_core import backbones, cli, contract, masked_pretraining, store
from tl_core.experiments import selfsup

SMALL = selfsup.SSLConfig(**SMALL_SSL)   # small enough for a busy 2-core CPU, big enough that the effect is real


@pytest.fixture(scope="module")
def small():
    return selfsup.run(SMALL, device="cpu")


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_mask_hides_exactly_the_requested_fraction_of_genes(ratio):
    mask = masked_pretraining.random_mask(64, torch.arange(500), ratio, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 500)
    assert (mask.sum(1) == round(ratio * 500)).all()          # every sample, not only on average
    assert not (mask[0] == mask[1]).all()                     # a different draw per sample


def test_image_mask_hides_whole_patches_and_exactly_that_fraction():
    ds = selfsup.load("digits")
    mask = masked_pretraining.random_mask(32, ds.units, 0.25, torch.Generator().manual_seed(1))
    assert ds.image_side == 16 and int(ds.units.max()) + 1 == 16  # 16 patches of 4 × 4 pixels
    assert (mask.float().mean(1) == 0.25).all()
    per_patch = torch.zeros(32, 16).index_add_(1, ds.units, mask.float())
    assert set(per_patch.unique().tolist()) <= {0.0, 16.0}       # a patch is hidden whole or not at all
    assert ((per_patch == 16).sum(1) == 4).all()


def test_masked_loss_scores_only_the_hidden_features():
    target = torch.randn(5, 20)
    mask = masked_pretraining.random_mask(5, torch.arange(20), 0.5, torch.Generator().manual_seed(0)).float()
    recon = target.clone()
    recon[mask.bool()] += 1.0                                   # error 1 on every hidden feature
    out = torch.stack([recon, mask], 1)
    assert masked_pretraining.masked_mse(out, target).item() == pytest.approx(1.0)
    recon[~mask.bool()] += 100.0                                # visible features do not count
    assert masked_pretraining.masked_mse(torch.stack([recon, mask], 1), target).item() == pytest.approx(1.0)


@pytest.mark.slow
def test_reconstruction_loss_falls_below_predicting_the_mean(small):
    rl = small.pretrained.recon_loss()
    assert len(rl["train"]) == SMALL.pretrain_epochs and small.pretrained.history.status == "finished"
    assert rl["last"] < rl["first"] - 0.1
    assert rl["val_last"] < rl["val_first"] and rl["val_last"] < 0.85  # 1.0 = each gene's mean


@pytest.mark.slow
def test_ssl_encoder_beats_scratch_with_few_labels_on_every_seed(small):
    scratch, frozen = small.accs("scratch"), small.accs("ssl_frozen")
    assert len(scratch) == len(frozen) == 3
    assert all(f > s for f, s in zip(frozen, scratch)), (frozen, scratch)
    assert sum(frozen) / 3 - sum(scratch) / 3 > 0.1
    kind, text = selfsup.verdict(small)                       # a Verdict still unpacks as (kind, text)
    assert kind == "helped" and small.verdict() == (kind, text) and isinstance(small.verdict(), contract.Verdict)
    assert "Self-supervised pretraining helped" in text


@pytest.mark.slow
def test_result_names_its_metrics_curves_and_headline(small):
    assert small.kind == "ssl" and small.headline == "ssl_finetuned.val_acc"
    metrics = small.metrics()
    for mode in selfsup.MODES:
        assert metrics[f"{mode}.val_acc"] == pytest.approx(sum(small.accs(mode)) / 3)
        assert metrics[f"{mode}.val_acc_std"] >= 0
        assert metrics[f"by_labels.2.{mode}.val_acc"] == metrics[f"{mode}.val_acc"]
    rl = small.pretrained.recon_loss()
    assert metrics["recon_loss.last"] == rl["last"] and metrics["recon_loss.first"] == rl["first"]
    assert small.curves() == {"recon_loss.train": rl["train"], "recon_loss.val": rl["val"]}
    rec = small.record()
    assert rec["headline"] in rec["metrics"] and rec["status"] == "finished" and rec["curves"]["recon_loss.val"]
    assert rec["json"]["config"] == contract.record(SMALL) and rec["json"]["config"]["label_counts"] == []


def test_encoder_only_save_and_load_into_downstream_model_gives_identical_outputs():
    torch.manual_seed(0)
    auto = masked_pretraining.Autoencoder(masked_pretraining.Encoder(40, 16, 8), masked_pretraining.Decoder(40, 16, 8))
    buffer = io.BytesIO()
    torch.save(auto.encoder.state_dict(), buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert set(saved) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}  # no decoder keys
    model = masked_pretraining.DownstreamModel(masked_pretraining.Encoder(40, 16, 8), nn.Linear(8, 3))
    x = torch.randn(10, 40)
    assert not torch.equal(model.encoder(x), auto.encoder(x))
    model.encoder.load_state_dict(saved)
    assert torch.equal(model.encoder(x), auto.encoder(x))
    assert model(x).shape == (10, 3)
    loaded = masked_pretraining.load_encoder(masked_pretraining.encoder_bytes(auto.encoder), 40, 16, 8)
    assert torch.equal(loaded(x), auto.encoder(x))


@pytest.mark.slow
def test_frozen_downstream_keeps_the_pretrained_encoder_bit_identical(small):
    ds = selfsup.load("expression")
    model, hist, acc = selfsup.train_downstream(ds, SMALL, "ssl_frozen", small.pretrained.encoder, 2, 0,
                                                torch.device("cpu"))
    reference = masked_pretraining.load_encoder(small.pretrained.encoder, ds.features, SMALL.hidden, SMALL.latent)
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
        masked_pretraining.load_encoder(buffer.getvalue(), 40, 16, 8)
    assert "pickled code ran" not in capsys.readouterr().out
    raw = masked_pretraining.encoder_bytes(masked_pretraining.Encoder(40, 16, 8))
    with pytest.raises(ValueError, match=r"do not fit Encoder\(50, 16, 8\)"):
        masked_pretraining.load_encoder(raw, 50, 16, 8)


@pytest.mark.slow
def test_changing_only_the_label_count_reuses_the_pretraining(small):
    again = selfsup.run(selfsup.SSLConfig(**{**SMALL.__dict__, "labels": 5, "seeds": 1}), device="cpu")
    assert again.pretrained is small.pretrained
    assert len(again.records) == 3 and again.label_counts == [5]


def test_settings_are_declared_and_the_label_counts_are_part_of_the_config():
    assert {s.name for s in contract.settings(selfsup.SSLConfig)} >= {"data", "mask_ratio", "label_counts"}
    assert contract.spec(selfsup.SSLConfig, "label_counts").flag == "--sweep"
    for bad, words in [({"mask_ratio": 1.5}, "mask ratio must be between"), ({"labels": 0}, "labels must be"),
                       ({"label_counts": (1, 900)}, "label counts must be"), ({"lr": 0.0}, "lr must be"),
                       ({"data": "rna"}, "data must be one of"), ({"latent": 1}, "latent must be")]:
        with pytest.raises(ValueError, match=words):
            selfsup.run(selfsup.SSLConfig(**bad), device="cpu")
    # '20,1' on the CLI and [1, 20] on the page record the same config
    assert contract.record(selfsup.SSLConfig(label_counts=(20, 1, 20))) == contract.record(
        selfsup.SSLConfig(label_counts=(1, 20)))
    assert selfsup.SSLConfig(labels=5, label_counts=(20, 1)).counts() == [1, 5, 20]
    with pytest.raises(ValueError, match="more than class"):              # before pretraining, not after
        selfsup.run(selfsup.SSLConfig(data="digits", labels=200, pretrain_epochs=500), device="cpu")


@pytest.mark.slow
def test_stop_ends_pretraining_and_downstream_training_within_an_epoch(small):
    cfg = replace(SMALL, pretrain_epochs=3, seeds=1)                        # not cached: a new pretraining
    stopped = selfsup.run(cfg, should_stop=lambda: True, device="cpu")
    assert stopped.status == "stopped" and stopped.records == [] and stopped.verdict().kind == "stopped"
    assert cfg.pretrain_key() not in selfsup._PRETRAINED                  # a stopped pretraining is not reused
    calls = []

    def stop_later():                                                      # pretraining is cached: downstream only
        calls.append(1)
        return len(calls) > 5

    result = selfsup.run(SMALL, should_stop=stop_later, device="cpu")
    assert result.pretrained is small.pretrained
    assert result.status == "stopped" and len(result.records) == 1 and result.records[0]["status"] == "stopped"
    assert result.verdict().kind == "stopped" and "stopped" in result.message


def test_the_registry_builds_the_pages_encoder_and_downstream_model():
    for data, features, classes in (("expression", 500, 8), ("digits", 256, 10)):
        enc = masked_pretraining.architecture(data, downstream=False)
        assert isinstance(enc, masked_pretraining.Encoder) and enc(torch.zeros(2, features)).shape == (2, SMALL.latent)
        down = masked_pretraining.architecture(data, downstream=True)
        assert isinstance(down, masked_pretraining.DownstreamModel)
        assert down(torch.zeros(2, features)).shape == (2, classes)
        down.encoder.load_state_dict(torch.load(io.BytesIO(masked_pretraining.encoder_bytes(enc)), weights_only=True))
        for part, built in (("encoder", enc), ("downstream", down)):
            entry = backbones.REGISTRY[f"ssl_{part}_{data}"]
            assert type(entry.build(False)) is type(built)
    with pytest.raises(ValueError, match="data must be one of"):
        masked_pretraining.architecture("rna", False)


def test_digits_are_pretrained_by_patches_and_compared():
    cfg = selfsup.SSLConfig(data="digits", labels=2, mask_ratio=0.25, seeds=1, pretrain_epochs=2, epochs=10)
    seen = []
    result = selfsup.run(replace(cfg, label_counts=(1,)), progress=lambda f, m: seen.append((f, m)), device="cpu")
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == pytest.approx(1.0)
    assert all(f <= 0.5 for f, m in seen if m.startswith("pretraining"))
    done = [m for _, m in seen if m.endswith(": done")]   # the bar moves per epoch: 10 reports, then "done"
    assert len(done) >= 3 and len(seen) == cfg.pretrain_epochs + len(done) * (cfg.epochs + 1)
    ex = result.pretrained.examples
    assert ex["raw"].shape == (6, 256) and ex["labels"] == ["0", "1", "2", "3", "4", "5"]
    assert (ex["mask"].float().mean(1) == 0.25).all()
    out = result.to_json()
    assert out["label_counts"] == [1, 2] and set(out["by_labels"]) == {"1", "2"}
    assert all(0 <= out[m]["val_acc"] <= 1 for m in selfsup.MODES)


@pytest.mark.slow
def test_cli_prints_one_json_object_with_the_comparison(small, capsys, tmp_path):
    enc = tmp_path / "encoder.pt"
    code = cli.main([*argv("ssl", SMALL_SSL), "--seed", "0", "--save-encoder", str(enc), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for mode in ("scratch", "ssl_frozen", "ssl_finetuned"):
        assert out[mode]["val_acc"] == pytest.approx(sum(small.accs(mode)) / 3)
        assert len(out[mode]["val_acc_seeds"]) == 3
    assert out["recon_loss"]["first"] > out["recon_loss"]["last"] and len(out["recon_loss"]["train"]) == 8
    assert out["seconds"] > 0 and out["config"]["labels"] == 2 and out["config"]["mask_ratio"] == 0.5
    assert out["status"] == "finished" and out["device"]
    assert out["encoder_file"] == str(enc) and "model_path" not in out
    encoder = masked_pretraining.Encoder(500, SMALL.hidden, SMALL.latent)
    encoder.load_state_dict(torch.load(enc, weights_only=True))   # the saved file is the encoder alone
    run = store.Store().runs(kind="ssl")[0]                          # recorded as the page records it
    assert run.config == contract.record(SMALL) and run.status == "finished"
    assert run.headline == "ssl_finetuned.val_acc" and run.metrics["ssl_frozen.val_acc"] == out["ssl_frozen"]["val_acc"]
    assert run.model_path and run.curves["recon_loss.train"] == out["recon_loss"]["train"]


@pytest.mark.slow
def test_cli_sweep_and_the_human_summary(small, capsys):
    code = cli.main([*argv("ssl", {**SMALL_SSL, "seeds": 1}), "--sweep", "5,1", "--no-record"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("ssl on expression, mask ratio 0.5") and "masked reconstruction MSE" in out[0]
    assert [line.split(":")[0].strip() for line in out[1:4]] == ["1 labels/class", "2 labels/class", "5 labels/class"]
    assert "scratch" in out[1] and "ssl_frozen" in out[1] and "ssl_finetuned" in out[1]
    assert "SSL" in out[-1]                                          # the verdict


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


@pytest.mark.slow
def test_page_pretrains_compares_and_reuses_the_pretraining(app, small, fresh_server):
    app.switch_page("app_pages/selfsup.py").run()
    assert not app.exception and "Pretrain and compare" in app.info[0].value
    assert "load_state_dict" in app.code[0].value                       # the deck's flow, before any run
    app.slider(key="ssl_pretrain_epochs").set_value(SMALL.pretrain_epochs)
    app.slider(key="ssl_epochs").set_value(SMALL.epochs)
    app.multiselect(key="ssl_label_counts").set_value([1, 2])
    app.run()
    app.button(key="ssl_run").click().run()
    assert not app.exception
    assert "Self-supervised pretraining helped" in app.success[0].value
    assert len(app.get("plotly_chart")) == 3                             # examples, loss curve, accuracy vs labels
    assert app.metric[1].value == f"{sum(small.accs('ssl_frozen')) / 3:.1%}"
    assert app.get("download_button")
    (key, first), = app.session_state["ssl_results"].items()
    assert key.label_counts == (1, 2) and first.label_counts == [1, 2]
    run = store.Store().runs(kind="ssl")[0]                          # the page records the config the CLI records
    assert run.config == contract.record(first.config) and run.config["label_counts"] == [1]   # 2 = labels, always
    assert run.status == "finished" and run.headline == "ssl_finetuned.val_acc"
    app.select_slider(key="ssl_labels").set_value(5).run()               # only the label count changes
    app.button(key="ssl_run").click().run()
    assert not app.exception and len(app.session_state["ssl_results"]) == 2
    assert all(r.pretrained is small.pretrained for r in app.session_state["ssl_results"].values())
