"""Storage: the images bucket (created or imported), its access-log bucket, the results table and
the idempotency table (key schemas from :mod:`autotag.store.schema`)."""

from __future__ import annotations

from typing import Any

from autotag.deploy.config import BucketSettings
from autotag.store.schema import IDEMPOTENCY_TABLE, TABLE, AttributeSpec, TableSpec
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import ids
from infra.nag import acknowledge

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def private_bucket(
    scope: Construct,
    construct_id: str,
    *,
    access_logs: s3.IBucket | None = None,
    access_logs_prefix: str | None = None,
    **props: Any,
) -> s3.Bucket:
    """A bucket with every stack bucket's defaults: SSE-S3 (the only encryption server access logs
    deliver to), no public access, no ACLs, TLS 1.2+ only; server access logs when a log bucket is given."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=access_logs_prefix if access_logs else None,
        **props,
    )


class Storage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: BucketSettings,
        event_bridge_enabled: bool,
        retain_data: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY
        self.access_logs_bucket: s3.Bucket | None = None
        self.bucket_is_imported = settings.existing_name is not None

        self.bucket: s3.IBucket
        if settings.existing_name:
            self.bucket = s3.Bucket.from_bucket_name(self, ids.IMAGES_BUCKET, settings.existing_name)
        else:
            if settings.access_logs:
                self.access_logs_bucket = private_bucket(
                    self,
                    ids.ACCESS_LOGS_BUCKET,
                    lifecycle_rules=[
                        s3.LifecycleRule(expiration=Duration.days(settings.access_log_retention_days))
                    ],
                    removal_policy=removal,
                )
            self.bucket = private_bucket(
                self,
                ids.IMAGES_BUCKET,
                access_logs=self.access_logs_bucket,
                access_logs_prefix="images/",
                versioned=settings.versioned,
                event_bridge_enabled=event_bridge_enabled,
                lifecycle_rules=[
                    s3.LifecycleRule(
                        abort_incomplete_multipart_upload_after=Duration.days(7),
                        noncurrent_version_expiration=Duration.days(30) if settings.versioned else None,
                    )
                ],
                removal_policy=removal,
            )
            if self.access_logs_bucket is None:
                acknowledge(
                    self.bucket, "AwsSolutions-S1", "server access logging is off in the deployment config"
                )

        self.table = _table(self, ids.TABLE, TABLE, removal=removal)
        # Idempotency records expire within hours; losing them on teardown loses nothing.
        self.idempotency_table = _table(
            self, ids.IDEMPOTENCY_TABLE, IDEMPOTENCY_TABLE, removal=RemovalPolicy.DESTROY
        )


def _attribute(spec: AttributeSpec) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=spec.name, type=_ATTRIBUTE_TYPES[spec.type])


def _table(scope: Construct, construct_id: str, spec: TableSpec, *, removal: RemovalPolicy) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=_attribute(spec.partition_key),
        sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
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
            partition_key=_attribute(index.partition_key),
            sort_key=_attribute(index.sort_key),
            projection_type=dynamodb.ProjectionType.INCLUDE
            if index.projected_attributes
            else dynamodb.ProjectionType.KEYS_ONLY,
            non_key_attributes=list(index.projected_attributes) or None,
        )
    return table
