"""The dependency layer build: requirement selection, wheel-tag and ELF checks, and the built layer.

The build itself downloads from PyPI (`make layer`); these tests need no network. When the layer
has been built, its real contents are checked too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

pytestmark = pytest.mark.infra

_spec = importlib.util.spec_from_file_location(
    "build_dependencies", REPO_ROOT / "layers" / "build_dependencies.py"
)
assert _spec
assert _spec.loader
build = importlib.util.module_from_spec(_spec)
sys.modules["build_dependencies"] = build
_spec.loader.exec_module(build)


def test_selection_from_the_lock_drops_runtime_packages_and_keeps_pins():
    selected = build.select_requirements(build.export_requirements())
    names = {line.split("==")[0] for line in selected}
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "pillow", "httpx"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
    assert all("==" in line and ";" not in line for line in selected)


def test_markers_are_evaluated_for_lambda_not_for_this_machine():
    exported = "\n".join(
        [
            "a==1 ; platform_machine == 'x86_64'",
            "b==1 ; platform_machine == 'aarch64'",
            "c==1 ; python_full_version < '3.12'",
            "d==1 ; sys_platform == 'win32'",
            "e==1 ; sys_platform == 'linux' and python_version >= '3.12'",
            "boto3==1.0",
            "# comment",
        ]
    )
    assert build.select_requirements(exported) == ["b==1", "e==1"]


def test_unpinned_requirements_are_refused():
    with pytest.raises(build.LayerBuildError, match="not pinned"):
        build.select_requirements("pydantic>=2\n")


def test_inputs_hash_changes_with_the_requirements():
    assert build.inputs_hash(["a==1"]) == build.inputs_hash(["a==1"])
    assert build.inputs_hash(["a==1"]) != build.inputs_hash(["a==2"])


@pytest.mark.parametrize(
    ("tag", "fits"),
    [
        ("py3-none-any", True),
        ("py2.py3-none-any", True),
        ("cp312-cp312-manylinux_2_28_aarch64", True),
        ("cp312-cp312-manylinux2014_aarch64", True),
        ("cp39-abi3-manylinux_2_17_aarch64", True),
        ("cp312-cp312-manylinux_2_28_x86_64", False),
        ("cp311-cp311-manylinux_2_28_aarch64", False),
        ("cp313-abi3-manylinux_2_28_aarch64", False),
        ("cp312-cp312-macosx_11_0_arm64", False),
        ("py2-none-any", False),
    ],
)
def test_wheel_tags(tag, fits):
    assert build.tag_fits_target(tag) is fits


def _dist(site: Path, name: str, tags: list[str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    info.joinpath("WHEEL").write_text("Wheel-Version: 1.0\n" + "".join(f"Tag: {t}\n" for t in tags))


def _elf(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + machine.to_bytes(2, "little")
    path.write_bytes(header + b"\x00" * 44)


def test_check_layer_flags_foreign_wheels_runtime_packages_and_x86_objects(tmp_path):
    _dist(tmp_path, "good", ["cp312-cp312-manylinux_2_28_aarch64"])
    _elf(tmp_path / "good" / "_speedups.cpython-312-aarch64-linux-gnu.so", 0xB7)
    assert build.check_layer(tmp_path) == []
    _dist(tmp_path, "intel", ["cp312-cp312-manylinux_2_28_x86_64"])
    _dist(tmp_path, "boto3", ["py3-none-any"])
    _elf(tmp_path / "intel.libs" / "libz.so.1", 0x3E)
    problems = "\n".join(build.check_layer(tmp_path))
    assert "intel: wheel tags" in problems
    assert "boto3 is provided by the Lambda runtime" in problems
    assert "libz.so.1 is built for ELF machine 0x3e" in problems


@pytest.mark.skipif(not build.SITE_DIR.is_dir(), reason="dependency layer not built (make layer)")
def test_the_built_layer_is_arm64_cp312_without_boto3_and_small():
    assert build.check_layer(build.SITE_DIR) == []
    names = {w.distribution for w in build.installed_wheels(build.SITE_DIR)}
    assert "pydantic-core" in names
    assert "pillow" in names
    assert not names & build.PROVIDED_BY_RUNTIME
    total = build.tree_size(build.SITE_DIR) + build.tree_size(build.AUTOTAG_LAYER_DIR / "python")
    assert total < build.SIZE_BUDGET_BYTES


# --- Bytecode: /opt is read-only, so the layer ships the runtime's .pyc or recompiles each cold start


def _pyc_flags(path: Path) -> int:
    # PEP 552 header: magic (4 bytes), then a little-endian flags word; 0b01 = hash-based, unchecked.
    return int.from_bytes(path.read_bytes()[4:8], "little")


_TARGET = build.target_python(install=False)  # never fetches an interpreter (no network in tests)


@pytest.mark.skipif(_TARGET is None, reason=f"no CPython {build.PYTHON_VERSION} on this machine")
def test_compile_bytecode_writes_unchecked_hash_pyc_for_the_runtime(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    assert build.compile_bytecode(tmp_path, _TARGET) == 1
    (compiled,) = (package / "__pycache__").glob("*.pyc")
    assert compiled.name == f"__init__.cpython-{build.PYTHON_VERSION.replace('.', '')}.pyc"
    assert _pyc_flags(compiled) == 0b01  # hash-based, source not checked: zip file times do not matter


@pytest.mark.skipif(
    _TARGET is None or not build.SITE_DIR.is_dir(),
    reason="dependency layer not built, or no CPython 3.12 to build its bytecode with",
)
def test_the_built_layer_ships_runtime_bytecode_for_what_the_handlers_import():
    tag = f"cpython-{build.PYTHON_VERSION.replace('.', '')}"
    for module in (
        "pydantic/main.py",
        "aws_lambda_powertools/logging/logger.py",
        "PIL/Image.py",
        "wrapt/__init__.py",
    ):
        source = build.SITE_DIR / module
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), f"{module} has no {tag} bytecode"
        assert _pyc_flags(compiled) == 0b01


def test_the_dependency_layer_asset_keeps_the_runtimes_bytecode_only():
    import aws_cdk as cdk

    from infra.layers import DEPENDENCY_LAYER_EXCLUDES

    ignore = cdk.IgnoreStrategy.glob("/layer", DEPENDENCY_LAYER_EXCLUDES)
    assert not ignore.ignores("/layer/python/pydantic/__pycache__/main.cpython-312.pyc")
    assert not ignore.ignores("/layer/python/pydantic/main.py")
    assert ignore.ignores("/layer/python/pydantic/__pycache__/main.cpython-311.pyc")
    assert ignore.ignores("/layer/.inputs.sha256")
