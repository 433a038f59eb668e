"""The experiment contract: settings give flags, validation and the recorded config; one runner plans
seeds × conditions, reports progress and honours Stop; results name what the history keeps."""
import argparse
from dataclasses import dataclass

import pytest
from fixtures import TINY_LAB, open_page

from tl_core import cli, contract, store
from tl_core.contract import setting
from tl_core.experiments import EXPERIMENTS, finetune, toy


@dataclass(frozen=True)
class Demo:
    mode: str = setting("fast", "how to run", choices={"fast": "quick", "slow": "careful"})
    shots: int | None = setting(5, "images per class, or all", lo=1, hi=50)
    rate: float = setting(0.1, "a rate", lo=0, hi=1, label="learning rate")
    names: tuple[str, ...] = setting((), "a list")
    cache: bool = setting(True, "keep features")


def _parse(*argv) -> argparse.Namespace:
    parser = cli.OneLineParser(prog="demo")
    contract.add_flags(parser, Demo)
    return parser.parse_args(list(argv))


def test_flags_come_from_the_settings_and_only_given_ones_override_defaults():
    args = _parse("--shots", "all", "--names", "a,b", "--no-cache", "--mode", "slow")
    assert contract.given(args, Demo) == {"shots": None, "names": ("a", "b"), "cache": False, "mode": "slow"}
    assert contract.from_args(Demo, args) == Demo(mode="slow", shots=None, names=("a", "b"), cache=False)
    assert contract.from_args(Demo, _parse()) == Demo()


@pytest.mark.parametrize("cfg,words", [
    (Demo(shots=0), "shots must be between 1 and 50, got 0"),
    (Demo(rate=float("nan")), "learning rate must be a finite number"),
    (Demo(rate=2.0), "learning rate must be between 0 and 1, got 2"),
    (Demo(mode="medium"), "mode must be one of fast, slow, got 'medium'"),
    (Demo(shots="5"), "shots must be a whole number, got '5'"),
    (Demo(cache=1), "cache must be true or false"),
])
def test_validation_names_the_first_problem_in_one_line(cfg, words):
    with pytest.raises(ValueError) as err:
        contract.validate(cfg)
    assert str(err.value) == words or str(err.value).startswith(words)
    assert "\n" not in str(err.value)


def test_a_bad_value_on_the_command_line_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        _parse("--shots", "many")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shots must be a whole number or all, got 'many'" in err


def test_every_experiment_config_is_fully_declared_and_its_defaults_are_valid():
    for exp in EXPERIMENTS.values():
        if exp.config is None:
            continue
        specs = contract.settings(exp.config)          # raises for a field not declared with setting()
        assert all(s.help for s in specs), exp.name
        if exp.name != "load":                          # load's default architecture needs a file anyway
            contract.validate(exp.config())


def test_every_declared_command_is_in_the_registry_and_every_registered_name_is_declared():
    """The registry (tl_core/experiments/__init__.py's MODULES) is the one table a new experiment adds a line to; the
    CLI imports only the module a name maps to (so `toy` starts without the text encoder's libraries)."""
    import importlib
    import pkgutil

    from tl_core import experiments

    modules = ([f"tl_core.experiments.{m.name}" for m in pkgutil.iter_modules(experiments.__path__)]
               + ["tl_core.lecture_cli"])
    declared = {name: tuple(e.name for e in getattr(importlib.import_module(name), "EXPERIMENTS", ()))
                for name in modules}
    ours = {module: names for module, names in experiments.MODULES.items() if module.startswith("tl_core.")}
    assert {m: n for m, n in declared.items() if n} == ours


def test_every_experiment_that_trains_declares_a_page_a_plots_module_a_cli_twin_and_a_cost():
    """What the app needs of an experiment is declared in its module: a test fails when one lacks a piece."""
    import importlib

    from tl_core import experiments, pages

    paths = {p.path for p in pages.PAGES}
    trains = [e for name, e in EXPERIMENTS.items() if e.trains() and experiments.COMMANDS[name].startswith("tl_core.")]
    assert len(trains) >= 14
    for exp in trains:
        assert exp.page in paths, f"{exp.name}: its page {exp.page!r} is not in pages.toml"
        figures = importlib.import_module(f"tl_core.plots.{exp.plots}")
        assert any(callable(getattr(figures, f)) for f in dir(figures) if not f.startswith("_")), exp.name
        assert exp.cost is not None and exp.cost(contract.record(exp.config())) > 0, exp.name
        with pytest.raises(SystemExit) as done:                    # its CLI twin: a flag per setting
            cli.main([exp.name, "--help"])
        assert done.value.code == 0, exp.name
        assert exp.narrate is None or callable(exp.narrate)
        assert all(callable(load) for load in exp.inputs.values())


RECIPE_MODULE = """
from dataclasses import dataclass

from tl_core import claims, contract
from tl_core.contract import setting
from tl_core.serve.estimates import units


@dataclass(frozen=True)
class CountConfig:
    seeds: int = setting(3, "runs per condition", lo=1, hi=10)
    epochs: int = setting(4, "passes", lo=1, hi=100)
    seed: int = setting(0, "first seed", lo=0)


@dataclass
class CountResult(contract.Result):
    config: CountConfig = None
    values: dict = None
    kind = "recipe-count"
    headline = "more"

    def body(self):
        return {"values": self.values, "claim": claims.compare("more", self.values, ["less"]).to_json()}

    def metrics(self):
        return {"more": sum(self.values["more"].values()) / len(self.values["more"])}


def run(cfg, progress=None, should_stop=None, device="auto"):
    values = {"more": {s: 0.5 + 0.01 * (s + cfg.epochs) for s in range(cfg.seed, cfg.seed + cfg.seeds)},
              "less": {s: 0.2 + 0.01 * s for s in range(cfg.seed, cfg.seed + cfg.seeds)}}
    return CountResult(config=cfg, values=values, seconds=0.01 * cfg.seeds * cfg.epochs)


EXPERIMENTS = (contract.Experiment("recipe-count", "an experiment written by the README's recipe", CountConfig,
                                   run, page="toy", plots="toy",
                                   cost=lambda c: units(c["seeds"], c["epochs"])),)
"""


def test_the_readmes_recipe_is_enough_to_ask_for_a_run_from_the_cli_and_the_server(tmp_path, monkeypatch, capsys):
    """An experiment module and its registry line: its CLI twin, its run request, its estimate and its history
    record all exist, with nothing added anywhere else (the README's "Add an experiment")."""
    import json
    import sys
    from pathlib import Path

    from tl_core import experiments, serve

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    recipe = readme[readme.index("## Add an experiment"):readme.index("## Measured")]
    for piece in ("MODULES", "contract.Experiment", "page=", "plots=", "cost=", "tl_core/plots/", "pages.toml",
                  "ui.run_button", "serve.submit"):
        assert piece in recipe, piece
    (tmp_path / "recipe_count.py").write_text(RECIPE_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(experiments, "MODULES", dict(experiments.MODULES))
    monkeypatch.setattr(experiments, "COMMANDS", dict(experiments.COMMANDS))
    experiments.register("recipe_count")                        # step 2: the registry's line
    assert cli.main(["recipe-count", "--seeds", "4", "--json", "--data-dir", str(tmp_path / "h")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["claim"]["kind"] == "helped" and out["config"] == {"seeds": 4, "epochs": 4, "seed": 0}
    (run,) = store.Store(tmp_path / "h").runs()
    assert run.kind == "recipe-count" and run.status == "finished" and run.identity
    request = serve.RunRequest.of("recipe-count", sys.modules["recipe_count"].CountConfig(seeds=4))
    assert request.identity() == run.identity                   # the page's request is the CLI's run
    assert serve.estimate("recipe-count", request.config, store.Store(tmp_path / "h"))[1] == 1


def test_a_click_on_train_reaches_the_training_loop_through_the_one_submit_function(app, tmp_path, monkeypatch):
    """The lab page's Train builds a run request and submits it (`serve.submit`); the server rebuilds the run from
    the request (`run_request.execute`) and the experiment trains through `train.fit`."""
    import traceback

    from tl_core import finetuning, run_request, serve, train
    from tl_core.serve import scheduler

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    asked, stacks = [], []
    real_submit, real_fit = scheduler.Server.submit, train.fit

    def submit(self, request, **kw):
        asked.append(request)
        return real_submit(self, request, **kw)

    def fit(*args, **kwargs):
        stacks.append([f.name for f in traceback.extract_stack()])
        return real_fit(*args, **kwargs)
    monkeypatch.setattr(scheduler.Server, "submit", submit)
    monkeypatch.setattr(train, "fit", fit)
    monkeypatch.setattr(finetuning, "fit", fit)      # the lab's trainer imports the one loop by name
    before = serve.use(serve.Server())
    try:
        lab = open_page("app_pages/finetune.py", {"ft_backbone": "shapes_cnn", "ft_image_size": "32",
                                                  "ft_epochs": "1", "ft_seeds": "1", "ft_weights": "scratch"})
        lab.button(key="ft_train").click().run()
    finally:
        serve.use(before)
    assert not lab.exception and len(asked) == 1
    (request,) = asked
    assert isinstance(request, run_request.RunRequest) and request.experiment == "finetune"
    assert request.config["backbone"] == "shapes_cnn" and request.config["epochs"] == 1
    assert stacks and all("execute" in s and "_run_here" in s for s in stacks)


def test_the_page_and_the_cli_record_the_same_config_for_the_same_run():
    """The lab page builds its config from widgets (freeze as the slider's stage count); the CLI from
    flags (freeze 'all'). For the same experiment both record one dict."""
    page = finetune.FinetuneConfig(backbone="shapes_cnn", weights="both", dataset="digits", shots=5, freeze="4",
                                   epochs=15, lr=3e-3, image_size=64, seeds=3)
    parser = cli.OneLineParser(prog="t")
    contract.add_flags(parser, finetune.FinetuneConfig)
    args = parser.parse_args(["--backbone", "shapes_cnn", "--weights", "both", "--freeze", "all", "--epochs", "15",
                              "--lr", "0.003", "--seeds", "3"])
    assert contract.record(contract.from_args(finetune.FinetuneConfig, args)) == contract.record(page)
    assert contract.record(page)["freeze"] == "4"


def test_the_runner_plans_reports_progress_and_stops_between_and_within_cells():
    cells = contract.plan(["a", "b"], seeds=2, first_seed=3, shots=[1, 5])
    assert [(c.condition, c.seed, c["shots"]) for c in cells][:3] == [("a", 3, 1), ("a", 3, 5), ("a", 4, 1)]
    assert len(cells) == 8

    class Cell:
        def __init__(self, status="finished"):
            self.status = status

    seen, fractions = [], []
    out = contract.run_cells(cells, lambda cell, on_epoch, stop: seen.append(cell) or Cell(),
                             progress=lambda f, m: fractions.append(f), should_stop=lambda: len(seen) >= 3)
    assert out.status == "stopped" and len(out.results) == 3 and "after 3 of 8" in out.message
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(3 / 8)
    out = contract.run_cells(cells, lambda cell, on_epoch, stop: Cell("diverged" if cell.seed == 3 else "finished"))
    assert out.status == "diverged" and len(out.results) == 1
    out = contract.run_cells(cells, lambda cell, on_epoch, stop: Cell("diverged" if cell.seed == 3 else "finished"),
                             keep_going=True)
    assert out.status == "diverged" and len(out.results) == 8


def test_a_stop_ends_a_lab_run_within_an_epoch_and_keeps_the_epochs_done(tmp_path):
    cfg = finetune.FinetuneConfig(**TINY_LAB, shots=2, epochs=6, seeds=2, freeze="none")
    epochs_seen = []
    db = store.Store(tmp_path)
    with db.track("finetune", contract.record(cfg)) as rec:
        rec["result"] = result = finetune.run(
            cfg, progress=lambda f, m: epochs_seen.append(m), should_stop=lambda: len(epochs_seen) >= 2, device="cpu")
    assert result.status == "stopped" and len(result.runs) == 1 and result.runs[0].history.epochs_run == 2
    run = db.runs()[0]
    assert run.status == "stopped" and len(run.curves["conditions.pretrained.history.val_acc"]) == 2


def test_results_name_their_metrics_curves_and_verdict():
    r = toy.run(toy.ToyConfig(seeds=4, epochs=20, pretrain_epochs=20), device="cpu")
    assert r.kind == "toy" and r.headline in r.metrics()
    assert set(r.curves()) >= {"scratch.curves.test_mse_mean", "pretrained.curves.test_mse_mean"}
    assert r.verdict().kind in ("helped", "hurt", "tie", "single", "unfit") and r.verdict().text
    assert r.to_json()["verdict"] == r.verdict().text


def test_a_runs_identity_names_the_kind_of_device_it_trains_on(monkeypatch):
    """A GPU's result is never served as a CPU run's: "auto" resolves to the device it trains on here; on a CPU-only
    machine "auto" and "cpu" are the same run (the same numbers, one history entry)."""
    import torch

    from tl_core import device as devices
    from tl_core.run_request import RunRequest

    cfg = contract.record(finetune.FinetuneConfig(**TINY_LAB))
    auto, cpu = RunRequest.of("finetune", finetune.FinetuneConfig(**TINY_LAB)), \
        RunRequest.of("finetune", finetune.FinetuneConfig(**TINY_LAB), device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert auto.identity() == cpu.identity() and auto.config == cfg
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)   # the same request on a GPU machine
    on_gpu = auto.identity()
    assert on_gpu != cpu.identity() and on_gpu == RunRequest.of("finetune", finetune.FinetuneConfig(**TINY_LAB),
                                                                device="cuda").identity()
