"""Keep the message catalogues in step with the code: every string the code passes to `tr` or marks with `N_`
(tl_core, app_pages, app.py) becomes an entry of each language's `tl_core/locales/<lang>/LC_MESSAGES/messages.po`,
translations already there are kept, and entries the code no longer uses are dropped. Prints what still needs a
translator (an empty msgstr); `tests/test_i18n.py` fails while any is left.

    python tools/i18n_sync.py            # update the catalogues
    python tools/i18n_sync.py --check    # exit 1 if a catalogue is out of step or untranslated (changes nothing)
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tl_core import i18n  # noqa: E402

KEYWORDS = {"tr": None, "N_": None}
METHODS = [("tl_core/**.py", "python"), ("app_pages/**.py", "python"), ("app.py", "python")]
SKIP = ("**/.venv/**", "tests/**", "bench/**", "tools/**")


def used() -> dict[str, list[tuple[str, int]]]:
    """Every message id in the code → where it is used."""
    out: dict[str, list] = {}
    for name, line, msg, _comments, _ctx in extract_from_dir(
            str(ROOT), method_map=[*[(p, "ignore") for p in SKIP], *METHODS], keywords=KEYWORDS,
            comment_tags=(), strip_comment_tags=True):
        if isinstance(msg, str) and msg:
            out.setdefault(msg, []).append((name, line))
    from tl_core.pages import PAGES  # the navigation's titles and Home's page list, translated where shown

    for p in PAGES:
        for msg in (p.title, p.description):
            out.setdefault(msg, []).append(("tl_core/pages.toml", None))
    for where, msg in setting_texts():
        out.setdefault(msg, []).append((where, None))
    return out


def setting_texts() -> list[tuple[str, str]]:
    """(module file, text) for every word a settings widget shows: each experiment's declared settings
    (`contract.setting`: title, help, each choice's help), as `app_pages.widgets` shows and translates them."""
    import dataclasses
    import importlib

    from app_pages import widgets
    from tl_core import contract
    from tl_core.experiments import MODULES

    out, seen = [], set()
    for module in MODULES:
        for obj in vars(importlib.import_module(module)).values():
            if not (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__.startswith("tl_core")
                    and obj not in seen):
                continue
            seen.add(obj)
            file = obj.__module__.replace(".", "/") + ".py"
            try:
                declared = contract.settings(obj)
            except TypeError:     # a dataclass that is not a config
                continue
            out += [(file, text) for s in declared for text in widgets.texts(s) if text]
    return out


def path(lang: str) -> Path:
    return i18n.LOCALES / lang / "LC_MESSAGES" / "messages.po"


def synced(lang: str, ids: dict) -> tuple[bytes, list[str]]:
    """(the catalogue's new text, the ids with no translation yet)."""
    old = {}
    if path(lang).exists():
        with path(lang).open("rb") as f:
            old = {m.id: m.string for m in read_po(f) if m.id}
    cat = Catalog(locale=lang, project="Transfer Lab", version="1", copyright_holder="Transfer Lab",
                  msgid_bugs_address="the Transfer Lab issue tracker", last_translator="Transfer Lab",
                  language_team=f"Transfer Lab ({i18n.LANGS[lang]})", fuzzy=False,
                  header_comment=f"# {i18n.LANGS[lang]} messages of Transfer Lab (tools/i18n_sync.py keeps the ids "
                                 f"in step with the code).")
    missing = []
    for msg in sorted(ids):
        cat.add(msg, old.get(msg, ""), locations=sorted({(n, None) for n, _ in ids[msg]}))
        if not old.get(msg):
            missing.append(msg)
    buf = io.BytesIO()
    write_po(buf, cat, width=120, omit_header=False, sort_output=True, include_previous=False,
             include_lineno=False)
    return buf.getvalue(), missing


def _body(text: bytes) -> bytes:
    """A catalogue without its dates (they change on every write)."""
    return b"\n".join(x for x in text.splitlines() if not x.startswith((b'"POT-Creation', b'"PO-Revision')))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    ids, bad = used(), 0
    for lang in i18n.LANGS:
        if lang == i18n.DEFAULT:
            continue
        text, missing = synced(lang, ids)
        if args.check:
            now = path(lang).read_bytes() if path(lang).exists() else b""
            if _body(now) != _body(text):
                print(f"{path(lang).relative_to(ROOT)} is out of step with the code: run python tools/i18n_sync.py")
                bad = 1
        else:
            path(lang).parent.mkdir(parents=True, exist_ok=True)
            path(lang).write_bytes(text)
        for m in missing:
            print(f"{lang}: no translation yet: {m!r}")
        bad |= bool(missing)
    return bad


if __name__ == "__main__":
    sys.exit(main())
