"""cdk-nag (AwsSolutions) acknowledgements: each finding we accept, on the construct it concerns,
with the reason it is acceptable. Anything not listed here fails synth."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

if TYPE_CHECKING:
    from infra.stack import AutotagStack

PACK = "AwsSolutions::"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{PACK}{rule}", reason=reason))


def nag_arn(stack: Stack, bucket: s3.IBucket, suffix: str) -> str:
    """How cdk-nag spells an object ARN of ``bucket`` in an IAM5 finding."""
    if bucket.node.default_child is not None:
        logical_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        return f"<{logical_id}.Arn>/{suffix}"
    return f"arn:<AWS::Partition>:s3:::{bucket.bucket_name}/{suffix}"


def acknowledge_findings(stack: AutotagStack) -> None:
    _acknowledge_queues(stack)
    _acknowledge_function_roles(stack)
    _acknowledge_secrets(stack)
    _acknowledge_api(stack)
    _acknowledge_storage(stack)
    _acknowledge_batch_operations(stack)


def _acknowledge_queues(stack: AutotagStack) -> None:
    acknowledge(
        stack.queues.event_dlq,
        "AwsSolutions-SQS3",
        "EventDlq is itself a dead-letter queue: of the Tag Image Requested rule target and of "
        "on_event's failed asynchronous invocations",
    )


def _acknowledge_function_roles(stack: AutotagStack) -> None:
    config = stack.resources.config
    bucket = stack.storage.bucket
    for name, function in stack.functions.by_name.items():
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Python 3.12 is pinned on purpose: the dependency layer is built from cp312 wheels; the "
            "runtime and the layer build move together",
        )
        policy = function.role.node.try_find_child("DefaultPolicy") if function.role else None
        if policy is None:
            continue
        unscoped = "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing)"
        if stack.resources.uses_rekognition:
            unscoped += " and rekognition:DetectLabels / DetectModerationLabels"
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            f"{unscoped} support no resource-level permissions; every other action is scoped "
            "(checked by tests/infra)",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(stack, bucket, '*')}]",
            f"{name} works on objects of the images bucket, whose keys are not known in advance; "
            "the actions are listed one by one (no s3:*)",
        )
        prefix = config.api.upload_prefix
        if stack.resources.function(name).presigns_uploads:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{nag_arn(stack, bucket, f'{prefix}*')}]",
                f"{name} presigns PUT URLs for new uploads, whose keys are random ids under {prefix}: "
                "s3:PutObject only, under that prefix only",
            )
        if name.value != "on_upload":
            for allowed in config.api.allowed_buckets:
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{allowed}/*]",
                    f"api.allowed_buckets names {allowed} as a bucket requests may reference: "
                    "object read and object tagging only",
                )
        _acknowledge_imported_secrets(stack, policy)


def _acknowledge_imported_secrets(stack: AutotagStack, policy: IConstruct) -> None:
    for spec_secret in stack.resources.secrets:
        existing = spec_secret.existing_secret_id
        if existing and not existing.startswith("arn:"):
            acknowledge(
                policy,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:"
                f"<AWS::AccountId>:secret:{existing}-??????]",
                f"secret {existing} is imported by name; '-??????' is the random suffix Secrets "
                "Manager appends, so the pattern matches that one secret",
            )


def _acknowledge_secrets(stack: AutotagStack) -> None:
    for secret in stack.secrets.secrets.values():
        if secret.node.default_child is not None:
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "holds a third-party provider's API key that the provider issues; rotation means "
                "issuing a new key there and putting it here (functions re-read it on an auth error)",
            )


def _acknowledge_api(stack: AutotagStack) -> None:
    config = stack.resources.config
    api = stack.api.api
    for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
        acknowledge(
            api,
            rule,
            "clients are machines, not users: every method requires an API key bound to a usage plan "
            "with throttling and a quota (product decision); no user pool exists to authorize against",
        )
    acknowledge(
        api,
        "AwsSolutions-APIG2",
        "every path is proxied to tag_api, which validates each request against the OpenAPI document "
        "it publishes and answers each violation with its documented code; a gateway validator would "
        "answer a body that is not JSON, or an oversized image, with one fixed message instead",
    )
    if api.node.try_find_child("CloudWatchRole") is not None:
        acknowledge(
            api.node.find_child("CloudWatchRole"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "the account-level role API Gateway uses to write stage logs; this AWS-managed policy is "
            "the one AWS documents for it",
        )
    if not config.api.web_acl_arn:
        acknowledge(
            api.deployment_stage,
            "AwsSolutions-APIG3",
            "WAF is opt-in (api.web_acl_arn); without it, API keys, usage-plan throttling and quota, and "
            "stage throttling bound abuse",
        )


def _acknowledge_storage(stack: AutotagStack) -> None:
    config = stack.resources.config
    bucket = stack.storage.bucket
    if not config.bucket.access_logs and not stack.storage.bucket_is_imported:
        acknowledge(bucket, "AwsSolutions-S1", "server access logging is off in the deployment config")

    # CDK's own singleton that applies bucket notifications (created by add_event_notification).
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


def _acknowledge_batch_operations(stack: AutotagStack) -> None:
    batch = stack.batch_operations
    config = stack.resources.config
    acknowledge(
        batch.function,
        "AwsSolutions-L1",
        "Python 3.12 is pinned on purpose: the dependency layer is built from cp312 wheels",
    )
    function_policy = (
        batch.function.role.node.try_find_child("DefaultPolicy") if batch.function.role else None
    )
    if function_policy is not None:
        acknowledge(
            function_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) support no resource-level "
            "permissions",
        )
        acknowledge(
            function_policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(stack, stack.storage.bucket, '*')}]",
            "on_batch HEADs the objects a backfill job names, any key of the images bucket: "
            "s3:GetObject / s3:GetObjectVersion only",
        )
    role_policy = batch.job_role.node.try_find_child("DefaultPolicy")
    if role_policy is not None:
        prefix = stack.resources.batch_operations.report_prefix
        acknowledge(
            role_policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(stack, batch.reports_bucket, f'{prefix}*')}]",
            "completion reports and generated manifests get keys S3 chooses (job-<id>/...), under the "
            "report prefix only",
        )
        for name in config.batch_operations.manifest_buckets:
            acknowledge(
                role_policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{name}/*]",
                f"batch_operations.manifest_buckets names {name}: jobs read inventory reports / CSV "
                "manifests there (read only)",
            )
    if stack.storage.access_logs_bucket is None:
        acknowledge(
            batch.reports_bucket,
            "AwsSolutions-S1",
            "server access logging is off in the deployment config (or the images bucket is imported "
            "and the stack has no log bucket)",
        )
