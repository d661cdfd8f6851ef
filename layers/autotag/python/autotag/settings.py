"""Deployment settings: the names of the resources a function talks to, read once from its environment.

The CDK stack (``infra/``) and the local stack set exactly these variables; the tagging behaviour
itself comes from :mod:`autotag.config` (``AUTOTAG_CONFIG``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autotag.errors import ConfigError

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def load_from_environment(
    model: type[SettingsT],
    environ: Mapping[str, str] | None = None,
    *,
    invalid: str = "function environment is incomplete or invalid",
) -> SettingsT:
    """``model`` read from the environment (each field's alias is its variable's name).

    A missing or invalid variable is a :class:`ConfigError` that names the variables and never
    their values (``invalid`` starts its message).
    """
    try:
        return model.model_validate(dict(os.environ if environ is None else environ))
    except ValidationError as exc:
        names = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise ConfigError(f"{invalid}: {names}") from None


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(alias="TABLE_NAME", description="DynamoDB table: image records, tag index, cache")
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME")
    event_bus_name: str = Field(alias="EVENT_BUS_NAME")
    dlq_url: str | None = Field(
        default=None, alias="DLQ_URL", description="Where terminal failures are sent with their reason"
    )
    images_bucket: str | None = Field(
        default=None, alias="IMAGES_BUCKET", description="The watched bucket (presigned uploads go here)"
    )
    allowed_buckets: tuple[str, ...] = Field(
        default=(), alias="ALLOWED_BUCKETS", description="Buckets the API may read for s3 references"
    )
    idempotency_ttl_seconds: int = Field(default=3600, alias="IDEMPOTENCY_TTL_SECONDS", gt=0)
    aws_endpoint_url: str | None = Field(
        default=None, alias="AWS_ENDPOINT_URL", description="Set only against the local emulator"
    )

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(bucket.strip() for bucket in value.split(",") if bucket.strip())
        return value


def load_settings(environ: Mapping[str, str] | None = None) -> RuntimeSettings:
    return load_from_environment(RuntimeSettings, environ)


@lru_cache(maxsize=1)
def get_settings() -> RuntimeSettings:
    """Read once per process (``get_settings.cache_clear()`` in tests)."""
    return load_settings()
