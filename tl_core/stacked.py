"""Many small networks as one: K members with their own weights, trained at once by `train.fit`.

The toy trains its 30 seeds per condition this way and Guided Transfer Learning its K scouts. Every
weight of the template becomes one stacked tensor with a leading member dimension, so one optimizer
step updates all members and `fit` (which sees `members`) reports every loss per member. Members are
independent: member k trained in the stack equals the template with member k's weights trained alone.

A template that is an `nn.Sequential` of linear, convolution and element-wise layers runs layer by
layer as batched ops (linear: one batched matmul; conv: one grouped convolution), 2-3x faster than the
general path, `vmap` over `functional_call`, which any other module takes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

FAST_LAYERS = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Tanh, nn.Flatten, nn.MaxPool2d)


def seeded(build, seed: int) -> nn.Module:
    """`build()` with its initial weights drawn from `seed` alone (the global random stream is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _plan(template: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The leaf layers of a Sequential template in the order it runs them, if all have a batched form."""
    if not isinstance(template, nn.Sequential):
        return None
    plan = [(name, m) for name, m in template.named_modules() if not list(m.children())]
    fast = all(isinstance(m, FAST_LAYERS) for _, m in plan) and all(
        m.bias is not None and m.groups == 1 and m.dilation == (1, 1) for _, m in plan if isinstance(m, nn.Conv2d)
    ) and all(m.bias is not None for _, m in plan if isinstance(m, nn.Linear))
    return plan if fast else None


class Stacked(nn.Module):
    """K copies of `template`'s architecture with the weights `states[k]`, run as one batched model.

    Input: (N, ...) shared by all members, or (K, N, ...) one batch each (`sample_dims`: the dimensions
    of one sample, e.g. 1 for a vector, 3 for an image). Output: (K, N, ...)."""

    def __init__(self, template: nn.Module, states: list[dict[str, torch.Tensor]], sample_dims: int = 3):
        super().__init__()
        self.members = len(states)
        self._template = (template,)  # a tuple, so its own parameters are not ours and never train
        self.names = [n for n, _ in template.named_parameters()]
        self.stacked = nn.ParameterList(nn.Parameter(torch.stack([s[n].detach() for s in states]).clone())
                                        for n in self.names)
        self.sample_dims = sample_dims
        self._plan = _plan(template)

    @classmethod
    def from_seeds(cls, build, seeds: list[int], sample_dims: int = 3) -> "Stacked":
        """One member per seed, each initialised as `build()` would be under that seed."""
        nets = [seeded(build, s) for s in seeds]
        return cls(nets[0], [dict(n.named_parameters()) for n in nets], sample_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.sample_dims + 2:
            x = x.expand(self.members, *x.shape)
        params = dict(zip(self.names, self.stacked))
        if self._plan is not None:
            for prefix, module in self._plan:
                x = self._layer(module, params, prefix, x)
            return x
        return vmap(lambda p, xb: functional_call(self._template[0], p, (xb,)))(params, x)

    @staticmethod
    def _layer(module: nn.Module, params: dict, prefix: str, h: torch.Tensor) -> torch.Tensor:
        k, n = h.shape[:2]
        if isinstance(module, nn.Linear):  # (K, N, in) @ (K, in, out) + (K, 1, out)
            return torch.baddbmm(params[f"{prefix}.bias"].unsqueeze(1), h, params[f"{prefix}.weight"].transpose(1, 2))
        if isinstance(module, nn.Conv2d):  # K convolutions as one with groups=K: members side by side in channels
            w, b = params[f"{prefix}.weight"], params[f"{prefix}.bias"]
            out = F.conv2d(h.transpose(0, 1).reshape(n, -1, *h.shape[3:]), w.flatten(0, 1), b.flatten(),
                           module.stride, module.padding, groups=k)
            return out.view(n, k, -1, *out.shape[2:]).transpose(0, 1)
        if isinstance(module, nn.Flatten):
            return h.flatten(2)
        return module(h.flatten(0, 1)).unflatten(0, (k, n))  # ReLU, Tanh, MaxPool2d: per sample

    def member(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights, named as the template's."""
        return {n: p[k].detach().clone() for n, p in zip(self.names, self.stacked)}
