"""Self-supervised pretraining's machinery: the deck's modules (Encoder, Decoder, Autoencoder, DownstreamModel),
encoder-only files, and masked reconstruction (a random mask per step, the loss on the hidden part only). The
experiment that uses them is `tl_core.experiments.selfsup`; the backbone registry builds its models from here.
"""
from __future__ import annotations

import io
import pickle

import torch
from torch import nn

from tl_core import device as devices

HIDDEN, LATENT = 128, 32                           # the encoder's default sizes: features → hidden → latent
SHAPES = {"expression": (500, 8), "digits": (16 * 16, 10)}   # (features, classes) of the page's data
EVAL_MASK_SEED = 12345                             # validation masks are the same every epoch: a comparable curve


class _TwoLayers(nn.Module):
    """a → hidden → b with a ReLU between: the shape of both halves of the autoencoder."""

    def __init__(self, a: int, hidden: int, b: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Encoder(_TwoLayers):
    """features → hidden → latent code. The part that travels from pretraining to the downstream task."""

    def __init__(self, in_features: int, hidden: int = 128, latent: int = 32):
        super().__init__(in_features, hidden, latent)


class Decoder(_TwoLayers):
    """latent code → hidden → features: needed only to pretrain, thrown away afterwards."""

    def __init__(self, out_features: int, hidden: int = 128, latent: int = 32):
        super().__init__(latent, hidden, out_features)


class Autoencoder(nn.Module):
    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DownstreamModel(nn.Module):
    """The same Encoder class with new prediction layers in place of the decoder."""

    def __init__(self, encoder: Encoder, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def architecture(data: str, downstream: bool) -> nn.Module:
    """The self-supervised page's Encoder for `data` at its default sizes, or (downstream) the DownstreamModel that
    reuses it with a new Linear head, one output per class: what an encoder file from the page loads into
    (the registry's ssl_encoder_* and ssl_downstream_* entries)."""
    if data not in SHAPES:
        raise ValueError(f"data must be one of {', '.join(SHAPES)}, got {data!r}")
    features, classes = SHAPES[data]
    encoder = Encoder(features, HIDDEN, LATENT)
    return DownstreamModel(encoder, nn.Linear(LATENT, classes)) if downstream else encoder


def encoder_bytes(encoder: Encoder) -> bytes:
    """Only the encoder's state_dict, as the bytes of a .pt file (the download button's content)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in encoder.state_dict().items()}, buffer)
    return buffer.getvalue()


def load_encoder(blob: bytes, in_features: int, hidden: int, latent: int) -> Encoder:
    """A fresh Encoder with the saved weights; weights_only=True refuses a file that carries pickled code."""
    encoder = Encoder(in_features, hidden, latent)
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError("refused: this file is not a plain state_dict of tensors "
                         f"({str(err).splitlines()[0]})") from None
    try:
        encoder.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"these weights do not fit Encoder({in_features}, {hidden}, {latent}): "
                         f"{str(err).splitlines()[0]}") from None
    return encoder


def random_mask(n: int, units: torch.Tensor, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """(n, features) bool, True = hidden. `units[f]` is the masking unit of feature f (the feature itself,
    or its image patch); exactly round(ratio · units) units are hidden in every sample."""
    n_units = int(units.max()) + 1
    k = hidden_units(ratio, n_units)
    order = torch.rand(n, n_units, generator=gen).argsort(1)
    hide = torch.zeros(n, n_units, dtype=torch.bool).scatter_(1, order[:, :k], True)
    return hide[:, units.cpu()]


def hidden_units(ratio: float, n_units: int) -> int:
    """How many units a mask ratio hides: at least one, and at least one left visible."""
    return min(max(round(ratio * n_units), 1), n_units - 1)


class MaskedReconstruction(nn.Module):
    """What `fit` trains in pretraining: hide, encode, decode. The output stacks the reconstruction and
    the mask, (N, 2, features), so that `masked_mse` scores the hidden part only. A fresh mask every
    step in training; the same masks every epoch in evaluation, so the validation curve is comparable."""

    def __init__(self, autoencoder: Autoencoder, units: torch.Tensor, ratio: float, seed: int):
        super().__init__()
        self.autoencoder, self.ratio = autoencoder, ratio
        self.register_buffer("units", units.clone(), persistent=False)
        self.gen = devices.generator(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gen = self.gen if self.training else devices.generator(EVAL_MASK_SEED)
        mask = random_mask(len(x), self.units, self.ratio, gen).to(x.device)
        recon = self.autoencoder(x.masked_fill(mask, 0.0))  # 0 = the feature's mean after standardising
        return torch.stack([recon, mask.to(recon.dtype)], 1)


def masked_mse(out: torch.Tensor, target: torch.Tensor, per_member: bool = False) -> torch.Tensor:
    """Mean squared error over the hidden features only (a loss for `fit(loss_fn=...)`)."""
    recon, mask = out[:, 0], out[:, 1]
    return ((recon - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)
