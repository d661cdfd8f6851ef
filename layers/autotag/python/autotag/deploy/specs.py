"""What a deployment consists of, as numbers and patterns: :func:`describe` turns a validated
:class:`~autotag.deploy.config.DeploymentConfig` into the resource specs both builders read (the CDK
constructs in ``infra/`` and the local stack in :mod:`autotag.local.provision`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from autotag.config import AutotagConfig
from autotag.deploy.concurrency import ConcurrencyPlan, plan_concurrency
from autotag.deploy.config import (
    ON_BATCH_FUNCTION,
    BatchOperationsSettings,
    DeploymentConfig,
    FrozenModel,
    FunctionName,
    FunctionSettings,
    tag_queue_visibility_seconds,
)
from autotag.deploy.environment import api_environment
from autotag.deploy.filters import NotificationFilter, notification_filters
from autotag.deploy.patterns import TAG_REQUESTED_PATTERN, object_created_pattern
from autotag.store.schema import IDEMPOTENCY_TABLE, TABLE, TableSpec

SECRETLESS_PROVIDERS = frozenset({"basic", "efficientnet", "rekognition"})
"""Providers that need no Secrets Manager secret (offline, or IAM-authorized)."""
IAM_AUTHORIZED_PROVIDERS = frozenset({"rekognition"})
VISION_MODEL_PROVIDERS = frozenset({"efficientnet"})
"""Providers that run the offline vision model: their functions carry the model layer."""


def uses_vision_model(config: AutotagConfig) -> bool:
    return any(p.name in VISION_MODEL_PROVIDERS for p in config.providers)


class QueueSpec(FrozenModel):
    visibility_timeout_seconds: int
    retention_seconds: int
    max_receive_count: int
    dlq_retention_seconds: int


class EventSourceSpec(FrozenModel):
    batch_size: int
    max_batching_window_seconds: int
    max_concurrency: int
    report_batch_item_failures: bool = True


class FunctionResources(FrozenModel):
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


class EventRuleSpec(FrozenModel):
    rule_id: str
    description: str
    bus: Literal["autotag", "default"]
    event_pattern: dict[str, Any]
    target: Literal["on_event", "tag_queue"]


class SecretSpec(FrozenModel):
    provider_key: str
    provider_name: str
    existing_secret_id: str | None = Field(default=None, description="Imported by name/ARN when set")


class BatchOperationsSpec(FrozenModel):
    function: FunctionResources
    report_prefix: str
    priority: int


class DeploymentResources(FrozenModel):
    config: DeploymentConfig
    table: TableSpec
    idempotency_table: TableSpec
    tag_queue: QueueSpec
    event_dlq_retention_seconds: int
    tag_event_source: EventSourceSpec
    concurrency: ConcurrencyPlan
    functions: dict[FunctionName, FunctionResources]
    notification_filters: tuple[NotificationFilter, ...]
    rules: tuple[EventRuleSpec, ...]
    secrets: tuple[SecretSpec, ...]
    uses_rekognition: bool
    batch_operations: BatchOperationsSpec

    def function(self, name: FunctionName) -> FunctionResources:
        return self.functions[name]


def _function(name: FunctionName | str, settings: FunctionSettings, **props: Any) -> FunctionResources:
    """A function's resources: its size from the deployment config, its code in ``functions/<name>``."""
    return FunctionResources(
        name=name,
        memory_mb=settings.memory_mb,
        timeout_seconds=settings.timeout_seconds,
        log_level=settings.log_level,
        code_dir=f"functions/{name}",
        **props,
    )


def describe(config: DeploymentConfig, *, bucket_name: str = "<images-bucket>") -> DeploymentResources:
    """The whole deployment, as numbers and patterns.

    ``bucket_name`` only matters for the ``eventbridge`` notification rule's pattern; builders pass
    the real (or token) name.
    """
    fns = config.functions
    specs = {
        FunctionName.ON_UPLOAD: _function(
            FunctionName.ON_UPLOAD,
            fns.on_upload,
            description="Tags images delivered by the tag queue (S3 ObjectCreated)",
            dead_letter="tag_dlq",
            # S3 events are ordered by the image record itself (autotag.ordering): no idempotency table.
            uses_idempotency=False,
        ),
        FunctionName.TAG_API: _function(
            FunctionName.TAG_API,
            fns.tag_api,
            description="On-demand tagging and tag queries behind API Gateway",
            presigns_uploads=True,
            # Store mode runs the shared pipeline without idempotency (the client asked for it).
            uses_idempotency=False,
            queries_tag_index=True,
            environment=api_environment(config.api),
        ),
        FunctionName.ON_EVENT: _function(
            FunctionName.ON_EVENT,
            fns.on_event,
            description="Tags images requested by 'Tag Image Requested' events on the bus",
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
        function=_function(
            ON_BATCH_FUNCTION,
            settings.function,
            description="S3 Batch Operations tasks of a backfill: enqueue each object on the tag queue",
            runs_providers=False,
            writes_object_tags=False,
            uses_idempotency=False,
        ),
        report_prefix=settings.report_prefix,
        priority=settings.priority,
    )
