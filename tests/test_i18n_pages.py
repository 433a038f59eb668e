"""Every word a page shows goes through the catalogue: a page script that hands Streamlit an English literal (a
title, a caption, a button's label or help) fails here, so a new page cannot land in one language only. Pages
rendered in Spanish show no English sentence the catalogue translates."""
import ast
import re

import pytest
from fixtures import ROOT, open_page

from tl_core import i18n

# Streamlit calls (and the pages' own helpers in app_pages/ui.py) whose text arguments a user reads
SHOWN = {"title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "button",
         "checkbox", "radio", "selectbox", "multiselect", "slider", "select_slider", "toggle", "metric", "expander",
         "download_button", "text_input", "text_area", "number_input", "file_uploader", "tabs", "popover", "write",
         "progress", "spinner", "toast", "form_submit_button", "page", "run_button", "auto_run", "page_link"}
TEXT_KEYWORDS = {"label", "help", "text", "body", "start", "placeholder", "intro", "settings", "caption"}
NAMES = {"Transfer Lab"}   # a name, the same in every language
KEY = re.compile(r"[a-z0-9_.\-]+|:material/\w+:")   # widget keys, chart keys, prefixes, experiment names, icons


def _english(node) -> bool:
    """A literal with words in it (not a key, not a name), or an f-string, list or sum holding one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip()
        return bool(re.search(r"[A-Za-z]{2}", text)) and not KEY.fullmatch(text) and text not in NAMES
    if isinstance(node, ast.JoinedStr):
        return any(_english(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _english(node.left) or _english(node.right)
    if isinstance(node, (ast.List, ast.Tuple)):
        return any(_english(e) for e in node.elts)
    return False


def untranslated(source: str) -> list[int]:
    """The lines of `source` where a shown text is an English literal rather than `tr(...)`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SHOWN:
            shown = [*node.args, *(k.value for k in node.keywords if k.arg in TEXT_KEYWORDS)]
            lines += [node.lineno for a in shown if _english(a)]
    return sorted(set(lines))


def test_the_check_finds_an_english_literal_and_passes_a_translated_one():
    assert untranslated('st.caption("Trained in 3 s")\nst.button(f"Train {n}", key="x_run")') == [1, 2]
    assert untranslated('st.caption(tr("Trained in {s} s", s=3))\nui.chart(fig, "toy_losses")\n'
                        'st.title("Transfer Lab")\nst.metric(tr("Seeds"), f"{a} / {b}")') == []


# every page script and the pages' own helpers (app.py: its one literal is the language switch, said in both
# languages); a new script is checked as soon as it exists
SCRIPTS = sorted(f"app_pages/{p.name}" for p in (ROOT / "app_pages").glob("*.py"))


def test_every_page_script_is_checked():
    """The scan is not empty, and it covers every page the navigation offers."""
    from tl_core import pages

    assert len(SCRIPTS) >= len(pages.PAGES)
    assert {f"app_pages/{p.script}.py" for p in pages.PAGES} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_page_shows_an_english_literal(script):
    lines = untranslated((ROOT / script).read_text(encoding="utf-8"))
    assert not lines, (f"{script} shows English text outside the catalogue on lines {lines}: wrap it in "
                       f"tr(...) and run tools/i18n_sync.py (docs/i18n.md)")


def _scripts():
    from tl_core import pages

    return [p.script for p in pages.PAGES]


SPANISH_PAGES = _scripts()


@pytest.mark.parametrize("page", SPANISH_PAGES)
def test_a_page_in_spanish_shows_no_sentence_left_in_english(page):
    """Rendered with ?lang=es, no text element holds an English sentence the catalogue has in Spanish (a string
    that reached the screen without tr)."""
    at = open_page(f"app_pages/{page}.py", {"lang": "es"})
    assert not at.exception
    spanish = i18n.catalogue("es")
    english = [m for m, t in spanish.items() if len(m.split()) >= 5 and "{" not in m and m not in t]
    shown = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                                  "success", "error") for e in at.get(kind) if isinstance(e.value, str)]
    shown += [getattr(e, "label", "") or "" for kind in ("button", "selectbox", "radio", "checkbox", "toggle",
                                                         "slider", "multiselect") for e in at.get(kind)]
    left = sorted({m for m in english for text in shown if m in text})
    assert not left, f"{page} in Spanish still shows: {left[:5]}"
