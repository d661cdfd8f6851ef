"""Which deployment config the local stack (and the operations CLI) use.

The same resolution as the CDK app (``infra/config.py``): an explicit file, else
``$AUTOTAG_DEPLOY_CONFIG``, else ``config/default.toml`` in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from autotag.config import load_config_file
from autotag.deploy.config import (
    DEFAULT_DEPLOY_CONFIG,
    DEPLOY_CONFIG_ENV,
    DeploymentConfig,
    load_deployment_config,
)
from autotag.errors import ConfigError
from autotag.local.stack import find_root
from autotag.local.state import LocalStackError


def load_any_config(path: str | Path) -> DeploymentConfig:
    """A deployment config; a plain tagging config (``autotag config validate`` kind) also works."""
    try:
        return load_deployment_config(path)
    except ConfigError as deployment_error:
        try:
            tagging = load_config_file(path)
        except ConfigError:
            raise deployment_error from None
        return DeploymentConfig(tagging=tagging)


def resolve_config(option: str | Path | None) -> tuple[DeploymentConfig, Path | None]:
    raw = option or os.environ.get(DEPLOY_CONFIG_ENV)
    if raw:
        path = Path(raw)
    else:
        try:
            path = find_root() / DEFAULT_DEPLOY_CONFIG
        except LocalStackError:
            return DeploymentConfig(), None
        if not path.exists():
            return DeploymentConfig(), None
    return load_any_config(path), path
