"""Spanish in a real browser: a teacher's link with ?lang=es opens the app in Spanish, the language stays as the
class moves between pages, and the switch brings English back (the link then says so)."""
import pytest
from fixtures import ARTIFACTS

pytestmark = pytest.mark.browser


def test_a_spanish_link_stays_spanish_across_pages_and_the_switch_brings_english_back(server, page):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{server}/?lang=es")
    page.get_by_role("heading", name="Un recorrido de 30 segundos").wait_for(timeout=90_000)
    nav = page.get_by_test_id("stSidebarNav")
    assert nav.get_by_text("Laboratorio de fine-tuning", exact=True).is_visible()
    page.screenshot(path=str(ARTIFACTS / "home_es_1400.png"))
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(ARTIFACTS / "home_es_1920.png"))
    nav.get_by_text("Glosario", exact=True).click()            # another page: still Spanish, and the link says so
    page.get_by_text("quedan en inglés").first.wait_for(timeout=60_000)
    page.wait_for_url("**/glossary?lang=es", timeout=30_000)
    page.get_by_test_id("stSidebar").get_by_text("English", exact=True).click()
    page.get_by_test_id("stSidebarNav").get_by_text("Fine-tuning lab", exact=True).wait_for(timeout=60_000)
    page.wait_for_url("**/glossary?lang=en", timeout=30_000)
    assert not page.get_by_text("quedan en inglés").count()
