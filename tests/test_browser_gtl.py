"""The GTL lab in a real headless Chromium: run it with its defaults, see the guide's heat maps."""
import pytest
from fixtures import ARTIFACTS

pytestmark = pytest.mark.browser


def test_gtl_page_runs_and_draws_the_guide_heat_maps(server, page):
    page.goto(f"{server}/gtl")
    page.get_by_text("press Run GTL").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Run GTL").click()
    page.get_by_text("Where the scouts say weights should move").wait_for(timeout=240_000)
    page.get_by_text("Guide values per layer").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let plotly finish drawing every chart before the screenshot
    assert page.locator("[data-testid='stPlotlyChart']").count() == 6
    assert page.locator("[data-testid='stPlotlyChart'] .heatmaplayer").count() >= 1
    assert page.get_by_text("fc1 weights (64×400)").count() >= 1   # the layer in words (tl_core.names)
    assert page.get_by_text("What each scout learned").count() == 1
    assert page.get_by_text("When does guidance help?").count() >= 1
    assert page.get_by_text("guided").count() >= 1
    assert page.get_by_role("button", name="Download the guide (.pt)").count() == 1
    assert page.get_by_text("Traceback").count() == 0
    shot = ARTIFACTS / "gtl.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
