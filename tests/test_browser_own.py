"""Your own images in a real headless Chromium: upload a class-folder zip through the real file input,
train, classify a new photo, and screenshot the page (artifacts/own.png)."""
import pytest
from fixtures import ARTIFACTS, crops, encode, photos_zip

pytestmark = pytest.mark.browser


def test_upload_zip_train_and_predict_in_the_browser(server, page, tmp_path):
    (tmp_path / "my_photos.zip").write_bytes(photos_zip(6, top="my_photos/"))
    (tmp_path / "mug.jpg").write_bytes(encode(crops("coffee", 1, seed=42)[0]))
    page.set_viewport_size({"width": 1400, "height": 3600})  # tall enough for the prediction at the bottom
    page.goto(f"{server}/own")
    page.get_by_text("Upload a zip, or add classes").wait_for(timeout=60_000)
    assert page.get_by_text("upload up to 200 MB").count() >= 1          # the limit is stated
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(
        str(tmp_path / "my_photos.zip"))
    page.get_by_text("Your classes: 18 images from my_photos.zip").wait_for(timeout=60_000)
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.locator("[data-testid='stSelectbox']").first.click()         # a fast offline backbone
    page.get_by_role("option", name="shapes_cnn").click()
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Overfitting curves").first.wait_for(timeout=240_000)
    page.get_by_text("Accuracy per class").first.wait_for(timeout=60_000)
    # the predict uploader is the last file input on the page, once it is drawn (after the export)
    page.get_by_text("An image to classify").first.wait_for(timeout=120_000)
    page.locator("[data-testid='stFileUploader'] input[type='file']").last.set_input_files(str(tmp_path / "mug.jpg"))
    page.get_by_text("Prediction:").first.wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0
    assert page.get_by_role("button", name="Download the model").count() == 1
    page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
    shot = ARTIFACTS / "own.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
