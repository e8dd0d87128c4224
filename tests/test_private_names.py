"""No private name crosses modules (issue 11): no graphdiff module imports another's
``_name`` (``from .x import _name``, ``from graphdiff.x import _name``) or reaches
one through an imported module (``x._name`` after ``from . import x``).

Read from the source with ``ast``, as tests/test_imports.py reads the import graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import graphdiff

PACKAGE = Path(graphdiff.__file__).parent
SOURCES = sorted([*PACKAGE.glob("*.py"), *(PACKAGE / "ops").glob("*.py")])


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def crossings(source: str) -> list[str]:
    """``module: name`` for each private name of another graphdiff module used here."""
    tree = ast.parse(source)
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] == "graphdiff"
        ):
            found += [f"{node.module or '.'}: {a.name}" for a in node.names if private(a.name)]
            # `from . import x` / `from .ops import x`: x may be a module
            modules.update(a.asname or a.name for a in node.names if not private(a.name))
        elif isinstance(node, ast.Import):
            modules.update(
                a.asname or a.name for a in node.names if a.name.split(".")[0] == "graphdiff"
            )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute) and private(node.attr)
            and isinstance(node.value, ast.Name) and node.value.id in modules
        ):
            found.append(f"{node.value.id}: {node.attr}")
    return found


def test_the_reader_finds_each_kind_of_crossing() -> None:
    src = (
        "from .jsonread import GraphFormatError, _show\n"
        "from graphdiff.predict import _fed as f\n"
        "from . import plan\n"
        "import graphdiff.codegen as cg\n"
        "from .io import __version__\n"
        "def g(self):\n    from .network import _x\n    return plan._step, cg._emit, self._own\n"
    )
    assert sorted(crossings(src)) == sorted([
        "jsonread: _show", "graphdiff.predict: _fed", "network: _x", "plan: _step",
        "cg: _emit",
    ])


def test_no_module_uses_another_modules_private_names() -> None:
    assert len(SOURCES) > 30
    found = {p.name: crossings(p.read_text(encoding="utf-8")) for p in SOURCES}
    assert {k: v for k, v in found.items() if v} == {}
