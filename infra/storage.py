"""Storage: the images bucket (created or imported), its access-log bucket, the results table and
the idempotency table."""

from __future__ import annotations

from autotag.deploy.specs import DeploymentResources
from autotag.store.schema import TableSpec
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import ids

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, resources: DeploymentResources) -> None:
        super().__init__(scope, construct_id)
        config = resources.config
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.access_logs_bucket: s3.Bucket | None = None
        self.bucket_is_imported = config.bucket.existing_name is not None

        self.bucket: s3.IBucket
        if config.bucket.existing_name:
            self.bucket = s3.Bucket.from_bucket_name(self, ids.IMAGES_BUCKET, config.bucket.existing_name)
        else:
            if config.bucket.access_logs:
                self.access_logs_bucket = s3.Bucket(
                    self,
                    ids.ACCESS_LOGS_BUCKET,
                    # Server access logging delivers only to SSE-S3 buckets.
                    encryption=s3.BucketEncryption.S3_MANAGED,
                    block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                    object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                    enforce_ssl=True,
                    minimum_tls_version=1.2,
                    lifecycle_rules=[
                        s3.LifecycleRule(expiration=Duration.days(config.bucket.access_log_retention_days))
                    ],
                    removal_policy=removal,
                )
            self.bucket = s3.Bucket(
                self,
                ids.IMAGES_BUCKET,
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                enforce_ssl=True,
                minimum_tls_version=1.2,
                versioned=config.bucket.versioned,
                server_access_logs_bucket=self.access_logs_bucket,
                server_access_logs_prefix="images/" if self.access_logs_bucket else None,
                event_bridge_enabled=config.notifications.mode == "eventbridge",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        abort_incomplete_multipart_upload_after=Duration.days(7),
                        noncurrent_version_expiration=Duration.days(30) if config.bucket.versioned else None,
                    )
                ],
                removal_policy=removal,
            )

        self.table = _table(self, ids.TABLE, resources.table, removal=removal)
        # Idempotency records expire within hours; losing them on teardown loses nothing.
        self.idempotency_table = _table(
            self, ids.IDEMPOTENCY_TABLE, resources.idempotency_table, removal=RemovalPolicy.DESTROY
        )


def _table(scope: Construct, construct_id: str, spec: TableSpec, *, removal: RemovalPolicy) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(
            name=spec.partition_key.name, type=_ATTRIBUTE_TYPES[spec.partition_key.type]
        ),
        sort_key=(
            dynamodb.Attribute(name=spec.sort_key.name, type=_ATTRIBUTE_TYPES[spec.sort_key.type])
            if spec.sort_key
            else None
        ),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=spec.point_in_time_recovery
        ),
        time_to_live_attribute=spec.ttl_attribute,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        removal_policy=removal,
    )
    for index in spec.indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=dynamodb.Attribute(
                name=index.partition_key.name, type=_ATTRIBUTE_TYPES[index.partition_key.type]
            ),
            sort_key=dynamodb.Attribute(name=index.sort_key.name, type=_ATTRIBUTE_TYPES[index.sort_key.type]),
            projection_type=dynamodb.ProjectionType.INCLUDE
            if index.projected_attributes
            else dynamodb.ProjectionType.KEYS_ONLY,
            non_key_attributes=list(index.projected_attributes) or None,
        )
    return table
