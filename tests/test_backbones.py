"""The registry: every entry builds from scratch and runs; Lite0's real ImageNet weights recognise photos."""
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from tl_core import backbones


@pytest.mark.parametrize("name", backbones.IMAGE)
def test_every_entry_builds_from_scratch_with_stages_and_a_new_head(name):
    entry = backbones.entry(name)
    model = backbones.create(name, "scratch", num_classes=3)
    assert len(model.names) >= 3 and len(model.names) == len(model.stages)
    size = entry.input_size if entry.fixed_size else max(entry.min_size, 32)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2 if not entry.fixed_size else 1, 3, size, size))
    assert out.shape[-1] == 3
    # every stage holds parameters, so each freeze-slider position means something
    assert all(backbones.param_count(stage) > 0 for stage in model.stages)


def _photo(name: str) -> torch.Tensor:
    img = torch.tensor(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


def test_lite0_imagenet_weights_from_the_package_recognise_real_photos():
    model = backbones.create("efficientnet_lite0", "pretrained").eval()
    with torch.no_grad():
        cat = model(_photo("chelsea")).softmax(1).topk(3).indices[0].tolist()
        coffee = model(_photo("coffee")).softmax(1).argmax(1).item()
    assert all(281 <= c <= 285 for c in cat), cat      # tabby, tiger cat, Egyptian cat, ...
    assert coffee == 967                                  # espresso


def test_staged_lite0_equals_timms_own_forward():
    import timm

    reference = timm.create_model("efficientnet_lite0", pretrained=False)
    reference.load_state_dict(backbones.lite0_state_dict(reference))
    staged = backbones.create("efficientnet_lite0", "pretrained")
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(staged.eval()(x), reference.eval()((x - mean) / std), atol=1e-4)


def test_hub_weights_are_never_downloaded_and_the_message_says_how_to_get_them():
    ok, message = backbones.weights_status("resnet18")
    if ok:
        pytest.skip("resnet18's weights are in this machine's torch cache")
    assert "To fetch them once, online" in message and "from scratch" in message
    with pytest.raises(backbones.WeightsUnavailable, match="not in torch's cache"):
        backbones.create("resnet18", "pretrained")


def test_project_cnn_checkpoint_ships_in_assets_and_loads():
    assert backbones.SHAPES_CNN.exists()
    ok, _ = backbones.weights_status("shapes_cnn")
    assert ok
    pretrained = backbones.create("shapes_cnn", "pretrained")
    scratch = backbones.create("shapes_cnn", "scratch")
    assert not torch.equal(pretrained.stages[1][0].weight, scratch.stages[1].state_dict()["0.weight"])


def test_unknown_backbone_and_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown backbone 'nope'"):
        backbones.create("nope")
    with pytest.raises(ValueError, match="only accepts 224 px"):
        backbones.check_size("vit_b_16", 64)
    with pytest.raises(ValueError, match="at least 32 px"):
        backbones.check_size("efficientnet_lite0", 16)
