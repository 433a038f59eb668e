"""A server a class shares (TL_SHARED=1), in a real Chromium with two browser sessions: one session's run on its
own upload is not shown to the other, which can neither delete it nor take its model, and the other can
delete only its own runs."""
import load_fault
import pytest
from fixtures import ARTIFACTS, TINY_TOY, link, photos_zip, query

from tl_core import store

pytestmark = pytest.mark.browser

SMALL_OWN = query(link("own", {"backbone": "shapes_cnn", "weights": "pretrained", "epochs": 3, "seeds": 1, "size": 32}))


def test_two_sessions_on_a_shared_server_keep_their_uploads_runs_and_models_apart(tmp_path):
    (tmp_path / "holiday.zip").write_bytes(photos_zip(6))
    data = tmp_path / "data"
    with load_fault.server(data, TL_SHARED="1") as (url, _), load_fault.chromium() as browser:
        a = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
        b = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
        a.goto(f"{url}/toy?{query(link('toy', TINY_TOY))}")                  # a's run of a built-in experiment
        a.get_by_text("What each network learned for task B").wait_for(timeout=120_000)
        a.goto(f"{url}/own?{SMALL_OWN}")                                   # and a's run on its own upload
        upload = a.locator("[data-testid='stFileUploader'] input[type='file']").first
        upload.set_input_files(str(tmp_path / "holiday.zip"))
        a.get_by_text("Your classes: 18 images from holiday.zip").wait_for(timeout=60_000)
        a.get_by_role("button", name="Train", exact=True).click()
        a.get_by_text("Overfitting curves").first.wait_for(timeout=240_000)
        try:   # the export (model.pt, model.onnx checked against torch) is made after the result is drawn
            a.get_by_role("button", name="Download the model").wait_for(timeout=120_000)
        finally:
            a.screenshot(path=str(ARTIFACTS / "own_shared.png"), full_page=True)
        kinds = sorted(r.kind for r in store.Store(data).runs())
        assert kinds == ["own", "toy"]
        db = store.Store(data)
        own, toy = sorted(db.runs(), key=lambda r: r.kind != "own")
        assert not db.result_file(own.id).exists()        # a's images and weights are never written to disk
        assert db.result_file(toy.id).is_file()           # a built-in experiment's result is, for the next session

        b.goto(f"{url}/runs")
        b.get_by_text("1 of 1 runs").first.wait_for(timeout=60_000)        # the toy run only
        main = b.locator("[data-testid='stMain']")
        assert "holiday" not in main.inner_text() and main.get_by_text("A shared server").count() == 1
        assert b.locator("[data-testid='stSidebar']").get_by_text("Runs train in: this process").count() == 1
        b.get_by_role("button", name="Label or delete").click()
        b.get_by_text("only the teacher can label or delete them").wait_for(timeout=30_000)
        assert b.get_by_role("button", name="Delete picked runs").count() == 0
        b.screenshot(path=str(ARTIFACTS / "runs_shared.png"), full_page=True)
        b.goto(f"{url}/own")                                               # no model of a's to take
        b.get_by_text("Upload a zip, or add classes").wait_for(timeout=60_000)
        assert b.get_by_role("button", name="Download the model").count() == 0

        a.goto(f"{url}/runs")
        a.get_by_text("2 of 2 runs").first.wait_for(timeout=60_000)        # a sees both of its runs
        assert len(store.Store(data).runs()) == 2
