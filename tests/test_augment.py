"""Augmentation (tl_core/augment.py through the one training loop): the batches a model trains on are augmented,
afresh every epoch and reproducibly by seed; validation sees the images as they are; the run records `augment`;
an augmented run shares no frozen features and no scratch run with plain runs; bad values are one line."""
import collections
import json
from dataclasses import replace

import pytest
import torch
from fixtures import TINY_LAB, argv

from tl_core import augment, budget, cli, lab_cost, reuse, train
from tl_core.experiments import finetune
from tl_core.finetuning import SharedFrozenCache, Trainer, first_split, model_for
from tl_core.plots import augment as augment_plots

CPU = torch.device("cpu")
ALL = ("flip", "crop", "color")
# the tiny lab (shapes_cnn, Transfer Lab's own small CNN, on textures at 32 px): 15 training, 9 validation images
TINY = finetune.FinetuneConfig(**TINY_LAB, weights="pretrained", shots=5, val_per_class=3, epochs=3, seeds=1,
                               batch_size=64)


def _watched_run(cfg):
    """Train one pretrained model of cfg; returns (inputs of its first stage per epoch, history, model, split)."""
    cfg = cfg.resolve()
    tr, val = first_split(cfg)
    model = model_for(cfg, "pretrained", len(tr.classes), cfg.seed)
    seen, epochs = [], []
    model.stages[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    checks = []

    def on_epoch(epoch, hist):   # what validation gives on the raw images with the weights of this epoch
        epochs.append([x for x in seen if x.shape == tr.images.shape])
        seen.clear()
        checks.append(train.evaluate(model, (val.images, val.labels), "classification", cfg.batch_size))

    run = Trainer(model, cfg, CPU).fit_and_score("pretrained", cfg.seed, tr, val, {"on_epoch": on_epoch})
    return epochs, run, checks, tr, val


@pytest.mark.slow
@pytest.mark.parametrize("freeze", ["all", "none"])   # frozen prefix run on each augmented batch / whole model trained
def test_training_batches_are_augmented_afresh_every_epoch_and_reproducibly(freeze):
    cfg = replace(TINY, freeze=freeze, augment=ALL)
    epochs, run, _, tr, _ = _watched_run(cfg)
    assert all(len(batches) == 1 for batches in epochs)   # one full batch per epoch (batch size 64 > 15 images)
    first, second = epochs[0][0], epochs[1][0]
    assert first.shape == tr.images.shape and 0 <= first.min() and first.max() <= 1
    assert not torch.equal(first, tr.images) and (first - tr.images).abs().mean() > 0.01   # not the raw images
    assert not torch.equal(first, second)                                                 # a new draw each epoch
    again, run2, _, _, _ = _watched_run(cfg)                                              # the same seed: the same
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epochs, again))
    assert run2.history.val_loss == run.history.val_loss
    other, _, _, _, _ = _watched_run(replace(cfg, seed=1))
    assert not torch.equal(other[0][0], first)                                            # another seed: another
    plain, _, _, _, _ = _watched_run(replace(TINY, freeze=freeze))
    if freeze == "none":   # without augmentation the whole model sees the raw training images every epoch
        assert all(torch.equal(b[0], tr.images) for b in plain)


@pytest.mark.slow
@pytest.mark.parametrize("freeze", ["all", "none"])
def test_validation_sees_the_images_as_they_are(freeze):
    cfg = replace(TINY, freeze=freeze, augment=ALL)
    _, run, checks, tr, val = _watched_run(cfg)
    for (loss, acc), val_loss, val_acc in zip(checks, run.history.val_loss, run.history.val_acc):
        assert val_loss == pytest.approx(loss, abs=1e-5) and val_acc == pytest.approx(acc, abs=1e-6)
    # the same weights evaluated by a plain trainer and an augmenting one: identical predictions and accuracy
    model = model_for(cfg.resolve(), "pretrained", len(tr.classes), 0)
    plain = Trainer(model, replace(TINY, freeze=freeze).resolve(), CPU).predict(val.images)
    augmented = Trainer(model, cfg.resolve(), CPU).predict(val.images)
    assert torch.equal(plain, augmented)


@pytest.mark.slow
def test_an_augmented_run_shares_no_frozen_features_and_no_scratch_run(monkeypatch):
    monkeypatch.setattr(reuse, "FEATURES", collections.OrderedDict())
    monkeypatch.setattr(reuse, "SCRATCH", budget.ByteLRU(2**30, most=12))
    both = replace(TINY, weights="both", epochs=2)
    plain = finetune.run(both, device="cpu")
    assert len(reuse.FEATURES) == 1 and len(reuse.SCRATCH) == 1   # plain runs share both
    shared_calls = []
    real_at = SharedFrozenCache.at
    monkeypatch.setattr(SharedFrozenCache, "at", lambda self, *a, **k: shared_calls.append(1) or real_at(self, *a, **k))
    monkeypatch.setattr(SharedFrozenCache, "has", lambda self, *a, **k: shared_calls.append(1) or False)
    aug = finetune.run(replace(both, augment=("flip",)), device="cpu")
    assert shared_calls == []                                              # the shared cache neither read nor filled
    keys = [reuse.scratch_key(c.resolve(), 0, "") for c in (both, replace(both, augment=("flip",)))]
    assert keys[0] != keys[1]
    assert len(reuse.SCRATCH) == 2                                     # scratch trained anew, kept apart
    assert aug.by_weights("scratch")[0].history.train_loss != plain.by_weights("scratch")[0].history.train_loss
    assert aug.to_json()["config"]["augment"] == ["flip"] and plain.to_json()["config"]["augment"] == []


def test_preview_gives_variants_of_each_image():
    tr, _ = first_split(TINY)
    images = tr.images[:3]
    grid = augment.preview(images, ("color", "crop"), variants=4, seed=0)
    assert grid.shape == (3, 4, 3, 32, 32) and grid.dtype == torch.float32 and 0 <= grid.min() and grid.max() <= 1
    assert not torch.equal(grid[:, 0], images) and not torch.equal(grid[:, 0], grid[:, 1])
    assert torch.equal(grid, augment.preview(images, ("crop", "color"), variants=4, seed=0))   # order-free, seeded
    fig = augment_plots.preview_of(tr, ALL, variants=5)
    assert len(fig.data) == len(tr.classes) * 6          # one row per class: the image as is, then 5 draws
    with pytest.raises(ValueError):
        augment.preview(images, ALL, variants=0)


def test_cost_model_says_feature_extraction_slows_most():
    fe = lab_cost.augment_cost(replace(TINY, augment=ALL), ms_per_image=2.0)
    full = lab_cost.augment_cost(replace(TINY, freeze="none", augment=ALL), ms_per_image=2.0)
    assert fe["ratio"] > full["ratio"] > 1 and (fe["n_train"], fe["n_val"]) == (15, 9)


def test_cli_records_augment_and_refuses_a_bad_value_in_one_line(capsys):
    assert cli.main([*argv("finetune", {**TINY_LAB, "weights": "pretrained", "shots": 2, "val_per_class": 2,
                                        "epochs": 2, "seeds": 1}),
                     "--augment", "color,flip,flip", "--json", "--no-record"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["augment"] == ["flip", "color"] and len(out["history"]["val_acc"]) == 2
    assert cli.main(["finetune", "--augment", "flip,blur", "--epochs", "1", "--json"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert "augment must be one of flip, crop, color, got 'blur'" in lines[0]


@pytest.mark.slow
def test_cached_and_uncached_augmented_runs_give_the_same_curves():
    """At a fixed depth the frozen prefix runs on each augmented batch either way: as a transform before the
    trainable rest (cache on) or inside the whole model (--no-cache); the same draws, the same numbers."""
    cfg = replace(TINY, augment=ALL, freeze="2")
    _, cached, _, _, _ = _watched_run(cfg)
    _, uncached, _, _, _ = _watched_run(replace(cfg, cache=False))
    assert cached.history.val_loss == pytest.approx(uncached.history.val_loss, abs=1e-5)
    assert cached.history.train_loss == pytest.approx(uncached.history.train_loss, abs=1e-5)


@pytest.mark.slow
def test_the_lab_page_says_the_cost_previews_and_compares_with_and_without(app):
    app.switch_page("app_pages/finetune.py").run()
    app.selectbox(key="ft_backbone").set_value("shapes_cnn")
    app.radio(key="ft_weights").set_value("pretrained")
    app.selectbox(key="ft_dataset").set_value("textures")
    app.select_slider(key="ft_image_size").set_value(32)
    app.slider(key="ft_epochs").set_value(2)
    app.slider(key="ft_seeds").set_value(2)
    app.multiselect(key="ft_augment").set_value(["crop", "flip"]).run()
    assert not app.exception
    cost = next(i.value for i in app.info if "the time of the same run without it" in i.value)
    assert "Augmentation (flips and crops)" in cost and "frozen stages run on the" in cost
    assert any("a new draw every epoch" in str(c.proto.spec) for c in app.get("plotly_chart"))   # the preview grid
    app.button(key="ft_train").click().run()
    assert not app.exception and any("With and without augmentation: train" in c.value for c in app.caption)
    app.multiselect(key="ft_augment").set_value([]).run()
    assert not any("the time of the same run without it" in i.value for i in app.info)   # off: no cost said
    app.button(key="ft_train").click().run()
    assert not app.exception
    assert sorted(sorted(cfg.augment) for cfg in app.session_state["ft_results"]) == [[], ["crop", "flip"]]
    assert any("With and without augmentation" in str(c.proto.spec) and "line: mean of 2 seeds" in str(c.proto.spec)
               for c in app.get("plotly_chart"))
    assert any(c.value.startswith("Measured:") and "with augmentation" in c.value for c in app.caption)
