"""Deployment settings: the names of the resources a function talks to, read once from its environment.

The CDK stack (``infra/``) and the local stack set exactly these variables; the tagging behaviour
itself comes from :mod:`autotag.config` (``AUTOTAG_CONFIG``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotag.errors import ConfigError


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


def load_settings(environ: Mapping[str, str] | None = None) -> RuntimeSettings:
    env = dict(os.environ if environ is None else environ)
    if "ALLOWED_BUCKETS" in env:
        env_buckets = [b.strip() for b in env["ALLOWED_BUCKETS"].split(",") if b.strip()]
        data: dict[str, object] = {**env, "ALLOWED_BUCKETS": tuple(env_buckets)}
    else:
        data = dict(env)
    try:
        return RuntimeSettings.model_validate(data)
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise ConfigError(f"function environment is incomplete or invalid: {missing}") from None


@lru_cache(maxsize=1)
def get_settings() -> RuntimeSettings:
    """Read once per process (``get_settings.cache_clear()`` in tests)."""
    return load_settings()
