"""Inside the model, and the lab's confusion-matrix cells with Grad-CAM, in a real headless Chromium (tiny configs:
the shapes CNN at 32 px, one epoch)."""
import pytest
from fixtures import ARTIFACTS, TINY_LAB, link, query

pytestmark = pytest.mark.browser

TINY = "in_backbone=shapes_cnn&in_dataset=textures&in_shots=2&in_epochs=1&in_image_size=32&in_seeds=2&in_cam=6"


def _settle(page):
    page.wait_for_timeout(1500)  # let plotly finish drawing every chart before the screenshot
    assert page.get_by_text("Traceback").count() == 0


def test_inside_page_trains_and_draws_cam_map_probe_and_cka(server, page):
    page.goto(f"{server}/inside?{TINY}")
    page.get_by_text("Press Train and look inside", exact=False).first.wait_for(timeout=90_000)
    page.get_by_role("button", name="Train and look inside").click()
    page.get_by_text("Which representations changed under full fine-tuning").first.wait_for(timeout=240_000)
    for title in ("Where each model looks", "How the classes separate", "Linear probe by depth"):
        assert page.get_by_text(title, exact=False).count() >= 1, title
    assert page.locator("[data-testid='stPlotlyChart']").count() == 4
    assert page.get_by_text("val acc", exact=False).count() >= 3          # one per model row of the Grad-CAM grid
    page.set_viewport_size({"width": 1400, "height": 4600})   # the whole page in one picture (it scrolls inside)
    _settle(page)
    shot = ARTIFACTS / "inside.png"
    page.screenshot(path=str(shot), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 2400})
    assert shot.stat().st_size > 50_000


def test_lab_confusion_cell_opens_its_images_with_their_maps(server, page):
    page.goto(f"{server}/finetune?{query(link('ft', {**TINY_LAB, 'epochs': 2, 'seeds': 1, 'weights': 'pretrained'}))}")
    page.get_by_text("Runs already trained with the same settings", exact=False).first.wait_for(timeout=90_000)
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Open a cell of the confusion matrix").first.wait_for(timeout=180_000)
    page.get_by_text("Grad-CAM at", exact=False).first.wait_for(timeout=60_000)
    assert page.get_by_text("image", exact=False).count() >= 1
    _settle(page)
    shot = ARTIFACTS / "finetune_cam.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 30_000
