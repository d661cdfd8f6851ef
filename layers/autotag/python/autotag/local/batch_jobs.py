"""S3 Batch Operations jobs for the local stack, which the AWS emulator does not have.

:class:`S3ControlServer` serves the S3 Control job API (``CreateJob``, ``DescribeJob``,
``UpdateJobStatus``, ``ListJobs``) on 127.0.0.1 in S3 Control's own wire format (REST-XML, parsed
and written with botocore's s3control service model), so ``autotag backfill --engine
batch-operations`` drives it with a plain boto3 ``s3control`` client, exactly as it drives AWS.

:class:`LocalJobEngine` runs each job the way the documentation describes:

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
import contextlib
import csv
import gzip
import hashlib
import io
import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from botocore.exceptions import ClientError

from autotag.local.runtime import Invocation
from autotag.local.state import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from autotag.local.provision import ProvisionedStack

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


Invoker = Callable[[str, dict[str, Any]], Invocation]
"""(function ARN, event) → the invocation's outcome (the local Lambda runtime)."""


class LocalJobEngine:
    def __init__(self, *, s3: Any, invoke: Invoker, function_arns: set[str], concurrency: int = 4) -> None:
        self.s3 = s3
        self.invoke = invoke
        self.function_arns = function_arns
        self.concurrency = concurrency
        self.jobs: dict[str, Job] = {}
        self.tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- API

    def create(self, request: dict[str, Any]) -> str:
        if ("Manifest" in request) == ("ManifestGenerator" in request):
            raise JobError(400, "InvalidRequest", "specify exactly one of Manifest and ManifestGenerator")
        if "LambdaInvoke" not in request.get("Operation", {}):
            raise JobError(400, "InvalidRequest", "the local stack runs LambdaInvoke jobs only")
        lambda_invoke = request["Operation"]["LambdaInvoke"]
        version = lambda_invoke.get("InvocationSchemaVersion", "1.0")
        if lambda_invoke.get("UserArguments") and version != "2.0":
            raise JobError(400, "InvalidRequest", "UserArguments require InvocationSchemaVersion 2.0")
        token = request.get("ClientRequestToken")
        with self._lock:
            if token and token in self.tokens:
                return self.tokens[token]
            job = Job(job_id=str(uuid.uuid4()), request=request)
            self.jobs[job.job_id] = job
            if token:
                self.tokens[token] = job.job_id
        thread = threading.Thread(
            target=self._run, args=(job,), name=f"batch-job-{job.job_id[:8]}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return job.job_id

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError(404, "NoSuchJob", f"The specified job does not exist: {job_id}")
        return job

    def update_status(self, job_id: str, requested: str, reason: str | None) -> Job:
        job = self.get(job_id)
        with job.changed:
            if requested == "Ready":
                if job.status != "Suspended":
                    raise JobError(400, "JobStatusException", f"job is {job.status}, not Suspended")
            elif requested == "Cancelled":
                if job.status in TERMINAL:
                    raise JobError(400, "JobStatusException", f"job is already {job.status}")
            else:
                raise JobError(400, "InvalidRequest", f"cannot request status {requested!r}")
            job.requested = requested
            if reason:
                job.status_update_reason = reason
            if requested == "Cancelled":
                job.status = "Cancelling"
            job.changed.notify_all()
        return job

    def stop(self) -> None:
        self._stopping.set()
        for job in list(self.jobs.values()):
            with job.changed:
                job.changed.notify_all()
        for thread in self._threads:
            thread.join(5)

    # -- the job's life

    def _set(self, job: Job, status: str) -> None:
        with job.changed:
            if job.active_since is not None and status != "Active":
                job.active_seconds += time.monotonic() - job.active_since
                job.active_since = None
            if status == "Active" and job.active_since is None:
                job.active_since = time.monotonic()
            job.status = status
            if status in TERMINAL:
                job.terminated = datetime.now(UTC)
            if status == "Suspended":
                job.suspended = datetime.now(UTC)
            job.changed.notify_all()

    def _cancelled(self, job: Job) -> bool:
        return job.requested == "Cancelled" or self._stopping.is_set()

    def _run(self, job: Job) -> None:
        try:
            self._set(job, "Preparing")
            tasks = list(self._tasks(job))
            with job.changed:
                job.tasks, job.total = tasks, len(tasks)
            if self._cancelled(job):
                self._finish(job, "Cancelled")
                return
            if job.request.get("ConfirmationRequired"):
                self._set(job, "Suspended")
                with job.changed:
                    while job.requested is None and not self._stopping.is_set():
                        job.changed.wait(0.5)
                if self._cancelled(job):
                    self._finish(job, "Cancelled")
                    return
            self._set(job, "Ready")
            self._set(job, "Active")
            outcome = self._execute(job)
            self._finish(job, outcome)
        except JobError as error:
            self._fail(job, error.code, error.message)
        except Exception as exc:  # a job never hangs in a non-terminal state
            self._fail(job, "InternalError", f"{type(exc).__name__}: {exc}")

    def _fail(self, job: Job, code: str, reason: str) -> None:
        with job.changed:
            job.failure_reasons.append({"FailureCode": code, "FailureReason": reason[:1024]})
        self._finish(job, "Failed")

    def _finish(self, job: Job, status: str) -> None:
        if status == "Cancelled" and job.status != "Cancelling":
            self._set(job, "Cancelling")
        elif status in ("Complete", "Failed"):
            self._set(job, "Completing" if status == "Complete" else "Failing")
        with contextlib.suppress(ClientError, JobError):
            self._write_report(job)
        self._set(job, status)

    # -- the manifest

    def _tasks(self, job: Job) -> Iterator[Task]:
        request = job.request
        function_arn = request["Operation"]["LambdaInvoke"].get("FunctionArn")
        if function_arn not in self.function_arns:
            raise JobError(400, "InvalidRequest", f"no such function: {function_arn}")
        if "ManifestGenerator" in request:
            yield from self._generate(job, request["ManifestGenerator"]["S3JobManifestGenerator"])
        else:
            yield from self._read_manifest(request["Manifest"])

    def _generate(self, job: Job, generator: dict[str, Any]) -> Iterator[Task]:
        bucket = _bucket_of(generator["SourceBucket"])
        spec = generator.get("Filter") or {}
        names = spec.get("KeyNameConstraint") or {}
        prefixes = names.get("MatchAnyPrefix") or [""]
        suffixes = names.get("MatchAnySuffix") or []
        substrings = names.get("MatchAnySubstring") or []
        after, before = spec.get("CreatedAfter"), spec.get("CreatedBefore")
        larger, smaller = spec.get("ObjectSizeGreaterThanBytes"), spec.get("ObjectSizeLessThanBytes")
        tasks: list[Task] = []
        for obj in self._current_objects(bucket, prefixes):
            key, size, modified = obj["Key"], int(obj.get("Size", 0)), obj["LastModified"]
            if suffixes and not key.endswith(tuple(suffixes)):
                continue
            if substrings and not any(s in key for s in substrings):
                continue
            if (after and modified <= after) or (before and modified >= before):
                continue
            if (larger is not None and size <= larger) or (smaller is not None and size >= smaller):
                continue
            tasks.append(Task(bucket=bucket, key=key, version_id=obj.get("VersionId")))
        if generator.get("EnableManifestOutput"):
            job.generated_manifest = self._write_generated_manifest(
                job, generator["ManifestOutputLocation"], tasks
            )
        yield from tasks

    def _current_objects(self, bucket: str, prefixes: list[str]) -> Iterator[dict[str, Any]]:
        try:
            versioned = self.s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
            seen: set[str] = set()
            for prefix in prefixes:
                if versioned:
                    pages = self.s3.get_paginator("list_object_versions").paginate(
                        Bucket=bucket, Prefix=prefix
                    )
                    for page in pages:
                        for version in page.get("Versions", []):
                            if version.get("IsLatest") and version["Key"] not in seen:
                                seen.add(version["Key"])
                                yield version
                else:
                    for page in self.s3.get_paginator("list_objects_v2").paginate(
                        Bucket=bucket, Prefix=prefix
                    ):
                        for obj in page.get("Contents", []):
                            if obj["Key"] not in seen:
                                seen.add(obj["Key"])
                                yield obj
        except ClientError as exc:
            raise JobError(400, "InvalidManifest", f"cannot list {bucket}: {_code(exc)}") from None

    def _write_generated_manifest(
        self, job: Job, location: dict[str, Any], tasks: list[Task]
    ) -> dict[str, Any]:
        bucket = _bucket_of(location["Bucket"])
        base = f"{location.get('ManifestPrefix', '').rstrip('/')}/job-{job.job_id}".lstrip("/")
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        for task in tasks:
            writer.writerow([task.bucket, encode_key(task.key), task.version_id or ""])
        data = gzip.compress(rows.getvalue().encode())
        data_key = f"{base}/data/{uuid.uuid4()}.csv.gz"
        self.s3.put_object(Bucket=bucket, Key=data_key, Body=data)
        manifest = {
            "sourceBucket": tasks[0].bucket if tasks else "",
            "destinationBucket": location["Bucket"],
            "version": "2021-11-30",
            "creationTimestamp": str(int(time.time() * 1000)),
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, VersionId",
            "files": [{"key": data_key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}],  # noqa: S324
        }
        manifest_key = f"{base}/manifest.json"
        put = self.s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
        return {
            "Format": location.get("ManifestFormat", "S3InventoryReport_CSV_20211130"),
            "Location": {
                "ObjectArn": f"arn:aws:s3:::{bucket}/{manifest_key}",
                "ETag": str(put["ETag"]).strip('"'),
            },
        }

    def _read_manifest(self, manifest: dict[str, Any]) -> Iterator[Task]:
        location, spec = manifest["Location"], manifest["Spec"]
        bucket, key = _object_of(location["ObjectArn"])
        body = self._get(bucket, key, etag=location.get("ETag"), version_id=location.get("ObjectVersionId"))
        if spec["Format"] == "S3BatchOperations_CSV_20180820":
            fields = spec.get("Fields") or ["Bucket", "Key"]
            yield from _csv_tasks(body.decode("utf-8"), fields)
        elif spec["Format"] == "S3InventoryReport_CSV_20161130":
            document = json.loads(body)
            schema = [c.strip() for c in document.get("fileSchema", "Bucket, Key").split(",")]
            data_bucket = _bucket_of(document.get("destinationBucket", f"arn:aws:s3:::{bucket}"))
            for entry in document.get("files", []):
                data = self._get(data_bucket, entry["key"])
                text = gzip.decompress(data).decode() if entry["key"].endswith(".gz") else data.decode()
                yield from _csv_tasks(text, schema)
        else:
            raise JobError(400, "InvalidManifest", f"unsupported manifest format {spec['Format']}")

    def _get(self, bucket: str, key: str, *, etag: str | None = None, version_id: str | None = None) -> bytes:
        extra: dict[str, str] = {"VersionId": version_id} if version_id else {}
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            raise JobError(400, "InvalidManifest", f"cannot read s3://{bucket}/{key}: {_code(exc)}") from None
        if etag and str(response["ETag"]).strip('"') != etag.strip('"'):
            raise JobError(400, "InvalidManifest", f"s3://{bucket}/{key} does not have the ETag {etag}")
        data: bytes = response["Body"].read()
        return data

    # -- running the tasks

    def _execute(self, job: Job) -> str:
        pending = iter(job.tasks)
        lock = threading.Lock()
        failed_job = threading.Event()

        def worker() -> None:
            while not self._cancelled(job) and not failed_job.is_set():
                with lock:
                    task = next(pending, None)
                if task is None:
                    return
                self._run_task(job, task)
                with job.changed:
                    done = job.succeeded + job.failed
                    if done >= FAILURE_THRESHOLD_TASKS and job.failed / done > FAILURE_THRESHOLD_RATE:
                        failed_job.set()

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"job-{job.job_id[:8]}") as pool:
            for _ in range(self.concurrency):
                pool.submit(worker)
        if failed_job.is_set():
            with job.changed:
                job.failure_reasons.append(
                    {
                        "FailureCode": "TaskFailureThresholdExceeded",
                        "FailureReason": f"more than {FAILURE_THRESHOLD_RATE:.0%} of at least "
                        f"{FAILURE_THRESHOLD_TASKS} tasks failed",
                    }
                )
            return "Failed"
        return "Cancelled" if self._cancelled(job) else "Complete"

    def _event(self, job: Job, task: Task) -> dict[str, Any]:
        lambda_invoke = job.request["Operation"]["LambdaInvoke"]
        version = lambda_invoke.get("InvocationSchemaVersion", "1.0")
        entry: dict[str, Any] = {
            "taskId": task.task_id,
            "s3Key": encode_key(task.key),
            "s3VersionId": task.version_id,
        }
        job_part: dict[str, Any] = {"id": job.job_id}
        if version == "2.0":
            entry["s3Bucket"] = task.bucket
            job_part["userArguments"] = lambda_invoke.get("UserArguments") or {}
        else:
            entry["s3BucketArn"] = f"arn:aws:s3:::{task.bucket}"
        return {
            "invocationSchemaVersion": version,
            "invocationId": base64.b64encode(uuid.uuid4().bytes).decode(),
            "job": job_part,
            "tasks": [entry],
        }

    def _run_task(self, job: Job, task: Task) -> None:
        function_arn = job.request["Operation"]["LambdaInvoke"]["FunctionArn"]
        for attempt in range(1, TASK_ATTEMPTS + 1):
            code, message = self._attempt(function_arn, self._event(job, task), task.task_id)
            if code != "TemporaryFailure" or attempt == TASK_ATTEMPTS or self._stopping.is_set():
                break
            time.sleep(0.2 * attempt)
        with job.changed:
            if code == "Succeeded":
                task.status, task.error_code = "succeeded", ""
                job.succeeded += 1
            else:
                task.status, task.error_code = "failed", code
                job.failed += 1
            task.message = message

    def _attempt(self, function_arn: str, event: dict[str, Any], task_id: str) -> tuple[str, str]:
        invocation = self.invoke(function_arn, event)
        if not invocation.ok:
            error = json.dumps({"errorMessage": invocation.error_message, "errorType": invocation.error_type})
            return "TemporaryFailure", f"Lambda returned function error: {error}"
        payload = invocation.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
            return "PermanentFailure", "Invalid JSON returned in Lambda payload"
        if payload.get("invocationId") != event["invocationId"]:
            return "PermanentFailure", "Lambda payload does not echo the invocationId"
        missing_as = payload.get("treatMissingKeysAs") or "PermanentFailure"
        result = next(
            (r for r in payload["results"] if isinstance(r, dict) and r.get("taskId") == task_id), None
        )
        if result is None:
            return str(missing_as), "no result for this task in the Lambda payload"
        code = result.get("resultCode")
        if code not in ("Succeeded", "TemporaryFailure", "PermanentFailure"):
            return "PermanentFailure", f"invalid resultCode {code!r} in the Lambda payload"
        return str(code), str(result.get("resultString") or "")

    # -- the completion report

    def _write_report(self, job: Job) -> None:
        report = job.request.get("Report") or {}
        if not report.get("Enabled") or not any(t.status for t in job.tasks):
            return  # AWS writes a report once at least one task ran
        bucket = _bucket_of(report["Bucket"])
        prefix = report.get("Prefix")
        base = f"{prefix}/job-{job.job_id}" if prefix else f"job-{job.job_id}"
        scope = report.get("ReportScope", "AllTasks")
        results = []
        for status in ("succeeded", "failed"):
            if status == "succeeded" and scope == "FailedTasksOnly":
                continue
            tasks = [t for t in job.tasks if t.status == status]
            if not tasks:
                continue
            rows = io.StringIO()
            writer = csv.writer(rows, lineterminator="\n")
            for t in tasks:
                writer.writerow(
                    [
                        t.bucket,
                        encode_key(t.key),
                        t.version_id or "",
                        t.status,
                        t.http_status,
                        t.error_code,
                        t.message,
                    ]
                )
            body = rows.getvalue().encode()
            name = hashlib.sha1(f"{job.job_id}/{status}".encode()).hexdigest()  # noqa: S324 - a name
            key = f"{base}/results/{name}.csv"
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
            results.append(
                {
                    "TaskExecutionStatus": status,
                    "Bucket": bucket,
                    "MD5Checksum": hashlib.md5(body).hexdigest(),  # noqa: S324 - S3's checksum field
                    "Key": key,
                }
            )
        document = {
            "Format": report.get("Format", "Report_CSV_20180820"),
            "ReportCreationDate": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "Results": results,
            "ReportSchema": REPORT_SCHEMA,
        }
        self.s3.put_object(
            Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(document, indent=2).encode()
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


def _bucket_of(arn: str) -> str:
    return arn.split(":::", 1)[-1]


def _object_of(arn: str) -> tuple[str, str]:
    bucket, _, key = arn.split(":::", 1)[-1].partition("/")
    return bucket, key


def _csv_tasks(text: str, fields: list[str]) -> Iterator[Task]:
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        values = dict(zip(fields, row, strict=False))
        version = values.get("VersionId") or None
        yield Task(bucket=values["Bucket"], key=unquote(values["Key"]), version_id=version)


# --- The wire: S3 Control's REST-XML, with botocore's model ---------------------------------------


class _Wire:
    def __init__(self) -> None:
        import botocore.session
        from botocore.parsers import RestXMLParser
        from botocore.serialize import create_serializer

        self.model = botocore.session.get_session().get_service_model("s3control")
        self.parser = RestXMLParser()
        self.serializer: Any = create_serializer("rest-xml", include_validation=False)

    def parse(self, operation: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """The request as botocore's model reads it; 400 when it is not XML or misses what the API
        requires (S3 Control answers MalformedXML / InvalidRequest)."""
        from botocore.parsers import ResponseParserError
        from botocore.validate import ParamValidator

        shape = self.model.operation_model(operation).input_shape
        try:
            parsed: dict[str, Any] = self.parser.parse(
                {"body": body, "headers": headers, "status_code": 200}, shape
            )
        except ResponseParserError:
            raise JobError(400, "MalformedXML", "the request body is not well-formed XML") from None
        parsed.pop("ResponseMetadata", None)
        report = ParamValidator().validate(parsed, shape)
        if report.has_errors():
            raise JobError(400, "InvalidRequest", " ".join(report.generate_report().split())[:1024])
        return _utc(parsed)

    def render(self, operation: str, result: dict[str, Any]) -> bytes:
        shape = self.model.operation_model(operation).output_shape
        root = ET.Element("")
        self.serializer._serialize(shape, result, root, f"{operation}Result")
        element = next(iter(root))
        element.set("xmlns", "http://awss3control.amazonaws.com/doc/2018-08-20/")
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc(v) for v in value]
    return value


def dispatch(
    engine: LocalJobEngine,
    wire: _Wire,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: bytes,
    headers: dict[str, str],
) -> bytes:
    """One call of the S3 Control job API → the response body (raises JobError)."""
    if not path.startswith(API_PREFIX):
        raise JobError(404, "NotFound", f"no such resource {path}")
    parts = [unquote(p) for p in path[len(API_PREFIX) :].split("/") if p]
    if method == "POST" and not parts:
        request = wire.parse("CreateJob", body, headers)
        return wire.render("CreateJob", {"JobId": engine.create(request)})
    if method == "GET" and not parts:
        jobs = [
            {
                "JobId": j.job_id,
                "Status": j.status,
                "Priority": j.request["Priority"],
                "CreationTime": j.created,
                "Operation": "LambdaInvoke",
                "ProgressSummary": j.descriptor()["ProgressSummary"],
            }
            for j in engine.jobs.values()
        ]
        return wire.render("ListJobs", {"Jobs": jobs})
    if method == "GET" and len(parts) == 1:
        job = engine.get(parts[0])
        with job.lock:
            descriptor = job.descriptor()
        return wire.render("DescribeJob", {"Job": descriptor})
    if method == "POST" and len(parts) == 2 and parts[1] == "status":
        requested = (query.get("requestedJobStatus") or [""])[0]
        reason = (query.get("statusUpdateReason") or [""])[0] or None
        job = engine.update_status(parts[0], requested, reason)
        return wire.render(
            "UpdateJobStatus",
            {
                "JobId": job.job_id,
                "Status": job.status,
                "StatusUpdateReason": job.status_update_reason or "",
            },
        )
    raise JobError(404, "NotFound", f"no such operation {method} {path}")


class S3ControlServer:
    """The job API of S3 Control on a loopback port, over a :class:`LocalJobEngine`."""

    def __init__(self, engine: LocalJobEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self._host = host
        wire = _Wire()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-amz-request-id", uuid.uuid4().hex)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, error: JobError) -> None:
                root = ET.Element("Error")
                ET.SubElement(root, "Code").text = error.code
                ET.SubElement(root, "Message").text = error.message
                self._answer(error.status, ET.tostring(root))

            def _route(self, method: str) -> None:
                split = urlsplit(self.path)
                path, query = split.path.rstrip("/"), parse_qs(split.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    if headers.get("x-amz-account-id") != ACCOUNT_ID:
                        raise JobError(403, "AccessDenied", f"this emulator serves account {ACCOUNT_ID} only")
                    self._answer(200, dispatch(engine, wire, method, path, query, body, headers))
                except JobError as error:
                    self._error(error)
                except Exception as exc:  # an emulator bug must still answer
                    self._error(JobError(500, "InternalError", type(exc).__name__))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3control", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> S3ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.engine.stop()
        self._server.shutdown()
        self._server.server_close()


# --- The local stack's part -----------------------------------------------------------------------


class LocalBatchOperations:
    """What the CDK construct deploys (infra/batch_operations.py), locally: the reports bucket,
    the on_batch function in the local Lambda runtime, and the job API with its engine."""

    def __init__(
        self,
        *,
        root: Path,
        provisioned: ProvisionedStack,
        endpoint_url: str,
        host: str = "127.0.0.1",
        extra_environment: Mapping[str, str] | None = None,
        concurrency: int = 1,
    ) -> None:
        from autotag.deploy.environment import batch_environment
        from autotag.local.provision import LOCAL_PREFIX, emulator_client, emulator_environment
        from autotag.local.runtime import FunctionPool, FunctionSpec

        deployment = provisioned.deployment
        resources = provisioned.resources
        spec = deployment.batch_operations.function
        self.reports_bucket = f"{LOCAL_PREFIX}-batch-reports"
        self.role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{LOCAL_PREFIX}-batch-operations"
        s3 = emulator_client("s3", endpoint_url)
        s3.create_bucket(Bucket=self.reports_bucket)
        s3.put_public_access_block(
            Bucket=self.reports_bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        environment = batch_environment(
            deployment.config,
            table_name=resources.table_name,
            tag_queue_url=resources.tag_queue_url,
            images_bucket=resources.images_bucket,
        )
        environment.update(emulator_environment(endpoint_url))
        environment["POWERTOOLS_TRACE_DISABLED"] = "true"
        environment.update(extra_environment or {})
        self.pool = FunctionPool(
            FunctionSpec(
                name=f"{LOCAL_PREFIX}-{spec.name}",
                code_dir=(root / spec.code_dir).resolve(),
                handler=spec.handler,
                environment=environment,
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
            ),
            concurrency=concurrency,
        )
        self.function_arn = self.pool.spec.arn
        pool = self.pool

        def invoke(function_arn: str, event: dict[str, Any]) -> Invocation:
            return pool.invoke(event)

        self.engine = LocalJobEngine(
            s3=s3, invoke=invoke, function_arns={self.function_arn}, concurrency=concurrency
        )
        self.server = S3ControlServer(self.engine, host=host)

    def start(self) -> LocalBatchOperations:
        self.pool.start()
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.pool.stop()

    @property
    def state_extra(self) -> dict[str, str]:
        """Entries of the state file's ``resources.extra`` (the stack's outputs, locally)."""
        from autotag.ops.batch_operations import (
            LOCAL_CONTROL_ENDPOINT,
            OUTPUT_FUNCTION_ARN,
            OUTPUT_REPORTS_BUCKET,
            OUTPUT_ROLE_ARN,
        )

        return {
            OUTPUT_FUNCTION_ARN: self.function_arn,
            OUTPUT_ROLE_ARN: self.role_arn,
            OUTPUT_REPORTS_BUCKET: self.reports_bucket,
            LOCAL_CONTROL_ENDPOINT: self.server.url,
        }
