"""`AutotagConfig`: what to tag with and how, validated once.

The same model is read by the CLI (TOML or JSON file), by the Lambda functions (one JSON
environment variable, or an SSM parameter holding that JSON) and by the CDK app, so a config that
synthesizes is a config the functions accept.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autotag.errors import ConfigError

CONFIG_ENV = "AUTOTAG_CONFIG"
"""Environment variable holding the whole config as JSON."""
CONFIG_PARAMETER_ENV = "AUTOTAG_CONFIG_PARAMETER"
"""Environment variable naming an SSM parameter that holds the config JSON."""

S3_MAX_OBJECT_TAGS = 10


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Model):
    name: str = Field(description="Registered provider name, e.g. 'basic', 'rekognition', 'huawei'")
    id: str | None = Field(
        default=None, description="Distinct id when one provider is configured twice (defaults to name)"
    )
    endpoint: str | None = Field(default=None, description="Override of the provider's base URL")
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tags: int | None = Field(default=None, ge=0, le=1000)
    lang: str | None = Field(default=None, min_length=2, max_length=10)
    secret_id: str | None = Field(
        default=None, description="Secrets Manager secret (name or ARN) holding this provider's JSON"
    )
    timeout_seconds: float = Field(default=20.0, gt=0, le=900)
    max_attempts: int = Field(default=3, ge=1, le=10, description="HTTP attempts per call, first included")
    rate_limit_per_minute: float | None = Field(
        default=None, gt=0, description="Requests/minute one key may make; sizes Lambda concurrency"
    )
    price_per_1000: float | None = Field(default=None, ge=0, description="USD per 1,000 images")
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific options")

    @property
    def key(self) -> str:
        return self.id or self.name


class S3TagPolicy(_Model):
    enabled: bool = True
    key_prefix: str = Field(
        default="autotag:",
        min_length=1,
        max_length=32,
        description="Prefix of the object tag keys autotag owns; tags without it are the user's",
    )
    max_tags: int = Field(
        default=S3_MAX_OBJECT_TAGS,
        ge=0,
        le=S3_MAX_OBJECT_TAGS,
        description="Most object tags autotag writes (S3 allows 10 in total, user tags included)",
    )
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("key_prefix")
    @classmethod
    def _legal_prefix(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")
        if not set(value) <= allowed:
            raise ValueError("key_prefix may only use letters, digits, spaces and + - = . _ : / @")
        if value.lower().startswith("aws:"):
            raise ValueError("key_prefix may not start with 'aws:' (reserved by AWS)")
        return value


class ImageLimits(_Model):
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="Largest image accepted, in bytes")
    max_pixels: int = Field(
        default=100_000_000, gt=0, description="Decompression-bomb guard: largest width x height accepted"
    )
    max_decode_mib: int | None = Field(
        default=None,
        gt=0,
        description="Most memory decoding one image may take, in MiB (mode x pixels plus conversions); "
        "images that need more are refused before decoding. Default: a quarter of the function's "
        "memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE; 1024 MB when unset), 256 MiB",
    )


class ObjectFilters(_Model):
    include_prefixes: tuple[str, ...] = ()
    exclude_prefixes: tuple[str, ...] = ()
    include_suffixes: tuple[str, ...] = (
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
    )
    exclude_suffixes: tuple[str, ...] = ()
    case_sensitive_suffixes: bool = False

    def accepts(self, key: str) -> bool:
        if self.include_prefixes and not key.startswith(self.include_prefixes):
            return False
        if self.exclude_prefixes and key.startswith(self.exclude_prefixes):
            return False
        name = key if self.case_sensitive_suffixes else key.lower()

        def norm(suffixes: tuple[str, ...]) -> tuple[str, ...]:
            return suffixes if self.case_sensitive_suffixes else tuple(s.lower() for s in suffixes)

        if self.include_suffixes and not name.endswith(norm(self.include_suffixes)):
            return False
        return not (self.exclude_suffixes and name.endswith(norm(self.exclude_suffixes)))


class CachePolicy(_Model):
    enabled: bool = Field(default=True, description="Reuse results for identical bytes + provider config")
    ttl_days: float = Field(default=30.0, gt=0)


class ProcessingPolicy(_Model):
    concurrency: int = Field(default=10, ge=1, le=100, description="Records of one batch tagged at once")
    safety_margin_seconds: float = Field(
        default=5.0, ge=0, description="Time kept back from the Lambda deadline for bookkeeping"
    )


class AutotagConfig(_Model):
    """The whole tagging configuration."""

    providers: tuple[ProviderConfig, ...] = Field(
        default=(ProviderConfig(name="efficientnet"), ProviderConfig(name="basic")),
        min_length=1,
        description="Configured providers (default: the offline vision model for what is in the picture, "
        "plus `basic` for colours, orientation and camera facts)",
    )
    default_providers: tuple[str, ...] | None = Field(
        default=None, description="Provider ids run when a request names none (default: all configured)"
    )
    lang: str = Field(default="en", min_length=2, max_length=10)
    s3_tags: S3TagPolicy = S3TagPolicy()
    limits: ImageLimits = ImageLimits()
    filters: ObjectFilters = ObjectFilters()
    cache: CachePolicy = CachePolicy()
    processing: ProcessingPolicy = ProcessingPolicy()
    mode: Literal["merge"] = "merge"

    @model_validator(mode="after")
    def _check_ids(self) -> AutotagConfig:
        keys = [p.key for p in self.providers]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"provider ids must be unique; repeated: {', '.join(duplicates)}")
        for name in self.default_providers or ():
            if name not in keys:
                raise ValueError(f"default provider {name!r} is not configured")
        return self

    def provider(self, key: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.key == key), None)

    @property
    def default_provider_keys(self) -> tuple[str, ...]:
        return self.default_providers or tuple(p.key for p in self.providers)


# --- Loading -----------------------------------------------------------------------------------


ConfigModel = TypeVar("ConfigModel", bound=BaseModel)


def validate_config(
    model: type[ConfigModel], data: object, *, origin: str, what: str = "config"
) -> ConfigModel:
    """Validate ``data`` as ``model``; the problems, one per field, in a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid {what} in {origin}: {problems}") from None


def read_config_file(path: str | Path, *, what: str = "config") -> Any:
    """The data of a TOML (``.toml``) or JSON file, not yet validated (the runtime config here, the
    deployment config in :mod:`autotag.deploy.config`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {file}: {exc}") from None
    import tomllib  # files are read by the CLI and the local stack; a function reads its environment

    try:
        return tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{what} file {file} is not valid {file.suffix.lstrip('.') or 'JSON'}: {exc}"
        ) from None


def parse_config(data: object, *, origin: str) -> AutotagConfig:
    return validate_config(AutotagConfig, data, origin=origin)


def load_config_file(path: str | Path) -> AutotagConfig:
    """Load a TOML (``.toml``) or JSON file."""
    return parse_config(read_config_file(path), origin=str(Path(path)))


def load_config_from_env(environ: dict[str, str] | None = None) -> AutotagConfig:
    """The Lambda way: ``AUTOTAG_CONFIG`` (JSON) or ``AUTOTAG_CONFIG_PARAMETER`` (SSM name)."""
    env = os.environ if environ is None else environ
    raw = env.get(CONFIG_ENV)
    origin = CONFIG_ENV
    if raw is None and (parameter := env.get(CONFIG_PARAMETER_ENV)):
        from aws_lambda_powertools.utilities import parameters

        raw = str(parameters.get_parameter(parameter, max_age=300))
        origin = f"SSM parameter {parameter}"
    if raw is None:
        return AutotagConfig()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{origin} is not valid JSON: {exc}") from None
    return parse_config(data, origin=origin)


@lru_cache(maxsize=1)
def get_config() -> AutotagConfig:
    """The process-wide config, read once (``get_config.cache_clear()`` resets it in tests)."""
    return load_config_from_env()


def config_json_schema() -> dict[str, Any]:
    return AutotagConfig.model_json_schema()
