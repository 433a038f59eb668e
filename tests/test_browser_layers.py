"""The two pages of what layers learn and which strategy, in a real headless Chromium."""
import pytest
from fixtures import ARTIFACTS

from tl_core import contract, store
from tl_core.experiments import domains

pytestmark = pytest.mark.browser

# a finished grid in the history (its numbers made up: this test is about drawing it, test_domains about measuring)
TINY = domains.DomainsConfig(datasets=("textures", "microscopy"), shots=(2, 5), seeds=2, epochs=2, image_size=32)
ACCS = {"feature_extraction": 0.9, "partial": 0.8, "full": 0.7, "scratch": 0.5}


def _settle(page):
    page.wait_for_timeout(1500)  # let plotly finish drawing every chart before the screenshot
    assert page.get_by_text("Traceback").count() == 0


def test_layers_page_draws_filters_and_activation_maps_without_training(server, page):
    page.goto(f"{server}/layers")
    page.get_by_text("press Fine-tune and measure", exact=False).first.wait_for(timeout=90_000)
    page.get_by_text("First-layer filters").first.wait_for(timeout=60_000)
    page.get_by_text("Activation maps per stage").first.wait_for(timeout=60_000)
    _settle(page)
    shot = ARTIFACTS / "layers.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert page.locator("[data-testid='stPlotlyChart']").count() == 2
    assert page.get_by_text("block 7", exact=True).count() >= 2   # Lite0's last spatial stage, for both models
    assert page.get_by_text("random init", exact=True).count() >= 1
    # each 3×3 kernel drawn big enough to see an edge's direction (it was about 27 px): 4 kernels a panel's row
    panel = page.locator(".st-key-lay_filters .imagelayer image").first.bounding_box()
    assert panel["width"] / 4 >= 48, panel


def test_domains_page_shows_the_grid_from_the_history_without_training(server, page):
    records = [{"dataset": ds, "domain": domains.DOMAINS[ds], "shots": sh, "strategy": st, "seed": seed,
                "val_acc": acc + 0.02 * seed, "train_acc": 1.0}
               for ds in TINY.datasets for sh in TINY.shots for st, acc in ACCS.items() for seed in range(TINY.seeds)]
    store.Store().record("domains", domains.DomainsResult(config=TINY.resolve(), records=records, seconds=1.0),
                         contract.record(TINY))
    query = "&".join([*(f"dom_datasets={d}" for d in TINY.datasets), *(f"dom_shots={s}" for s in TINY.shots),
                      f"dom_seeds={TINY.seeds}", f"dom_epochs={TINY.epochs}", f"dom_image_size={TINY.image_size}"])
    page.goto(f"{server}/domains?{query}")
    page.get_by_text("Shown from the run history").wait_for(timeout=90_000)
    page.get_by_text("Which strategy for which data, measured").first.wait_for(timeout=60_000)
    assert page.get_by_text("few data · near").count() >= 1
    assert page.get_by_text("No negative transfer here").count() == 1
    assert page.get_by_role("button", name="Re-run the grid").count() == 1
    _settle(page)
    shot = ARTIFACTS / "domains.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
