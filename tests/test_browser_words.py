"""A user's words, read off the screen of a real headless Chromium, and nothing asked of another host: no page
shows an internal identifier (a condition's key such as `last_k` or `conv_pwl`, a parameter's dotted name such as
`body.fc1.weight`) or a file path, no page asks any host but the local server, and the navigation lists every page
(Runs too, which Home's tour names) with no "View N more"."""
import re
from urllib.parse import urlsplit

import pytest

from tl_core.pages import PAGES

pytestmark = pytest.mark.browser

# what the code calls things, that a page must say in words (tl_core.names); backbone ids such as efficientnet_lite0
# are the models' published names, and a page may name them
IDENTIFIERS = re.compile(r"\b(last_k|feature_extraction|freeze_head_only|ssl_frozen|ssl_finetuned|lora_r\d+|"
                         r"conv_pwl?|conv_head|conv_dw|val_acc|train_loss)\b|\b\w+\.\w+\.(weight|bias)\b")
PATHS = re.compile(r"(?<![\w.])(/(tmp|home|work|root|var|usr|Users)/[\w./-]+|[A-Z]:\\\S+|\S+\.(db|sqlite3?)\b)")


def _shown(page) -> str:
    """The text a user sees: the main column and the sidebar (help tooltips stay closed), the chips of a
    multi-choice setting too (conditions are checkboxes in words; the chips left are topics, datasets, numbers)."""
    page.get_by_role("heading", level=1).first.wait_for(timeout=90_000)
    page.wait_for_timeout(2500)   # the page's script finishes after its title
    return page.inner_text("body")   # innerText leaves out what is not displayed


def test_no_page_shows_an_internal_identifier_or_a_file_path_or_asks_another_host(server, page):
    """One walk over every page (and the lecture's projector view) for both: what it shows, and whom it asks.
    Nothing leaves the machine, so the app works in a classroom without internet (the page icon was a Material
    icon, which Streamlit's browser code fetches from Google's font server)."""
    here, asked, found = urlsplit(server).netloc, [], {}
    page.on("request", lambda request: asked.append(request.url))
    for p in PAGES:
        page.goto(f"{server}/{p.path}")
        text = _shown(page)   # icons, fonts and charts load after the page's first paint: it waits for them too
        bad = [m.group(0) for m in IDENTIFIERS.finditer(text)] + [m.group(0) for m in PATHS.finditer(text)]
        if bad:
            found[p.title] = sorted(set(bad))
    page.goto(f"{server}/lecture?step=4&lec_big=true")
    page.get_by_role("heading", level=2).first.wait_for(timeout=90_000)
    page.wait_for_timeout(2500)
    assert not found, found
    outside = sorted({u for u in asked if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != here})
    assert asked and not outside, outside
    favicon = page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href")
    assert urlsplit(favicon).scheme == "data" or urlsplit(favicon).netloc == here, favicon


def test_the_navigation_lists_every_page_with_nothing_under_view_more(server, page):
    page.goto(server)
    _shown(page)
    nav = page.get_by_test_id("stSidebarNav")
    assert not page.get_by_test_id("stSidebarNavViewButton").count()
    for p in PAGES:
        assert nav.get_by_text(p.title, exact=True).first.is_visible(), p.title
