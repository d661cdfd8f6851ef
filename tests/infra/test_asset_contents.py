"""The autotag layer as the cloud assembly ships it: read from the synthesized asset directory
(``cdk.out/asset.<hash>``, what ``cdk deploy`` zips and uploads), not from the source tree.

It holds every module a function can execute (tests/support/import_graph.py) and the data files
they read, and nothing else: no tests, no fakes, no tooling (cli, local, ops, deploy), no bytecode
of another Python. Each handler then imports in a fresh interpreter with only its own folder, that
asset and the third-party dependencies on ``sys.path``: runtime code cannot reach tooling.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bench.bench_coldstart import child_environment, function_environment
from infra.package_asset import TOOLING_PACKAGES
from tests.infra.conftest import BUILT_LAYER, Synth
from tests.support.import_graph import HANDLERS, module_file, runtime_modules

pytestmark = pytest.mark.infra

PACKAGE_DATA = {
    "python/autotag/console/index.html",
    "python/autotag/console/app.js",
    "python/autotag/console/app.css",
    "python/autotag/vision/imagenet_vocabulary.json",
}
"""Files the runtime reads with importlib.resources (the console's page, the model's labels)."""
LAMBDA_BYTECODE = ".cpython-312.pyc"
RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six"})
"""In the Lambda Python runtime itself; not in the dependency layer (layers/build_dependencies.py)."""
FAKES = ("InMemoryImageStore", "InMemoryObjectStorage", "InMemoryPublisher", "InMemoryDeadLetterQueue")


def package_asset(synth: Synth) -> Path:
    layers = synth.resources_of("AWS::Lambda::LayerVersion")
    keys = [
        props["Properties"]["Content"]["S3Key"]
        for props in layers.values()
        if props["Properties"].get("Description", "").startswith("autotag package")
    ]
    assert len(keys) == 1, layers
    directory = synth.template_path.parent / f"asset.{keys[0].removesuffix('.zip')}"
    assert directory.is_dir(), directory
    return directory


@pytest.fixture(scope="module")
def asset(default: Synth) -> Path:
    return package_asset(default)


@pytest.fixture(scope="module")
def files(asset: Path) -> set[str]:
    return {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}


def test_the_asset_holds_every_runtime_module_and_its_data(asset, files):
    modules, _ = runtime_modules()
    # The same walk over the asset alone finds every module: none is missing from it.
    assert runtime_modules(asset / "python")[0] == modules
    assert files >= PACKAGE_DATA
    for name in ("upload", "subscriber", "api/app", "batch_tasks", "observability", "store/dynamodb"):
        assert f"python/autotag/{name}.py" in files


def test_the_asset_holds_nothing_else(asset, files):
    modules, _ = runtime_modules(asset / "python")
    runtime_files = {
        path.relative_to(asset).as_posix() for m in modules if (path := module_file(m, asset / "python"))
    }
    assert sorted(f for f in files if f.endswith(".py") and f not in runtime_files) == []
    others = {f for f in files if not f.endswith((".py", LAMBDA_BYTECODE))}
    assert sorted(others - PACKAGE_DATA) == []
    assert not [f for f in files if f.endswith(".pyc") and not f.endswith(LAMBDA_BYTECODE)]
    for name in TOOLING_PACKAGES:
        assert not [f for f in files if f.startswith(f"python/autotag/{name}/")], name
    assert not [f for f in files if "/tests/" in f or "/test_" in f or "fakes" in f]
    assert "python/autotag/store/memory.py" not in files


def test_the_runtime_bytecode_is_shipped_when_a_cpython_312_is_found(files):
    # /opt is read-only in Lambda: without shipped bytecode every cold start compiles the package.
    from infra.layers import _layer_build

    if _layer_build().target_python(install=False) is None:
        pytest.skip("no CPython 3.12 on this machine: the layer ships as source (synth warns)")
    sources = sorted(f for f in files if f.endswith(".py"))
    compiled = {f"{f.rsplit('/', 1)[0]}/{f.rsplit('/', 1)[1].removesuffix('.py')}" for f in sources}
    pycs = {
        f.replace("/__pycache__/", "/").removesuffix(LAMBDA_BYTECODE)
        for f in files
        if f.endswith(LAMBDA_BYTECODE)
    }
    assert sources
    assert compiled == pycs


def test_no_fake_is_shipped(asset, files):
    for name in sorted(f for f in files if f.endswith(".py")):
        text = (asset / name).read_text(encoding="utf-8")
        assert not [fake for fake in FAKES if f"class {fake}" in text], name
        assert "class StaticCredentials" not in text, name


_IMPORT_ALONE = """
import importlib.util, json, sys, sysconfig
task_root, layer, dependencies = sys.argv[1:4]
sys.path[:] = [task_root, layer, dependencies, *[p for p in sys.path if p.startswith(sys.base_prefix)]]
spec = importlib.util.spec_from_file_location("handler", task_root + "/handler.py")
module = importlib.util.module_from_spec(spec)
sys.modules["handler"] = module
spec.loader.exec_module(module)
assert callable(module.handler)
def where(m):  # a namespace package (autotag.api) has a __path__, no __file__
    return getattr(m, "__file__", None) or next(iter(getattr(m, "__path__", None) or []), None)
print(json.dumps({n: where(m) for n, m in list(sys.modules.items())}))
"""


def dependency_layer_packages() -> set[str] | None:
    """Top-level names the built dependency layer ships (None when `make layer` has not run)."""
    root = BUILT_LAYER / "python"
    if not root.is_dir():
        return None
    names = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    names |= {p.name.split(".")[0] for p in root.glob("*.so")}
    for record in root.glob("*.dist-info/top_level.txt"):
        names |= set(record.read_text().split())
    return names


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda p: p.parent.name)
def test_each_handler_imports_with_only_the_asset_and_its_dependencies(asset, handler):
    # -I -S: no PYTHONPATH, no site hook (so not the editable install of the whole package); -B: no
    # bytecode written into the synthesized asset.
    site_packages = sysconfig.get_paths()["purelib"]
    completed = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            _IMPORT_ALONE,
            str(handler.parent),
            str(asset / "python"),
            site_packages,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=child_environment(function_environment(handler.parent.name)),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    loaded: dict[str, str | None] = json.loads(completed.stdout.strip().splitlines()[-1])
    autotag_files = {n: f for n, f in loaded.items() if n == "autotag" or n.startswith("autotag.")}
    assert autotag_files, "the handler imported nothing of autotag"
    assert {n: f for n, f in autotag_files.items() if not (f and f.startswith(str(asset)))} == {}
    assert "aws_xray_sdk.ext.botocore.patch" in loaded  # tracing on, as deployed
    third_party = {n.split(".")[0] for n, f in loaded.items() if f and f.startswith(site_packages)}
    shipped = dependency_layer_packages()
    if shipped is not None:
        assert sorted(third_party - shipped - RUNTIME_PACKAGES) == []
