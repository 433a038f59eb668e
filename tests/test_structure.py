"""The shape of the code (AST only, nothing imported, nothing trained): tl_core's imports form no cycle, no module
is over MAX_LINES lines, and no experiment module imports another one (experiments depend on the library).

The import graph counts every `import` and `from … import` statement wherever it is written: at module level, and
inside functions too (an import moved into a function to dodge a cycle is still that cycle). `from tl_core import
x` is an edge to the module tl_core.x when there is one (else to the package), relative imports are resolved
against the importing module, and an edge to a package is an edge to its __init__.py."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "tl_core"
SIZED = ("tl_core", "app_pages")   # folders whose modules MAX_LINES applies to
MAX_LINES = 520
EXPERIMENTS = "tl_core.experiments"

# Files other engineers are splitting right now, allowed over MAX_LINES until their split lands: the lead takes each
# out as it lands, and empties this set.
SPLITTING_NOW: set[str] = set()

# Experiment → experiment imports that wait on a split in SPLITTING_NOW (none now: gtl_sweep's ended when the GTL lab
# it builds on moved into the library, tl_core/gtl_lab.py). Each pair's target must be in SPLITTING_NOW; when it
# leaves that set, the pair must leave this one (the test says so).
WAITING_ON_SPLIT: set[tuple[str, str]] = set()


# ---- the graph ---------------------------------------------------------------------------------------------------

def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package, dotted name → file (a package's __init__.py under the package's name)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(tree: ast.AST, here: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """(module of `known`, line) for every import statement anywhere in `tree`, the source of module `here`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if is_package else here.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:
                if f"{source}.{a.name}" in known:        # from tl_core import store: the module tl_core.store
                    out.append((f"{source}.{a.name}", node.lineno))
                elif source in known:                     # from tl_core.store import Run: the module tl_core.store
                    out.append((source, node.lineno))
    return [(m, line) for m, line in out if m != here]


def graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, dict[str, int]]:
    """module → {module it imports: the first line that does}."""
    found = modules(root, package)
    out: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, line in imported(tree, name, path.name == "__init__.py", set(found)):
            edges.setdefault(target, line)
        out[name] = edges
    return out


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one cycle through them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [_loop(g, set(c)) for c in components]


def _loop(g: dict[str, dict[str, int]], members: set[str]) -> list[str]:
    """One cycle inside a strongly connected component: from its first module back to it (breadth first)."""
    start = min(members)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v]):
                if w == start:
                    return paths[v] + [start]
                if w in members and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return sorted(members)


def _where(g: dict[str, dict[str, int]], loop: list[str]) -> str:
    return " → ".join(f"{a} (line {g[a][b]})" for a, b in zip(loop, loop[1:])) + f" → {loop[-1]}"


# ---- the checks --------------------------------------------------------------------------------------------------

def test_tl_core_imports_form_no_cycle():
    g = graph()
    found = cycles(g)
    assert not found, ("import cycles (each edge: the importing module and the line of its import; move the shared "
                       "piece to where it belongs, or into a small module of its own): "
                       + "; ".join(_where(g, loop) for loop in found))


def test_no_module_is_over_the_line_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for folder in SIZED for p in sorted((ROOT / folder).rglob("*.py"))}
    over = {f: n for f, n in sizes.items() if n > MAX_LINES and f not in SPLITTING_NOW}
    assert not over, (f"modules over {MAX_LINES} lines (split them by topic): "
                      + ", ".join(f"{f} ({n})" for f, n in sorted(over.items())))


def test_no_experiment_imports_another_experiment():
    g = graph()
    experiments = {m for m in g if m.startswith(EXPERIMENTS + ".")}
    found = {(m, t): line for m in sorted(experiments) for t, line in g[m].items() if t in experiments}
    new = {pair: line for pair, line in found.items() if pair not in WAITING_ON_SPLIT}
    assert not new, ("an experiment imports another one (move what they share into the library, tl_core/*.py): "
                     + "; ".join(f"{m} line {line} imports {t}" for (m, t), line in sorted(new.items())))
    path = {m: str(p.relative_to(ROOT)) for m, p in modules().items()}
    stale = sorted(pair for pair in WAITING_ON_SPLIT if pair not in found or path.get(pair[1]) not in SPLITTING_NOW)
    assert not stale, f"take these out of WAITING_ON_SPLIT (gone, or their split has landed): {stale}"


def test_the_graph_sees_every_form_of_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__", "a", "b", "c", "d", "sub/__init__", "sub/e", "sub/f"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "a.py").write_text("import pkg.b\n\ndef later():\n    from pkg import c\n    return c\n")
    (pkg / "b.py").write_text("from pkg.d import something\nfrom .sub import e\n")
    (pkg / "sub" / "e.py").write_text("from . import f\nfrom ..c import x\nimport os\n")
    (pkg / "sub" / "f.py").write_text("from pkg import a  # function or module level: both are edges\n")
    g = graph(tmp_path, "pkg")
    assert set(g["pkg.a"]) == {"pkg.b", "pkg.c"}                   # module level and inside a function
    assert set(g["pkg.b"]) == {"pkg.d", "pkg.sub.e"}               # a name from a module; a relative module
    assert set(g["pkg.sub.e"]) == {"pkg.sub.f", "pkg.c"}           # from . import; from .. import; stdlib left out
    loop = cycles(g)
    assert len(loop) == 1 and set(loop[0]) == {"pkg.a", "pkg.b", "pkg.sub.e", "pkg.sub.f"}
    assert loop[0][0] == loop[0][-1]
    (pkg / "sub" / "f.py").write_text("")
    assert cycles(graph(tmp_path, "pkg")) == []
