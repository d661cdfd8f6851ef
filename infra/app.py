"""The CDK app: ``npx cdk synth`` (cdk.json runs ``uv run python -m infra.app``).

Reads the deployment config (``-c config=path``), fails with the config's problems when it is
invalid, and runs the cdk-nag AwsSolutions checks over the stack on every synth.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# jsii prints a banner when Node is past its end of life (the value lists silenced major
# versions); the CDK CLI supports these releases, so the banner is only noise in synth output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk
from autotag.deploy.config import DeploymentConfig
from autotag.errors import ConfigError
from cdk_nag import AwsSolutionsChecks

from infra import config as deploy_config
from infra.layers import LayerNotBuiltError
from infra.stack import AutotagStack

CONTEXT_KEYS = ("config", "existing_bucket", "dependencies_layer_dir", "model_layer_dir")


def build(
    app: cdk.App,
    config: DeploymentConfig,
    *,
    dependencies_dir: Path | None = None,
    model_dir: Path | None = None,
    nag: bool = True,
) -> AutotagStack:
    """The stack in ``app``; tests call this with their own App and layer directory."""
    root = deploy_config.REPO_ROOT
    stack = AutotagStack(
        app,
        config.stack_name,
        config=config,
        code_root=root,
        dependencies_dir=dependencies_dir or root / "layers" / "dependencies",
        model_dir=model_dir or root / "layers" / "model",
    )
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> int:
    app = cdk.App()
    context: dict[str, Any] = {key: app.node.try_get_context(key) for key in CONTEXT_KEYS}
    try:
        config = deploy_config.load(context)
        layer_dir = context.get("dependencies_layer_dir")
        model_dir = context.get("model_layer_dir")
        build(
            app,
            config,
            dependencies_dir=Path(layer_dir) if layer_dir else None,
            model_dir=Path(model_dir) if model_dir else None,
        )
    except (ConfigError, LayerNotBuiltError) as exc:
        print(f"autotag synth failed: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
