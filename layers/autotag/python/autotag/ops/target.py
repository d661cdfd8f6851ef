"""Where the operations act: the resources of one deployment and clients to reach them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from autotag.deploy.config import DeploymentConfig
from autotag.deploy.resolve import load_any_config, resolve_config
from autotag.errors import AutotagError
from autotag.local.state import DEFAULT_STATE_PATH, read_state

# CloudFormation output keys of the stack (infra/stack.py).
OUTPUT_BUCKET = "ImagesBucketName"
OUTPUT_TABLE = "TableName"
OUTPUT_TAG_QUEUE = "TagQueueUrl"
OUTPUT_TAG_DLQ = "TagDlqUrl"
OUTPUT_EVENT_DLQ = "EventDlqUrl"
OUTPUT_BUS = "EventBusName"
OUTPUT_API = "ApiUrl"
REQUIRED_OUTPUTS = (OUTPUT_BUCKET, OUTPUT_TABLE, OUTPUT_TAG_QUEUE, OUTPUT_TAG_DLQ)


class TargetError(AutotagError):
    code = "target_not_found"


@dataclass
class Target:
    """One deployment's resources, and how to build clients for it."""

    description: str
    images_bucket: str
    table_name: str
    tag_queue_url: str
    dlq_url: str
    event_dlq_url: str | None = None
    event_bus_name: str | None = None
    api_url: str | None = None
    config: DeploymentConfig = field(default_factory=DeploymentConfig)
    session: Any = None
    endpoint_url: str | None = None
    instance_id: str | None = None
    """Which incarnation of the deployment: the CloudFormation stack id (new when a stack of the
    same name is created again), or the local stack's per-start id (it starts empty each time)."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Every stack output (or, locally, the state's extra resources): optional features read theirs."""

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)


def _session(profile: str | None, region: str | None) -> Any:
    try:
        return boto3.session.Session(profile_name=profile, region_name=region)
    except BotoCoreError as exc:
        raise TargetError(f"cannot create an AWS session: {exc}") from None


def stack_target(
    stack_name: str, *, profile: str | None = None, region: str | None = None, config: DeploymentConfig
) -> Target:
    """A deployed stack, found by name through its CloudFormation outputs."""
    session = _session(profile, region)
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise TargetError(
            f"cannot read stack {stack_name!r}: {exc.response['Error'].get('Message', exc)}"
        ) from None
    except BotoCoreError as exc:
        raise TargetError(f"cannot read stack {stack_name!r}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise TargetError(
            f"stack {stack_name!r} lacks the outputs {', '.join(missing)}; is it an autotag stack?"
        )
    return Target(
        description=f"stack {stack_name} ({session.region_name})",
        images_bucket=outputs[OUTPUT_BUCKET],
        table_name=outputs[OUTPUT_TABLE],
        tag_queue_url=outputs[OUTPUT_TAG_QUEUE],
        dlq_url=outputs[OUTPUT_TAG_DLQ],
        event_dlq_url=outputs.get(OUTPUT_EVENT_DLQ),
        event_bus_name=outputs.get(OUTPUT_BUS),
        api_url=outputs.get(OUTPUT_API),
        config=config,
        session=session,
        instance_id=f"{stacks[0].get('StackId', stack_name)}@{stacks[0].get('CreationTime', '')}",
        outputs=outputs,
    )


def local_target(state_path: Path | None = None, *, config: DeploymentConfig | None = None) -> Target:
    """The running local stack, through the state file ``autotag local`` wrote."""
    path = state_path or DEFAULT_STATE_PATH
    state = read_state(path)
    if config is None:
        config = load_any_config(state.config_path) if state.config_path else DeploymentConfig()
    resources = state.resources
    session = boto3.session.Session(
        aws_access_key_id=state.aws_access_key_id,
        aws_secret_access_key=state.aws_secret_access_key,
        region_name=state.region,
    )
    return Target(
        description=f"local stack ({path})",
        images_bucket=resources.images_bucket,
        table_name=resources.table_name,
        tag_queue_url=resources.tag_queue_url,
        dlq_url=resources.dlq_url,
        event_dlq_url=resources.extra.get("event_dlq_url"),
        event_bus_name=resources.event_bus_name,
        api_url=state.api_url,
        config=config,
        session=session,
        endpoint_url=state.endpoint_url,
        instance_id=f"local:{state.instance_id}",
        outputs=dict(resources.extra),
    )


def resolve_target(
    *,
    stack: str | None,
    state_path: Path | None,
    profile: str | None = None,
    region: str | None = None,
    config_path: str | None = None,
) -> Target:
    """``--stack NAME`` → that deployment; otherwise the local stack of the state file."""
    config = load_any_config(config_path) if config_path else None
    if stack:
        if config is None:
            config, _ = resolve_config(None)
        return stack_target(stack, profile=profile, region=region, config=config)
    return local_target(state_path, config=config)
