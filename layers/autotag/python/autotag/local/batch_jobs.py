"""S3 Batch Operations jobs for the local stack, which the AWS emulator does not have: the job
record (:class:`Job`, :class:`Task`, as ``DescribeJob`` describes them) and the rules of its life.

:class:`~autotag.local.s3control_server.S3ControlServer` serves the S3 Control job API
(``CreateJob``, ``DescribeJob``, ``UpdateJobStatus``, ``ListJobs``) on 127.0.0.1 in S3 Control's
own wire format (REST-XML, parsed and written with botocore's s3control service model), so
``autotag backfill --engine batch-operations`` drives it with a plain boto3 ``s3control`` client,
exactly as it drives AWS.

:class:`~autotag.local.batch_engine.LocalJobEngine` runs each job the way the documentation
describes (its manifests and report: :mod:`autotag.local.batch_manifests`):

- ``New`` → ``Preparing``: the manifest is generated (``S3JobManifestGenerator``: the source
  bucket's current objects, filtered by key prefix/suffix/substring, creation time and size; with
  ``EnableManifestOutput`` the manifest is written as an S3 Inventory style ``manifest.json`` + CSV)
  or read (``S3BatchOperations_CSV_20180820`` or ``S3InventoryReport_CSV_20161130``, its ETag
  checked). Keys in manifests are URL-encoded.
- ``ConfirmationRequired`` → ``Suspended`` with the task count, until ``UpdateJobStatus Ready``.
- ``Active``: one ``LambdaInvoke`` per task (Batch Operations sends one task per invocation), the
  documented event (schema 1.0 or 2.0, ``UserArguments`` in 2.0, keys URL-encoded) to the same
  handler the stack deploys, run in the local Lambda runtime. ``TemporaryFailure`` and function
  errors are retried; the last attempt's outcome stands. A response missing a task's result
  counts as its ``treatMissingKeysAs``. More than half the tasks failed after 1,000 → ``Failed``.
- ``Complete`` / ``Cancelled`` / ``Failed``: the completion report, ``Report_CSV_20180820``:
  ``<Prefix>/job-<id>/manifest.json`` listing one CSV per task execution status under
  ``results/<40 hex>.csv`` with its MD5; rows ``Bucket,Key,VersionId,TaskStatus,ErrorCode,
  HTTPStatusCode,ResultMessage`` (keys URL-encoded), values in the order AWS's reports carry them:
  after ``TaskStatus`` come the HTTP status of the invocation and then the result code.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from autotag.local.state import ACCOUNT_ID, REGION

API_PREFIX = "/v20180820/jobs"
REPORT_SCHEMA = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
TASK_ATTEMPTS = 3
"""Tries per task on TemporaryFailure or a function error (the first included)."""
FAILURE_THRESHOLD_TASKS = 1000
FAILURE_THRESHOLD_RATE = 0.5
SUSPENDED_CAUSE = "AWAITING_CONFIRMATION"
ACTIVE_STATUSES = ("Ready", "Active")
TERMINAL = frozenset({"Complete", "Cancelled", "Failed"})


class JobError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def encode_key(key: str) -> str:
    """Keys as Batch Operations writes them in manifests, events and reports (URL-encoded)."""
    return quote(key, safe="/")


@dataclass
class Task:
    bucket: str
    key: str
    version_id: str | None = None
    task_id: str = field(default_factory=lambda: base64.b64encode(uuid.uuid4().bytes).decode().rstrip("="))
    status: str | None = None  # succeeded / failed
    error_code: str = ""
    http_status: str = "200"
    message: str = ""


@dataclass
class Job:
    job_id: str
    request: dict[str, Any]
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "New"
    tasks: list[Task] = field(default_factory=list)
    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    active_seconds: float = 0.0
    active_since: float | None = None
    status_update_reason: str | None = None
    failure_reasons: list[dict[str, str]] = field(default_factory=list)
    terminated: datetime | None = None
    suspended: datetime | None = None
    generated_manifest: dict[str, Any] | None = None
    requested: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    @property
    def elapsed(self) -> float:
        running = time.monotonic() - self.active_since if self.active_since is not None else 0.0
        return self.active_seconds + running

    def descriptor(self) -> dict[str, Any]:
        request = self.request
        descriptor: dict[str, Any] = {
            "JobId": self.job_id,
            "JobArn": f"arn:aws:s3:{REGION}:{ACCOUNT_ID}:job/{self.job_id}",
            "ConfirmationRequired": bool(request.get("ConfirmationRequired")),
            "Status": self.status,
            "Operation": request["Operation"],
            "Priority": request["Priority"],
            "Report": request["Report"],
            "RoleArn": request["RoleArn"],
            "CreationTime": self.created,
            "ProgressSummary": {
                "NumberOfTasksSucceeded": self.succeeded,
                "NumberOfTasksFailed": self.failed,
                "Timers": {"ElapsedTimeInActiveSeconds": int(self.elapsed)},
            },
        }
        if self.total is not None:
            descriptor["ProgressSummary"]["TotalNumberOfTasks"] = self.total
        for name in ("Description", "Manifest", "ManifestGenerator"):
            if name in request:
                descriptor[name] = request[name]
        if self.generated_manifest:
            descriptor["GeneratedManifestDescriptor"] = self.generated_manifest
        if self.status_update_reason:
            descriptor["StatusUpdateReason"] = self.status_update_reason
        if self.failure_reasons:
            descriptor["FailureReasons"] = self.failure_reasons
        if self.terminated:
            descriptor["TerminationDate"] = self.terminated
        if self.suspended and self.status == "Suspended":
            descriptor["SuspendedDate"] = self.suspended
            descriptor["SuspendedCause"] = SUSPENDED_CAUSE
        return descriptor
