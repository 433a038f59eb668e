"""The estimate before a run: one line per page, and the first lab run estimated from the backbone's reference rate."""

import fakes
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



def test_a_first_run_is_estimated_per_backbone_not_at_lite0s_rate(tmp_path):
    """Before any run here, each backbone's default run is estimated at its own rate, not at Lite0's: the shapes CNN
    and MobileNetV3 below it (channels-last speeds Lite0's scratch cells up most, so the shapes CNN is no longer a
    small fraction of it), ResNet-50 and VGG-11 above it."""
    empty = store.Store(tmp_path)
    cfg = contract.record(finetune.FinetuneConfig())
    lite0 = serve.estimate("finetune", cfg, empty)[0]
    assert 11 < lite0 < 18   # the default run: 13.8 s on the reference laptop (27.0 s / 1.95 on today's path)
    shapes = serve.estimate("finetune", {**cfg, "backbone": "shapes_cnn"}, empty)[0]
    assert shapes < 0.8 * lite0
    assert serve.estimate("finetune", {**cfg, "backbone": "mobilenet_v3_small"}, empty)[0] < 0.5 * lite0
    assert serve.estimate("finetune", {**cfg, "backbone": "resnet50"}, empty)[0] > 2 * lite0
    assert serve.estimate("finetune", {**cfg, "backbone": "vgg11_bn"}, empty)[0] > 5 * lite0


def test_a_pass_of_a_network_trained_whole_and_a_frozen_pass_have_their_own_rates():
    """Scratch (channels-last on a CPU) and the pretrained condition's cached features are priced apart: the
    estimate of 'both' is the sum of its two conditions', each at its own rate."""
    cfg = contract.record(finetune.FinetuneConfig())
    both = lab_cost.reference_seconds(cfg)
    alone = {w: lab_cost.reference_seconds({**cfg, "weights": w}) for w in ("scratch", "pretrained")}
    assert both == pytest.approx(alone["scratch"] + alone["pretrained"])
    assert lab_cost.trained_whole(finetune.FinetuneConfig(), "scratch")
    assert not lab_cost.trained_whole(finetune.FinetuneConfig(), "pretrained")
    assert lab_cost.trained_whole(finetune.FinetuneConfig(freeze="none"), "pretrained")
    assert lab_cost.trained_whole(finetune.FinetuneConfig(cache=False), "pretrained")
    # the estimate grows with seeds: scratch in proportion; the pretrained cell's later seeds share its frozen network
    # (tl_core.reuse), so each adds its passes and LATER_SEED_S, not a whole cell's fixed seconds; augmented, every
    # seed builds its own
    one = {w: lab_cost.reference_seconds({**cfg, "weights": w, "seeds": 1}) for w in ("scratch", "pretrained")}
    three = {w: lab_cost.reference_seconds({**cfg, "weights": w, "seeds": 3}) for w in ("scratch", "pretrained")}
    assert three["scratch"] == pytest.approx(3 * one["scratch"])
    lite0 = cfg["backbone"]
    assert 3 * one["pretrained"] - three["pretrained"] == \
        pytest.approx(2 * (lab_cost.CELL_S[lite0] - lab_cost.LATER_SEED_S[lite0]))
    assert 0 < lab_cost.LATER_SEED_S[lite0] < lab_cost.CELL_S[lite0]
    augmented = {**cfg, "weights": "pretrained", "augment": ["flip"]}
    assert lab_cost.reference_seconds({**augmented, "seeds": 3}) == \
        pytest.approx(3 * lab_cost.reference_seconds({**augmented, "seeds": 1}))
    scratch = {**cfg, "weights": "scratch"}
    ratio = lab_cost.reference_seconds({**scratch, "epochs": 30}) / lab_cost.reference_seconds(scratch)
    assert 1.8 < ratio < 2.0   # a cell's fixed seconds do not double


def test_augmentation_adds_the_cost_models_time():
    """Augmented, a scratch run costs the time to augment its training images every epoch more; the pretrained
    condition also runs its frozen prefix on them every epoch (no cache): well over its plain time."""
    cfg = contract.record(finetune.FinetuneConfig(weights="scratch"))
    aug = {**cfg, "augment": ["color", "crop", "flip"]}
    extra = lab_cost.reference_seconds(aug) - lab_cost.reference_seconds(cfg)
    assert extra == pytest.approx(3 * 15 * 50 * lab_cost.AUGMENT_MS / 1000)   # seeds x epochs x images x ms
    pre = {**cfg, "weights": "pretrained"}
    assert lab_cost.reference_seconds({**pre, "augment": ["flip"]}) > 1.5 * lab_cost.reference_seconds(pre)


def test_a_history_of_lite0_runs_scales_another_backbones_estimate_by_this_machines_rate(tmp_path):
    """After Lite0 runs that took twice their reference time here, a ResNet-18 run with augmentation is estimated
    at twice its own reference time: the rate is the machine's, the per-backbone model carries the rest."""
    db = store.Store(tmp_path)
    lite0 = contract.record(finetune.FinetuneConfig())
    for _ in range(3):
        db.record("finetune", fakes.Done(lite0, seconds=2 * lab_cost.reference_seconds(lite0)), config=lite0)
    other = {**lite0, "backbone": "resnet18", "weights": "scratch", "augment": ["crop", "flip"]}
    seconds, based = serve.estimate("finetune", other, db)
    assert based == 3 and seconds == pytest.approx(2 * lab_cost.reference_seconds(other))


@pytest.mark.slow
@pytest.mark.alone   # a ratio of times: make test runs it after the rest, alone
def test_estimates_of_two_real_runs_of_other_backbones_agree_within_30_percent():
    """Two small real runs in this process, interleaved, the fastest of three each: Lite0 from scratch, and the
    shapes CNN (both conditions) with augmentation. The history-based estimate of one from the other (this
    machine's rate from one, the cost model for the other) is within 30 % of its measured time."""
    import time
    from dataclasses import replace

    from tl_core import reuse

    base = finetune.FinetuneConfig(seeds=1, epochs=3)
    runs = {"lite0": replace(base, weights="scratch"),
            "shapes": replace(base, backbone="shapes_cnn", augment=("color", "crop", "flip"))}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(3):
        for key, cfg in runs.items():
            reuse.FEATURES.clear()
            reuse.SCRATCH.clear()
            start = time.perf_counter()
            finetune.run(cfg, device="cpu")
            best[key] = min(best[key], time.perf_counter() - start)
    rate = {k: best[k] / lab_cost.reference_seconds(contract.record(cfg)) for k, cfg in runs.items()}
    assert 0.7 < rate["lite0"] / rate["shapes"] < 1.3, (best, rate)
