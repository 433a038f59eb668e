"""The regularisation toy: pretraining on a related task A regularises learning B from two points."""
import numpy as np
import pytest
import torch

from tl_core.experiments import toy
from tl_core.train import FitConfig, fit


@pytest.fixture(scope="module")
def default_run():
    return toy.run(toy.ToyConfig(), device="cpu")


@pytest.mark.slow   # the shared run: the toy's real config, 30 seeds x 600 epochs
def test_pretraining_clearly_beats_scratch_at_defaults_while_both_fit_the_points(default_run):
    r = default_run
    assert r.config.seeds >= 20 and r.config.b_points == 2
    assert r.scratch.train_mse.max() < 1e-3 and r.pretrained.train_mse.max() < 1e-3   # both fit B's points
    assert toy.test_mse_ratio(r) <= 0.5
    assert (r.pretrained.test_mse < r.scratch.test_mse).mean() >= 0.8
    assert toy.verdict(r).kind == "helped"


@pytest.mark.slow   # the toy's real config, 30 seeds x 600 epochs
def test_unrelated_source_task_loses_the_advantage():
    r = toy.run(toy.ToyConfig(relation="unrelated"), device="cpu")
    assert toy.test_mse_ratio(r) >= 1.0
    assert toy.verdict(r).kind in ("hurt", "tie")
    assert "Negative transfer" in toy.verdict(r).text or "No clear advantage" in toy.verdict(r).text


@pytest.mark.slow   # the toy's real config, trained again
def test_same_seed_and_config_give_identical_numbers(default_run):
    again = toy.run(toy.ToyConfig(), device="cpu")
    assert np.array_equal(again.scratch.test_mse, default_run.scratch.test_mse)
    assert np.array_equal(again.pretrained.functions, default_run.pretrained.functions)
    other = toy.run(toy.ToyConfig(seed=1, seeds=5, epochs=50, pretrain_epochs=50), device="cpu")
    assert not np.array_equal(other.b_train[0], default_run.b_train[0])


def test_stacked_seeds_train_exactly_like_a_loop_over_single_networks():
    cfg = toy.ToyConfig(seeds=4, epochs=40, pretrain_epochs=40)
    x = torch.linspace(-2, 2, 16)[:, None]
    data, fc = (x, torch.sin(x)), FitConfig(epochs=cfg.epochs, lr=cfg.lr)
    seeds = toy.member_seeds(cfg)
    stacked = toy.networks(seeds, cfg.width, cfg.depth)
    hist = fit(stacked, data, data, fc, task="regression")
    for k, seed in enumerate(seeds):
        single = toy.networks([seed], cfg.width, cfg.depth)
        single_hist = fit(single, data, data, fc, task="regression")
        np.testing.assert_allclose(np.asarray(hist.val_loss)[:, k], np.asarray(single_hist.val_loss)[:, 0],
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.slow   # the shared run: the toy's real config, 30 seeds x 600 epochs
def test_curves_cover_every_epoch_for_every_seed(default_run):
    cfg = default_run.config
    for cond in (default_run.scratch, default_run.pretrained):
        assert np.asarray(cond.history.train_loss).shape == (cfg.epochs, cfg.seeds)
        assert np.asarray(cond.history.val_loss).shape == (cfg.epochs, cfg.seeds)
        assert cond.functions.shape == (cfg.seeds, cfg.test_points)


@pytest.mark.parametrize("field,value,words", [
    ("b_points", 0, "b-points"), ("b_points", 21, "b-points"), ("relation", "other", "relation"),
    ("noise", float("nan"), "noise"), ("lr", -1.0, "lr"), ("seeds", 0, "seeds"),
])
def test_bad_settings_are_refused_with_a_reason(field, value, words):
    with pytest.raises(ValueError, match=words):
        toy.run(toy.ToyConfig(**{field: value}))


@pytest.mark.slow
def test_verdict_says_so_when_the_networks_do_not_fit_the_points():
    r = toy.run(toy.ToyConfig(lr=3.0, seeds=5), device="cpu")
    assert r.scratch.train_mse.mean() > toy.unfit_threshold(r.config)
    assert toy.verdict(r).kind == "unfit" and "do not fit" in toy.verdict(r).text
