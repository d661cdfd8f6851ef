"""Layers: the ``autotag`` package (layers/autotag, already ``python/autotag`` shaped), the
third-party dependencies built by layers/build_dependencies.py and, when the configuration runs the
offline vision model, the model layer built by layers/build_model.py --layer (onnxruntime for
arm64 in ``python/``, the model in ``autotag-model/``, so /opt/autotag-model in Lambda)."""

from __future__ import annotations

from pathlib import Path

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


class LayerNotBuiltError(Exception):
    """The dependency layer directory is missing; the message says how to build it."""


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
        if not (dependencies_dir / "python").is_dir():
            raise LayerNotBuiltError(
                f"the dependency layer is not built ({dependencies_dir / 'python'} is missing): "
                "run `make layer` (uv run python layers/build_dependencies.py) before synth"
            )
        self.package = lambda_.LayerVersion(
            self,
            ids.AUTOTAG_LAYER,
            code=lambda_.Code.from_asset(str(package_dir), exclude=PACKAGE_LAYER_EXCLUDES),
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

        self.model: lambda_.LayerVersion | None = None
        if model_dir is not None:
            missing = [p for p in (model_dir / "python", model_dir / MODEL_IN_LAYER) if not p.exists()]
            if missing:
                raise LayerNotBuiltError(
                    f"the vision model layer is not built ({', '.join(str(p) for p in missing)} missing): "
                    "run `make layer` (uv run python layers/build_model.py --layer) before synth"
                )
            self.model = lambda_.LayerVersion(
                self,
                ids.VISION_MODEL_LAYER,
                code=lambda_.Code.from_asset(
                    str(model_dir), exclude=[*ASSET_EXCLUDES, ".staging", "*.sha256", ".gitignore"]
                ),
                compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description="Offline vision model: EfficientNet-Lite0 (ONNX) and onnxruntime (arm64, cp312)",
            )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        """What every function that runs providers carries (the model layer only when configured)."""
        return [self.dependencies, self.package, *([self.model] if self.model else [])]
