"""Names (AST only, nothing imported): no module in tl_core, app_pages or bench uses a private name (a leading
underscore, not a dunder) of another of this project's modules, no page calls a module by one letter, and no two
classes in tl_core share a name.

A private name is its module's own business: `store._keep`, `from tl_core.x import _y` or `finetune._SCRATCH` used
from elsewhere means the name is not private after all (make it public) or the code using it belongs in its module
(move it there)."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("tl_core", "app_pages", "bench")

# The lead is reworking these four files (tl_core/serve.py, app_pages/ui.py, tl_core/cli.py, tl_core/lecture.py):
# their uses of other modules' private names as they stand, to be fixed there and then taken out of this list.
# Each entry: (file, the private name as the file writes it).
KNOWN: set[tuple[str, str]] = set()


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path: Path) -> str:
    """tl_core/experiments/gtl.py → tl_core.experiments.gtl; a package's __init__.py → the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_of(node: ast.ImportFrom, here: str, package: bool) -> str:
    """The module an ImportFrom reads from, a relative import resolved against module `here`."""
    if not node.level:
        return node.module or ""
    base = here.split(".") if package else here.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def ours(dotted: str) -> bool:
    """Whether `dotted` is in one of this project's packages (not the standard library's `os._exit`, say)."""
    return dotted.split(".")[0] in CHECKED


def violations(text: str, here: str, package: bool = False) -> list[str]:
    """Every use, in the source `text` of module `here`, of a private name of another of this project's modules, as
    written ('store._keep', 'Store._run') or, for an import, as the dotted name imported ('tl_core.store._keep')."""
    tree = ast.parse(text)
    owners: dict[str, str] = {}   # a name this file binds by importing it → what it names ('tl_core.store')
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not ours(a.name):
                    continue
                owners[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if any(private(p) for p in a.name.split(".")):
                    out.append(a.name)
        elif isinstance(node, ast.ImportFrom):
            source = source_of(node, here, package)
            if source == here or not ours(source):
                continue
            for a in node.names:
                if private(a.name) or any(private(p) for p in source.split(".")):
                    out.append(f"{source}.{a.name}")
                owners[a.asname or a.name] = f"{source}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in owners:
                owner = ".".join([owners[inner.id], *reversed(chain[1:])])
                if not (owner == here or owner.startswith(here + ".")):
                    out.append(".".join([inner.id, *reversed(chain)]))
    return out


def files() -> list[Path]:
    return sorted(p for d in CHECKED for p in (ROOT / d).rglob("*.py"))


def found() -> set[tuple[str, str]]:
    return {(str(p.relative_to(ROOT)), name) for p in files()
            for name in violations(p.read_text(), module_name(p), p.name == "__init__.py")}


def test_no_module_uses_another_modules_private_names():
    uses = found()
    new = sorted(uses - KNOWN)
    assert not new, ("private names of another module (make them public, or move the code into that module): "
                     + "; ".join(f"{f}: {n}" for f, n in new))
    fixed = sorted(KNOWN - uses)
    assert not fixed, "no longer used, so take them out of KNOWN: " + "; ".join(f"{f}: {n}" for f, n in fixed)


def test_the_check_sees_each_way_of_reaching_in():
    text = ("import os\nfrom tl_core import store\nfrom tl_core.experiments import finetune as ft\n"
            "import tl_core.claims\nfrom tl_core.store import _keep\nfrom . import _helpers\nfrom .store import Store\n"
            "store._write\nft._SCRATCH\ntl_core.claims._z\nstore.Store\nstore.__doc__\nself._own\nStore._run\n"
            "os._exit(0)\n")
    assert sorted(violations(text, "tl_core.somewhere")) == sorted([
        "tl_core.store._keep", "tl_core._helpers", "store._write", "ft._SCRATCH", "tl_core.claims._z", "Store._run"])
    assert violations("from tl_core import store\nstore._write\nstore.Store._run\n", "tl_core.store") == []   # its own


def test_no_page_calls_a_module_by_one_letter():
    """`from tl_core.experiments import text as exp` names the module; `as e`, or `S = store`, does not (a session
    state's `S = st.session_state`, or a config class's `C = inside.InsideConfig`, are not modules)."""
    found = []
    for p in sorted((ROOT / "app_pages").glob("*.py")):
        tree = ast.parse(p.read_text(), str(p))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    modules.add(a.asname or a.name.split(".")[0])
                    if a.asname and len(a.asname) == 1:
                        found.append(f"{p.name}: {a.name} as {a.asname}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and any(isinstance(t, ast.Name) and len(t.id) == 1 for t in node.targets)):
                found.append(f"{p.name}: {ast.unparse(node)}")
    assert not found, "modules called by one letter (use the module's name): " + "; ".join(found)


def test_no_two_classes_in_tl_core_share_a_name():
    where = defaultdict(list)
    for p in sorted((ROOT / "tl_core").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(f"{p.relative_to(ROOT)}:{node.lineno}")
    shared = {name: at for name, at in where.items() if len(at) > 1}
    assert not shared, "classes that share a name: " + "; ".join(f"{n} ({', '.join(a)})" for n, a in shared.items())
