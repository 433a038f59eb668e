"""The lecture in a real headless Chromium: on a prepared lecture, walk every step with the arrow keys and see
each step's chart (or its plain notice) at once; the projector view on a few steps (screenshots in artifacts/)."""
import re

import pytest
from fixtures import ARTIFACTS

from tl_core import lecture

pytestmark = pytest.mark.browser
N = len(lecture.STEPS)


@pytest.fixture(scope="module", autouse=True)
def _prepared_before_the_server_starts(prepared):
    """The server inherits TL_LECTURE_TINY and the prepared history (conftest.py's lecture_env, autouse: set up
    before `server`)."""
    return prepared


def _title(page, number: int):
    return page.get_by_role("heading", name=f"{number}. {lecture.step_at(number).title}")


def test_arrow_keys_walk_every_step_of_a_prepared_lecture_and_each_shows_its_chart(server, page, prepared):
    ran = {p.step.key for p in prepared if p.state in ("ran", "history", "instant")}
    page.goto(f"{server}/lecture?step=1")
    for number in range(1, N + 1):
        step = lecture.step_at(number)
        _title(page, number).wait_for(timeout=60_000)
        assert re.search(rf"[?&]step={number}\b", page.url), page.url
        main = page.locator("[data-testid='stMain']")
        if step.key in ran:
            main.locator(f".st-key-lec_chart_{step.key} .main-svg").first.wait_for(timeout=30_000)
            if step.trains():
                main.get_by_text("From the run history").wait_for(timeout=60_000)
            assert main.get_by_text("not available").count() == 0
        else:
            main.get_by_text("not available").first.wait_for(timeout=30_000)
        assert page.get_by_text("Traceback").count() == 0
        if number in (1, 3, 8):
            page.screenshot(path=str(ARTIFACTS / f"lecture_step{number}.png"))
        if number < N:
            page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    _title(page, N - 1).wait_for(timeout=30_000)
    assert re.search(rf"[?&]step={N - 1}\b", page.url)


# What a projector shows wrong, measured in the page: a control whose label is cut ("Project…", "St…"), and a chart's
# title or note (the text above its plots) that runs into a plot, an axis's labels or another such text.
LAYOUT_JS = """(key) => {
  const main = document.querySelector("[data-testid='stMain']");
  const cut = [...main.querySelectorAll(".stMarkdownEllipsis, button p, label p")]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim());
  const svg = main.querySelector(`.st-key-lec_chart_${key} .main-svg`).parentElement;
  const box = e => e.getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const plots = [...svg.querySelectorAll(".nsewdrag")].map(box);
  const top = Math.min(...plots.map(r => r.top));
  const labels = [...svg.querySelectorAll(".xtick text, .ytick text, .g-xtitle text, .g-ytitle text")].map(box);
  const above = [...svg.querySelectorAll(".gtitle, .annotation")].map(e => [e.textContent.trim(), box(e)])
    .filter(([, r]) => r.height > 0 && (r.top + r.bottom) / 2 < top);
  const over = [];
  for (const [i, [text, r]] of above.entries()) {
    if (plots.some(p => hit(r, p)) || labels.some(l => hit(r, l))) over.push(text);
    for (const [other, q] of above.slice(i + 1)) if (hit(r, q)) over.push(text + " / " + other);
  }
  return {cut, over};
}"""


@pytest.mark.parametrize("width,height", [(1400, 900), (1920, 1080)])
def test_projector_view_walks_every_step_with_its_chart_inside_the_window(server, page, prepared, width, height):
    """A teacher's projector: no sidebar, large type, every step's main chart and its sentence (the verdict) wholly
    inside the window without scrolling, no control's label cut, no title or note over a chart's plots or axis
    labels; no step carries a developer's note about settings the full page lacks. A screenshot of every step."""
    window = page.context.browser.new_context(viewport={"width": width, "height": height})
    try:
        page = window.new_page()
        page.goto(f"{server}/lecture?step=1&lec_big=true")
        for number in range(1, N + 1):
            step = lecture.step_at(number)
            _title(page, number).wait_for(timeout=60_000)
            chart = page.locator(f"[data-testid='stMain'] .st-key-lec_chart_{step.key} .main-svg").first
            chart.wait_for(timeout=30_000)
            page.wait_for_timeout(400)
            box = chart.bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= height + 1, (number, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (number, box)
            assert page.locator("section[data-testid='stSidebar']").is_visible() is False
            heading = _title(page, number).evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
            assert heading >= 34, heading
            assert page.get_by_text("has no setting for").count() == 0
            assert page.get_by_text("Traceback").count() == 0
            verdict = page.locator("[data-testid='stMain'] [data-testid='stAlert']").first
            if verdict.count():
                said = verdict.bounding_box()
                assert said["y"] >= 0 and said["y"] + said["height"] <= height + 1, (number, said)
            layout = page.evaluate(LAYOUT_JS, step.key)
            assert layout == {"cut": [], "over": []}, (number, layout)
            page.screenshot(path=str(ARTIFACTS / f"lecture_projector_{width}_step{number}.png"))
            if number < N:
                page.keyboard.press("ArrowRight")
    finally:
        window.close()


def test_projector_view_from_a_link(server, page, prepared):
    number = 2
    page.goto(f"{server}/lecture?step={number}&lec_big=true")
    _title(page, number).wait_for(timeout=60_000)
    page.locator("[data-testid='stMain'] [data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)   # let plotly finish drawing before the screenshot
    heading = _title(page, number).evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert heading >= 34   # large type (a normal h2 is about 29 px)
    title = page.locator("[data-testid='stPlotlyChart'] .gtitle").first.evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize || e.style.fontSize)")
    assert title >= 28
    shot = ARTIFACTS / f"lecture_projector_step{number}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000


def test_the_lecture_in_spanish_walks_every_step_from_the_same_runs(server, page, prepared):
    """A teacher's ?lang=es link: every step's title, words and verdict in Spanish, its chart drawn from the same run
    of the history as in English (nothing trains again), and no sentence of the catalogue left in English."""
    from tl_core import i18n

    spanish = i18n.catalogue("es")
    english = [m for m, t in spanish.items() if len(m.split()) >= 6 and "{" not in m and m != t]
    ran = {p.step.key for p in prepared if p.state in ("ran", "history", "instant")}
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{server}/lecture?step=1&lang=es")
    for number in range(1, N + 1):
        step = lecture.step_at(number)
        with i18n.using("es"):
            title = i18n.tr(step.title)
        page.get_by_role("heading", name=f"{number}. {title}").wait_for(timeout=60_000)
        main = page.locator("[data-testid='stMain']")
        if step.key in ran:
            main.locator(f".st-key-lec_chart_{step.key} .main-svg").first.wait_for(timeout=30_000)
            if step.trains():
                main.get_by_text("Del historial de ejecuciones").wait_for(timeout=60_000)
        shown = main.inner_text()
        left = [m for m in english if m in shown]
        assert not left, f"step {number} in Spanish still shows: {left[:3]}"
        assert "Traceback" not in shown
        if number in (1, 8):
            page.screenshot(path=str(ARTIFACTS / f"lecture_es_step{number}.png"))
        if number < N:
            page.keyboard.press("ArrowRight")
