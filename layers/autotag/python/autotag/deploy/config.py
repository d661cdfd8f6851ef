"""The deployment config: everything `cdk deploy` and the local stack need, read once.

A deployment config (:class:`DeploymentConfig`, TOML or JSON) embeds the runtime
:class:`~autotag.config.AutotagConfig` under ``tagging`` and adds what only a deployment needs
(bucket import, queue tuning, API throttling, alarms). It is loaded like the runtime config
(:func:`autotag.config.read_config_file`, :func:`autotag.config.validate_config`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from autotag.api.settings import LAMBDA_SYNC_PAYLOAD_BYTES
from autotag.config import AutotagConfig, load_config_file, read_config_file, validate_config
from autotag.deploy.limits import (
    API_GATEWAY_MAX_INTEGRATION_SECONDS,
    LOG_RETENTION_DAYS,
    SQS_ESM_MAX_BATCH_WITHOUT_WINDOW,
    SQS_ESM_MAX_CONCURRENCY,
    SQS_ESM_MIN_CONCURRENCY,
    SQS_MAX_VISIBILITY_SECONDS,
)
from autotag.errors import ConfigError

WHAT = "deployment config"
DEPLOY_CONFIG_ENV = "AUTOTAG_DEPLOY_CONFIG"
"""Names the deployment config file when no option does (the CDK app, the local stack, the operations CLI)."""
DEFAULT_DEPLOY_CONFIG = Path("config") / "default.toml"
"""The deployment config used when neither an option nor the environment names one (repository-relative)."""


class FunctionName(StrEnum):
    ON_UPLOAD = "on_upload"
    TAG_API = "tag_api"
    ON_EVENT = "on_event"


ON_BATCH_FUNCTION = "on_batch"
"""The S3 Batch Operations task function (``autotag backfill --engine batch-operations``). Not a
:class:`FunctionName`: it has no queue, bus rule or API, and its own construct and grants."""


KeyPrefix = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^/*?$#][^*?$#]*/$")]
"""An S3 key prefix the stack scopes a grant to: ends with ``/``, no wildcard characters."""


class FrozenModel(BaseModel):
    """Base of the deployment's models: unknown fields refused, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSettings(FrozenModel):
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    timeout_seconds: int = Field(default=120, ge=1, le=900)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class FunctionsSettings(FrozenModel):
    on_upload: FunctionSettings = FunctionSettings()
    tag_api: FunctionSettings = FunctionSettings(timeout_seconds=API_GATEWAY_MAX_INTEGRATION_SECONDS)
    on_event: FunctionSettings = FunctionSettings()

    @field_validator("tag_api")
    @classmethod
    def _api_fits_gateway(cls, value: FunctionSettings) -> FunctionSettings:
        if value.timeout_seconds > API_GATEWAY_MAX_INTEGRATION_SECONDS:
            raise ValueError(
                f"timeout_seconds {value.timeout_seconds} exceeds API Gateway's "
                f"{API_GATEWAY_MAX_INTEGRATION_SECONDS} s integration timeout"
            )
        return value

    def for_function(self, name: FunctionName) -> FunctionSettings:
        settings: FunctionSettings = getattr(self, name.value)
        return settings


class BucketSettings(FrozenModel):
    existing_name: str | None = Field(
        default=None,
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
        description="Watch this existing bucket instead of creating one (it is imported by name)",
    )
    versioned: bool = Field(default=True, description="Versioning on the bucket the stack creates")
    access_logs: bool = Field(default=True, description="Server access logs into a separate log bucket")
    access_log_retention_days: int = Field(default=90, ge=1)


class QueueSettings(FrozenModel):
    batch_size: int = Field(default=10, ge=1, le=10000, description="Records per on_upload invocation")
    max_batching_window_seconds: int = Field(default=5, ge=0, le=300)
    max_receive_count: int = Field(default=5, ge=1, le=1000, description="Receives before the DLQ")
    retention_days: int = Field(default=4, ge=1, le=14)
    dlq_retention_days: int = Field(default=14, ge=1, le=14)
    max_concurrency: int = Field(
        default=50,
        ge=SQS_ESM_MIN_CONCURRENCY,
        le=SQS_ESM_MAX_CONCURRENCY,
        description="Upper bound of on_upload concurrency when no provider's rate limit is tighter",
    )

    @model_validator(mode="after")
    def _window_for_large_batches(self) -> QueueSettings:
        if self.batch_size > SQS_ESM_MAX_BATCH_WITHOUT_WINDOW and self.max_batching_window_seconds < 1:
            raise ValueError("batch_size above 10 needs max_batching_window_seconds of at least 1")
        return self


class NotificationSettings(FrozenModel):
    mode: Literal["s3", "eventbridge"] = Field(
        default="s3",
        description=(
            "'s3': bucket notifications deliver S3 event records to the tag queue (on_upload); "
            "'eventbridge': the bucket sends to EventBridge and a rule on the default bus delivers "
            "Object Created events to on_event"
        ),
    )


class ApiDeploymentSettings(FrozenModel):
    rate_limit: float = Field(default=10.0, gt=0, description="Steady requests/second per API key")
    burst_limit: int = Field(default=20, ge=1)
    quota_limit: int = Field(default=10_000, ge=1, description="Requests per quota period per key")
    quota_period: Literal["DAY", "WEEK", "MONTH"] = "DAY"
    stage_rate_limit: float = Field(default=50.0, gt=0, description="Stage-wide requests/second")
    stage_burst_limit: int = Field(default=100, ge=1)
    max_image_chars: int = Field(
        default=5_000_000,
        ge=1024,
        le=LAMBDA_SYNC_PAYLOAD_BYTES - 64 * 1024,
        description="Longest base64/data-URL `image` accepted by POST /v1/tags (checked by API Gateway)",
    )
    upload_prefix: KeyPrefix = Field(
        default="uploads/",
        description="Key prefix of presigned uploads (POST /v1/uploads); tag_api may PutObject only "
        "under it, and the tagging filters must accept it",
    )
    cors_allow_origins: tuple[str, ...] = Field(default=(), description="Empty: CORS off")
    allowed_buckets: tuple[str, ...] = Field(
        default=(), description="Buckets besides the images bucket that API requests may reference"
    )
    web_acl_arn: str | None = Field(default=None, description="A WAFv2 web ACL to associate with the stage")


class BusSettings(FrozenModel):
    archive_retention_days: int = Field(default=0, ge=0, description="0: no archive")
    retry_attempts: int = Field(default=8, ge=0, le=185, description="Rule target retries before the DLQ")
    max_event_age_hours: int = Field(default=24, ge=1, le=24)


class MonitoringSettings(FrozenModel):
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    log_retention_days: int = 30
    provider_failure_threshold: int = Field(
        default=5, ge=1, description="Provider failures in 5 minutes that raise the alarm"
    )

    @field_validator("log_retention_days")
    @classmethod
    def _valid_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch's retention values: {LOG_RETENTION_DAYS}")
        return value


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class BatchOperationsSettings(FrozenModel):
    """Bucket-scale backfill on S3 Batch Operations (docs/scale.md)."""

    report_prefix: KeyPrefix = Field(
        default="batch-operations/",
        description="Key prefix of completion reports and generated manifests, in the reports bucket "
        "the stack creates (never watched, so reports never trigger tagging)",
    )
    priority: int = Field(default=10, ge=0, le=2147483647, description="Job priority (higher runs first)")
    max_objects: int | None = Field(
        default=None,
        ge=1,
        description="Budget ceiling: a backfill stops (or refuses) beyond this many objects",
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, description="Budget ceiling in USD at the providers' configured prices"
    )
    manifest_buckets: tuple[str, ...] = Field(
        default=(),
        description="Buckets holding S3 Inventory reports or CSV manifests that jobs may read (--manifest); "
        "generated manifests need none",
    )
    report_retention_days: int = Field(default=90, ge=1, description="Reports and manifests expire after")
    function: FunctionSettings = FunctionSettings(memory_mb=256, timeout_seconds=60)

    @field_validator("manifest_buckets")
    @classmethod
    def _bucket_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _BUCKET_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not S3 bucket names: {', '.join(bad)}")
        return value


class DeploymentConfig(FrozenModel):
    """Everything `cdk deploy` needs: the runtime config plus deployment-only settings."""

    stack_name: str = Field(default="Autotag", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
    tagging: AutotagConfig = AutotagConfig()
    bucket: BucketSettings = BucketSettings()
    notifications: NotificationSettings = NotificationSettings()
    queue: QueueSettings = QueueSettings()
    functions: FunctionsSettings = FunctionsSettings()
    api: ApiDeploymentSettings = ApiDeploymentSettings()
    bus: BusSettings = BusSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    batch_operations: BatchOperationsSettings = BatchOperationsSettings()
    idempotency_ttl_seconds: int = Field(default=3600, ge=60)
    retain_data: bool = Field(default=True, description="Keep bucket and tables when the stack is deleted")
    provider_call_seconds: dict[str, float] = Field(
        default_factory=dict, description="Expected seconds per call by provider id (sizes concurrency)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentConfig:
        keys = {p.key for p in self.tagging.providers}
        unknown = sorted(set(self.provider_call_seconds) - keys)
        if unknown:
            raise ValueError(f"provider_call_seconds names unconfigured providers: {', '.join(unknown)}")
        if any(v <= 0 for v in self.provider_call_seconds.values()):
            raise ValueError("provider_call_seconds values must be positive")
        filters = self.tagging.filters
        prefix = self.api.upload_prefix
        if filters.include_prefixes and not prefix.startswith(filters.include_prefixes):
            raise ValueError(
                f"api.upload_prefix {prefix!r} is outside tagging.filters.include_prefixes: "
                "uploaded images would never be tagged"
            )
        if filters.exclude_prefixes and prefix.startswith(filters.exclude_prefixes):
            raise ValueError(f"api.upload_prefix {prefix!r} is excluded by tagging.filters.exclude_prefixes")
        visibility = tag_queue_visibility_seconds(self)
        if visibility > SQS_MAX_VISIBILITY_SECONDS:
            raise ValueError(
                f"tag queue visibility timeout would be {visibility} s (6 x on_upload timeout + batching "
                f"window), above SQS's {SQS_MAX_VISIBILITY_SECONDS} s"
            )
        return self


def parse_deployment_config(data: object, *, origin: str) -> DeploymentConfig:
    return validate_config(DeploymentConfig, data, origin=origin, what=WHAT)


def load_deployment_config(path: str | Path) -> DeploymentConfig:
    """Read a TOML (``.toml``) or JSON deployment config.

    ``tagging_file = "other.toml"`` (relative to the config file) may stand in for an inline
    ``[tagging]`` table, so the CLI, the local stack and the deployment can share one tagging config.
    """
    file = Path(path)
    data = read_config_file(file, what=WHAT)
    if isinstance(data, dict) and "tagging_file" in data:
        if "tagging" in data:
            raise ConfigError(f"{file}: give either [tagging] or tagging_file, not both")
        tagging_path = file.parent / str(data.pop("tagging_file"))
        data["tagging"] = load_config_file(tagging_path).model_dump(mode="json")
    return parse_deployment_config(data, origin=str(file))


def tag_queue_visibility_seconds(config: DeploymentConfig) -> int:
    """AWS's guidance for SQS event sources: at least 6x the function timeout, plus the batching
    window (messages wait in the batch before the function even starts)."""
    return 6 * config.functions.on_upload.timeout_seconds + config.queue.max_batching_window_seconds
