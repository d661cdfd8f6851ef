"""Provider credentials: one JSON secret per provider, cached, refreshed once on an auth error.

In AWS the secret lives in Secrets Manager (``secret_id`` in the provider config) and is read through
Powertools parameters with a cache. For local use, ``AUTOTAG_SECRET_<PROVIDER>`` (provider id
upper-cased, non-alphanumerics as ``_``) may hold the same JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Protocol

from autotag.config import ProviderConfig
from autotag.errors import AuthError

SECRET_ENV_PREFIX = "AUTOTAG_SECRET_"  # noqa: S105 - a variable-name prefix, not a secret
SECRET_MAX_AGE_SECONDS = 300


class Secret(Mapping[str, Any]):
    """A provider secret. Behaves as a read-only mapping but never prints its values."""

    def __init__(self, values: Mapping[str, Any], *, source: str) -> None:
        self._values = dict(values)
        self.source = source

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secret(keys={sorted(self._values)}, source={self.source!r})"

    __str__ = __repr__

    def require(self, *keys: str, provider: str) -> tuple[Any, ...]:
        missing = [k for k in keys if not self._values.get(k)]
        if missing:
            raise AuthError(
                f"secret from {self.source} lacks {', '.join(missing)}", provider=provider, code="auth_config"
            )
        return tuple(self._values[k] for k in keys)


class SecretSource(Protocol):
    def get(self, provider: ProviderConfig, *, refresh: bool = False) -> Secret: ...


def env_var_for(provider_key: str) -> str:
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", provider_key).upper()


def _parse(raw: object, *, origin: str, provider: str) -> Secret:
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise AuthError(
                f"secret from {origin} is not JSON", provider=provider, code="auth_config"
            ) from None
    if not isinstance(raw, dict):
        raise AuthError(f"secret from {origin} is not a JSON object", provider=provider, code="auth_config")
    return Secret(raw, source=origin)


class Credentials:
    """Resolves provider secrets: Secrets Manager by ``secret_id``, else the environment."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, max_age: int = SECRET_MAX_AGE_SECONDS
    ) -> None:
        self._environ = environ
        self._max_age = max_age

    def get(self, provider: ProviderConfig, *, refresh: bool = False) -> Secret:
        if provider.secret_id:
            from aws_lambda_powertools.utilities import parameters
            from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

            try:
                raw = parameters.get_secret(provider.secret_id, max_age=self._max_age, force_fetch=refresh)
            except NoRegionError:
                raise AuthError(
                    f"cannot read secret {provider.secret_id}: no AWS region is configured "
                    "(set AWS_REGION or AWS_DEFAULT_REGION)",
                    provider=provider.key,
                    code="auth_config",
                ) from None
            except (parameters.exceptions.GetParameterError, BotoCoreError, ClientError):
                # The underlying message can echo request details; keep ours plain.
                raise AuthError(
                    f"cannot read secret {provider.secret_id}", provider=provider.key, code="auth_config"
                ) from None
            return _parse(raw, origin=f"secret {provider.secret_id}", provider=provider.key)
        env = os.environ if self._environ is None else self._environ
        variable = env_var_for(provider.key)
        raw_env = env.get(variable)
        if raw_env is None:
            return Secret({}, source="(none)")
        return _parse(raw_env, origin=f"${variable}", provider=provider.key)
