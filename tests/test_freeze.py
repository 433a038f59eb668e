"""Freezing by stage, the strategies, and the frozen-prefix cache."""
import numpy as np
import pytest
import torch
from fixtures import TINY_LAB

from tl_core import backbones, finetuning, freeze
from tl_core.experiments import finetune

SMALL = dict(**TINY_LAB, shots=5, epochs=4, batch_size=8)


def test_parse_freeze():
    assert freeze.parse_freeze("all", 10) == 9 and freeze.parse_freeze("none", 10) == 0
    assert freeze.parse_freeze("3", 10) == 3
    for bad in ("10", "-1", "most"):
        with pytest.raises(ValueError, match="freeze must be"):
            freeze.parse_freeze(bad, 10)


def test_frozen_stages_and_their_batchnorm_stay_bit_identical_through_fine_tuning():
    cfg = finetune.FinetuneConfig(**SMALL, weights="pretrained", freeze="2", cache=False)
    model = backbones.create("shapes_cnn", "pretrained", num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = finetuning.Trainer(model, cfg, torch.device("cpu"))
    from tl_core import data
    train, val = data.few_shot_split(data.load("textures", 32), 5, 0)
    trainer.train(train, val)
    after = model.state_dict()
    frozen_keys = [k for k in after if k.startswith(("stages.0.", "stages.1."))]
    assert any("running_mean" in k for k in frozen_keys)
    assert all(torch.equal(before[k], after[k]) for k in frozen_keys)
    assert not torch.equal(before["stages.4.weight"], after["stages.4.weight"])   # the head trained
    assert freeze.frozen_stages(model) == 2


@pytest.mark.slow
def test_cached_prefix_gives_the_same_curves_as_rerunning_frozen_stages_every_epoch():
    for fr in ("all", "2"):
        cached = finetune.run(finetune.FinetuneConfig(**SMALL, freeze=fr, cache=True), device="cpu")
        naive = finetune.run(finetune.FinetuneConfig(**SMALL, freeze=fr, cache=False), device="cpu")
        for key in ("train_loss", "val_loss", "val_acc"):
            np.testing.assert_allclose(getattr(cached.runs[0].history, key), getattr(naive.runs[0].history, key),
                                       rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_gradual_unfreezing_phases_and_discriminative_rates():
    assert freeze.gradual_schedule(5, 7, 2) == [(4, 2), (3, 2), (2, 2), (1, 1)]
    assert freeze.gradual_schedule(5, 9, 3, floor=3) == [(4, 3), (3, 6)]
    model = backbones.create("shapes_cnn", "scratch", num_classes=3)
    groups = freeze.discriminative_groups(model, lr=1e-2, first=1)
    lrs = [g["lr"] for g in groups]
    assert len(groups) == 4 and lrs[-1] == 1e-2 and lrs == sorted(lrs)
    result = finetune.run(finetune.FinetuneConfig(**{**SMALL, "epochs": 5}, strategy="gradual", unfreeze_every=2))
    assert result.runs[0].history.epochs_run == 5 and result.status == "finished"
    result = finetune.run(finetune.FinetuneConfig(**SMALL, strategy="discriminative", freeze="1"))
    assert result.status == "finished"
