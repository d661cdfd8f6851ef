"""Bucket-scale backfill on S3 Batch Operations: the reports bucket, the on_batch function and the
role the jobs run as (``autotag backfill --engine batch-operations``; docs/scale.md).

Least privilege, by who calls what:

- the job role, trusted by ``batchoperations.s3.amazonaws.com`` from this account only: list the
  images bucket (the generated manifest), invoke on_batch, write generated manifests and completion
  reports under the report prefix of the reports bucket and read them back, and read manifests in
  the configured ``manifest_buckets`` (S3 Inventory reports, CSV manifests);
- on_batch: HEAD the images bucket's objects (s3:GetObject / s3:GetObjectVersion), read image
  records (dynamodb:GetItem), send to the tag queue (sqs:SendMessage), write its own logs.

The reports bucket is nobody's watched bucket, so neither reports nor manifests can trigger tagging.
"""

from __future__ import annotations

from autotag.deploy.config import DeploymentConfig
from autotag.deploy.environment import batch_environment
from autotag.deploy.specs import BatchOperationsSpec
from autotag.ops.batch_operations import OUTPUT_FUNCTION_ARN, OUTPUT_REPORTS_BUCKET, OUTPUT_ROLE_ARN
from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import ids
from infra.function_defaults import FunctionCode, autotag_function
from infra.nag import (
    acknowledge,
    acknowledge_function,
    external_object_arn_finding,
    object_arn_finding,
    role_policy,
)
from infra.storage import private_bucket

BATCH_OPERATIONS_PRINCIPAL = "batchoperations.s3.amazonaws.com"
ON_BATCH_OBJECT_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]
"""HeadObject (for the ETag) is authorized as s3:GetObject / s3:GetObjectVersion."""
ON_BATCH_TABLE_ACTIONS = ["dynamodb:GetItem"]
"""DynamoImageStore.get (the skip-if-already-tagged rule)."""
ON_BATCH_QUEUE_ACTIONS = ["sqs:SendMessage"]
JOB_LIST_ACTIONS = ["s3:ListBucket"]
"""The manifest generator lists the images bucket."""
JOB_REPORT_ACTIONS = ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"]
"""Generated manifests and completion reports are written under the report prefix; the job reads
its generated manifest back."""
JOB_MANIFEST_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]
JOB_BUCKET_LOCATION_ACTIONS = ["s3:GetBucketLocation"]
JOB_INVOKE_ACTIONS = ["lambda:InvokeFunction"]


class BatchOperations(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: BatchOperationsSpec,
        config: DeploymentConfig,
        code: FunctionCode,
        bucket: s3.IBucket,
        table: dynamodb.ITable,
        tag_queue: sqs.IQueue,
        access_logs_bucket: s3.IBucket | None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.batch_operations
        prefix = spec.report_prefix
        partition = Stack.of(self).partition

        self.reports_bucket = private_bucket(
            self,
            ids.BATCH_REPORTS_BUCKET,
            access_logs=access_logs_bucket,
            access_logs_prefix="batch-reports/",
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(settings.report_retention_days))],
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )

        self.function = autotag_function(
            self,
            ids.BATCH_FUNCTION,
            spec=spec.function,
            code=code,
            environment=batch_environment(
                config,
                table_name=table.table_name,
                tag_queue_url=tag_queue.queue_url,
                images_bucket=bucket.bucket_name,
            ),
        )
        # Not table.grant(): the table has an index, and grant() would add every action on index/*.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=ON_BATCH_TABLE_ACTIONS, resources=[table.table_arn])
        )
        tag_queue.grant(self.function, *ON_BATCH_QUEUE_ACTIONS)
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=ON_BATCH_OBJECT_ACTIONS, resources=[bucket.arn_for_objects("*")])
        )

        self.job_role = iam.Role(
            self,
            ids.BATCH_JOB_ROLE,
            assumed_by=iam.PrincipalWithConditions(
                iam.ServicePrincipal(BATCH_OPERATIONS_PRINCIPAL),
                {"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description="autotag backfill jobs (S3 Batch Operations)",
        )
        statements = [
            iam.PolicyStatement(actions=JOB_INVOKE_ACTIONS, resources=[self.function.function_arn]),
            iam.PolicyStatement(actions=JOB_LIST_ACTIONS, resources=[bucket.bucket_arn]),
            iam.PolicyStatement(
                actions=JOB_REPORT_ACTIONS, resources=[self.reports_bucket.arn_for_objects(f"{prefix}*")]
            ),
            iam.PolicyStatement(
                actions=JOB_BUCKET_LOCATION_ACTIONS, resources=[self.reports_bucket.bucket_arn]
            ),
        ]
        if settings.manifest_buckets:
            statements.append(
                iam.PolicyStatement(
                    actions=JOB_MANIFEST_READ_ACTIONS,
                    resources=[f"arn:{partition}:s3:::{name}/*" for name in settings.manifest_buckets],
                )
            )
        for statement in statements:
            self.job_role.add_to_policy(statement)

        self._acknowledge_findings(bucket, prefix, settings.manifest_buckets, access_logs_bucket)

        CfnOutput(scope, OUTPUT_FUNCTION_ARN, value=self.function.function_arn)
        CfnOutput(scope, OUTPUT_ROLE_ARN, value=self.job_role.role_arn)
        CfnOutput(scope, OUTPUT_REPORTS_BUCKET, value=self.reports_bucket.bucket_name)

    def _acknowledge_findings(
        self,
        bucket: s3.IBucket,
        prefix: str,
        manifest_buckets: tuple[str, ...],
        access_logs_bucket: s3.IBucket | None,
    ) -> None:
        function_policy = acknowledge_function(self.function)
        if function_policy is not None:
            acknowledge(
                function_policy,
                object_arn_finding(bucket, "*"),
                "on_batch HEADs the objects a backfill job names, any key of the images bucket: "
                "s3:GetObject / s3:GetObjectVersion only",
            )
        job_policy = role_policy(self.job_role)
        if job_policy is not None:
            acknowledge(
                job_policy,
                object_arn_finding(self.reports_bucket, f"{prefix}*"),
                "completion reports and generated manifests get keys S3 chooses (job-<id>/...), under the "
                "report prefix only",
            )
            for name in manifest_buckets:
                acknowledge(
                    job_policy,
                    external_object_arn_finding(name),
                    f"batch_operations.manifest_buckets names {name}: jobs read inventory reports / CSV "
                    "manifests there (read only)",
                )
        if access_logs_bucket is None:
            acknowledge(
                self.reports_bucket,
                "AwsSolutions-S1",
                "server access logging is off in the deployment config (or the images bucket is imported "
                "and the stack has no log bucket)",
            )
