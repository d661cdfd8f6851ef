"""An in-memory :class:`autotag.credentials.SecretSource`: secrets by provider id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotag.config import ProviderConfig
from autotag.credentials import Secret


class StaticCredentials:
    """In-memory secrets by provider id; records which providers asked for a refresh."""

    def __init__(self, secrets: Mapping[str, Mapping[str, Any]]) -> None:
        self._secrets = {k: dict(v) for k, v in secrets.items()}
        self.refreshes: list[str] = []

    def set(self, provider_key: str, values: Mapping[str, Any]) -> None:
        self._secrets[provider_key] = dict(values)

    def get(self, provider: ProviderConfig, *, refresh: bool = False) -> Secret:
        if refresh:
            self.refreshes.append(provider.key)
        return Secret(self._secrets.get(provider.key, {}), source=f"static:{provider.key}")
