"""The one place function defaults are applied: arm64, Python 3.12, JSON logs into a log group with
retention, active tracing, an execution role that may write only its own log group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autotag.deploy.specs import FunctionResources
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.layers import ASSET_EXCLUDES

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """CloudWatch's retention enum for a day count (the config validates the count)."""
    return _RETENTION[days]


RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64


@dataclass(frozen=True)
class FunctionCode:
    """What every function of the stack shares: where the code is, its layers, its log retention."""

    root: Path
    """The repository root (function code is under ``functions/``)."""
    layers: list[lambda_.ILayerVersion]
    log_retention_days: int


def autotag_function(
    scope: Construct,
    construct_id: str,
    *,
    spec: FunctionResources,
    code: FunctionCode,
    environment: dict[str, str],
) -> lambda_.Function:
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=retention(code.log_retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )
    # An explicit role instead of AWSLambdaBasicExecutionRole: logs go to this function's group only.
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"autotag {spec.name} execution role",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    return lambda_.Function(
        scope,
        construct_id,
        description=spec.description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=spec.handler,
        code=lambda_.Code.from_asset(str(code.root / spec.code_dir), exclude=ASSET_EXCLUDES),
        memory_size=spec.memory_mb,
        timeout=Duration.seconds(spec.timeout_seconds),
        tracing=lambda_.Tracing.ACTIVE,
        logging_format=lambda_.LoggingFormat.JSON,
        log_group=log_group,
        role=role,
        layers=code.layers,
        environment=environment,
    )
