import pytest
import torch

from tl_core import device


def test_auto_picks_cuda_then_mps_then_cpu():
    picked = device.pick()
    if torch.cuda.is_available():
        assert picked.type == "cuda"
    elif torch.backends.mps.is_available():
        assert picked.type == "mps"
    else:
        assert picked.type == "cpu"
    assert device.describe(picked).startswith(picked.type)


def test_unknown_or_missing_device_is_a_clear_error():
    with pytest.raises(ValueError, match="device must be one of"):
        device.pick("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            device.pick("cuda")


def test_seeding_makes_draws_repeat():
    device.seed_everything(7)
    a = torch.rand(5)
    device.seed_everything(7)
    assert torch.equal(a, torch.rand(5))
    assert torch.equal(torch.rand(3, generator=device.generator(1)), torch.rand(3, generator=device.generator(1)))
