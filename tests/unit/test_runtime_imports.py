"""Runtime code never imports tooling: no module a function can execute (found by following every
import from functions/*/handler.py, lazy ones included) lies in ``autotag.cli``, ``autotag.local``,
``autotag.ops`` or ``autotag.deploy``, which the Lambda asset leaves out (infra/layers.py)."""

from __future__ import annotations

from infra.package_asset import TOOLING_PACKAGES
from tests.support.import_graph import HANDLERS, PACKAGE_ROOT, Edge, module_name, runtime_modules

TOOLING = tuple(f"autotag.{name}" for name in TOOLING_PACKAGES)


def is_tooling(module: str) -> bool:
    return any(module == t or module.startswith(t + ".") for t in TOOLING)


def path_to(target: str, edges: list[Edge]) -> list[str]:
    """One chain of imports from a handler to `target` (for the failure message)."""
    parent: dict[str, str] = {}
    for edge in edges:
        parent.setdefault(edge.imported, edge.importer)
    chain = [target]
    while chain[-1] in parent and len(chain) < 50:
        chain.append(parent[chain[-1]])
    return chain[::-1]


def test_every_function_is_found():
    assert {p.parent.name for p in HANDLERS} == {"on_upload", "on_event", "tag_api", "on_batch"}


def test_the_graph_follows_lazy_and_registry_imports():
    # The control: the graph reaches what a function loads only on first use (the provider
    # registry's "autotag.providers.x:Class" strings, the store built in a function body).
    modules, _ = runtime_modules()
    assert {"autotag.providers.huawei", "autotag.providers.efficientnet", "autotag.store.dynamodb"} <= modules
    assert {"autotag.upload", "autotag.subscriber", "autotag.api.app", "autotag.batch_tasks"} <= modules


def test_runtime_modules_never_import_tooling():
    modules, edges = runtime_modules()
    offending = sorted(m for m in modules if is_tooling(m))
    assert not offending, "functions reach tooling: " + "; ".join(
        " -> ".join(path_to(m, edges)) for m in offending[:5]
    )


def test_every_package_module_is_runtime_or_tooling():
    # What is neither reachable from a function nor under a tooling package is dead weight in the
    # asset: move it under the tooling package that uses it, or delete it.
    modules, _ = runtime_modules()
    package = {module_name(p) for p in (PACKAGE_ROOT / "autotag").rglob("*.py")}
    assert sorted(m for m in package - modules if not is_tooling(m)) == []
