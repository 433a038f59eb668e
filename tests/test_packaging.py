"""Packaging (fast: files, the AST and installed metadata; nothing trains): what the code imports is what the project
declares, the console command is wired, and what `pip install .` builds holds the whole app.

The runtime dependencies are requirements.txt and the development tools requirements-dev.txt; pyproject.toml reads
both (setuptools' dynamic `dependencies` and the `dev` extra), so these tests read them the way pyproject says."""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
FIRST_PARTY = {"tl_core", "app_pages"}

# Runtime dependencies that no import statement in tl_core, app_pages, app.py or bench names, each with the reason it
# is needed anyway. Keep this list short: a package here must be loaded by another package, or read by path.
LOADED_WITHOUT_IMPORT = {
    # tl_core/export.py's torch.onnx.export (the TorchScript exporter) imports onnx inside torch, and torch does not
    # declare it: without it the export fails with "Module onnx is not installed!" (onnxruntime does not need it).
    "onnx",
}


def _name(requirement: str) -> str:
    """A requirement line's distribution name, normalised (PEP 503): 'PyYAML==6.0.4' → 'pyyaml'."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def _lines(files: list[str]) -> list[str]:
    out = []
    for file in files:
        for line in (ROOT / file).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    return out


def _dynamic(*keys: str) -> list[str]:
    entry = SETUPTOOLS["dynamic"]
    for key in keys:
        entry = entry[key]
    return entry["file"]


RUNTIME = _lines(_dynamic("dependencies"))
DEV = _lines(_dynamic("optional-dependencies", "dev"))


def _sources() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "tl_core").rglob("*.py")), *sorted((ROOT / "app_pages").rglob("*.py")),
            *sorted((ROOT / "bench").rglob("*.py"))]


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level module → the files importing it, for every import statement (also those inside functions) that
    names neither the standard library nor this project."""
    out: dict[str, list[str]] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    out.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return out


IMPORTS = _third_party_imports()


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()   # reads every installed distribution's file list: once


def _distributions_of(module: str) -> set[str]:
    return {_name(d) for d in _packages_distributions().get(module, [])}


def test_the_dependency_files_are_exact_pins_read_by_pyproject():
    assert PYPROJECT["project"]["dynamic"] == ["dependencies", "optional-dependencies"]
    assert _dynamic("dependencies") == ["requirements.txt"]
    assert _dynamic("optional-dependencies", "dev") == ["requirements-dev.txt"]
    for line in RUNTIME + DEV:   # setuptools reads these files: plain requirements, no pip options such as -r
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[\w.+!-]+", line), f"not an exact pin: {line!r}"
    runtime, dev = [_name(r) for r in RUNTIME], [_name(r) for r in DEV]
    assert len(set(runtime)) == len(runtime) and len(set(dev)) == len(dev)
    assert not set(runtime) & set(dev), "a package is either needed to run or a development tool, not both"
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(RUNTIME)   # local wheels: a looser pin downloads GBs
    assert {"pytest", "pytest-xdist", "ruff", "playwright"} <= set(dev)


def test_every_third_party_import_is_a_declared_runtime_dependency():
    declared = {_name(r) for r in RUNTIME}
    undeclared = {module: files[:3] for module, files in IMPORTS.items() if not _distributions_of(module) & declared}
    assert not undeclared, f"imported but not in requirements.txt (module → files): {undeclared}"


def test_every_declared_runtime_dependency_is_imported():
    imported = set().union(*(_distributions_of(module) for module in IMPORTS))
    unused = {_name(r) for r in RUNTIME} - imported - LOADED_WITHOUT_IMPORT
    assert not unused, f"pinned in requirements.txt but imported nowhere (drop them, or say why): {sorted(unused)}"
    assert not LOADED_WITHOUT_IMPORT & imported, "imported after all: take it out of LOADED_WITHOUT_IMPORT"
    assert LOADED_WITHOUT_IMPORT <= {_name(r) for r in RUNTIME}


def test_the_console_command_points_at_real_callables(monkeypatch):
    assert PYPROJECT["project"]["scripts"] == {"transfer-lab": "tl_core.cli:main"}
    module, _, attr = PYPROJECT["project"]["scripts"]["transfer-lab"].partition(":")
    main = getattr(importlib.import_module(module), attr)
    assert callable(main)
    # `transfer-lab app ARGS` is `streamlit run <app.py> ARGS` (in a checkout: this checkout's app.py)
    from streamlit.web import cli as streamlit_cli

    seen = []
    monkeypatch.setattr(streamlit_cli, "main", lambda args, prog_name: seen.append(args) or 0)
    assert main(["app", "--server.port", "8599"]) == 0
    assert seen == [["run", str(ROOT / "app.py"), "--server.port", "8599"]]


def test_no_module_in_tl_core_is_named_like_a_standard_library_module():
    clashes = [str(p.relative_to(ROOT)) for p in (ROOT / "tl_core").rglob("*")
               if "__pycache__" not in p.parts and (p.suffix == ".py" or p.is_dir())
               and p.stem in sys.stdlib_module_names]
    assert not clashes, f"named like a standard-library module (rename them): {clashes}"


def test_the_wheel_holds_every_package_and_the_app_beside_its_config():
    """pyproject lists the packages (the app's folder is the checkout's root, which `find` cannot express): every
    folder of tl_core and app_pages is listed, and app.py is the only module at the root (all of them would ship)."""
    packages = set(SETUPTOOLS["packages"])
    assert SETUPTOOLS["package-dir"] == {"transfer_lab_app": "."}
    for top, package in (("tl_core", "tl_core"), ("app_pages", "transfer_lab_app.app_pages")):
        folders = [p for p in [ROOT / top, *(ROOT / top).rglob("*")] if p.is_dir() and "__pycache__" not in p.parts]
        missing = {".".join([package, *f.relative_to(ROOT / top).parts]) for f in folders} - packages
        assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["app.py"]
    assert SETUPTOOLS["package-data"]["transfer_lab_app"] == [".streamlit/config.toml"]
    assert (ROOT / ".streamlit" / "config.toml").is_file()
    assert "pages.toml" in SETUPTOOLS["package-data"]["tl_core"]


@pytest.mark.parametrize("where", ["checkout", "installed"])
def test_the_app_is_found_beside_tl_core(where, tmp_path, monkeypatch):
    from tl_core import backbones, launch, pages

    if where == "installed":   # the wheel's layout: site-packages/{tl_core, transfer_lab_app/app.py}
        (tmp_path / launch.INSTALLED).mkdir()
        (tmp_path / launch.INSTALLED / "app.py").write_text("")
        monkeypatch.setattr(launch, "BESIDE", tmp_path)
        assert launch.app_script() == tmp_path / launch.INSTALLED / "app.py"
        return
    script = launch.app_script()
    assert script == ROOT / "app.py"
    assert all((script.parent / page.file).is_file() for page in pages.PAGES)
    assert backbones.SHAPES_CNN.is_file() and backbones.ASSETS.parent == ROOT / "tl_core"   # package data
