"""Transfer for text in a real headless Chromium: the tokenizer view, a small run (feature extraction vs
scratch at 2 sentences per topic), its curves and the nearest training sentences."""
import pytest
from fixtures import ARTIFACTS

pytestmark = pytest.mark.browser


def test_text_page_tokenizes_trains_and_shows_curves(server, page):
    page.goto(f"{server}/text?text_conditions=feature&text_conditions=last_k&text_shots=2&text_seeds=2&text_epochs=3")
    page.get_by_text("What the tokenizer does").wait_for(timeout=90_000)
    page.get_by_text("[SEP] ends it").wait_for(timeout=60_000)
    page.get_by_text("Choose topics and conditions").wait_for(timeout=60_000)   # the script has finished
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Overfitting curves").first.wait_for(timeout=240_000)
    page.get_by_text("Nearest training sentences, before and after fine-tuning").wait_for(timeout=60_000)
    # the fine-tuned column comes after the subheader: its model is rebuilt from the run's stages first (seconds on
    # a busy machine)
    page.get_by_text("after fine-tuning (fine-tune last 2 layers").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
    assert page.locator("[data-testid='stPlotlyChart']").count() == 1
    assert page.locator("[data-testid='stMetric']").count() == 2
    assert page.get_by_text("fine-tune last 2 layers").count() >= 1
    assert page.get_by_text("after fine-tuning (fine-tune last 2 layers").count() == 1
    assert page.get_by_text("Traceback").count() == 0
    shot = ARTIFACTS / "text.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
