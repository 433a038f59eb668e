"""The words Transfer Lab shows, in English or Spanish, and numbers as each language writes them.

One gettext catalogue per language (`tl_core/locales/<lang>/LC_MESSAGES/messages.po`), read through Babel. The
English text is the message id, written in the code where it is used: `tr("{a} beats {b} by {gap} points",
a=..., b=..., gap=...)`; English needs no catalogue, and a Spanish entry missing shows the English text (a test
fails first: every `tr`/`N_` string must be in every catalogue, with the same placeholders). `N_` marks a string
for the catalogue without translating it yet (a table built at import; translated where it is shown).

The language is per script run (a Streamlit session's thread) or per command: a context variable, set by
`app.py` from `?lang=`, the sidebar switch or the browser (`st.context.locale`), and by the CLI's `--lang`
(else `TL_LANG`). JSON keys, recorded configs and URLs never change with it.

Numbers: `percent(0.925)` → "92.5%" / "92,5 %", `points(3.1)` → "+3.1 points" / "+3,1 puntos",
`number(1234.5)` → "1,234.5" / "1234,5" (Babel's CLDR data).
"""
from __future__ import annotations

import contextvars
import os
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

LANGS = {"en": "English", "es": "Español"}
DEFAULT = "en"
ENV = "TL_LANG"
LOCALES = Path(__file__).parent / "locales"
_LANG: contextvars.ContextVar[str | None] = contextvars.ContextVar("tl_lang", default=None)


def normal(lang: str | None) -> str | None:
    """'es', 'es-CL', 'es_ES' → 'es'; a language Transfer Lab does not speak (or nothing) → None."""
    head = re.split(r"[-_]", str(lang or "").strip().lower())[0]
    return head if head in LANGS else None


def language() -> str:
    """The language of this script run or command: as set, else TL_LANG, else English."""
    return _LANG.get() or normal(os.environ.get(ENV)) or DEFAULT


def set_language(lang: str | None) -> str:
    """Set this context's language (an unknown one: the default); returns the language now in use."""
    _LANG.set(normal(lang))
    return language()


@contextmanager
def using(lang: str | None):
    """The language for a block (a test, a handout written in another language), then the one before."""
    token = _LANG.set(normal(lang))
    try:
        yield language()
    finally:
        _LANG.reset(token)


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """msgid → translation of one language (English: empty; every id is its own English)."""
    path = LOCALES / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT or not path.exists():
        return {}
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id and isinstance(m.id, str) and m.string}


def N_(text: str) -> str:
    """Marks `text` for the catalogue, unchanged (a table built at import: `tr` it where it is shown)."""
    return text


def tr(text: str, **fill) -> str:
    """`text` in this context's language, with its `{placeholders}` filled."""
    said = catalogue(language()).get(text, text) if text else text
    return said.format(**fill) if fill else said


def _locale() -> str:
    return language()


def _exact(v):
    """A float as its exact binary value: Babel then rounds it as Python's f-strings do (half to even on the value
    itself, not on its shortest repr: 0.545 → "55%", as f"{0.545:.0%}" says), so English reads as it did."""
    from decimal import Decimal

    return Decimal(v) if isinstance(v, float) else v


def number(v: float, digits: int = 1, signed: bool = False) -> str:
    """A number as this language writes it: 1,234.5 / 1234,5 (Spanish groups thousands from 10 000)."""
    from babel.numbers import format_decimal

    body = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return format_decimal(_exact(v), format=f"+{body};-{body}" if signed else body, locale=_locale())


def fmt(v: float, spec: str = ",.0f") -> str:
    """`format(v, spec)` in English, byte for byte what an f-string gives (`:,.0f`, `:g`, `:.2f`, `:.0%`); in
    another language the same digits as it writes numbers (`number`, or `percent` for a `%` spec, with as many
    decimals)."""
    english = format(v, spec)
    share = english.endswith("%")
    body = english[:-1] if share else english
    if language() == DEFAULT or not body.lstrip("-").replace(",", "").replace(".", "").isdigit():
        return english      # English, or an exponent, inf or nan: as Python writes it
    digits = len(body.split(".")[1]) if "." in body else 0
    return percent(v, digits) if share else number(v, digits)


def percent(fraction: float, digits: int = 1) -> str:
    """A share as this language writes it: 92.5% / 92,5 % (with a no-break space)."""
    from babel import Locale
    from babel.numbers import format_percent

    pattern = Locale.parse(_locale()).percent_formats[None].pattern
    body = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    shown = _exact(fraction * 100).scaleb(-2) if isinstance(fraction, float) else fraction   # x100 as f"{:%}" does
    return format_percent(shown, format=pattern.replace("#,##0", body, 1), locale=_locale())


def points(p: float, digits: int = 1, signed: bool = True) -> str:
    """A gap in points of accuracy: +3.1 points / +3,1 puntos (one point: "1 point" / "1 punto")."""
    text = number(p, digits, signed)
    one = abs(p) == 1 and digits == 0
    return tr("{n} point", n=text) if one else tr("{n} points", n=text)
