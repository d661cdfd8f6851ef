"""Bucket-scale backfill on S3 Batch Operations: the job's resources and its CreateJob request
(following the job, confirming or cancelling it and reading its report: :mod:`autotag.ops.batch_jobs`).

``autotag backfill s3://bucket/prefix --engine batch-operations`` creates a job (S3 Control
``CreateJob``) whose manifest S3 generates itself (``ManifestGenerator`` /
``S3JobManifestGenerator``: the prefix, created-after/before and size filters) or is an existing
S3 Inventory report (``manifest.json``) or CSV manifest; its operation is ``LambdaInvoke`` of the
stack's ``on_batch`` function with invocation schema 2.0 and ``UserArguments`` (force, replay id,
prefix); its completion report (all tasks, ``Report_CSV_20180820``) goes to the reports bucket
under ``batch_operations.report_prefix``, a bucket nothing watches.

The job is created with ``ConfirmationRequired``: S3 prepares the manifest, counts the tasks and
waits (``Suspended``). The budget guard (:mod:`autotag.ops.budget`) then states how many objects
the job holds and what they cost, and confirms the job only within the ceiling (otherwise cancels
it). The same client code runs against AWS and against the local stack, which serves the S3
Control job API on 127.0.0.1 (:mod:`autotag.local.s3control_server`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autotag.batch_tasks import INVOCATION_SCHEMA_VERSION, JobArguments
from autotag.errors import AutotagError, BadInputError, ConfigError
from autotag.ops.target import Target

# Stack outputs (infra/batch_operations.py) and, locally, the state file's extra resources.
OUTPUT_FUNCTION_ARN = "BatchFunctionArn"
OUTPUT_ROLE_ARN = "BatchJobRoleArn"
OUTPUT_REPORTS_BUCKET = "BatchReportsBucketName"
LOCAL_CONTROL_ENDPOINT = "s3control_endpoint_url"
"""Only locally: where the local stack serves the S3 Control job API."""

REPORT_FORMAT = "Report_CSV_20180820"
REPORT_SCOPE = "AllTasks"
CSV_MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
INVENTORY_MANIFEST_FORMAT = "S3InventoryReport_CSV_20161130"
GENERATED_MANIFEST_FORMAT = "S3InventoryReport_CSV_20211130"
TERMINAL_STATUSES = frozenset({"Complete", "Cancelled", "Failed"})
WAITING_STATUS = "Suspended"
"""Where a ConfirmationRequired job waits once its tasks are counted."""


class BatchOperationsError(AutotagError):
    code = "batch_operations"


@dataclass(frozen=True)
class BatchResources:
    function_arn: str
    role_arn: str
    reports_bucket: str
    report_prefix: str
    priority: int
    control_endpoint_url: str | None = None

    @property
    def account_id(self) -> str:
        """The account of the deployment (from the job role's ARN: arn:aws:iam::ACCOUNT:role/...)."""
        parts = self.role_arn.split(":")
        if len(parts) < 5 or not parts[4].isdigit():
            raise ConfigError(f"cannot read the account id from the job role ARN {self.role_arn!r}")
        return parts[4]

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def reports_bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.reports_bucket}"

    @property
    def report_api_prefix(self) -> str:
        """S3 writes ``<Prefix>/job-<id>/...``: the prefix goes without its trailing slash."""
        return self.report_prefix.rstrip("/")


def batch_resources(target: Target) -> BatchResources:
    outputs = target.outputs
    missing = [k for k in (OUTPUT_FUNCTION_ARN, OUTPUT_ROLE_ARN, OUTPUT_REPORTS_BUCKET) if not outputs.get(k)]
    if missing:
        raise ConfigError(
            f"{target.description} has no S3 Batch Operations resources ({', '.join(missing)}); "
            "deploy a version of the stack that has them, or use --engine one-machine"
        )
    settings = target.config.batch_operations
    return BatchResources(
        function_arn=outputs[OUTPUT_FUNCTION_ARN],
        role_arn=outputs[OUTPUT_ROLE_ARN],
        reports_bucket=outputs[OUTPUT_REPORTS_BUCKET],
        report_prefix=settings.report_prefix,
        priority=settings.priority,
        control_endpoint_url=outputs.get(LOCAL_CONTROL_ENDPOINT),
    )


def control_client(target: Target, resources: BatchResources) -> Any:
    if not resources.control_endpoint_url:
        return target.session.client("s3control", endpoint_url=target.endpoint_url)
    # The local job API on a loopback port: S3 Control's endpoint rules put the account id in front
    # of the host (ACCOUNT.s3-control...); on 127.0.0.1 the request goes to the address as given.
    client = target.session.client("s3control", endpoint_url=resources.control_endpoint_url)
    prefix = f"//{resources.account_id}."

    def to_loopback(request: Any, **_: Any) -> None:
        request.url = request.url.replace(prefix, "//", 1)

    client.meta.events.register("before-sign.s3-control.*", to_loopback)
    return client


# --- The request ---------------------------------------------------------------------------------


class ObjectSelection(BaseModel):
    """What the generated manifest holds: the S3JobManifestGenerator filter."""

    model_config = ConfigDict(frozen=True)

    prefix: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    larger_than_bytes: int | None = Field(default=None, ge=0)
    smaller_than_bytes: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ObjectSelection:
        if self.created_after and self.created_before and self.created_after >= self.created_before:
            raise ValueError("created-after must be earlier than created-before")
        if (
            self.larger_than_bytes is not None
            and self.smaller_than_bytes is not None
            and self.larger_than_bytes + 1 >= self.smaller_than_bytes
        ):
            raise ValueError("the size range is empty")
        return self

    def manifest_filter(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.prefix:
            spec["KeyNameConstraint"] = {"MatchAnyPrefix": [self.prefix]}
        if self.created_after:
            spec["CreatedAfter"] = self.created_after
        if self.created_before:
            spec["CreatedBefore"] = self.created_before
        if self.larger_than_bytes is not None:
            spec["ObjectSizeGreaterThanBytes"] = self.larger_than_bytes
        if self.smaller_than_bytes is not None:
            spec["ObjectSizeLessThanBytes"] = self.smaller_than_bytes
        return spec


@dataclass(frozen=True)
class ExistingManifest:
    """An S3 Inventory report's ``manifest.json``, or a CSV manifest (Bucket,Key per line)."""

    bucket: str
    key: str
    etag: str
    partition: str = "aws"

    @property
    def format(self) -> str:
        return INVENTORY_MANIFEST_FORMAT if self.key.endswith("manifest.json") else CSV_MANIFEST_FORMAT

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"Format": self.format}
        if self.format == CSV_MANIFEST_FORMAT:
            spec["Fields"] = ["Bucket", "Key"]
        return {
            "Spec": spec,
            "Location": {
                "ObjectArn": f"arn:{self.partition}:s3:::{self.bucket}/{self.key}",
                "ETag": self.etag,
            },
        }


def find_manifest(s3: Any, url: str, partition: str) -> ExistingManifest:
    split = urlsplit(url)
    if split.scheme != "s3" or not split.netloc or not split.path.strip("/"):
        raise BadInputError(
            f"--manifest expects s3://bucket/key (an inventory manifest.json or a CSV), got {url!r}"
        )
    bucket, key = split.netloc, split.path.lstrip("/")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise BadInputError(f"cannot read the manifest {url}: {code}") from None
    return ExistingManifest(bucket=bucket, key=key, etag=str(head["ETag"]).strip('"'), partition=partition)


def create_job_request(
    *,
    resources: BatchResources,
    bucket: str,
    selection: ObjectSelection,
    arguments: JobArguments,
    manifest: ExistingManifest | None = None,
    token: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The CreateJob parameters (validated against botocore's s3control model in tests/unit)."""
    user_arguments = arguments.model_copy(update={"prefix": selection.prefix}).user_arguments()
    request: dict[str, Any] = {
        "AccountId": resources.account_id,
        "ConfirmationRequired": True,
        "Operation": {
            "LambdaInvoke": {
                "FunctionArn": resources.function_arn,
                "InvocationSchemaVersion": INVOCATION_SCHEMA_VERSION,
                "UserArguments": user_arguments,
            }
        },
        "Report": {
            "Bucket": resources.reports_bucket_arn,
            "Format": REPORT_FORMAT,
            "Enabled": True,
            "Prefix": resources.report_api_prefix,
            "ReportScope": REPORT_SCOPE,
        },
        "ClientRequestToken": token or str(uuid.uuid4()),
        "Description": (description or f"autotag backfill s3://{bucket}/{selection.prefix}")[:256],
        "Priority": resources.priority,
        "RoleArn": resources.role_arn,
    }
    if manifest is not None:
        request["Manifest"] = manifest.spec()
    else:
        generator: dict[str, Any] = {
            "SourceBucket": f"arn:{resources.partition}:s3:::{bucket}",
            "EnableManifestOutput": True,
            "ManifestOutputLocation": {
                "Bucket": resources.reports_bucket_arn,
                "ManifestPrefix": f"{resources.report_api_prefix}/manifests",
                "ManifestEncryption": {"SSES3": {}},
                "ManifestFormat": GENERATED_MANIFEST_FORMAT,
            },
        }
        manifest_filter = selection.manifest_filter()
        if manifest_filter:
            generator["Filter"] = manifest_filter
        request["ManifestGenerator"] = {"S3JobManifestGenerator": generator}
    return request
