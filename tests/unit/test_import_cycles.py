"""No import cycle among autotag's modules: the arrows of the package go one way.

Read from the source (AST), not by importing. Only module-level imports count: an import inside a
function runs late, on first use (how a module reaches tooling or heavy dependencies lazily), and an
``if TYPE_CHECKING:`` block never runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import autotag
import pytest

PACKAGE_DIR = Path(autotag.__file__).parent


def _module_name(path: Path, package_dir: Path) -> str:
    parts = ("autotag", *path.relative_to(package_dir).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_statements(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run on import (descending into if/try blocks, not into defs)."""
    found: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            pending.extend(node.orelse if _is_type_checking(node.test) else node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
        else:
            found.append(node)
    return found


def _imported(module: str, is_package: bool, node: ast.stmt) -> set[str]:
    """The dotted names an import statement imports (``from a import b``: ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    return {origin} | {f"{origin}.{alias.name}" for alias in node.names}


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Each autotag module and the autotag modules importing it runs.

    Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``; a module's own parent packages are
    left out (they are imported before the module itself runs, so they cannot wait on it).
    """
    files = {_module_name(path, package_dir): path for path in package_dir.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        targets: set[str] = set()
        for node in _top_level_statements(ast.parse(path.read_text(), filename=str(path))):
            for name in _imported(module, is_package, node):
                parts = name.split(".")
                targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[module] = {t for t in targets if t in files and t != module and t not in ancestors}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a path that starts and ends at the same module), or None."""
    finished: set[str] = set()
    for start in sorted(graph):
        if start in finished:
            continue
        path = [start]
        branches = [iter(sorted(graph[start]))]
        while branches:
            target = next(branches[-1], None)
            if target is None:
                branches.pop()
                finished.add(path.pop())
            elif target in path:
                return [*path[path.index(target) :], target]
            elif target not in finished:
                path.append(target)
                branches.append(iter(sorted(graph[target])))
    return None


def test_autotag_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50, "the package's modules were not found"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


A_B_A = ["autotag.pkg.a", "autotag.pkg.b", "autotag.pkg.a"]
TYPE_CHECKING_ONLY = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n"
INSIDE_TRY = "try:\n    import pkg.b\nexcept ImportError:\n    pass\n"


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ({"a": "from pkg import b\n", "b": "import pkg.a\n"}, A_B_A),
        ({"a": "from . import b\n", "b": "from .a import thing\n"}, A_B_A),
        ({"a": INSIDE_TRY, "b": "import pkg.a\n"}, A_B_A),
        ({"a": "def f():\n    from pkg import b\n", "b": "from pkg import a\n"}, None),
        ({"a": TYPE_CHECKING_ONLY, "b": "import pkg.a\n"}, None),
        ({"a": "from pkg import b\n", "b": "from pkg import c\n", "c": "x = 1\n"}, None),
    ],
    ids=["absolute", "relative", "inside-try", "lazy-import", "type-checking", "no-cycle"],
)
def test_the_check_sees_module_level_cycles_only(tmp_path, modules, expected):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in modules.items():
        (package / f"{name}.py").write_text(source.replace("pkg", "autotag.pkg"))
    assert find_cycle(import_graph(tmp_path)) == expected
