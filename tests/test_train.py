"""The one training loop: trains only what is trainable, records curves, stops when told or diverged."""
import math

import torch
from torch import nn

from tl_core.train import FitConfig, fit, make_optimizer


def _blobs(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 4, generator=g) + y[:, None].float() * 2
    return x, y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_classification_records_loss_and_accuracy_per_epoch_and_learns():
    model = _net()
    hist = fit(model, _blobs(), _blobs(seed=1), FitConfig(epochs=30, lr=0.05), task="classification")
    assert hist.status == "finished" and hist.epochs_run == 30
    assert len(hist.val_loss) == len(hist.train_acc) == len(hist.val_acc) == 30
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.8


def test_frozen_parameters_and_their_batchnorm_stats_stay_bit_identical():
    model = _net()
    frozen = list(model[0].parameters()) + list(model[1].parameters())
    for p in frozen:
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, _blobs(), None, FitConfig(epochs=5, lr=0.1, batch_size=16, weight_decay=0.01), task="classification")
    after = model.state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["3.weight"], after["3.weight"])  # the head did train


def test_optimizer_holds_trainable_parameters_only():
    model = _net()
    model[0].weight.requires_grad_(False)
    opt = make_optimizer(model.parameters(), FitConfig())
    held = [p for g in opt.param_groups for p in g["params"]]
    assert all(p.requires_grad for p in held)
    assert len(held) == sum(1 for p in model.parameters() if p.requires_grad)


class _BlowsUp(nn.Module):
    """A regression model whose output becomes NaN from its 4th forward pass on."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.lin(x)
        return out * math.nan if self.calls > 3 and self.training else out


def test_nan_loss_stops_with_diverged_and_keeps_the_curve_so_far():
    x = torch.linspace(-1, 1, 8)[:, None]
    hist = fit(_BlowsUp(), (x, 2 * x), None, FitConfig(epochs=10, lr=0.01), task="regression")
    assert hist.status == "diverged"
    assert "diverged" in hist.message and "learning rate" in hist.message
    assert hist.epochs_run == 3 and all(math.isfinite(v) for v in hist.train_loss)


def test_cancel_flag_stops_between_epochs_and_callback_sees_every_epoch():
    seen = []
    hist = fit(_net(), _blobs(), None, FitConfig(epochs=50), task="classification",
               on_epoch=lambda epoch, h: seen.append(epoch), should_stop=lambda: len(seen) >= 4)
    assert hist.status == "stopped" and hist.epochs_run == 4 and seen == [0, 1, 2, 3]


def test_bad_fit_config_is_a_clear_error():
    for cfg, words in ((FitConfig(epochs=0), "epochs"), (FitConfig(lr=math.nan), "learning rate"),
                       (FitConfig(optimizer="rmsprop"), "optimizer")):
        try:
            fit(_net(), _blobs(), None, cfg)
        except ValueError as err:
            assert words in str(err)
        else:
            raise AssertionError(f"{cfg} was accepted")


def test_a_last_mini_batch_of_one_is_merged_so_batchnorm_can_train():
    x, y = _blobs(n=33)
    hist = fit(_net(), (x, y), None, FitConfig(epochs=2, batch_size=32), task="classification")
    assert hist.status == "finished" and hist.epochs_run == 2
