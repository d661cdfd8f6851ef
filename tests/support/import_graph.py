"""The static import graph of the ``autotag`` package as the functions reach it.

Starting from ``functions/*/handler.py``, every ``import`` and ``from ... import`` that runs (at
module level or inside a function: lazy imports count, ``if TYPE_CHECKING:`` blocks do not) and every
string naming an ``autotag`` module (the provider registry's ``"autotag.providers.x:Class"``) is
followed to the module it names. The result is every autotag module a function can ever execute.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = REPO_ROOT / "layers" / "autotag" / "python"
HANDLERS = tuple(sorted((REPO_ROOT / "functions").glob("*/handler.py")))


def module_file(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The file that defines module `name` under `root`, or None when it is not a module there."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run, skipping the body of ``if TYPE_CHECKING:`` (its else still runs)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_names(path: Path, name: str | None = None) -> set[str]:
    """Dotted names `path` imports (each ``from a import b`` gives ``a`` and ``a.b``), plus string
    constants that look like ``autotag.x`` module references."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if name is None:
                    continue
                package = _package_of(name, path)
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            reference = node.value.split(":", 1)[0]
            if reference.startswith("autotag.") and reference.replace(".", "").replace("_", "").isalnum():
                found.add(reference)
    return found


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str


def reachable(starts: Iterable[Path], root: Path = PACKAGE_ROOT) -> tuple[set[str], list[Edge]]:
    """The autotag modules reachable from `starts` (files outside the package, e.g. handlers), with
    each edge followed. A module's parent packages count too: importing ``autotag.a.b`` runs
    ``autotag/__init__.py`` and ``autotag/a/__init__.py``."""
    seen: set[str] = set()
    edges: list[Edge] = []
    queue: list[tuple[str, Path, str | None]] = [(str(p), p, None) for p in starts]
    while queue:
        label, path, name = queue.pop()
        for imported in sorted(imported_names(path, name)):
            if imported != "autotag" and not imported.startswith("autotag."):
                continue
            parts = imported.split(".")
            for depth in range(1, len(parts) + 1):
                candidate = ".".join(parts[:depth])
                target = module_file(candidate, root)
                if target is None:
                    continue
                edges.append(Edge(label, candidate))
                if candidate not in seen:
                    seen.add(candidate)
                    queue.append((candidate, target, candidate))
    return seen, edges


def runtime_modules(root: Path = PACKAGE_ROOT) -> tuple[set[str], list[Edge]]:
    """What the functions can execute of the package under `root`."""
    return reachable(HANDLERS, root)
