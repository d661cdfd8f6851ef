"""Synthesize the stack once per configuration per session.

The dependency layer: synth needs its directory. When `make layer` has built it
(layers/dependencies/python), the tests synthesize against the real one; otherwise against an
empty stand-in directory, so tests/infra never needs the network. The layer build itself is
checked by test_layer_build.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from autotag.deploy.config import DeploymentConfig, load_deployment_config
from autotag.deploy.specs import DeploymentResources

from infra.layers import MODEL_IN_LAYER

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "config" / "autotag.example.toml"
DEFAULT_CONFIG = REPO_ROOT / "config" / "default.toml"
BUILT_LAYER = REPO_ROOT / "layers" / "dependencies"
BUILT_MODEL_LAYER = REPO_ROOT / "layers" / "model"


@dataclass
class Synth:
    config: DeploymentConfig
    resources: DeploymentResources
    template: Any  # aws_cdk.assertions.Template
    raw: dict[str, Any]
    template_path: Path
    nag_report: dict[str, Any] | None
    stack: Any

    def resources_of(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))

    def nag_violations(self) -> list[dict[str, Any]]:
        if not self.nag_report:
            return []
        return [
            v for report in self.nag_report.get("pluginReports", []) for v in report.get("violations", [])
        ]


def synthesize(
    config: DeploymentConfig, outdir: Path, layer_dir: Path, *, extra=None, model_dir: Path | None = None
) -> Synth:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.app import build

    # The same feature flags the CLI passes from cdk.json.
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.pop("config")
    app = cdk.App(outdir=str(outdir), context=context)
    stack = build(app, config, dependencies_dir=layer_dir, model_dir=model_dir)
    if extra is not None:
        extra(stack)
    assembly = app.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    raw = artifact.template
    report_path = outdir / "validation-report.json"
    nag_report = json.loads(report_path.read_text()) if report_path.exists() else None
    return Synth(
        config=config,
        resources=stack.resources,
        template=Template.from_json(raw),
        raw=raw,
        template_path=Path(artifact.template_full_path),
        nag_report=nag_report,
        stack=stack,
    )


@pytest.fixture(scope="session")
def layer_dir(tmp_path_factory) -> Path:
    if (BUILT_LAYER / "python").is_dir():
        return BUILT_LAYER
    stand_in = tmp_path_factory.mktemp("dependencies")
    (stand_in / "python").mkdir()
    (stand_in / "python" / "README").write_text("stand-in for the dependency layer in tests\n")
    return stand_in


@pytest.fixture(scope="session")
def model_layer_dir(tmp_path_factory) -> Path:
    """The built model layer (make layer), else a stand-in with its shape."""
    if (BUILT_MODEL_LAYER / "python").is_dir() and (BUILT_MODEL_LAYER / MODEL_IN_LAYER).is_file():
        return BUILT_MODEL_LAYER
    stand_in = tmp_path_factory.mktemp("model")
    (stand_in / "python").mkdir()
    (stand_in / "python" / "README").write_text("stand-in for the model layer's runtime in tests\n")
    (stand_in / MODEL_IN_LAYER).parent.mkdir(parents=True)
    (stand_in / MODEL_IN_LAYER).write_bytes(b"stand-in")
    return stand_in


def _imported_variant() -> DeploymentConfig:
    data = load_deployment_config(EXAMPLE_CONFIG).model_dump(mode="json")
    data["bucket"] = {"existing_name": "team-photos", "access_logs": False}
    data["notifications"] = {"mode": "eventbridge"}
    data["api"]["allowed_buckets"] = ["shared-media"]
    data["tagging"]["providers"][0]["secret_id"] = "autotag/imagedescriber"
    data["tagging"]["providers"].append({"name": "huawei", "secret_id": _SECRET_ARN})
    return DeploymentConfig.model_validate(data)


_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:autotag/huawei-AbCdEf"


@pytest.fixture(scope="session")
def example(tmp_path_factory, layer_dir) -> Synth:
    """The example config: new bucket, imagedescriber (secret) + rekognition + basic, archive."""
    return synthesize(load_deployment_config(EXAMPLE_CONFIG), tmp_path_factory.mktemp("example"), layer_dir)


@pytest.fixture(scope="session")
def default(tmp_path_factory, layer_dir, model_layer_dir) -> Synth:
    """The default config cdk.json points at: the offline vision model and basic."""
    config = load_deployment_config(DEFAULT_CONFIG)
    return synthesize(config, tmp_path_factory.mktemp("default"), layer_dir, model_dir=model_layer_dir)


@pytest.fixture(scope="session")
def imported(tmp_path_factory, layer_dir) -> Synth:
    """Existing bucket by name, EventBridge notifications, imported secrets, an extra allowed bucket."""
    return synthesize(_imported_variant(), tmp_path_factory.mktemp("imported"), layer_dir)


@pytest.fixture(scope="session")
def vision(tmp_path_factory, layer_dir, model_layer_dir) -> Synth:
    """No [tagging] section: the default providers, the offline vision model plus basic."""
    config = DeploymentConfig()
    return synthesize(config, tmp_path_factory.mktemp("vision"), layer_dir, model_dir=model_layer_dir)


@pytest.fixture(params=["example", "default", "imported"])
def every(request) -> Synth:
    return request.getfixturevalue(request.param)
