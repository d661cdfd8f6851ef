"""The S3 side of a local Batch Operations job: its tasks from a manifest (generated from the source
bucket's current objects, or read: ``S3BatchOperations_CSV_20180820`` and
``S3InventoryReport_CSV_20161130``, ETag checked), the generated manifest when asked for, and the
completion report (``Report_CSV_20180820``). Keys are URL-encoded as Batch Operations writes them."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from autotag.local.batch_jobs import REPORT_SCHEMA, Job, JobError, Task, encode_key


def job_tasks(s3: Any, job: Job) -> Iterator[Task]:
    """The job's tasks, from its manifest generator or its manifest."""
    request = job.request
    if "ManifestGenerator" in request:
        yield from _generate(s3, job, request["ManifestGenerator"]["S3JobManifestGenerator"])
    else:
        yield from _read_manifest(s3, request["Manifest"])


def _generate(s3: Any, job: Job, generator: dict[str, Any]) -> Iterator[Task]:
    bucket = _bucket_of(generator["SourceBucket"])
    spec = generator.get("Filter") or {}
    names = spec.get("KeyNameConstraint") or {}
    prefixes = names.get("MatchAnyPrefix") or [""]
    suffixes = names.get("MatchAnySuffix") or []
    substrings = names.get("MatchAnySubstring") or []
    after, before = spec.get("CreatedAfter"), spec.get("CreatedBefore")
    larger, smaller = spec.get("ObjectSizeGreaterThanBytes"), spec.get("ObjectSizeLessThanBytes")
    tasks: list[Task] = []
    for obj in _current_objects(s3, bucket, prefixes):
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
        job.generated_manifest = _write_generated_manifest(
            s3, job, generator["ManifestOutputLocation"], tasks
        )
    yield from tasks


def _current_objects(s3: Any, bucket: str, prefixes: list[str]) -> Iterator[dict[str, Any]]:
    try:
        versioned = s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
        seen: set[str] = set()
        for prefix in prefixes:
            if versioned:
                pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
                for page in pages:
                    for version in page.get("Versions", []):
                        if version.get("IsLatest") and version["Key"] not in seen:
                            seen.add(version["Key"])
                            yield version
            else:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        if obj["Key"] not in seen:
                            seen.add(obj["Key"])
                            yield obj
    except ClientError as exc:
        raise JobError(400, "InvalidManifest", f"cannot list {bucket}: {_code(exc)}") from None


def _write_generated_manifest(
    s3: Any, job: Job, location: dict[str, Any], tasks: list[Task]
) -> dict[str, Any]:
    bucket = _bucket_of(location["Bucket"])
    base = f"{location.get('ManifestPrefix', '').rstrip('/')}/job-{job.job_id}".lstrip("/")
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for task in tasks:
        writer.writerow([task.bucket, encode_key(task.key), task.version_id or ""])
    data = gzip.compress(rows.getvalue().encode())
    data_key = f"{base}/data/{uuid.uuid4()}.csv.gz"
    s3.put_object(Bucket=bucket, Key=data_key, Body=data)
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
    put = s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    return {
        "Format": location.get("ManifestFormat", "S3InventoryReport_CSV_20211130"),
        "Location": {
            "ObjectArn": f"arn:aws:s3:::{bucket}/{manifest_key}",
            "ETag": str(put["ETag"]).strip('"'),
        },
    }


def _read_manifest(s3: Any, manifest: dict[str, Any]) -> Iterator[Task]:
    location, spec = manifest["Location"], manifest["Spec"]
    bucket, key = _object_of(location["ObjectArn"])
    body = _get(s3, bucket, key, etag=location.get("ETag"), version_id=location.get("ObjectVersionId"))
    if spec["Format"] == "S3BatchOperations_CSV_20180820":
        fields = spec.get("Fields") or ["Bucket", "Key"]
        yield from _csv_tasks(body.decode("utf-8"), fields)
    elif spec["Format"] == "S3InventoryReport_CSV_20161130":
        document = json.loads(body)
        schema = [c.strip() for c in document.get("fileSchema", "Bucket, Key").split(",")]
        data_bucket = _bucket_of(document.get("destinationBucket", f"arn:aws:s3:::{bucket}"))
        for entry in document.get("files", []):
            data = _get(s3, data_bucket, entry["key"])
            text = gzip.decompress(data).decode() if entry["key"].endswith(".gz") else data.decode()
            yield from _csv_tasks(text, schema)
    else:
        raise JobError(400, "InvalidManifest", f"unsupported manifest format {spec['Format']}")


def _get(s3: Any, bucket: str, key: str, *, etag: str | None = None, version_id: str | None = None) -> bytes:
    extra: dict[str, str] = {"VersionId": version_id} if version_id else {}
    try:
        response = s3.get_object(Bucket=bucket, Key=key, **extra)
    except ClientError as exc:
        raise JobError(400, "InvalidManifest", f"cannot read s3://{bucket}/{key}: {_code(exc)}") from None
    if etag and str(response["ETag"]).strip('"') != etag.strip('"'):
        raise JobError(400, "InvalidManifest", f"s3://{bucket}/{key} does not have the ETag {etag}")
    data: bytes = response["Body"].read()
    return data


def write_report(s3: Any, job: Job) -> None:
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
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
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
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(document, indent=2).encode())


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
