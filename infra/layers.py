"""Layers: the ``autotag`` package (layers/autotag, already ``python/autotag`` shaped), the
third-party dependencies built by layers/build_dependencies.py and, when the configuration runs the
offline vision model, the model layer built by layers/build_model.py --layer (onnxruntime for
arm64 in ``python/``, the model in ``autotag-model/``, so /opt/autotag-model in Lambda)."""

from __future__ import annotations

import fnmatch
import importlib.util
import shutil
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import ids
from infra.package_asset import TOOLING_EXCLUDES

ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache"]
PACKAGE_LAYER_EXCLUDES = [*ASSET_EXCLUDES, *TOOLING_EXCLUDES]
"""The autotag layer holds what the functions import: the runtime modules and their data files."""
MODEL_IN_LAYER = Path("autotag-model") / "efficientnet-lite0.onnx"
"""Where the model sits in its layer: /opt/autotag-model/... in Lambda (autotag.vision.model)."""
DEPENDENCY_LAYER_EXCLUDES = [
    # Keep the runtime's bytecode (compiled by layers/build_dependencies.py: /opt is read-only, so
    # a layer without it is compiled again at every cold start); drop any other version's.
    "**/__pycache__/*.pyc",
    "!**/__pycache__/*.cpython-312.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    ".staging",
    ".inputs.sha256",  # the build stamp (a dotfile: "*.sha256" would not match it)
    ".gitignore",
]


@cache
def _layer_build() -> ModuleType:
    """layers/build_dependencies.py (a script, not a package): its CPython 3.12 finder and compiler."""
    path = Path(__file__).resolve().parents[1] / "layers" / "build_dependencies.py"
    spec = importlib.util.spec_from_file_location("autotag_layer_build", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@jsii.implements(ILocalBundling)
class PackageWithBytecode:
    """Bundles the autotag layer at synth, without Docker: the package minus `excludes`, compiled to
    the Lambda runtime's bytecode (``*.cpython-312.pyc``, unchecked-hash) when a CPython 3.12 is
    found. /opt is read-only in Lambda, so a layer shipped as source is compiled again at every
    cold start (bench/bench_coldstart.py prints what that costs each handler). Without a 3.12 the
    layer ships as source, as the dependency layer does."""

    def __init__(self, source: Path, excludes: list[str]) -> None:
        self._source = source
        self._excludes = excludes

    def _excluded(self, relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatch(relative, pattern)
            or fnmatch.fnmatch(name, pattern.removeprefix("**/"))
            or relative.startswith(pattern.rstrip("/") + "/")
            for pattern in self._excludes
        )

    def try_bundle(self, output_dir: str, *_: Any, **__: Any) -> bool:
        output = Path(output_dir)
        for path in sorted(self._source.rglob("*")):
            relative = path.relative_to(self._source).as_posix()
            if path.is_dir() or any(self._excluded(p) for p in _prefixes(relative)):
                continue
            (output / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, output / relative)
        build = _layer_build()
        build.compile_bytecode(output, build.target_python(install=False))
        return True


def _prefixes(relative: str) -> list[str]:
    """``a/b/c`` -> ``a``, ``a/b``, ``a/b/c``: an excluded folder excludes what it holds."""
    parts = relative.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class LayerNotBuiltError(Exception):
    """The dependency layer directory is missing; the message says how to build it."""


def _require_built(layer: str, paths: list[Path], build: str) -> None:
    """Stops synth with the command to run when a layer's build output is missing."""
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise LayerNotBuiltError(
            f"the {layer} is not built ({', '.join(str(path) for path in missing)} missing): "
            f"run `make layer` ({build}) before synth"
        )


class Layers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package_dir: Path,
        dependencies_dir: Path,
        model_dir: Path | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        _require_built(
            "dependency layer", [dependencies_dir / "python"], "uv run python layers/build_dependencies.py"
        )
        self.package = self._layer(
            ids.AUTOTAG_LAYER,
            lambda_.Code.from_asset(
                str(package_dir),
                exclude=PACKAGE_LAYER_EXCLUDES,
                # By what is shipped: the same source with and without bytecode are different layers.
                asset_hash_type=AssetHashType.OUTPUT,
                bundling=BundlingOptions(
                    # Never pulled: the local bundler always succeeds (bytecode when it can).
                    image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
                    local=PackageWithBytecode(package_dir, PACKAGE_LAYER_EXCLUDES),
                ),
            ),
            "autotag package: domain, providers, storage, events",
        )
        self.dependencies = self._layer(
            ids.DEPENDENCIES_LAYER,
            lambda_.Code.from_asset(str(dependencies_dir), exclude=DEPENDENCY_LAYER_EXCLUDES),
            "Third-party dependencies (arm64, cp312; boto3/botocore from the runtime)",
        )

        self.model: lambda_.LayerVersion | None = None
        if model_dir is not None:
            _require_built(
                "vision model layer",
                [model_dir / "python", model_dir / MODEL_IN_LAYER],
                "uv run python layers/build_model.py --layer",
            )
            self.model = self._layer(
                ids.VISION_MODEL_LAYER,
                lambda_.Code.from_asset(
                    str(model_dir), exclude=[*ASSET_EXCLUDES, ".staging", "*.sha256", ".gitignore"]
                ),
                "Offline vision model: EfficientNet-Lite0 (ONNX) and onnxruntime (arm64, cp312)",
            )

    def _layer(self, construct_id: str, code: lambda_.Code, description: str) -> lambda_.LayerVersion:
        """A layer for the functions' runtime: Python 3.12 on arm64."""
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=code,
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description=description,
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        """What every function that runs providers carries (the model layer only when configured)."""
        return [self.dependencies, self.package, *([self.model] if self.model else [])]
