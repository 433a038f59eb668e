"""The experiment contract: settings give flags, validation and the recorded config; one runner plans
seeds × conditions, reports progress and honours Stop; results name what the history keeps."""
import argparse
from dataclasses import dataclass

import pytest

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


def test_every_declared_command_is_in_the_command_table():
    """The CLI imports only the module a command names (so `toy` starts without the text encoder's
    libraries); a module's command left out of the table would vanish from the CLI."""
    import importlib
    import pkgutil

    from tl_core import experiments

    modules = ([f"tl_core.experiments.{m.name}" for m in pkgutil.iter_modules(experiments.__path__)]
               + ["tl_core.lecture"])
    declared = {e.name: name for name in modules for e in getattr(importlib.import_module(name), "EXPERIMENTS", ())}
    assert declared == experiments.COMMANDS


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
    cfg = finetune.FinetuneConfig(backbone="shapes_cnn", dataset="textures", image_size=32, shots=2, epochs=6,
                                  seeds=2, freeze="none")
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
