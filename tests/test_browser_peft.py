"""Parameter-efficient fine-tuning in a real headless Chromium: a tiny run (head only, LoRA r=4, full fine-tuning on
textures at 32 px, 2 seeds), its verdict, the methods table, both charts and the adapter download."""
import pytest
from fixtures import ARTIFACTS, TINY_PEFT, link, query

pytestmark = pytest.mark.browser

TINY = query(link("peft", {"methods": ("head", "lora", "full"), "ranks": (4,), **TINY_PEFT}))


def test_peft_page_trains_and_shows_costs_forgetting_and_the_adapter(server, page):
    page.goto(f"{server}/peft?{TINY}")
    page.get_by_text("Choose methods and ranks in the sidebar").wait_for(timeout=90_000)   # the script has finished
    assert page.get_by_text("This link had settings").count() == 0
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Accuracy against forgetting").first.wait_for(timeout=240_000)
    page.get_by_text("Accuracy against the fraction of weights trained").first.wait_for(timeout=60_000)
    page.get_by_text("predicts as the adapter does").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
    assert page.locator("[data-testid='stPlotlyChart']").count() == 2
    assert page.get_by_text("LoRA r=4 and full fine-tuning", exact=False).count() >= 1     # the claim names both
    assert page.get_by_role("button", name="Download the LoRA r=4 adapter", exact=False).count() == 1
    assert page.get_by_text("Traceback").count() == 0
    shot = ARTIFACTS / "peft.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
