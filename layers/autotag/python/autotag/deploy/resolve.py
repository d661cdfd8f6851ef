"""Which deployment config the tooling uses (the local stack, the operations CLI): an explicit
file, else ``$AUTOTAG_DEPLOY_CONFIG``, else ``config/default.toml`` in the repository — the same
resolution as the CDK app (``infra/config.py``)."""

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


class RepositoryNotFoundError(ConfigError):
    """No autotag repository (a folder with functions/ and layers/) around the working directory
    or the package."""


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder (from `start`, then from the package) with functions/."""
    candidates = [start or Path.cwd()]
    candidates.append(Path(__file__).resolve().parents[5])
    for candidate in candidates:
        for folder in (candidate, *candidate.parents):
            if (folder / "functions").is_dir() and (folder / "layers").is_dir():
                return folder
    raise RepositoryNotFoundError("cannot find the autotag repository (a folder with functions/ and layers/)")


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
    """The deployment config named by `option`, the environment or the repository's default (the
    built-in defaults, and no path, when there is none)."""
    raw = option or os.environ.get(DEPLOY_CONFIG_ENV)
    if raw:
        path = Path(raw)
    else:
        try:
            path = find_root() / DEFAULT_DEPLOY_CONFIG
        except RepositoryNotFoundError:
            return DeploymentConfig(), None
        if not path.exists():
            return DeploymentConfig(), None
    return load_any_config(path), path
