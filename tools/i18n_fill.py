"""Write translations into a catalogue from a Python file defining ES = {msgid: translation} (a translator's
batch): `python tools/i18n_fill.py es batch.py`. Entries not in the catalogue are reported, not added (run
tools/i18n_sync.py first: the code decides which ids exist)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent


def main(lang: str, batch: str) -> int:
    table = runpy.run_path(batch)["ES" if lang == "es" else lang.upper()]
    path = ROOT / "tl_core" / "locales" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    unknown = [k for k in table if k not in cat]
    for m in cat:
        if m.id in table:
            m.string = table[m.id]
    with path.open("wb") as f:
        write_po(f, cat, width=120, sort_output=True, include_lineno=False)
    for k in unknown:
        print(f"not an id in the code: {k[:80]!r}")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
