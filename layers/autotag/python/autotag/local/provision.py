"""Create, in the emulator, the resources the CDK stack defines — from :func:`autotag.deploy.specs.describe`.

Everything that can differ between deployments (queue visibility and redrive, table keys and TTL,
bus rules and their patterns, notification filters, function sizes and environments, secrets)
comes from the same :class:`~autotag.deploy.specs.DeploymentResources` the CDK stack is built from.

Where a local stand-in is unavoidable it is the smallest one: a rule whose target is the
``on_event`` function targets a local queue instead (:class:`~autotag.local.sqs_source.
EventBridgeQueueSource` invokes the function from it), and the stack's own log reads a queue
subscribed to the bus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from autotag.credentials import env_var_for
from autotag.deploy.config import DeploymentConfig, FunctionName
from autotag.deploy.environment import function_environments
from autotag.deploy.filters import S3_OBJECT_CREATED
from autotag.deploy.patterns import OUTCOMES_PATTERN
from autotag.deploy.specs import DeploymentResources, describe
from autotag.local.state import ACCOUNT_ID, REGION, LocalResources
from autotag.store.schema import create_table

LOCAL_PREFIX = "autotag-local"
ASYNC_INVOKE_ATTEMPTS = 3
"""Lambda's asynchronous invocation: the first attempt and two retries, then the function's DLQ."""


@dataclass(frozen=True)
class LocalNames:
    """Physical names in the emulator (it starts empty, so fixed names cannot collide)."""

    prefix: str = LOCAL_PREFIX

    def images_bucket(self, config: DeploymentConfig) -> str:
        return config.bucket.existing_name or f"{self.prefix}-images"

    @property
    def table(self) -> str:
        return f"{self.prefix}-images"

    @property
    def idempotency_table(self) -> str:
        return f"{self.prefix}-idempotency"

    @property
    def bus(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def tag_queue(self) -> str:
        return f"{self.prefix}-tag-queue"

    @property
    def tag_dlq(self) -> str:
        return f"{self.prefix}-tag-dlq"

    @property
    def event_dlq(self) -> str:
        return f"{self.prefix}-event-dlq"

    @property
    def on_event_queue(self) -> str:
        return f"{self.prefix}-on-event-invocations"

    @property
    def monitor_queue(self) -> str:
        return f"{self.prefix}-monitor"

    def secret(self, provider_key: str) -> str:
        return f"{self.prefix}/providers/{provider_key}"


@dataclass
class ProvisionedStack:
    deployment: DeploymentResources
    resources: LocalResources
    environments: dict[FunctionName, dict[str, str]] = field(default_factory=dict)
    tag_queue_arn: str = ""


def emulator_environment(endpoint_url: str) -> dict[str, str]:
    """What a function's process needs to talk to the emulator (and nothing else)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def emulator_client(service: str, endpoint_url: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator's dummy credentials
        region_name=REGION,
    )
    return session.client(service, endpoint_url=endpoint_url)


def _queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def _create_queue(sqs: Any, name: str, attributes: Mapping[str, str]) -> str:
    return str(sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"])


def _create_bucket(s3: Any, name: str, config: DeploymentConfig) -> None:
    s3.create_bucket(Bucket=name)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    if config.bucket.versioned and not config.bucket.existing_name:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _notification_configuration(deployment: DeploymentResources, tag_queue_arn: str) -> dict[str, Any]:
    if deployment.config.notifications.mode == "eventbridge":
        return {"EventBridgeConfiguration": {}}
    queues = []
    for index, spec in enumerate(deployment.notification_filters):
        rules = []
        if spec.prefix:
            rules.append({"Name": "prefix", "Value": spec.prefix})
        if spec.suffix:
            rules.append({"Name": "suffix", "Value": spec.suffix})
        entry: dict[str, Any] = {
            "Id": f"tag-queue-{index}",
            "QueueArn": tag_queue_arn,
            "Events": [S3_OBJECT_CREATED],
        }
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        queues.append(entry)
    return {"QueueConfigurations": queues}


def _secret_value(provider_key: str, supplied: Mapping[str, str]) -> str:
    """The local secret's JSON: ``--secrets`` file first, then ``AUTOTAG_SECRET_<PROVIDER>``."""
    if provider_key in supplied:
        return supplied[provider_key]
    return os.environ.get(env_var_for(provider_key), "{}")


def provision(
    endpoint_url: str,
    config: DeploymentConfig,
    *,
    names: LocalNames | None = None,
    secret_values: Mapping[str, str] | None = None,
    extra_environment: Mapping[str, str] | None = None,
) -> ProvisionedStack:
    names = names or LocalNames()
    bucket = names.images_bucket(config)
    deployment = describe(config, bucket_name=bucket)
    s3 = emulator_client("s3", endpoint_url)
    sqs = emulator_client("sqs", endpoint_url)
    dynamodb = emulator_client("dynamodb", endpoint_url)
    events = emulator_client("events", endpoint_url)
    secretsmanager = emulator_client("secretsmanager", endpoint_url)

    create_table(dynamodb, names.table, deployment.table)
    create_table(dynamodb, names.idempotency_table, deployment.idempotency_table)

    queue = deployment.tag_queue
    dlq_url = _create_queue(sqs, names.tag_dlq, {"MessageRetentionPeriod": str(queue.dlq_retention_seconds)})
    tag_queue_arn = _queue_arn(names.tag_queue)
    tag_queue_url = _create_queue(
        sqs,
        names.tag_queue,
        {
            "VisibilityTimeout": str(queue.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(queue.retention_seconds),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": _queue_arn(names.tag_dlq), "maxReceiveCount": queue.max_receive_count}
            ),
        },
    )
    event_dlq_url = _create_queue(
        sqs, names.event_dlq, {"MessageRetentionPeriod": str(deployment.event_dlq_retention_seconds)}
    )
    on_event = deployment.function(FunctionName.ON_EVENT)
    # Stand-in for the rule → on_event (asynchronous invoke) target: failed invocations come back
    # after the function's timeout and, after Lambda's attempts, land in the event DLQ.
    on_event_queue_url = _create_queue(
        sqs,
        names.on_event_queue,
        {
            "VisibilityTimeout": str(on_event.timeout_seconds + 1),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": _queue_arn(names.event_dlq), "maxReceiveCount": ASYNC_INVOKE_ATTEMPTS}
            ),
        },
    )
    monitor_queue_url = _create_queue(sqs, names.monitor_queue, {"MessageRetentionPeriod": "3600"})

    _create_bucket(s3, bucket, config)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=_notification_configuration(deployment, tag_queue_arn)
    )

    events.create_event_bus(Name=names.bus)
    targets = {"on_event": _queue_arn(names.on_event_queue), "tag_queue": tag_queue_arn}
    for rule in deployment.rules:
        bus_name = names.bus if rule.bus == "autotag" else "default"
        events.put_rule(
            Name=f"{names.prefix}-{rule.rule_id}",
            EventBusName=bus_name,
            EventPattern=json.dumps(rule.event_pattern),
            Description=rule.description,
            State="ENABLED",
        )
        events.put_targets(
            Rule=f"{names.prefix}-{rule.rule_id}",
            EventBusName=bus_name,
            Targets=[{"Id": rule.target, "Arn": targets[rule.target]}],
        )
    events.put_rule(
        Name=f"{names.prefix}-monitor",
        EventBusName=names.bus,
        EventPattern=json.dumps(OUTCOMES_PATTERN),
        Description="The local stack's one-line-per-image log",
        State="ENABLED",
    )
    events.put_targets(
        Rule=f"{names.prefix}-monitor",
        EventBusName=names.bus,
        Targets=[{"Id": "monitor", "Arn": _queue_arn(names.monitor_queue)}],
    )

    secret_ids: dict[str, str] = {}
    for secret in deployment.secrets:
        name = secret.existing_secret_id or names.secret(secret.provider_key)
        secretsmanager.create_secret(
            Name=name,
            SecretString=_secret_value(secret.provider_key, secret_values or {}),
            Description=f"Credentials of the {secret.provider_name} provider ({secret.provider_key})",
        )
        secret_ids[secret.provider_key] = name

    environments = function_environments(
        deployment.functions,
        config=config,
        table_name=names.table,
        idempotency_table_name=names.idempotency_table,
        event_bus_name=names.bus,
        images_bucket=bucket,
        dlq_urls={"tag_dlq": dlq_url, "event_dlq": event_dlq_url},
        secret_ids=secret_ids,
    )
    for environment in environments.values():
        environment.update(emulator_environment(endpoint_url))
        # No X-Ray daemon locally.
        environment["POWERTOOLS_TRACE_DISABLED"] = "true"
        environment.update(extra_environment or {})

    resources = LocalResources(
        images_bucket=bucket,
        table_name=names.table,
        idempotency_table_name=names.idempotency_table,
        event_bus_name=names.bus,
        tag_queue_url=tag_queue_url,
        dlq_url=dlq_url,
        events_queue_url=on_event_queue_url,
        monitor_queue_url=monitor_queue_url,
        secrets=secret_ids,
        extra={"event_dlq_url": event_dlq_url},
    )
    return ProvisionedStack(
        deployment=deployment, resources=resources, environments=environments, tag_queue_arn=tag_queue_arn
    )


def function_code_dir(root: Path, code_dir: str) -> Path:
    return (root / code_dir).resolve()
