"""What a deployment consists of, derived from the validated configuration.

One description feeds both builders: the CDK stack (``infra/``) and the local stack
(:mod:`autotag.local`) read their queue settings, table key schemas, bus rules, notification filters,
function sizes and function environments from :func:`describe`, so the two cannot drift. Plain
pydantic: no CDK import, no AWS call.

A deployment config (:class:`DeploymentConfig`, TOML or JSON) embeds the runtime
:class:`~autotag.config.AutotagConfig` under ``tagging`` and adds what only a deployment needs
(bucket import, queue tuning, API throttling, alarms).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autotag.config import CONFIG_ENV, AutotagConfig, ObjectFilters
from autotag.errors import ConfigError
from autotag.observability import METRICS_NAMESPACE as METRICS_NAMESPACE
from autotag.observability import PROVIDER_FAILURE_METRIC as PROVIDER_FAILURE_METRIC
from autotag.observability import SERVICE_NAME as SERVICE_NAME

# --- Names shared by producers, consumers and alarms ----------------------------------------------

EVENT_SOURCE = "autotag"
"""``source`` of every event autotag publishes, and of the ``Tag Image Requested`` events it consumes."""
DETAIL_TYPE_TAG_REQUESTED = "Tag Image Requested"
DETAIL_TYPE_IMAGE_TAGGED = "Image Tagged"
DETAIL_TYPE_TAGGING_FAILED = "Image Tagging Failed"
DETAIL_TYPE_TAGS_CORRECTED = "Image Tags Corrected"


S3_OBJECT_CREATED = "s3:ObjectCreated:*"
CONSOLE_PATH = "/console"
"""Where the API serves the web console's static files: the only paths that need no API key."""

# Single-table design (see autotag.store.keys and docs/storage.md).
TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
TABLE_TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds; set on result-cache items only."""
FEED_INDEX = "feed"
"""Global secondary index over image records: by status, most recently processed first."""
FEED_PARTITION_KEY = "feed_pk"
FEED_SORT_KEY = "feed_sk"
FEED_PROJECTED_ATTRIBUTES = ("summary",)
"""Besides the keys, what the feed index carries (a small JSON summary of the image)."""

# Powertools idempotency defaults (DynamoDBPersistenceLayer): key ``id``, TTL ``expiration``.
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"

# Hard limits of the services involved.
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
SQS_ESM_MIN_CONCURRENCY = 2
SQS_ESM_MAX_CONCURRENCY = 1000
SQS_ESM_MAX_BATCH_WITHOUT_WINDOW = 10
API_GATEWAY_MAX_INTEGRATION_SECONDS = 29
API_GATEWAY_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
API_MAX_URL_CHARS = 2048
"""Longest ``url`` of POST /v1/tags (the API Gateway model and autotag.fetch agree)."""
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
S3_MAX_NOTIFICATION_FILTERS = 100
"""Our cap on generated S3 notification configurations; beyond it the suffix filter is left to
the function (which applies the full :class:`ObjectFilters` anyway)."""
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)  # fmt: skip
"""The values CloudWatch Logs accepts."""

SECRETLESS_PROVIDERS = frozenset({"basic", "efficientnet", "rekognition"})
"""Providers that need no Secrets Manager secret (offline, or IAM-authorized)."""
IAM_AUTHORIZED_PROVIDERS = frozenset({"rekognition"})
VISION_MODEL_PROVIDERS = frozenset({"efficientnet"})
"""Providers that run the offline vision model: their functions carry the model layer."""


def uses_vision_model(config: AutotagConfig) -> bool:
    return any(p.name in VISION_MODEL_PROVIDERS for p in config.providers)


KNOWN_RATE_LIMITS_PER_MINUTE: Mapping[str, float] = {
    # imagedescriber: "each API key is limited to 30 requests per minute" (error 1004 beyond).
    "imagedescriber": 30.0,
}
"""Documented per-key limits, used when a provider's config sets no ``rate_limit_per_minute``."""

TYPICAL_CALL_SECONDS: Mapping[str, float] = {
    "basic": 0.2,
    "efficientnet": 0.1,
    "rekognition": 1.5,
    "google_vision": 1.5,
    "imagedescriber": 4.0,
}
DEFAULT_CALL_SECONDS = 3.0


class FunctionName(StrEnum):
    ON_UPLOAD = "on_upload"
    TAG_API = "tag_api"
    ON_EVENT = "on_event"


ON_BATCH_FUNCTION = "on_batch"
"""The S3 Batch Operations task function (``autotag backfill --engine batch-operations``). Not a
:class:`FunctionName`: it has no queue, bus rule or API, and its own construct and grants."""


# --- The deployment config ---------------------------------------------------------------------


class _Model(BaseModel):
    # Deploy-time models (infra and the local stack build them; no function does): validators are
    # built on first use, so a function importing a constant from here does not pay for them.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FunctionSettings(_Model):
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    timeout_seconds: int = Field(default=120, ge=1, le=900)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class FunctionsSettings(_Model):
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


class BucketSettings(_Model):
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


class QueueSettings(_Model):
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


class NotificationSettings(_Model):
    mode: Literal["s3", "eventbridge"] = Field(
        default="s3",
        description=(
            "'s3': bucket notifications deliver S3 event records to the tag queue (on_upload); "
            "'eventbridge': the bucket sends to EventBridge and a rule on the default bus delivers "
            "Object Created events to on_event"
        ),
    )


class ApiSettings(_Model):
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
    upload_prefix: str = Field(
        default="uploads/",
        min_length=1,
        max_length=200,
        pattern=r"^[^/*?$#][^*?$#]*/$",
        description="Key prefix of presigned uploads (POST /v1/uploads); tag_api may PutObject only "
        "under it, and the tagging filters must accept it",
    )
    cors_allow_origins: tuple[str, ...] = Field(default=(), description="Empty: CORS off")
    allowed_buckets: tuple[str, ...] = Field(
        default=(), description="Buckets besides the images bucket that API requests may reference"
    )
    web_acl_arn: str | None = Field(default=None, description="A WAFv2 web ACL to associate with the stage")


class BusSettings(_Model):
    archive_retention_days: int = Field(default=0, ge=0, description="0: no archive")
    retry_attempts: int = Field(default=8, ge=0, le=185, description="Rule target retries before the DLQ")
    max_event_age_hours: int = Field(default=24, ge=1, le=24)


class MonitoringSettings(_Model):
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


class BatchOperationsSettings(_Model):
    """Bucket-scale backfill on S3 Batch Operations (docs/scale.md)."""

    report_prefix: str = Field(
        default="batch-operations/",
        min_length=1,
        max_length=200,
        pattern=r"^[^/*?$#][^*?$#]*/$",
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


class DeploymentConfig(_Model):
    """Everything `cdk deploy` needs: the runtime config plus deployment-only settings."""

    stack_name: str = Field(default="Autotag", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
    tagging: AutotagConfig = AutotagConfig()
    bucket: BucketSettings = BucketSettings()
    notifications: NotificationSettings = NotificationSettings()
    queue: QueueSettings = QueueSettings()
    functions: FunctionsSettings = FunctionsSettings()
    api: ApiSettings = ApiSettings()
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
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid deployment config in {origin}: {problems}") from None


def load_deployment_config(path: str | Path) -> DeploymentConfig:
    """Read a TOML (``.toml``) or JSON deployment config.

    ``tagging_file = "other.toml"`` (relative to the config file) may stand in for an inline
    ``[tagging]`` table, so the CLI, the local stack and the deployment can share one tagging config.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"deployment config file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read deployment config file {file}: {exc}") from None
    import tomllib  # deploy-time only: not at a function's cold start

    try:
        data: Any = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"deployment config file {file} is not valid: {exc}") from None
    if isinstance(data, dict) and "tagging_file" in data:
        if "tagging" in data:
            raise ConfigError(f"{file}: give either [tagging] or tagging_file, not both")
        from autotag.config import load_config_file

        tagging_path = file.parent / str(data.pop("tagging_file"))
        data["tagging"] = load_config_file(tagging_path).model_dump(mode="json")
    return parse_deployment_config(data, origin=str(file))


# --- Derived resource descriptions -------------------------------------------------------------


class AttributeSpec(_Model):
    name: str
    type: Literal["S", "N", "B"] = "S"


class IndexSpec(_Model):
    name: str
    partition_key: AttributeSpec
    sort_key: AttributeSpec
    projected_attributes: tuple[str, ...] = ()


class TableSpec(_Model):
    partition_key: AttributeSpec
    sort_key: AttributeSpec | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    billing_mode: Literal["PAY_PER_REQUEST"] = "PAY_PER_REQUEST"
    point_in_time_recovery: bool = True


class QueueSpec(_Model):
    visibility_timeout_seconds: int
    retention_seconds: int
    max_receive_count: int
    dlq_retention_seconds: int


class ConcurrencyPlan(_Model):
    """How far ``on_upload`` may scale out, and why (see docs/deploy.md)."""

    max_concurrency: int
    in_flight_per_instance: int = Field(description="min(processing.concurrency, batch_size)")
    limiting_provider: str | None = None
    rate_limit_per_minute: float | None = None
    call_seconds: float | None = None
    calls_per_minute_per_instance: float | None = None
    peak_calls_per_minute: float | None = Field(default=None, description="max_concurrency x per instance")
    exceeds_rate_limit: bool = False
    explanation: str


class EventSourceSpec(_Model):
    batch_size: int
    max_batching_window_seconds: int
    max_concurrency: int
    report_batch_item_failures: bool = True


class FunctionSpec(_Model):
    name: FunctionName | str
    description: str
    memory_mb: int
    timeout_seconds: int
    log_level: str
    handler: str = "handler.handler"
    code_dir: str = Field(description="Relative to the repository root")
    dead_letter: Literal["tag_dlq", "event_dlq"] | None = Field(
        default=None, description="Which DLQ the function's DLQ_URL names (terminal failures go there)"
    )
    runs_providers: bool = True
    reads_objects: bool = True
    writes_object_tags: bool = True
    presigns_uploads: bool = False
    uses_idempotency: bool = Field(
        default=True, description="Powertools idempotency records in the idempotency table"
    )
    queries_tag_index: bool = Field(default=False, description="Reads the tag index (GET routes)")
    environment: dict[str, str] = Field(
        default_factory=dict, description="Variables only this function reads (autotag.api.settings)"
    )


class NotificationFilter(_Model):
    prefix: str | None = None
    suffix: str | None = None


class EventRuleSpec(_Model):
    rule_id: str
    description: str
    bus: Literal["autotag", "default"]
    event_pattern: dict[str, Any]
    target: Literal["on_event", "tag_queue"]


class SecretSpec(_Model):
    provider_key: str
    provider_name: str
    existing_secret_id: str | None = Field(default=None, description="Imported by name/ARN when set")


class BatchOperationsSpec(_Model):
    function: FunctionSpec
    report_prefix: str
    priority: int


class DeploymentResources(_Model):
    config: DeploymentConfig
    table: TableSpec
    idempotency_table: TableSpec
    tag_queue: QueueSpec
    event_dlq_retention_seconds: int
    tag_event_source: EventSourceSpec
    concurrency: ConcurrencyPlan
    functions: dict[FunctionName, FunctionSpec]
    notification_filters: tuple[NotificationFilter, ...]
    rules: tuple[EventRuleSpec, ...]
    secrets: tuple[SecretSpec, ...]
    uses_rekognition: bool
    batch_operations: BatchOperationsSpec

    def function(self, name: FunctionName) -> FunctionSpec:
        return self.functions[name]


TABLE = TableSpec(
    partition_key=AttributeSpec(name=TABLE_PARTITION_KEY),
    sort_key=AttributeSpec(name=TABLE_SORT_KEY),
    ttl_attribute=TABLE_TTL_ATTRIBUTE,
    indexes=(
        IndexSpec(
            name=FEED_INDEX,
            partition_key=AttributeSpec(name=FEED_PARTITION_KEY),
            sort_key=AttributeSpec(name=FEED_SORT_KEY),
            projected_attributes=FEED_PROJECTED_ATTRIBUTES,
        ),
    ),
)
IDEMPOTENCY_TABLE = TableSpec(
    partition_key=AttributeSpec(name=IDEMPOTENCY_PARTITION_KEY),
    ttl_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
)


def tag_queue_visibility_seconds(config: DeploymentConfig) -> int:
    """AWS's guidance for SQS event sources: at least 6x the function timeout, plus the batching
    window (messages wait in the batch before the function even starts)."""
    return 6 * config.functions.on_upload.timeout_seconds + config.queue.max_batching_window_seconds


def plan_concurrency(config: DeploymentConfig) -> ConcurrencyPlan:
    """The on_upload maximum concurrency that keeps the tightest rate-limited provider within its limit.

    Every upload calls each default provider once, so one instance makes at most
    ``in_flight / call_seconds`` calls per second to each: ``in_flight = min(processing.concurrency,
    batch_size)`` records are tagged at once. ``max_concurrency = floor(limit / calls per minute per
    instance)``, clamped to SQS's 2..1000 and to ``queue.max_concurrency``.
    """
    tagging = config.tagging
    in_flight = min(tagging.processing.concurrency, config.queue.batch_size)
    cap = config.queue.max_concurrency
    best: tuple[int, str, float, float, float] | None = None
    for key in tagging.default_provider_keys:
        provider = tagging.provider(key)
        if provider is None:
            continue
        limit = provider.rate_limit_per_minute or KNOWN_RATE_LIMITS_PER_MINUTE.get(provider.name)
        if limit is None:
            continue
        seconds = config.provider_call_seconds.get(key) or TYPICAL_CALL_SECONDS.get(
            provider.name, DEFAULT_CALL_SECONDS
        )
        per_instance = in_flight * 60.0 / seconds
        allowed = math.floor(limit / per_instance)
        if best is None or allowed < best[0]:
            best = (allowed, key, limit, seconds, per_instance)
    if best is None:
        return ConcurrencyPlan(
            max_concurrency=cap,
            in_flight_per_instance=in_flight,
            explanation=f"no configured provider has a rate limit; queue.max_concurrency ({cap}) applies",
        )
    allowed, key, limit, seconds, per_instance = best
    concurrency = max(SQS_ESM_MIN_CONCURRENCY, min(allowed, cap, SQS_ESM_MAX_CONCURRENCY))
    peak = concurrency * per_instance
    exceeds = peak > limit
    explanation = (
        f"{key} allows {limit:g} calls/min; one instance tags {in_flight} at once at ~{seconds:g} s per "
        f"call = {per_instance:g} calls/min; floor({limit:g} / {per_instance:g}) = {allowed}, "
        f"clamped to [{SQS_ESM_MIN_CONCURRENCY}, {min(cap, SQS_ESM_MAX_CONCURRENCY)}] = {concurrency}"
    )
    if exceeds:
        needed = max(1, math.floor(limit * seconds / (60.0 * SQS_ESM_MIN_CONCURRENCY)))
        explanation += (
            f"; {concurrency} instances still peak at {peak:g} calls/min: set "
            f"processing.concurrency or queue.batch_size to {needed} to stay under the limit "
            "(until then the provider's throttling is retried with backoff and by SQS redelivery)"
        )
    return ConcurrencyPlan(
        max_concurrency=concurrency,
        in_flight_per_instance=in_flight,
        limiting_provider=key,
        rate_limit_per_minute=limit,
        call_seconds=seconds,
        calls_per_minute_per_instance=per_instance,
        peak_calls_per_minute=peak,
        exceeds_rate_limit=exceeds,
        explanation=explanation,
    )


def _minimal_prefixes(values: tuple[str, ...]) -> list[str]:
    """Drop prefixes another one already covers (S3 rejects overlapping filters)."""
    ordered = sorted(set(values), key=len)
    kept: list[str] = []
    for value in ordered:
        if not any(value.startswith(k) for k in kept):
            kept.append(value)
    return sorted(kept)


def _minimal_suffixes(values: tuple[str, ...]) -> list[str]:
    ordered = sorted(set(values), key=len)
    kept: list[str] = []
    for value in ordered:
        if not any(value.endswith(k) for k in kept):
            kept.append(value)
    return sorted(kept)


def notification_filters(filters: ObjectFilters) -> tuple[NotificationFilter, ...]:
    """S3 notification filters (one prefix and one suffix each, none overlapping) that deliver a
    superset of what :meth:`ObjectFilters.accepts` takes; the function applies the exact filters.

    S3 (and EventBridge's wildcard) match suffixes case-sensitively, and ``.jpg`` has 16 case
    variants, so case-insensitive suffixes (the default) are not sent to S3 at all: the
    subscription is by prefix only and the function filters suffixes case-insensitively. Objects
    under a watched prefix that are not images then invoke the function and are skipped before
    any S3 read. Case-sensitive suffixes are subscribed as given (prefix x suffix), unless that
    exceeds :data:`S3_MAX_NOTIFICATION_FILTERS`. Exclusions cannot be expressed in S3 filters and
    are left to the function.
    """
    prefixes = _minimal_prefixes(filters.include_prefixes) if filters.include_prefixes else [""]
    suffixes: list[str] = []
    if filters.include_suffixes and filters.case_sensitive_suffixes:
        suffixes = _minimal_suffixes(filters.include_suffixes)
    if "" in suffixes or len(prefixes) * max(1, len(suffixes)) > S3_MAX_NOTIFICATION_FILTERS:
        suffixes = []
    return tuple(
        NotificationFilter(prefix=prefix or None, suffix=suffix or None)
        for prefix in prefixes
        for suffix in (suffixes or [""])
    )


def _wildcard_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def object_created_pattern(bucket_name: str, filters: tuple[NotificationFilter, ...]) -> dict[str, Any]:
    """EventBridge pattern equivalent to the S3 notification filters (``eventbridge`` mode)."""
    pattern: dict[str, Any] = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket_name]}},
    }
    keys = [
        {"wildcard": f"{_wildcard_escape(f.prefix or '')}*{_wildcard_escape(f.suffix or '')}"}
        for f in filters
        if f.prefix or f.suffix
    ]
    if keys:
        pattern["detail"]["object"] = {"key": keys}
    return pattern


TAG_REQUESTED_PATTERN: dict[str, Any] = {
    "source": [EVENT_SOURCE],
    "detail-type": [DETAIL_TYPE_TAG_REQUESTED],
}


def describe(config: DeploymentConfig, *, bucket_name: str = "<images-bucket>") -> DeploymentResources:
    """The whole deployment, as numbers and patterns.

    ``bucket_name`` only matters for the ``eventbridge`` notification rule's pattern; builders pass
    the real (or token) name.
    """
    fns = config.functions
    specs = {
        FunctionName.ON_UPLOAD: FunctionSpec(
            name=FunctionName.ON_UPLOAD,
            description="Tags images delivered by the tag queue (S3 ObjectCreated)",
            memory_mb=fns.on_upload.memory_mb,
            timeout_seconds=fns.on_upload.timeout_seconds,
            log_level=fns.on_upload.log_level,
            code_dir="functions/on_upload",
            dead_letter="tag_dlq",
            # S3 events are ordered by the image record itself (autotag.ordering): no idempotency table.
            uses_idempotency=False,
        ),
        FunctionName.TAG_API: FunctionSpec(
            name=FunctionName.TAG_API,
            description="On-demand tagging and tag queries behind API Gateway",
            memory_mb=fns.tag_api.memory_mb,
            timeout_seconds=fns.tag_api.timeout_seconds,
            log_level=fns.tag_api.log_level,
            code_dir="functions/tag_api",
            presigns_uploads=True,
            # Store mode runs the shared pipeline without idempotency (the client asked for it).
            uses_idempotency=False,
            queries_tag_index=True,
            environment=api_environment(config.api),
        ),
        FunctionName.ON_EVENT: FunctionSpec(
            name=FunctionName.ON_EVENT,
            description="Tags images requested by 'Tag Image Requested' events on the bus",
            memory_mb=fns.on_event.memory_mb,
            timeout_seconds=fns.on_event.timeout_seconds,
            log_level=fns.on_event.log_level,
            code_dir="functions/on_event",
            dead_letter="event_dlq",
        ),
    }
    filters = notification_filters(config.tagging.filters)
    rules = [
        EventRuleSpec(
            rule_id="TagImageRequested",
            description="Tag Image Requested -> on_event",
            bus="autotag",
            event_pattern=TAG_REQUESTED_PATTERN,
            target="on_event",
        )
    ]
    if config.notifications.mode == "eventbridge":
        rules.append(
            EventRuleSpec(
                rule_id="ObjectCreated",
                description="S3 Object Created in the images bucket -> on_event",
                bus="default",
                event_pattern=object_created_pattern(bucket_name, filters),
                target="on_event",
            )
        )
    secrets = tuple(
        SecretSpec(provider_key=p.key, provider_name=p.name, existing_secret_id=p.secret_id)
        for p in config.tagging.providers
        if p.name not in SECRETLESS_PROVIDERS
    )
    concurrency = plan_concurrency(config)
    return DeploymentResources(
        config=config,
        table=TABLE,
        idempotency_table=IDEMPOTENCY_TABLE,
        tag_queue=QueueSpec(
            visibility_timeout_seconds=tag_queue_visibility_seconds(config),
            retention_seconds=config.queue.retention_days * 86400,
            max_receive_count=config.queue.max_receive_count,
            dlq_retention_seconds=config.queue.dlq_retention_days * 86400,
        ),
        event_dlq_retention_seconds=config.queue.dlq_retention_days * 86400,
        tag_event_source=EventSourceSpec(
            batch_size=config.queue.batch_size,
            max_batching_window_seconds=config.queue.max_batching_window_seconds,
            max_concurrency=concurrency.max_concurrency,
        ),
        concurrency=concurrency,
        functions=specs,
        notification_filters=filters,
        rules=tuple(rules),
        secrets=secrets,
        uses_rekognition=any(p.name in IAM_AUTHORIZED_PROVIDERS for p in config.tagging.providers),
        batch_operations=_batch_operations(config.batch_operations),
    )


def _batch_operations(settings: BatchOperationsSettings) -> BatchOperationsSpec:
    return BatchOperationsSpec(
        function=FunctionSpec(
            name=ON_BATCH_FUNCTION,
            description="S3 Batch Operations tasks of a backfill: enqueue each object on the tag queue",
            memory_mb=settings.function.memory_mb,
            timeout_seconds=settings.function.timeout_seconds,
            log_level=settings.function.log_level,
            code_dir=f"functions/{ON_BATCH_FUNCTION}",
            runs_providers=False,
            writes_object_tags=False,
            uses_idempotency=False,
        ),
        report_prefix=settings.report_prefix,
        priority=settings.priority,
    )


# --- API Gateway's own errors, in the API's error shape ------------------------------------------


class GatewayError(_Model):
    """An error API Gateway answers itself (the function never runs), reshaped by a gateway
    response into ``{"code", "message", "request_id"}`` like every error of the function."""

    response_type: str = Field(description="API Gateway's gateway response type")
    status: int | None = Field(
        description="None for DEFAULT_4XX / DEFAULT_5XX: setting theirs would override every other "
        "4XX / 5XX status"
    )
    code: str
    message: str | None = Field(description="None: API Gateway's own message")
    headers: dict[str, str] = Field(default_factory=dict)

    def template(self) -> str:
        """The application/json response template (VTL): only ``$context`` references, no directives."""
        message = "$context.error.messageString" if self.message is None else json.dumps(self.message)
        return f'{{"code":{json.dumps(self.code)},"message":{message},"request_id":"$context.requestId"}}'


def gateway_errors(api: ApiSettings) -> tuple[GatewayError, ...]:
    """The gateway responses the stack sets, with the stable codes documented in docs/api.md."""
    return (
        GatewayError(
            response_type="INVALID_API_KEY",
            status=403,
            code="invalid_api_key",
            message="missing or invalid API key: send it in the x-api-key header",
        ),
        GatewayError(
            response_type="MISSING_AUTHENTICATION_TOKEN",
            status=403,
            code="forbidden",
            message="missing API key, or no such method on this resource",
        ),
        GatewayError(
            response_type="THROTTLED",
            status=429,
            code="throttled",
            message="too many requests for this API key or stage; retry after a pause",
            headers={"Retry-After": "1"},
        ),
        GatewayError(
            response_type="QUOTA_EXCEEDED",
            status=429,
            code="quota_exceeded",
            message="this API key has used its request quota for the period",
        ),
        GatewayError(
            response_type="BAD_REQUEST_BODY",
            status=400,
            code="invalid_request",
            # The stack sets no request validator (the function validates every body); kept so that
            # one added later still answers in the API's error shape.
            message="request body does not match the API's schema",
        ),
        GatewayError(
            response_type="BAD_REQUEST_PARAMETERS",
            status=400,
            code="invalid_request",
            message="request parameters refused",
        ),
        GatewayError(
            response_type="REQUEST_TOO_LARGE",
            status=413,
            code="payload_too_large",
            message=f"request is larger than API Gateway's {API_GATEWAY_MAX_PAYLOAD_BYTES // 2**20} MB "
            "limit; upload large images with POST /v1/uploads",
        ),
        GatewayError(
            response_type="UNSUPPORTED_MEDIA_TYPE",
            status=415,
            code="unsupported_media_type",
            message="send the request body as application/json",
        ),
        GatewayError(
            response_type="INTEGRATION_TIMEOUT",
            status=504,
            code="deadline",
            message="the request did not finish within API Gateway's "
            f"{API_GATEWAY_MAX_INTEGRATION_SECONDS} s",
        ),
        GatewayError(response_type="DEFAULT_4XX", status=None, code="request_refused", message=None),
        GatewayError(response_type="DEFAULT_5XX", status=None, code="internal_error", message=None),
    )


def api_environment(api: ApiSettings) -> dict[str, str]:
    """The variables :mod:`autotag.api.settings` reads that the deployment config decides."""
    return {"API_MAX_IMAGE_CHARS": str(api.max_image_chars), "UPLOAD_PREFIX": api.upload_prefix}


def runtime_config(config: AutotagConfig, secret_ids: Mapping[str, str]) -> AutotagConfig:
    """The runtime config with each provider's ``secret_id`` pointing at its deployed secret."""
    providers = tuple(
        p.model_copy(update={"secret_id": secret_ids[p.key]}) if p.key in secret_ids else p
        for p in config.providers
    )
    return config.model_copy(update={"providers": providers})


def function_environment(
    spec: FunctionSpec,
    *,
    config: DeploymentConfig,
    table_name: str,
    idempotency_table_name: str,
    event_bus_name: str,
    images_bucket: str,
    dlq_url: str | None,
    secret_ids: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A function's environment: the names :mod:`autotag.settings` reads, the tagging config
    (``AUTOTAG_CONFIG``) and Powertools' settings. Values may be CDK tokens."""
    tagging = runtime_config(config.tagging, secret_ids or {})
    env = {
        "TABLE_NAME": table_name,
        "IDEMPOTENCY_TABLE_NAME": idempotency_table_name,
        "EVENT_BUS_NAME": event_bus_name,
        "IMAGES_BUCKET": images_bucket,
        "ALLOWED_BUCKETS": ",".join((images_bucket, *config.api.allowed_buckets)),
        "IDEMPOTENCY_TTL_SECONDS": str(config.idempotency_ttl_seconds),
        CONFIG_ENV: tagging.model_dump_json(exclude_defaults=True),
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": spec.log_level,
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        # Responses carry tags and image metadata; keep them out of traces.
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        # No pydantic plugins are deployed: skip the entry-point scan on the first model build.
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        **spec.environment,
    }
    if dlq_url is not None:
        env["DLQ_URL"] = dlq_url
    return env
