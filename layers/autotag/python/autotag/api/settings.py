"""The API function's own settings (limits, upload keys), read once from its environment."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from autotag.settings import load_from_environment
from pydantic import BaseModel, ConfigDict, Field, field_validator

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    max_body_bytes: int = Field(
        default=6_000_000,
        alias="API_MAX_BODY_BYTES",
        gt=0,
        le=LAMBDA_SYNC_PAYLOAD_BYTES,
        description="Larger request bodies are refused with 413 (Lambda's synchronous payload limit)",
    )
    max_image_chars: int = Field(
        default=5_000_000,
        alias="API_MAX_IMAGE_CHARS",
        gt=0,
        description="Longest inline `image` (base64 or data URL); larger images go through /v1/uploads",
    )
    upload_prefix: str = Field(
        default="uploads/",
        alias="UPLOAD_PREFIX",
        max_length=200,
        description="Key prefix of presigned uploads",
    )
    upload_url_ttl_seconds: int = Field(default=900, alias="UPLOAD_URL_TTL_SECONDS", ge=60, le=7 * 86400)
    url_fetch_timeout_seconds: float = Field(default=10.0, alias="URL_FETCH_TIMEOUT_SECONDS", gt=0, le=25)
    url_sources: Literal["on", "off"] = Field(
        default="on",
        alias="URL_SOURCES",
        description="off: `url` sources are checked but never fetched (no DNS lookup, no connection); "
        "they answer fetch_failed",
    )
    safety_margin_seconds: float = Field(
        default=2.0, alias="API_SAFETY_MARGIN_SECONDS", ge=0, description="Kept back from the deadline"
    )
    max_request_seconds: float = Field(
        default=28.0,
        alias="API_MAX_REQUEST_SECONDS",
        gt=0,
        le=29,
        description="Work budget of one request (API Gateway's integration timeout is 29 s)",
    )

    @field_validator("upload_prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        value = value.lstrip("/")
        return value if not value or value.endswith("/") else value + "/"


def load_api_settings(environ: Mapping[str, str] | None = None) -> ApiSettings:
    return load_from_environment(ApiSettings, environ, invalid="API settings are invalid")


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return load_api_settings()
