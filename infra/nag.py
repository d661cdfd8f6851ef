"""cdk-nag (AwsSolutions) acknowledgements: the helpers each construct uses to accept, on the
construct concerned and with the reason, the findings it causes. Anything not acknowledged fails synth."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

PACK = "AwsSolutions::"
TRACING_ACTIONS = "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing)"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{PACK}{rule}", reason=reason))


def nag_arn(bucket: s3.IBucket, suffix: str) -> str:
    """How cdk-nag spells an object ARN of ``bucket`` in an IAM5 finding."""
    if bucket.node.default_child is not None:
        logical_id = Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        return f"<{logical_id}.Arn>/{suffix}"
    return f"arn:<AWS::Partition>:s3:::{bucket.bucket_name}/{suffix}"


def object_arn_finding(bucket: s3.IBucket, suffix: str) -> str:
    """The IAM5 finding of a grant on objects ``suffix`` of ``bucket``."""
    return f"AwsSolutions-IAM5[Resource::{nag_arn(bucket, suffix)}]"


def external_object_arn_finding(bucket_name: str) -> str:
    """The IAM5 finding of a grant on every object of a bucket named in the config."""
    return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket_name}/*]"


def role_policy(role: iam.IRole | None) -> IConstruct | None:
    """The role's policy the grants went into (None before the first grant)."""
    return role.node.try_find_child("DefaultPolicy") if role else None


def acknowledge_function(function: lambda_.Function, *, unscoped: str = TRACING_ACTIONS) -> IConstruct | None:
    """What every autotag function brings: the pinned runtime and the actions that take no resource.
    Returns the role policy, for the function's own grants to acknowledge."""
    acknowledge(
        function,
        "AwsSolutions-L1",
        "Python 3.12 is pinned on purpose: the dependency layer is built from cp312 wheels; the "
        "runtime and the layer build move together",
    )
    policy = role_policy(function.role)
    if policy is not None:
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            f"{unscoped} support no resource-level permissions; every other action is scoped "
            "(checked by tests/infra)",
        )
    return policy


def acknowledge_cdk_singletons(stack: Stack) -> None:
    """CDK's own singleton that applies bucket notifications (created by add_event_notification)."""
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            acknowledge(
                child,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's BucketNotificationsHandler (applies the S3 -> SQS notification at deploy time) "
                "comes with this role; it only writes its own logs and calls s3:PutBucketNotification",
            )
            acknowledge(
                child,
                "AwsSolutions-IAM5[Resource::*]",
                "CDK's BucketNotificationsHandler calls s3:PutBucketNotification, which it is granted on "
                "'*' by aws-cdk-lib; it runs only during deployments",
            )
