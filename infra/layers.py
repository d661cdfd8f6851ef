"""Layers: the ``autotag`` package (layers/autotag, already ``python/autotag`` shaped) and the
third-party dependencies built by layers/build_dependencies.py."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import ids

ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache"]
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


class LayerNotBuiltError(Exception):
    """The dependency layer directory is missing; the message says how to build it."""


class Layers(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, package_dir: Path, dependencies_dir: Path
    ) -> None:
        super().__init__(scope, construct_id)
        if not (dependencies_dir / "python").is_dir():
            raise LayerNotBuiltError(
                f"the dependency layer is not built ({dependencies_dir / 'python'} is missing): "
                "run `make layer` (uv run python layers/build_dependencies.py) before synth"
            )
        self.package = lambda_.LayerVersion(
            self,
            ids.AUTOTAG_LAYER,
            code=lambda_.Code.from_asset(str(package_dir), exclude=ASSET_EXCLUDES),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="autotag package: domain, providers, storage, events",
        )
        self.dependencies = lambda_.LayerVersion(
            self,
            ids.DEPENDENCIES_LAYER,
            code=lambda_.Code.from_asset(str(dependencies_dir), exclude=DEPENDENCY_LAYER_EXCLUDES),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="Third-party dependencies (arm64, cp312; boto3/botocore from the runtime)",
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.package]
