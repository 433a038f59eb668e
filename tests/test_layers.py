"""What layers learn: relative change against a hand computation, the receptive field and patches on a small
CNN, and a small real full fine-tuning of EfficientNet-Lite0 through the CLI, whose claim the page makes:
early stages move less than late ones."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from fixtures import open_page

from tl_core import backbones, finetuning
from tl_core.experiments import layers


def test_relative_change_is_the_norm_of_the_change_over_the_norm_of_the_start():
    model = backbones.create("shapes_cnn", "scratch", 3, 0)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    after = {k: v.clone() for k, v in before.items()}
    after["stages.1.0.weight"] = before["stages.1.0.weight"] * 1.1      # conv2's kernel grows by 10%
    change = finetuning.relative_change(before, after, model)
    w = before["stages.1.0.weight"]
    stage2 = torch.cat([p.detach().flatten() for p in model.stages[1].parameters()])
    assert change[1] == pytest.approx(float((0.1 * w).norm() / stage2.norm()), rel=1e-5)
    assert change[0] == change[2] == change[4] == 0.0


def test_receptive_field_grows_with_depth_and_patches_are_real_crops_of_the_images():
    model = backbones.create("shapes_cnn", "scratch", 3, 0)
    fields = [layers.receptive_field(model, k, 32) for k in layers.spatial_stages(model, 32)]
    # conv1 is a 3×3 conv then a 2×2 max pool: 3 or 4 pixels, depending on where the maxima fell
    assert 3 <= fields[0] <= 4 and fields == sorted(fields) and fields[-1] > fields[0]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(10, 3, 32, 32, generator=g)
    found = layers.top_patches(model, images, most=4)
    assert [p["stage"] for p in found] == ["conv1", "conv2", "conv3", "conv4"][:len(found)]
    first = found[0]
    assert len(first["patches"]) == 4 and first["activations"] == sorted(first["activations"], reverse=True)
    crop = first["patches"][0]
    assert crop.shape == (first["field"], first["field"], 3)
    src = images[first["images"][0]].permute(1, 2, 0).numpy()     # the crop is a window of its source image
    hits = [(y, x) for y in range(33 - crop.shape[0]) for x in range(33 - crop.shape[1])
            if np.array_equal(src[y:y + crop.shape[0], x:x + crop.shape[1]], crop)]
    assert hits


def test_activation_maps_keep_the_most_active_channels_of_every_spatial_stage():
    model = backbones.create("shapes_cnn", "pretrained", 6, 0)
    maps = layers.activation_maps(model, torch.rand(3, 32, 32), channels=4)
    assert [m["stage"] for m in maps] == ["conv1", "conv2", "conv3"]       # conv4 pools to a vector
    assert maps[0]["maps"].shape == (4, 16, 16) and maps[2]["maps"].shape == (4, 4, 4)
    means = maps[1]["maps"].mean((1, 2))
    assert list(means) == sorted(means, reverse=True)


@pytest.fixture(scope="module")
def tuned():
    proc = subprocess.run([sys.executable, "-m", "tl_core", "layers", "--backbone", "efficientnet_lite0", "--dataset",
                           "textures", "--shots", "5", "--epochs", "3", "--seeds", "2", "--image-size", "48", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow   # the shared run: full fine-tuning of EfficientNet-Lite0, 2 seeds
def test_cli_prints_stages_and_one_relative_change_per_stage(tuned):
    assert tuned["stages"] == list(backbones.stage_names("efficientnet_lite0"))
    assert len(tuned["relative_change"]) == len(tuned["stages"]) == len(tuned["relative_change_std"])
    assert all(v > 0 for v in tuned["relative_change"]) and tuned["seconds"] > 0
    assert len(tuned["relative_change_seeds"]) == 2


@pytest.mark.slow   # the shared run: full fine-tuning of EfficientNet-Lite0, 2 seeds
def test_early_stages_move_less_than_late_ones_under_full_fine_tuning(tuned):
    c = np.array(tuned["relative_change_seeds"])[:, :-1]     # without the new head
    half = c.shape[1] // 2
    assert (c[:, :half].mean(1) < c[:, half:].mean(1)).all(), c
    assert "early stages barely moved" in tuned["verdict"]


@pytest.mark.slow
def test_a_link_opens_the_page_with_its_settings_and_draws_without_training():
    at = open_page("app_pages/layers.py", {"lay_dataset": "microscopy", "lay_shots": "10", "lay_epochs": "4",
                                           "lay_image_size": "48", "lay_seeds": "2"})
    assert not at.exception and not at.warning
    assert (at.session_state["lay_dataset"], at.session_state["lay_shots"], at.session_state["lay_image_size"]) == \
        ("microscopy", 10, 48)
    assert "10 microscopy images per class, 2 seeds" in at.info[0].value
    assert any("microscopy image 0" in c.value for c in at.caption)    # the activation maps of a dataset image
