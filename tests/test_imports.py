"""The static import graph of graphdiff's modules has no cycle.

Read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` at module level and inside functions counts, except those in
``if TYPE_CHECKING:`` blocks, which never run. The registry's ``importlib`` load
of ``graphdiff.ops`` is not an import statement, so it is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import graphdiff

PACKAGE = Path(graphdiff.__file__).parent


def module_names() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.glob("*.py")):
        mods["graphdiff" if path.stem == "__init__" else f"graphdiff.{path.stem}"] = path
    return mods


def imported(tree: ast.AST, mods: dict[str, Path]) -> set[str]:
    """The graphdiff modules a module's source imports (TYPE_CHECKING blocks aside)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for alt in child.orelse:
                    visit(alt)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:  # relative: inside the package (graphdiff/ is flat)
                    base = "graphdiff" + (f".{child.module}" if child.module else "")
                else:
                    base = child.module or ""
                for alias in child.names:  # `from . import io` imports the module io
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in mods else base)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(tree)
    return {m for m in found if m in mods}


def import_graph() -> nx.DiGraph[str]:
    mods = module_names()
    G: nx.DiGraph[str] = nx.DiGraph()
    G.add_nodes_from(mods)
    for name, path in mods.items():
        for target in imported(ast.parse(path.read_text(encoding="utf-8")), mods):
            if target != name:
                G.add_edge(name, target)
    return G


def test_the_reader_sees_imports_at_every_level() -> None:
    src = (
        "from typing import TYPE_CHECKING\n"
        "from .network import Network\n"
        "import graphdiff.plan\n"
        "from . import codegen, __version__\n"
        "if TYPE_CHECKING:\n    from .train import fit\n"
        "def f():\n    from .io import save\n"
        "class C:\n    def g(self):\n        if True:\n            from .viz import draw_network\n"
    )
    mods = module_names()
    assert imported(ast.parse(src), mods) == {
        "graphdiff.network", "graphdiff.plan", "graphdiff.codegen", "graphdiff",
        "graphdiff.io", "graphdiff.viz",
    }


def test_no_import_cycle_among_graphdiff_modules() -> None:
    G = import_graph()
    assert G.number_of_edges() > 20  # the reader found the imports
    assert G.has_edge("graphdiff.compile", "graphdiff.network")
    cycles = list(nx.simple_cycles(G))
    assert cycles == [], f"import cycles: {cycles}"
