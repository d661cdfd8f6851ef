"""Where the deployment config comes from: ``-c config=path`` (CDK context), else
``$AUTOTAG_DEPLOY_CONFIG``, else the ``config`` default in cdk.json. ``-c existing_bucket=name``
imports an existing bucket whatever the file says."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autotag.deploy.config import (
    DEFAULT_DEPLOY_CONFIG,
    DEPLOY_CONFIG_ENV,
    DeploymentConfig,
    load_deployment_config,
    parse_deployment_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / DEFAULT_DEPLOY_CONFIG


def config_path(context: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    raw = context.get("config") or env.get(DEPLOY_CONFIG_ENV)
    if not raw:
        return DEFAULT_CONFIG
    path = Path(str(raw))
    return path if path.is_absolute() else REPO_ROOT / path


def load(context: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> DeploymentConfig:
    """The validated deployment config; raises :class:`autotag.errors.ConfigError` with the problems."""
    config = load_deployment_config(config_path(context, environ))
    existing_bucket = context.get("existing_bucket")
    if existing_bucket:
        data = config.model_dump(mode="json")
        data["bucket"]["existing_name"] = str(existing_bucket)
        config = parse_deployment_config(data, origin="context existing_bucket")
    return config
