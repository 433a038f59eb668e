"""The key flows in a real headless Chromium against a running `streamlit run app.py`.

Fixtures `server` and `page` (tests/conftest.py) start Streamlit and Chromium; tests marked `browser`
are skipped, with a plain reason, where Chromium is not installed. Screenshots land in artifacts/.
"""
from urllib.parse import urlsplit

import pytest
from fixtures import ARTIFACTS

pytestmark = pytest.mark.browser


def test_toy_page_draws_its_charts_and_verdict(server, page):
    page.goto(f"{server}/toy")
    page.get_by_text("Pretraining on task A helped").wait_for(timeout=120_000)
    charts = page.locator("[data-testid='stPlotlyChart'] .main-svg")
    charts.first.wait_for(timeout=60_000)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 3
    assert page.get_by_text("What each network learned for task B").count() >= 1
    assert page.get_by_text("Traceback").count() == 0
    # a deep link still gets the app's own navigation and the device line
    nav = page.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Regularisation toy" in nav and "Home" in nav
    assert page.get_by_text("Training device:").count() == 1
    shot = ARTIFACTS / "toy.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def test_home_links_to_the_toy(server, page):
    page.goto(server)
    page.get_by_text("A 30-second tour").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    page.locator("[data-testid='stMain'] a", has_text="Regularisation toy").first.click()
    page.get_by_text("Pretraining acts as a regulariser").wait_for(timeout=60_000)
    assert urlsplit(page.url).path.endswith("/toy")   # the query carries the session's language (?lang=en)


def test_finetune_lab_trains_in_the_browser_and_draws_its_curves(server, page):
    page.goto(f"{server}/finetune")
    page.get_by_text("press Train").first.wait_for(timeout=60_000)
    sidebar = page.locator("[data-testid='stSidebar']")
    # a fast, fully offline setup: Transfer Lab's own shapes CNN on the face / not-face photos
    sidebar.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="shapes_cnn").click()
    sidebar.locator("[data-testid='stSelectbox']").nth(1).click()
    page.get_by_role("option", name="faces").click()
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Overfitting curves").first.wait_for(timeout=240_000)
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=60_000)
    verdict = page.locator("[data-testid='stMain'] [data-testid='stAlert']").first.inner_text()
    assert "scratch" in verdict and "paired over 3 seeds" in verdict, verdict   # the claims rule's sentence
    assert page.get_by_text("Traceback").count() == 0
    shot = ARTIFACTS / "finetune.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
