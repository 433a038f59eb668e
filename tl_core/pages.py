"""Every page of the app, once: `app.py`'s navigation, Home's page list, the lecture's links and the tests'
page tables all read PAGES, in the sidebar's order, from `pages.toml` beside this file.

Adding a page is one block in pages.toml (and the thin script in `app_pages/`)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Page:
    title: str
    icon: str            # a Material icon name
    path: str            # the URL path ("" for Home, the default page)
    script: str          # the page script under app_pages/
    description: str     # one line: what the page shows (Home lists it)
    prefix: str = ""     # its widgets' keys and URL parameters start with this
    experiment: str = "" # the experiment it runs (its CLI command and history kind), if any

    @property
    def file(self) -> str:
        return f"app_pages/{self.script}.py"

    @property
    def url(self) -> str:
        return f"/{self.path}"


def _read() -> tuple[Page, ...]:
    with open(Path(__file__).with_name("pages.toml"), "rb") as f:
        return tuple(Page(**entry) for entry in tomllib.load(f)["page"])


PAGES: tuple[Page, ...] = _read()


def page(path: str) -> Page:
    """The page at a URL path ('finetune', '/finetune?x=1' or '' for Home)."""
    path = path.lstrip("/").split("?")[0]
    return next(p for p in PAGES if p.path == path)
