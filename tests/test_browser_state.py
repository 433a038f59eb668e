"""The State-dict workshop in a real headless Chromium: upload a .pt through the real file input, see it
inspected, load it into the wrong head size, read the report, continue fine-tuning."""
import pytest
import torch
from fixtures import ARTIFACTS

from tl_core import state

pytestmark = pytest.mark.browser


def test_upload_inspect_load_report_and_continue(server, page, tmp_path):
    path = tmp_path / "shapes_module.pt"
    torch.save({"module." + k: v for k, v in state.export("shapes_cnn", "pretrained").items()}, path)
    page.set_viewport_size({"width": 1400, "height": 3400})   # every section in one screenshot
    page.goto(f"{server}/state")
    page.get_by_text("Weights to work with").wait_for(timeout=60_000)
    # a lab model's encoder only, through the real download button: every stage but the head
    page.get_by_text("Values per module: 242,666 in all").wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download encoder").click()
    assert download.value.suggested_filename == "shapes_cnn_pretrained_encoder.pt"
    encoder = state.read_path(download.value.path()).state
    full = state.export("shapes_cnn", "pretrained")
    assert set(encoder) == set(full) - {"fc.weight", "fc.bias"}
    assert all(torch.equal(encoder[k], full[k]) for k in encoder)
    page.screenshot(path=str(ARTIFACTS / "state_lab.png"))
    # then a DataParallel-style file through the real file input
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path))
    page.get_by_text("Uploaded file", exact=True).wait_for(timeout=60_000)   # the upload became the source
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text("Strict loading into shapes_cnn failed: 26 missing, 26 unexpected").wait_for(timeout=60_000)
    page.get_by_text("strip the prefix 'module.'").wait_for(timeout=10_000)
    page.get_by_label("Strip prefix").fill("module.")
    page.get_by_label("Strip prefix").press("Enter")
    page.get_by_label("Head classes (0 = its own)").fill("3")
    page.get_by_label("Head classes (0 = its own)").press("Enter")
    page.get_by_text("strict", exact=True).click()                                # strict off
    page.wait_for_timeout(1500)
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text("strict off: loaded 24 matching tensors").wait_for(timeout=60_000)
    page.get_by_role("button", name="Continue fine-tuning").click()
    page.get_by_text("Validation accuracy after 4 epochs").wait_for(timeout=240_000)
    page.get_by_text("Overfitting curves: train vs validation").first.wait_for(timeout=60_000)   # the lab's curves
    page.wait_for_timeout(1000)
    assert page.locator("[data-testid='stException']").count() == 0   # (the intro itself says "traceback")
    shot = ARTIFACTS / "state.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
