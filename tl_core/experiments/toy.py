"""The regularisation toy: why pretraining helps when the target task has only two points.

Task A has a true relationship and plenty of noisy points. Task B is related to it and has only a
handful. For many seeds at once we train one small MLP per seed on B *from scratch* and another,
starting from the same initial weights, *pretrained on A, then fine-tuned on B*. Both fit B's few
points; the pretrained networks stay close to a sensible function between and beyond them, the
scratch networks wander. When A is unrelated to B, A's prior misleads and the advantage goes.

All seeds of a condition are trained together as one stacked model (`tl_core.stacked.Stacked`): the
weights of S networks are stacked along a leading dimension and every layer is one batched matmul.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tl_core import claims, contract, narration
from tl_core import device as devices
from tl_core.contract import Progress, Stop, Verdict, setting
from tl_core.i18n import fmt, tr
from tl_core.serve.estimates import units
from tl_core.stacked import Stacked
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


RELATION_HELP = {
    "identical": "A is exactly B's line: the ideal source task",
    "shifted": "A is a line with another slope and intercept (y = x): related, not equal",
    "unrelated": "A is a sine wave while B stays a line: A's prior misleads",
}


@dataclass(frozen=True)
class ToyConfig:
    relation: str = setting("shifted", "how task A relates to task B", choices=RELATION_HELP,
                            title="How task A relates to B")
    b_points: int = setting(2, "training points for task B", lo=1, hi=20, title="Task B training points")
    a_points: int = setting(64, "training points for task A (plenty for a 1-D function)", lo=2, hi=100_000)
    noise: float = setting(0.05, "std of the Gaussian noise on every training target", lo=0, hi=10,
                           title="Noise on training targets (std)", span=(0.0, 0.5, 0.01))
    width: int = setting(16, "hidden units per layer", lo=1, hi=1024, title="Hidden units per layer", span=(1, 128))
    depth: int = setting(2, "hidden layers", lo=1, hi=8, title="Hidden layers", span=(1, 4))
    seeds: int = setting(30, "networks per condition, one per seed, trained at once", lo=1, hi=1000,
                         title="Seeds per condition", span=(5, 100, 5))
    epochs: int = setting(300, "fine-tuning epochs on B (full batch: one Adam step each)", lo=1, hi=100_000,
                          title="Fine-tuning epochs", span=(50, 2000, 50))
    pretrain_epochs: int = setting(300, "epochs on task A before fine-tuning", lo=1, hi=100_000,
                                   title="Pretraining epochs on A", span=(50, 2000, 50))
    lr: float = setting(0.01, "Adam learning rate, both phases", lo=1e-7, hi=10, title="Learning rate (Adam)",
                        steps=(0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0))
    seed: int = setting(0, "draws the data; network k starts from seed*10000 + k", lo=0)
    test_points: int = setting(100, "dense, noise-free test grid over x in [-2, 2]", lo=2, hi=100_000)


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

def mlp(width: int, depth: int) -> nn.Sequential:
    """One 1 → width → … → 1 tanh network."""
    sizes = [1] + [width] * depth + [1]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(fan_in, fan_out)] + ([nn.Tanh()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def networks(seeds: list[int], width: int, depth: int) -> Stacked:
    """One MLP per seed, initialised as a single network with that seed would be, stacked."""
    return Stacked.from_seeds(lambda: mlp(width, depth), seeds, sample_dims=1)


# ---- the experiment ------------------------------------------------------------------------------

@dataclass
class Condition:
    """One condition's S networks after fine-tuning on B."""
    functions: np.ndarray      # (S, test_points): every network's function on the test grid
    train_mse: np.ndarray      # (S,) final MSE on B's training points
    test_mse: np.ndarray       # (S,) final MSE against the true B function on the test grid
    history: History           # per-epoch train/test MSE per member
    pretrain_history: History | None = None   # the pretrained condition's epochs on task A

    def summary(self) -> dict:
        curves = {}
        for name, values in (("train_mse", self.history.train_loss), ("test_mse", self.history.val_loss)):
            arr = np.asarray(values, dtype=float).reshape(len(values), len(self.train_mse))   # (epochs, S)
            curves[name + "_mean"] = arr.mean(1).tolist()
            curves[name + "_p10"] = np.percentile(arr, 10, axis=1).tolist()
            curves[name + "_p90"] = np.percentile(arr, 90, axis=1).tolist()
        return {
            "train_mse_mean": float(self.train_mse.mean()),
            "test_mse_mean": float(self.test_mse.mean()),
            "test_mse_median": float(np.median(self.test_mse)),
            "train_mse": self.train_mse.tolist(),
            "test_mse": self.test_mse.tolist(),
            "functions": np.round(self.functions, 5).tolist(),   # every network on the test grid: the page's picture
            "status": self.history.status,
            "message": self.history.message,
            "curves": curves,
        }


@dataclass
class ToyResult(contract.Result):
    config: ToyConfig
    x_test: np.ndarray
    y_test: np.ndarray             # true B on the test grid
    a_test: np.ndarray             # true A on the test grid
    a_train: tuple[np.ndarray, np.ndarray]
    b_train: tuple[np.ndarray, np.ndarray]
    scratch: Condition | None
    pretrained: Condition | None
    kind = "toy"
    headline = "test_mse_ratio"

    @property
    def pretrain_history(self) -> History | None:
        return self.pretrained.pretrain_history if self.pretrained else None

    def body(self) -> dict:
        out = {"seeds": member_seeds(self.config),
               "x_test": self.x_test.tolist(), "y_test": self.y_test.tolist(), "a_test": self.a_test.tolist(),
               "b_train": [np.asarray(v).tolist() for v in self.b_train]}
        if self.scratch and self.pretrained:
            out.update(scratch=self.scratch.summary(), pretrained=self.pretrained.summary(),
                       test_mse_ratio=test_mse_ratio(self),
                       pretrained_wins=int((self.pretrained.test_mse < self.scratch.test_mse).sum()),
                       claim=self.claim().to_json())
        return out

    def metrics(self) -> dict[str, float]:
        if not (self.scratch and self.pretrained):
            return {}
        out = {"test_mse_ratio": test_mse_ratio(self)}
        for name in ("scratch", "pretrained"):
            cond = getattr(self, name)
            out.update({f"{name}.test_mse_mean": float(cond.test_mse.mean()),
                        f"{name}.train_mse_mean": float(cond.train_mse.mean())})
        return out

    def curves(self) -> dict[str, list]:
        """Test error first (what the toy is about), then train error, pretrained before scratch."""
        summaries = {name: getattr(self, name).summary()["curves"] for name in ("pretrained", "scratch")
                     if getattr(self, name) is not None}
        return {f"{name}.curves.{k}": curves[k] for k in sorted(next(iter(summaries.values()), {}),
                                                                key=lambda k: (not k.startswith("test"), k))
                for name, curves in summaries.items()}

    def claim(self) -> claims.Claim:
        """Pretrained against scratch on test MSE (lower is better), paired network by network: network k of
        both conditions starts from the same initial weights."""
        seeds = member_seeds(self.config)
        return claims.compare("pretrained", {name: claims.by_seed(seeds, getattr(self, name).test_mse)
                                             for name in ("pretrained", "scratch")}, ["scratch"], metric="test MSE")

    def verdict(self) -> Verdict:
        return verdict(self)


def member_seeds(cfg: ToyConfig) -> list[int]:
    return [cfg.seed * 10_000 + k for k in range(cfg.seeds)]


def _finish(model: Stacked, hist: History, b_train, test, x_grid: torch.Tensor) -> Condition:
    train_mse, _ = evaluate(model, b_train, "regression")
    test_mse, _ = evaluate(model, test, "regression")
    with torch.no_grad():
        model.eval()
        functions = model(x_grid.to(next(model.parameters()).device))[..., 0].cpu().numpy()
    return Condition(functions=functions, train_mse=np.asarray(train_mse), test_mse=np.asarray(test_mse),
                     history=hist)


@dataclass
class ToyData:  # noqa: D101
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


def train_condition(cfg: ToyConfig, data: ToyData, seeds: list[int], dev: torch.device, condition: str,
                    on_epoch=None, should_stop: Stop | None = None) -> Condition:
    """One network per seed, all at once: from scratch (fine-tuned on B directly), or pretrained on A and
    then fine-tuned on B, from the same initial weights."""
    to_dev = lambda x, y: (_column(x).to(dev), _column(y).to(dev))  # noqa: E731
    a_train, b_train, test = to_dev(*data.a_train), to_dev(*data.b_train), to_dev(data.x_test, data.y_test)
    model = networks(seeds, cfg.width, cfg.depth).to(dev)
    pre_hist = None
    if condition == "pretrained":
        pre_hist = fit(model, a_train, None, FitConfig(epochs=cfg.pretrain_epochs, lr=cfg.lr), task="regression",
                       should_stop=should_stop)
        if pre_hist.status != "finished":  # stopped or diverged on A: nothing was fine-tuned on B
            nan = np.full(len(seeds), np.nan)
            return Condition(np.full((len(seeds), len(data.x_test)), np.nan), nan, nan,
                             History(task="regression", status=pre_hist.status, message=pre_hist.message), pre_hist)
    hist = fit(model, b_train, test, FitConfig(epochs=cfg.epochs, lr=cfg.lr), task="regression", on_epoch=on_epoch,
               should_stop=should_stop)
    cond = _finish(model, hist, b_train, test, test[0])
    cond.pretrain_history = pre_hist
    return cond


def train_conditions(cfg: ToyConfig, data: ToyData, seeds: list[int], dev: torch.device):
    """Both conditions for these seeds: (scratch, pretrained, pretraining history)."""
    scratch = train_condition(cfg, data, seeds, dev, "scratch")
    pretrained = train_condition(cfg, data, seeds, dev, "pretrained")
    return scratch, pretrained, pretrained.pretrain_history


def run(cfg: ToyConfig = ToyConfig(), progress: Progress | None = None, should_stop: Stop | None = None,
        device: str = "auto") -> ToyResult:
    """Train both conditions for cfg.seeds seeds and return functions, curves and final MSEs."""
    contract.validate(cfg)
    start = time.perf_counter()
    dev = devices.pick(device)
    data = make_data(cfg)
    seeds = member_seeds(cfg)
    out = contract.run_cells([contract.Cell(c, cfg.seed) for c in ("scratch", "pretrained")],
                             lambda cell, on_epoch, stop: train_condition(cfg, data, seeds, dev, cell.condition,
                                                                          on_epoch, stop),
                             progress, should_stop, epochs=cfg.epochs, keep_going=True)
    conditions = dict(zip((c.condition for c in out.cells), out.results))
    finished = out.status != "stopped"
    return ToyResult(
        config=cfg, x_test=data.x_test, y_test=data.y_test, a_test=task_a(data.x_test, cfg.relation),
        a_train=data.a_train, b_train=data.b_train, scratch=conditions.get("scratch") if finished else None,
        pretrained=conditions.get("pretrained") if finished else None, device=devices.describe(dev),
        status=out.status, message=out.message, seconds=time.perf_counter() - start)


def test_mse_ratio(result: ToyResult) -> float:
    """Mean pretrained test MSE over mean scratch test MSE: below 1 means pretraining helped."""
    scratch = float(result.scratch.test_mse.mean())
    return float(result.pretrained.test_mse.mean()) / scratch if scratch > 0 else float("inf")


def unfit_threshold(cfg: ToyConfig) -> float:
    """Train MSE above which a condition has not learnt B's points: well above the noise level."""
    return max(0.01, 2 * cfg.noise ** 2)


def verdict(result: ToyResult) -> Verdict:
    """One honest sentence on what the seeds show, whichever way it goes."""
    if result.status == "stopped":
        return Verdict("stopped", result.message or tr("Stopped by the user before both conditions finished."))
    if result.status not in ("finished", "diverged"):
        return result.ended_early()
    if result.status == "diverged":
        return Verdict("diverged", tr("Training diverged (the loss became NaN/inf), so these numbers say nothing "
                                      "about transfer. Lower the learning rate."))
    worst_fit = max(result.scratch.train_mse.mean(), result.pretrained.train_mse.mean())
    if worst_fit > unfit_threshold(result.config):
        return Verdict("unfit", tr("The networks do not fit B's training points (mean train MSE {mse}), so comparing "
                                   "their test error says little. Lower the learning rate or train for more epochs.",
                                   mse=fmt(worst_fit, ".2g")))
    claim = result.claim()
    lead = {"helped": tr("Pretraining on task A helped: "),
            "hurt": tr("Negative transfer: pretraining on task A hurt: "), "tie": "", "single": ""}[claim.kind]
    tail = tr(" Task A's prior pulls the networks away from task B.") if claim.kind == "hurt" else ""
    # the lead says who won: the claim goes on with the numbers ("helped: pretrained on A ahead of scratch" twice)
    said = claim.clause("pretrained on A", "scratch", lead=False) if lead else claim.sentence("pretrained on A",
                                                                                               "scratch")
    return Verdict(claim.kind, lead + said + tail)


def _text(result: ToyResult, out: dict) -> str:
    cfg = result.config
    lines = [f"toy ({cfg.relation}, {cfg.b_points} B points, {cfg.seeds} seeds) on {result.device} "
             f"in {result.seconds:.2f} s"]
    for name in ("scratch", "pretrained"):
        if name in out:
            s = out[name]
            lines.append(f"  {name:<10} train MSE {s['train_mse_mean']:.3g}   test MSE {s['test_mse_mean']:.3g}")
    return "\n".join(lines + [out["verdict"]])


EXPERIMENTS = (contract.Experiment("toy", "the regularisation toy: task A → task B with a few points", ToyConfig,
                                   run, text=_text,
    page="toy", plots="toy",
    cost=lambda c: units(c["seeds"], c["epochs"] + c["pretrain_epochs"]), narrate=narration.say_toy),)
