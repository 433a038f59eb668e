"""The estimate before a run: one line per page, and the first lab run estimated from the backbone's reference rate."""

import pytest
from fixtures import open_page

from tl_core import contract, lab_cost, serve, store
from tl_core.experiments import finetune

PAGES = ["app_pages/layers.py", "app_pages/inside.py", "app_pages/peft.py", "app_pages/gtl.py",
         "app_pages/domains.py", "app_pages/text.py", "app_pages/finetune.py", "app_pages/listen.py",
         "app_pages/lm.py"]
RUN_BUTTONS = {"app_pages/lm.py": 3}   # next word, pretrain and fine-tune, compare methods
TIME_WORDS = ("on this machine", "on a laptop", "laptop cpu", "minute", "no estimate yet")


def _texts(at) -> list[str]:
    return [e.value for kind in ("caption", "info", "markdown") for e in getattr(at, kind) if isinstance(e.value, str)]


@pytest.mark.parametrize("page", PAGES)
def test_a_page_shows_only_its_run_buttons_estimate_before_its_first_run(page, fresh_server):
    at = open_page(page, {})
    assert not at.exception
    said = [t for t in _texts(at) if any(w in t.lower() for w in TIME_WORDS)]
    # the run button's own line is the one estimate (one per button: the lab's LR finder, GTL's sweep); no page
    # text gives a time of its own beside it ("about a minute or two" next to "no estimate yet")
    assert said and all(t.endswith(".") and "on this machine" in t for t in said), said
    assert len(said) <= RUN_BUTTONS.get(page, 2), said   # one line per run button (two on most pages)


def test_the_first_lab_run_is_estimated_from_the_backbones_reference_rate(tmp_path):
    empty = store.Store(tmp_path)
    cfg = contract.record(finetune.FinetuneConfig())
    seconds, based = serve.estimate("finetune", cfg, empty)
    assert based == 0 and seconds == pytest.approx(lab_cost.reference_seconds(cfg))
    heavier = serve.estimate("finetune", {**cfg, "backbone": "resnet50"}, empty)[0]
    augmented = serve.estimate("finetune", {**cfg, "augment": ["crop", "flip"]}, empty)[0]
    assert heavier > seconds and augmented > seconds
    # own images and a sweep share the lab's model; a sweep of one cell costs what that lab run costs
    sweep = contract.record(finetune.SweepConfig(shots=(5,), freezes=("all",)))
    assert serve.estimate("sweep", sweep, empty)[0] == pytest.approx(seconds, rel=0.01)
    assert serve.estimate("own", {**cfg, "dataset": "own: x.zip"}, empty)[0] > 0


def test_every_experiment_that_trains_has_a_first_run_estimate(tmp_path):
    """No page says "no estimate yet" before its first run: each experiment that trains has a reference rate (its
    own model, the table bench/references.py measured on the reference laptop, or its lender's), and the first run's
    estimate is that rate times the run's cost."""
    from tl_core import experiments
    from tl_core.serve import estimates

    empty = store.Store(tmp_path)
    table = estimates.references()
    assert table and set(table) <= set(experiments.EXPERIMENTS) and all(v > 0 for v in table.values())
    for name in experiments.EXPERIMENTS:
        if not experiments.module_of(name).startswith("tl_core."):
            continue   # a test's fake experiment
        exp = experiments.command(name)
        if not exp.trains() or exp.cost is None:
            continue
        cfg = contract.record(exp.config())
        seconds, based = serve.estimate(name, cfg, empty)
        assert based == 0 and seconds is not None and seconds > 0, name
        if name in table:
            assert seconds == pytest.approx(table[name] * exp.cost(cfg)), name

