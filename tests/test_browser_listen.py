"""Machine listening in a real headless Chromium: a clip recorded through st.audio_input (Chromium's fake microphone
plays a shipped clip) is collected, with its count and spectrogram on the page; and the page's layout at a
projector's 1400x900 and 1920x1080, screenshots in artifacts/."""
import pytest
from fixtures import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _record(page, seconds: float = 2.0) -> None:
    page.get_by_role("button", name="Record").last.click()
    page.wait_for_timeout(int(seconds * 1000))
    page.get_by_role("button", name="Stop recording").click()


def test_a_clip_recorded_in_the_browser_is_collected_and_counted(server, mic_page):
    page, word = mic_page
    page.goto(f"{server}/listen")
    page.get_by_text("your own clips").wait_for(timeout=90_000)
    page.get_by_text("your own clips").click()
    page.get_by_label("New class (a word, or a speaker's name)").fill(word)
    page.get_by_role("button", name="Add class").click()
    page.get_by_text(f"Record {word} (0 clips)").wait_for(timeout=60_000)   # a class with no clip yet is kept
    _record(page)
    page.get_by_text(f"Record {word} (1 clip)").wait_for(timeout=60_000)
    page.get_by_text(f"Your clips (1): {word} 1.").wait_for(timeout=10_000)
    page.get_by_text("Log-mel spectrogram of").wait_for(timeout=30_000)     # the recording, heard back and drawn
    assert page.locator("audio").count() >= 1
    # one class only: the one line saying what is missing, and Train is off
    page.get_by_text("Training needs at least 2 classes with clips to tell apart; found 1").wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Train", exact=True).is_disabled()
    # a second class, one clip each: the next missing piece is said, and no clip was lost
    page.get_by_label("New class (a word, or a speaker's name)").fill("otra")
    page.get_by_role("button", name="Add class").click()
    page.get_by_text("Record otra (0 clips)").wait_for(timeout=60_000)
    _record(page)
    page.get_by_text("Your clips (2): cinco 1, otra 1.").wait_for(timeout=60_000)
    page.get_by_text("has only 1 clip, so none is left to validate on").wait_for(timeout=10_000)
    assert page.get_by_text("Traceback").count() == 0
    for width, height in ((1400, 900), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(1000)
        shot = ARTIFACTS / f"record_{width}x{height}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000


def test_the_listen_page_at_projector_sizes(server, mic_page):
    page = mic_page[0]   # one Chromium per module (two Playwright instances cannot share the thread)
    for width, height in ((1400, 900), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{server}/listen")
        page.get_by_text("Log-mel spectrogram of").wait_for(timeout=90_000)
        page.get_by_text("A language shift: English → Spanish").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)   # plotly draws
        assert page.get_by_text("Traceback").count() == 0
        shot = ARTIFACTS / f"listen_{width}x{height}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000
