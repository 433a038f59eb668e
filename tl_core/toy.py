"""The regularisation toy: why pretraining helps when the target task has only two points.

Task A has a true relationship and plenty of noisy points. Task B is related to it and has only a
handful. For many seeds at once we train one small MLP per seed on B *from scratch* and another,
starting from the same initial weights, *pretrained on A, then fine-tuned on B*. Both fit B's few
points; the pretrained networks stay close to a sensible function between and beyond them, the
scratch networks wander. When A is unrelated to B, A's prior misleads and the advantage goes.

All seeds of a condition are trained together as one stacked model (`StackedMLP`): the weights of
S networks are stacked along a leading dimension and every layer is one batched matmul.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tl_core import device as devices
from tl_core.train import FitConfig, History, evaluate, fit

RELATIONS = ("identical", "shifted", "unrelated")
X_RANGE = (-2.0, 2.0)
B_LINE = (0.8, 0.3)          # task B: y = 0.8 x + 0.3
SHIFTED_A_LINE = (1.0, 0.0)   # task A when "shifted": y = x, another slope and intercept
PRESETS = {                   # name -> (width, depth)
    "default (16-16-1)": (16, 2),
    "wide (64-64-1)": (64, 2),
    "slide's 2-2-1": (2, 2),
}


@dataclass(frozen=True)
class ToyConfig:
    relation: str = "shifted"   # how task A relates to B: identical | shifted | unrelated (a sine)
    b_points: int = 2           # training points for task B (1-20)
    a_points: int = 64          # training points for task A (plenty for a 1-D function)
    noise: float = 0.05         # std of the Gaussian noise on every training target
    width: int = 16             # hidden units per layer
    depth: int = 2              # hidden layers
    seeds: int = 30             # networks per condition, one per seed, trained at once
    epochs: int = 300           # fine-tuning epochs on B (full batch: one Adam step each)
    pretrain_epochs: int = 300  # epochs on task A before fine-tuning
    lr: float = 0.01            # Adam learning rate, both phases
    seed: int = 0               # draws the data; network k starts from seed*10000 + k
    test_points: int = 100      # dense, noise-free test grid over X_RANGE

    def validate(self) -> None:
        checks = [
            (self.relation in RELATIONS, f"relation must be one of {', '.join(RELATIONS)}, got {self.relation!r}"),
            (1 <= self.b_points <= 20, f"b-points must be between 1 and 20, got {self.b_points}"),
            (2 <= self.a_points <= 100_000, f"a-points must be between 2 and 100000, got {self.a_points}"),
            (math.isfinite(self.noise) and 0 <= self.noise <= 10, f"noise must be between 0 and 10, got {self.noise}"),
            (1 <= self.width <= 1024, f"width must be between 1 and 1024, got {self.width}"),
            (1 <= self.depth <= 8, f"depth must be between 1 and 8, got {self.depth}"),
            (1 <= self.seeds <= 1000, f"seeds must be between 1 and 1000, got {self.seeds}"),
            (1 <= self.epochs <= 100_000, f"epochs must be between 1 and 100000, got {self.epochs}"),
            (1 <= self.pretrain_epochs <= 100_000, f"pretrain-epochs must be between 1 and 100000, got {self.pretrain_epochs}"),
            (math.isfinite(self.lr) and 0 < self.lr <= 10, f"lr must be a number in (0, 10], got {self.lr}"),
            (self.seed >= 0, f"seed must be 0 or more, got {self.seed}"),
            (2 <= self.test_points <= 100_000, f"test-points must be between 2 and 100000, got {self.test_points}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# ---- the tasks ---------------------------------------------------------------------------------

def task_b(x: np.ndarray) -> np.ndarray:
    slope, intercept = B_LINE
    return slope * x + intercept


def task_a(x: np.ndarray, relation: str) -> np.ndarray:
    if relation == "identical":
        return task_b(x)
    if relation == "shifted":
        slope, intercept = SHIFTED_A_LINE
        return slope * x + intercept
    return np.sin(2.5 * x)  # unrelated: a wave, while B stays a line


def _draw(n: int, fn, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(*X_RANGE, size=n)
    return x, fn(x) + noise * rng.standard_normal(n)


def _column(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1)


# ---- the stacked networks ------------------------------------------------------------------------

class StackedMLP(nn.Module):
    """S independent 1 → width → … → 1 tanh MLPs, one per seed, as stacked weight tensors.

    Member k is initialised from its own seed exactly as a single network with that seed would be
    (uniform ±1/sqrt(fan_in), as nn.Linear), so a stacked run equals a loop over seeds.
    """

    def __init__(self, seeds: list[int], width: int, depth: int):
        super().__init__()
        self.members = len(seeds)
        sizes = [1] + [width] * depth + [1]
        per_member = [self._init(seed, sizes) for seed in seeds]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([m[i][0] for m in per_member])) for i in range(len(sizes) - 1))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([m[i][1] for m in per_member])) for i in range(len(sizes) - 1))

    @staticmethod
    def _init(seed: int, sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = devices.generator(seed)
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound
            b = (torch.rand(1, fan_out, generator=g) * 2 - 1) * bound
            layers.append((w, b))
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 1) shared by all members, or (S, N, 1). Returns (S, N, 1)."""
        h = x.expand(self.members, *x.shape) if x.dim() == 2 else x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.tanh(h)
        return h


# ---- the experiment ------------------------------------------------------------------------------

@dataclass
class Condition:
    """One condition's S networks after fine-tuning on B."""
    functions: np.ndarray      # (S, test_points): every network's function on the test grid
    train_mse: np.ndarray      # (S,) final MSE on B's training points
    test_mse: np.ndarray       # (S,) final MSE against the true B function on the test grid
    history: History           # per-epoch train/test MSE per member

    def summary(self) -> dict:
        curves = {}
        for name, values in (("train_mse", self.history.train_loss), ("test_mse", self.history.val_loss)):
            arr = np.asarray(values, dtype=float)          # (epochs, S)
            curves[name + "_mean"] = arr.mean(1).tolist()
            curves[name + "_p10"] = np.percentile(arr, 10, axis=1).tolist()
            curves[name + "_p90"] = np.percentile(arr, 90, axis=1).tolist()
        return {
            "train_mse_mean": float(self.train_mse.mean()),
            "test_mse_mean": float(self.test_mse.mean()),
            "test_mse_median": float(np.median(self.test_mse)),
            "train_mse": self.train_mse.tolist(),
            "test_mse": self.test_mse.tolist(),
            "status": self.history.status,
            "message": self.history.message,
            "curves": curves,
        }


@dataclass
class ToyResult:
    config: ToyConfig
    x_test: np.ndarray
    y_test: np.ndarray             # true B on the test grid
    a_test: np.ndarray             # true A on the test grid
    a_train: tuple[np.ndarray, np.ndarray]
    b_train: tuple[np.ndarray, np.ndarray]
    scratch: Condition
    pretrained: Condition
    device: str
    seconds: float = 0.0
    pretrain_history: History | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        statuses = {self.scratch.history.status, self.pretrained.history.status}
        if self.pretrain_history is not None:
            statuses.add(self.pretrain_history.status)
        return "diverged" if "diverged" in statuses else "finished"

    def to_json(self) -> dict:
        return {
            "experiment": "toy",
            "config": asdict(self.config),
            "scratch": self.scratch.summary(),
            "pretrained": self.pretrained.summary(),
            "test_mse_ratio": test_mse_ratio(self),
            "pretrained_wins": int((self.pretrained.test_mse < self.scratch.test_mse).sum()),
            "verdict": verdict(self).text,
            "verdict_kind": verdict(self).kind,
            "status": self.status,
            "device": self.device,
            "seconds": round(self.seconds, 4),
        }


def member_seeds(cfg: ToyConfig) -> list[int]:
    return [cfg.seed * 10_000 + k for k in range(cfg.seeds)]


def _finish(model: StackedMLP, hist: History, b_train, test, x_grid: torch.Tensor) -> Condition:
    train_mse, _ = evaluate(model, b_train, "regression")
    test_mse, _ = evaluate(model, test, "regression")
    with torch.no_grad():
        model.eval()
        functions = model(x_grid.to(next(model.parameters()).device))[..., 0].cpu().numpy()
    return Condition(functions=functions, train_mse=np.asarray(train_mse), test_mse=np.asarray(test_mse),
                     history=hist)


@dataclass
class ToyData:
    a_train: tuple[np.ndarray, np.ndarray]
    b_train: tuple[np.ndarray, np.ndarray]
    x_test: np.ndarray
    y_test: np.ndarray


def make_data(cfg: ToyConfig) -> ToyData:
    """Task A's many points, task B's few points and B's dense noise-free test grid, drawn from cfg.seed."""
    rng = np.random.default_rng(cfg.seed)
    a_train = _draw(cfg.a_points, lambda x: task_a(x, cfg.relation), cfg.noise, rng)
    b_train = _draw(cfg.b_points, task_b, cfg.noise, rng)
    x_test = np.linspace(*X_RANGE, cfg.test_points)
    return ToyData(a_train=a_train, b_train=b_train, x_test=x_test, y_test=task_b(x_test))


def train_conditions(cfg: ToyConfig, data: ToyData, seeds: list[int], dev: torch.device):
    """Train one network per seed in both conditions, all seeds at once. Returns (scratch, pretrained, pretrain_history)."""
    to_dev = lambda x, y: (_column(x).to(dev), _column(y).to(dev))  # noqa: E731
    a_train, b_train, test = to_dev(*data.a_train), to_dev(*data.b_train), to_dev(data.x_test, data.y_test)
    fine_tune = FitConfig(epochs=cfg.epochs, lr=cfg.lr)

    # from scratch: fine-tune the initial weights on B directly
    scratch = StackedMLP(seeds, cfg.width, cfg.depth).to(dev)
    scratch_hist = fit(scratch, b_train, test, fine_tune, task="regression")

    # pretrained: the same initial weights, first trained on A, then fine-tuned on B
    pretrained = StackedMLP(seeds, cfg.width, cfg.depth).to(dev)
    pre_hist = fit(pretrained, a_train, None, FitConfig(epochs=cfg.pretrain_epochs, lr=cfg.lr), task="regression")
    pretrained_hist = fit(pretrained, b_train, test, fine_tune, task="regression")
    return (_finish(scratch, scratch_hist, b_train, test, test[0]),
            _finish(pretrained, pretrained_hist, b_train, test, test[0]), pre_hist)


def run(cfg: ToyConfig = ToyConfig(), device: str = "auto") -> ToyResult:
    """Train both conditions for cfg.seeds seeds and return functions, curves and final MSEs."""
    cfg.validate()
    start = time.perf_counter()
    dev = devices.pick(device)
    data = make_data(cfg)
    scratch, pretrained, pre_hist = train_conditions(cfg, data, member_seeds(cfg), dev)
    result = ToyResult(
        config=cfg, x_test=data.x_test, y_test=data.y_test, a_test=task_a(data.x_test, cfg.relation),
        a_train=data.a_train, b_train=data.b_train, scratch=scratch, pretrained=pretrained,
        device=devices.describe(dev), pretrain_history=pre_hist,
    )
    result.seconds = time.perf_counter() - start
    return result


def test_mse_ratio(result: ToyResult) -> float:
    """Mean pretrained test MSE over mean scratch test MSE: below 1 means pretraining helped."""
    scratch = float(result.scratch.test_mse.mean())
    return float(result.pretrained.test_mse.mean()) / scratch if scratch > 0 else float("inf")


def unfit_threshold(cfg: ToyConfig) -> float:
    """Train MSE above which a condition has not learnt B's points: well above the noise level."""
    return max(0.01, 2 * cfg.noise ** 2)


class Verdict(NamedTuple):
    kind: str   # "helped", "hurt", "neutral", "unfit" (B's points not fitted) or "diverged"
    text: str


def verdict(result: ToyResult) -> Verdict:
    """One honest sentence on what the seeds show, whichever way it goes."""
    if result.status == "diverged":
        return Verdict("diverged", "Training diverged (the loss became NaN/inf), so these numbers say nothing "
                                   "about transfer. Lower the learning rate.")
    worst_fit = max(result.scratch.train_mse.mean(), result.pretrained.train_mse.mean())
    if worst_fit > unfit_threshold(result.config):
        return Verdict("unfit", f"The networks do not fit B's training points (mean train MSE {worst_fit:.2g}), "
                                f"so comparing their test error says little. Lower the learning rate or "
                                f"train for more epochs.")
    s, p = result.scratch.test_mse, result.pretrained.test_mse
    ratio = test_mse_ratio(result)
    wins = int((p < s).sum())
    n = len(s)
    numbers = (f"mean test MSE {p.mean():.3g} pretrained vs {s.mean():.3g} from scratch; "
               f"pretrained is better in {wins} of {n} seeds")
    if ratio <= 0.8 and wins >= 0.6 * n:
        return Verdict("helped", f"Pretraining on task A helped ({1 / ratio:.1f}× lower test error): {numbers}.")
    if ratio >= 1.25 and wins <= 0.4 * n:
        return Verdict("hurt", f"Negative transfer: pretraining on task A hurt ({ratio:.1f}× higher test "
                               f"error): {numbers}. Task A's prior pulls the networks away from task B.")
    return Verdict("neutral", f"No clear advantage either way: {numbers}.")
