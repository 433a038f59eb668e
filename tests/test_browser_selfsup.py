"""The self-supervised page in a real headless Chromium: pretrain, compare, and look at it."""
import pytest
from fixtures import ARTIFACTS

pytestmark = pytest.mark.browser


def test_ssl_page_pretrains_and_draws_reconstructions_loss_and_comparison(server, page):
    page.goto(f"{server}/ssl")
    page.get_by_text("press Pretrain and compare").first.wait_for(timeout=60_000)
    assert "weights_only=True" in page.locator("[data-testid='stCode']").first.inner_text()  # the deck's flow
    page.get_by_role("button", name="Pretrain and compare").click()
    page.get_by_text("Accuracy vs number of labels").first.wait_for(timeout=300_000)
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=60_000)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 3
    assert page.get_by_text("Masked genes and their reconstruction").count() >= 1
    assert page.get_by_text("Reconstruction loss while pretraining").count() >= 1
    assert page.get_by_role("button", name="Download the encoder only (.pt)").count() == 1
    assert page.get_by_role("button", name="Stop").count() == 1  # ui.run_button
    assert page.get_by_text("Traceback").count() == 0
    shot = ARTIFACTS / "ssl.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
