"""The import graph of ``rsstab/`` has no cycle.

The graph is built statically with :mod:`ast`, from every ``import`` and ``from … import`` of an
``rsstab`` module anywhere in a module: at module level and inside functions, methods, ``try``
and ``with`` blocks alike (a function-level import is an edge too: it only postpones the circle).
How an edge is read:

* Relative imports are resolved against the importing module's package.
* ``from rsstab.x import name`` is an edge to ``rsstab.x.name`` when ``name`` is a submodule,
  else to ``rsstab.x``.
* An import of ``rsstab.a.b`` also executes the packages ``rsstab`` and ``rsstab.a``: those are
  edges too, except to the importing module's own ancestor packages. A module runs only while its
  package's ``__init__`` is already being imported, so ``rsstab.a.b`` naming ``rsstab.a`` (or a
  package ``__init__`` importing its own submodules, which then import siblings) is normal
  Python, not a circle.
* A package that re-exports lazily (``_LAZY = {name: module}`` handed to
  :func:`rsstab._lazy.lazy_attributes`) imports nothing when it runs; ``from pkg import name`` of
  a lazy name imports ``_LAZY[name]`` at that point, so the edge goes from the importer to that
  module (besides the one to ``pkg``). The package itself gets no edge to its lazy targets.
* ``if TYPE_CHECKING:`` blocks are left out: they never execute. Dynamic imports
  (``importlib.import_module("…")``, lazy maps aside) are not import statements and are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "rsstab"

#: Cycles not removed yet, each as the one edge (importer, imported) that closes it. The test leaves
#: these edges out, and fails once one is gone, so that its entry goes with the fix. None left.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its own name, for its __init__)."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth, outside ``if TYPE_CHECKING:`` bodies (their ``else``
    runs, so it is kept)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _string_map(node: ast.expr) -> dict[str, str]:
    """A ``_LAZY`` literal: ``{"name": "module", **dict.fromkeys(("a", "b"), "module")}``."""
    if not isinstance(node, ast.Dict):
        raise ValueError(f"unsupported _LAZY form at line {node.lineno}: {ast.unparse(node)}")
    out: dict[str, str] = {}
    for key, value in zip(node.keys, node.values):
        if key is not None:
            out[ast.literal_eval(key)] = ast.literal_eval(value)
        elif (isinstance(value, ast.Call) and ast.unparse(value.func) == "dict.fromkeys"
              and len(value.args) == 2):
            names, module = ast.literal_eval(value.args[0]), ast.literal_eval(value.args[1])
            out.update(dict.fromkeys(names, module))
        else:
            raise ValueError(f"unsupported _LAZY entry at line {value.lineno}: {ast.unparse(value)}")
    return out


def lazy_map(tree: ast.Module) -> dict[str, str]:
    """The module-level ``_LAZY`` map of a lazily re-exporting package (empty if none)."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "_LAZY"):
            return _string_map(node.value)
    return {}


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module → the ``package`` modules it imports (see the module docstring for the rules)."""
    files = module_files(root, package)
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in files.items()}
    lazy = {name: lazy_map(tree) for name, tree in trees.items()}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def known(name: str) -> str | None:
        """The longest prefix of ``name`` that is a module of the package."""
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in files:
                return ".".join(parts[:i])
        return None

    for module, tree in trees.items():
        is_package = files[module].name == "__init__.py"
        here = module if is_package else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (known(alias.name) for alias in node.names)))
                continue
            if node.level:
                base_parts = here.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            target = known(base)
            if target is None:
                continue
            targets.add(target)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in files:
                    targets.add(sub)
                elif target == base and alias.name in lazy[target]:
                    targets.add(lazy[target][alias.name])
        own_ancestors = set(_ancestors(module))
        for target in targets:
            for name in (*_ancestors(target), target):
                if name != module and name not in own_ancestors:
                    graph[module].add(name)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, …, a]``, or None if the graph is acyclic.

    Iterative depth-first search in sorted order, so the answer is deterministic."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        path = [start]
        colour[start] = GREY
        iterators = [iter(sorted(graph[start]))]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                iterators.pop()
                continue
            state = colour.get(nxt, WHITE)
            if state == GREY:
                return path[path.index(nxt):] + [nxt]
            if state == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                iterators.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_on_a_synthetic_graph() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None  # a diamond
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"a"}, "a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def _write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_import_graph_reads_every_kind_of_import(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg._lazy import lazy_attributes\n"
                           "_LAZY = {'thing': 'pkg.d', **dict.fromkeys(('x', 'y'), 'pkg.sub.c')}\n",
        "pkg/_lazy.py": "",
        "pkg/d.py": "",
        "pkg/a.py": "def f():\n    from . import b\n    from .sub.c import z\n",
        "pkg/b.py": "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
                    "else:\n    from pkg import x\n",
        "pkg/sub/__init__.py": "from pkg.sub import c\n",
        "pkg/sub/c.py": "import pkg.sub\nfrom .. import thing\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg"] == {"pkg._lazy"}                  # no edge to its lazy targets
    assert graph["pkg.a"] == {"pkg.b", "pkg.sub", "pkg.sub.c"}  # nested, relative, ancestors
    assert graph["pkg.b"] == {"pkg.sub", "pkg.sub.c"}     # TYPE_CHECKING left out, lazy name followed
    assert graph["pkg.sub"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.d"}                # own packages dropped, lazy name followed
    assert find_cycle(graph) is None
    _write(tmp_path, {"pkg/b.py": "def g():\n    from pkg import a\n"})
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]


def test_rsstab_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["rsstab.cli"], "the graph of rsstab/ was not read"
    for importer, imported in sorted(KNOWN_CYCLE_EDGES):
        assert imported in graph[importer], f"{importer} -> {imported} is gone: drop it from KNOWN_CYCLE_EDGES"
        graph[importer].discard(imported)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])

