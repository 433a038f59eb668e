"""Stop in a real browser: the lab's Stop ends training within an epoch, and the run stays in the history
as stopped with the epochs it finished."""
import re
import time

import pytest
from fixtures import ARTIFACTS, TINY_LAB, link, query

from tl_core import store

pytestmark = pytest.mark.browser

LONG_RUN = query(link("ft", {**TINY_LAB, "weights": "scratch", "shots": 20, "epochs": 100, "seeds": 1, "lr": 0.001}))


@pytest.mark.alone   # a latency: make test runs it after the rest, alone
def test_stop_ends_a_lab_run_within_an_epoch_and_keeps_it(server, page):
    page.goto(f"{server}/finetune?{LONG_RUN}")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"epoch ([3-9]|[1-9][0-9])/100")).first.wait_for(timeout=120_000)
    clicked = time.perf_counter()
    page.get_by_role("button", name="Stop").first.click()
    page.get_by_text("Stopped by the user").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "finetune_stopped.png"), full_page=True)
    # Streamlit starts the new page run at once (fast reruns) while the stopped one ends its epoch and
    # records itself: wait for the history to say so
    deadline = clicked + 60
    while time.perf_counter() < deadline:
        (run,) = [r for r in store.Store().runs(kind="finetune") if r.config.get("epochs") == 100]
        if run.status != "running":
            break
        time.sleep(0.1)
    latency = time.perf_counter() - clicked
    epochs = len(run.curves.get("conditions.scratch.history.val_acc", []))
    assert run.status == "stopped" and 3 <= epochs < 100, (run.status, epochs, run.message)
    assert latency < 10, f"Stop took {latency:.1f} s"
    print(f"Stop latency {latency:.2f} s; the stopped run kept {epochs} epochs")
