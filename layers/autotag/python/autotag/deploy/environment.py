"""Each function's environment: the names :mod:`autotag.settings` (and :mod:`autotag.api.settings`,
:mod:`autotag.batch_tasks`) read, the tagging config and Powertools' settings. Values may be CDK
tokens; the CDK stack and the local stack both build environments here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from autotag.config import CONFIG_ENV, AutotagConfig
from autotag.deploy.config import ApiDeploymentSettings, DeploymentConfig
from autotag.observability import METRICS_NAMESPACE, SERVICE_NAME

if TYPE_CHECKING:
    from autotag.deploy.config import FunctionName
    from autotag.deploy.specs import FunctionResources


def _powertools_environment(log_level: str) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": log_level,
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        # Responses carry tags and image metadata; keep them out of traces.
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }


def api_environment(api: ApiDeploymentSettings) -> dict[str, str]:
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
    spec: FunctionResources,
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
        **_powertools_environment(spec.log_level),
        # No pydantic plugins are deployed: skip the entry-point scan on the first model build.
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        **spec.environment,
    }
    if dlq_url is not None:
        env["DLQ_URL"] = dlq_url
    return env


def function_environments(
    specs: Mapping[FunctionName, FunctionResources],
    *,
    config: DeploymentConfig,
    table_name: str,
    idempotency_table_name: str,
    event_bus_name: str,
    images_bucket: str,
    dlq_urls: Mapping[str, str],
    secret_ids: Mapping[str, str] | None = None,
) -> dict[FunctionName, dict[str, str]]:
    """Every function's environment; ``dlq_urls`` by :attr:`FunctionResources.dead_letter` name."""
    return {
        name: function_environment(
            spec,
            config=config,
            table_name=table_name,
            idempotency_table_name=idempotency_table_name,
            event_bus_name=event_bus_name,
            images_bucket=images_bucket,
            dlq_url=dlq_urls[spec.dead_letter] if spec.dead_letter else None,
            secret_ids=secret_ids,
        )
        for name, spec in specs.items()
    }


def batch_environment(
    config: DeploymentConfig, *, table_name: str, tag_queue_url: str, images_bucket: str
) -> dict[str, str]:
    """on_batch's environment: what :class:`autotag.batch_tasks.BatchSettings` reads, the tagging
    config (its filters) and Powertools' settings."""
    return {
        "TABLE_NAME": table_name,
        "TAG_QUEUE_URL": tag_queue_url,
        "IMAGES_BUCKET": images_bucket,
        CONFIG_ENV: config.tagging.model_dump_json(exclude_defaults=True),
        **_powertools_environment(config.batch_operations.function.log_level),
    }
