"""`transfer-lab app` (or `python -m tl_core app`): start the Streamlit app that goes with this tl_core.

Streamlit needs the app's files side by side: app.py, its page scripts under app_pages/ (a page's path is relative
to app.py) and .streamlit/config.toml (read beside the main script: this machine only, no file watcher, ...). In a
checkout they are the repository's root, the folder tl_core sits in; an installed Transfer Lab (`pip install .`)
has them in the package `transfer_lab_app`, installed beside tl_core (pyproject.toml). Streamlit's own flags follow
the command (`transfer-lab app --server.port 8502`). Streamlit is imported here only, when the app starts.
"""
from __future__ import annotations

from pathlib import Path

BESIDE = Path(__file__).resolve().parent.parent   # where tl_core is: a checkout's root, or site-packages
INSTALLED = "transfer_lab_app"                    # the package the app is installed as (pyproject.toml)


def app_script() -> Path:
    """app.py of the Transfer Lab this tl_core belongs to: the installed one beside it, else the checkout's."""
    for script in (BESIDE / INSTALLED / "app.py", BESIDE / "app.py"):
        if script.is_file():
            return script
    raise FileNotFoundError(f"the app is not beside tl_core: neither {BESIDE / INSTALLED / 'app.py'} nor "
                            f"{BESIDE / 'app.py'} exists (reinstall Transfer Lab: pip install .)")


def main(args: list[str]) -> int:
    """`streamlit run app.py ARGS` in this process (this Python, this tl_core); returns when the server stops."""
    from streamlit.web import cli as streamlit_cli

    return streamlit_cli.main(["run", str(app_script()), *args], prog_name="transfer-lab app")
