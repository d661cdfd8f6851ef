"""S3 Batch Operations against the AWS emulator: the real on_batch handler, and the local job API
(S3 Control's wire format, spoken to by a plain boto3 s3control client) running it job by job:
generated, CSV and inventory manifests, confirmation, retries, cancel and the completion report."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

import boto3
import pytest
from autotag.batch_tasks import JobArguments
from autotag.local.batch_engine import LocalJobEngine
from autotag.local.batch_jobs import REPORT_SCHEMA
from autotag.local.lambda_workers import Invocation
from autotag.local.s3control_server import S3ControlServer
from autotag.ops.batch_jobs import JobControl, prepared, read_report
from autotag.ops.batch_operations import (
    BatchResources,
    ExistingManifest,
    ObjectSelection,
    control_client,
    create_job_request,
)
from autotag.ops.target import Target
from autotag.store.base import ImageRecord, ImageStatus
from autotag.store.dynamodb import DynamoImageStore
from autotag.store.schema import create_table

from tests.support.aws import REGION, Emulator, unique
from tests.support.lambda_context import lambda_context

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:autotag-on-batch"


@dataclass
class BatchStack:
    emulator: Emulator
    bucket: str
    reports: str
    table: str
    queue_url: str

    @property
    def s3(self) -> Any:
        return self.emulator.client("s3")

    def put(self, key: str, data: bytes = b"\x89PNG image bytes") -> dict[str, Any]:
        return dict(self.s3.put_object(Bucket=self.bucket, Key=key, Body=data))

    def messages(self) -> list[dict[str, Any]]:
        sqs, found = self.emulator.client("sqs"), []
        while True:
            reply = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            if not reply.get("Messages"):
                return found
            for message in reply["Messages"]:
                found.append(message)
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def keys_enqueued(self) -> list[str]:
        return sorted(
            unquote_plus(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"]) for m in self.messages()
        )


@pytest.fixture(scope="module")
def stack(aws_emulator: Emulator) -> Iterator[BatchStack]:
    from autotag.batch_tasks import get_batch_processor
    from autotag.config import get_config

    s3, sqs = aws_emulator.client("s3"), aws_emulator.client("sqs")
    bucket, reports, table = unique("images"), unique("reports"), unique("autotag")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=reports)
    create_table(aws_emulator.client("dynamodb"), table)
    queue_url = sqs.create_queue(QueueName=unique("tag-queue"))["QueueUrl"]
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "TABLE_NAME": table,
            "TAG_QUEUE_URL": queue_url,
            "IMAGES_BUCKET": bucket,
            "AUTOTAG_CONFIG": json.dumps({"filters": {"exclude_prefixes": ["skip/"]}}),
        }.items():
            mp.setenv(name, value)
        get_batch_processor.cache_clear()
        get_config.cache_clear()
        yield BatchStack(aws_emulator, bucket, reports, table, queue_url)
        get_batch_processor.cache_clear()
        get_config.cache_clear()


@pytest.fixture(autouse=True)
def _drain(stack: BatchStack) -> None:
    stack.messages()


def invoke_handler(event: dict[str, Any]) -> dict[str, Any]:
    from functions.on_batch.handler import handler

    result: dict[str, Any] = handler(event, lambda_context("autotag-on-batch", timeout_seconds=60))
    return result


def event_for(stack: BatchStack, key: str, version: str | None, **arguments: str) -> dict[str, Any]:
    return {
        "invocationSchemaVersion": "2.0",
        "invocationId": "aW52b2NhdGlvbg==",
        "job": {"id": "job-42", "userArguments": {"force": "false", **arguments}},
        "tasks": [
            {"taskId": "dGFzaw==", "s3Key": quote(key), "s3VersionId": version, "s3Bucket": stack.bucket}
        ],
    }


# --- The handler against the emulator -----------------------------------------------------------


def test_handler_enqueues_the_version_it_was_given_as_an_s3_notification(stack):
    key = f"old/{uuid.uuid4().hex[:6]} holiday+1.jpg"
    version = stack.put(key)["VersionId"]
    stack.put(key, b"a newer version")  # the task names the older one
    response = invoke_handler(event_for(stack, key, version))
    assert response["invocationId"] == "aW52b2NhdGlvbg=="
    [result] = response["results"]
    assert result["resultCode"] == "Succeeded", result
    [message] = stack.messages()
    record = json.loads(message["Body"])["Records"][0]
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert record["s3"]["object"]["versionId"] == version
    assert record["s3"]["object"]["size"] == len(b"\x89PNG image bytes")
    assert message["MessageAttributes"]["origin"]["StringValue"] == "backfill"


def test_handler_skips_what_is_tagged_at_this_etag_and_refuses_what_is_gone(stack):
    key = f"old/{uuid.uuid4().hex[:6]}.jpg"
    etag = stack.put(key)["ETag"].strip('"')
    DynamoImageStore(stack.emulator.client("dynamodb"), stack.table).put(
        ImageRecord(bucket=stack.bucket, key=key, etag=etag, status=ImageStatus.TAGGED)
    )
    [skipped] = invoke_handler(event_for(stack, key, None))["results"]
    assert skipped["resultCode"] == "Succeeded"
    assert skipped["resultString"].startswith(f"skipped: already processed at ETag {etag}")
    [forced] = invoke_handler(event_for(stack, key, None, force="true", replayId="again"))["results"]
    assert forced["resultString"].startswith("enqueued for tagging (forced)")
    [message] = stack.messages()
    assert message["MessageAttributes"]["replay_id"]["StringValue"] == "again"
    [gone] = invoke_handler(event_for(stack, "old/never-there.jpg", None))["results"]
    assert gone["resultCode"] == "PermanentFailure"
    assert gone["resultString"] == f"not_found: s3://{stack.bucket}/old/never-there.jpg no longer exists"


def test_handler_reports_a_missing_queue_as_permanent(stack, monkeypatch):
    from autotag.batch_tasks import get_batch_processor

    key = f"old/{uuid.uuid4().hex[:6]}.jpg"
    stack.put(key)
    monkeypatch.setenv("TAG_QUEUE_URL", stack.queue_url.rsplit("/", 1)[0] + "/no-such-queue")
    get_batch_processor.cache_clear()
    try:
        [result] = invoke_handler(event_for(stack, key, None))["results"]
    finally:
        monkeypatch.setenv("TAG_QUEUE_URL", stack.queue_url)
        get_batch_processor.cache_clear()
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith(f"aws_refused: enqueuing s3://{stack.bucket}/{key}")


# --- The local job API running the handler ------------------------------------------------------


class Invoker:
    """The local Lambda runtime's role, in process: the real handler; optional injected faults."""

    def __init__(self) -> None:
        self.calls = 0
        self.events: list[dict[str, Any]] = []
        self.fail_first: dict[str, int] = {}

    def __call__(self, function_arn: str, event: dict[str, Any]) -> Invocation:
        self.calls += 1
        self.events.append(event)
        key = unquote_plus(event["tasks"][0]["s3Key"])
        if self.fail_first.get(key, 0) > 0:
            self.fail_first[key] -= 1
            return Invocation(
                "r", error_type="Sandbox.Timedout", error_message="Task timed out after 3.00 seconds"
            )
        return Invocation("r", payload=invoke_handler(event))


@pytest.fixture
def jobs(stack: BatchStack) -> Iterator[tuple[JobControl, BatchResources, Invoker]]:
    invoker = Invoker()
    engine = LocalJobEngine(s3=stack.s3, invoke=invoker, function_arns={FUNCTION_ARN}, concurrency=2)
    server = S3ControlServer(engine).start()
    resources = BatchResources(
        function_arn=FUNCTION_ARN,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/batch",
        reports_bucket=stack.reports,
        report_prefix="batch-operations/",
        priority=10,
        control_endpoint_url=server.url,
    )
    session = boto3.session.Session(region_name=REGION)
    target = Target(
        description="test",
        images_bucket=stack.bucket,
        table_name=stack.table,
        tag_queue_url="",
        dlq_url="",
        session=session,
    )
    control = JobControl(
        control_client(target, resources), resources.account_id, sleep=lambda s: time.sleep(0.1)
    )
    try:
        yield control, resources, invoker
    finally:
        server.stop()


def run(control: JobControl, request: dict[str, Any]) -> Any:
    job_id = control.create(request)
    view = control.wait(job_id, prepared, timeout=30, interval=0.1)
    assert view.status == "Suspended", view
    control.confirm(job_id)
    return control.wait(job_id, lambda v: v.finished, timeout=60, interval=0.1)


def report_files(stack: BatchStack, view: Any) -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
    s3 = stack.s3
    base = f"batch-operations/job-{view.job_id}"
    manifest = json.loads(s3.get_object(Bucket=stack.reports, Key=f"{base}/manifest.json")["Body"].read())
    files = {}
    for entry in manifest["Results"]:
        assert entry["Key"].startswith(f"{base}/results/")
        assert entry["Key"].endswith(".csv")
        body = s3.get_object(Bucket=entry["Bucket"], Key=entry["Key"])["Body"].read()
        assert entry["MD5Checksum"] == hashlib.md5(body).hexdigest()
        files[entry["TaskExecutionStatus"]] = list(csv.reader(io.StringIO(body.decode())))
    return manifest, files


def test_generated_manifest_job_runs_every_task_and_writes_the_documented_report(stack, jobs):
    control, resources, invoker = jobs
    prefix = f"gen-{uuid.uuid4().hex[:6]}/"
    keys = [f"{prefix}{i:02d} photo+é.jpg" for i in range(5)]
    for key in keys:
        stack.put(key)
    stack.put(f"{prefix}notes.txt")
    stack.put(f"{prefix}big.jpg", b"x" * 5000)  # outside the size filter
    request = create_job_request(
        resources=resources,
        bucket=stack.bucket,
        selection=ObjectSelection(prefix=prefix, smaller_than_bytes=4096),
        arguments=JobArguments(),
    )
    view = run(control, request)
    assert view.status == "Complete"
    assert (view.total, view.succeeded, view.failed) == (6, 6, 0)
    assert stack.keys_enqueued() == keys  # the .txt is excluded by the filters, the big one never listed

    # Each invocation is the documented schema 2.0 event for one task, keys URL-encoded.
    event = invoker.events[0]
    assert event["invocationSchemaVersion"] == "2.0"
    assert event["job"]["userArguments"] == {"force": "false", "prefix": prefix}
    [task] = event["tasks"]
    assert set(task) == {"taskId", "s3Key", "s3VersionId", "s3Bucket"}
    assert "%20" in task["s3Key"]
    assert task["s3VersionId"]

    manifest, files = report_files(stack, view)
    assert manifest["Format"] == "Report_CSV_20180820"
    assert (
        manifest["ReportSchema"]
        == REPORT_SCHEMA
        == ("Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage")
    )
    assert set(files) == {"succeeded"}
    rows = files["succeeded"]
    assert len(rows) == 6
    for row in rows:
        assert len(row) == 7
        bucket, _key, version, status, http, code, _message = row
        assert (bucket, status, http, code) == (stack.bucket, "succeeded", "200", "")
        assert version
    messages = {unquote_plus(r[1]): r[6] for r in rows}
    assert messages[f"{prefix}notes.txt"].startswith("not tagged:")
    assert all(messages[k].startswith("enqueued for tagging: message ") for k in keys)
    # The generated manifest was written too, in the reports bucket.
    listed = stack.s3.list_objects_v2(
        Bucket=stack.reports, Prefix=f"batch-operations/manifests/job-{view.job_id}/"
    )
    assert any(o["Key"].endswith("manifest.json") for o in listed.get("Contents", []))
    # And the CLI's reader sees the same rows.
    assert {r.key for r in read_report(stack.s3, view)} == set(messages)


def test_csv_and_inventory_manifests_failures_and_retries(stack, jobs):
    control, resources, invoker = jobs
    base = f"man-{uuid.uuid4().hex[:6]}/"
    present, flaky = f"{base}a b.jpg", f"{base}flaky.jpg"
    stack.put(present)
    stack.put(flaky)
    gone, always = f"{base}gone.jpg", f"{base}always-times-out.jpg"
    stack.put(always)
    invoker.fail_first = {flaky: 2, always: 99}  # flaky succeeds on the 3rd try; the other never
    lines = "".join(f"{stack.bucket},{quote(k)}\n" for k in (present, flaky, gone, always))
    put = stack.s3.put_object(Bucket=stack.reports, Key=f"{base}list.csv", Body=lines.encode())
    manifest = ExistingManifest(bucket=stack.reports, key=f"{base}list.csv", etag=put["ETag"].strip('"'))
    request = create_job_request(
        resources=resources,
        bucket=stack.bucket,
        selection=ObjectSelection(),
        arguments=JobArguments(),
        manifest=manifest,
    )
    view = run(control, request)
    assert (view.status, view.total, view.succeeded, view.failed) == ("Complete", 4, 2, 2)
    assert stack.keys_enqueued() == sorted([present, flaky])
    _, files = report_files(stack, view)
    failed = {unquote_plus(r[1]): r for r in files["failed"]}
    assert failed[gone][3:6] == ["failed", "200", "PermanentFailure"]
    assert failed[gone][6].startswith("not_found:")
    assert failed[always][5] == "TemporaryFailure"
    assert failed[always][6].startswith("Lambda returned function error: ")

    # The same objects through an S3 Inventory report (manifest.json + gzipped CSV).
    rows = "".join(f'"{stack.bucket}","{quote(k)}"\n' for k in (present,))
    data_key = f"{base}inventory/data/part-0.csv.gz"
    stack.s3.put_object(Bucket=stack.reports, Key=data_key, Body=gzip.compress(rows.encode()))
    document = {
        "sourceBucket": stack.bucket,
        "destinationBucket": f"arn:aws:s3:::{stack.reports}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key",
        "files": [{"key": data_key}],
    }
    put = stack.s3.put_object(
        Bucket=stack.reports, Key=f"{base}inventory/manifest.json", Body=json.dumps(document).encode()
    )
    manifest = ExistingManifest(
        bucket=stack.reports, key=f"{base}inventory/manifest.json", etag=put["ETag"].strip('"')
    )
    request = create_job_request(
        resources=resources,
        bucket=stack.bucket,
        selection=ObjectSelection(),
        arguments=JobArguments(force=True),
        manifest=manifest,
    )
    view = run(control, request)
    assert (view.status, view.succeeded, view.failed) == ("Complete", 1, 0)
    assert stack.keys_enqueued() == [present]


def test_a_manifest_whose_etag_changed_fails_the_job(stack, jobs):
    control, resources, _ = jobs
    key = f"stale-{uuid.uuid4().hex[:6]}.csv"
    stack.s3.put_object(Bucket=stack.reports, Key=key, Body=f"{stack.bucket},x.jpg\n".encode())
    request = create_job_request(
        resources=resources,
        bucket=stack.bucket,
        selection=ObjectSelection(),
        arguments=JobArguments(),
        manifest=ExistingManifest(bucket=stack.reports, key=key, etag="0" * 32),
    )
    job_id = control.create(request)
    view = control.wait(job_id, lambda v: v.finished, timeout=30, interval=0.1)
    assert view.status == "Failed"
    assert view.failure_reasons
    assert "does not have the ETag" in view.failure_reasons[0]


def test_cancel_before_confirmation_runs_nothing_and_unknown_jobs_are_refused(stack, jobs):
    from autotag.ops.batch_operations import BatchOperationsError

    control, resources, invoker = jobs
    prefix = f"cancel-{uuid.uuid4().hex[:6]}/"
    stack.put(f"{prefix}a.jpg")
    request = create_job_request(
        resources=resources,
        bucket=stack.bucket,
        selection=ObjectSelection(prefix=prefix),
        arguments=JobArguments(),
    )
    job_id = control.create(request)
    assert control.wait(job_id, prepared, timeout=30, interval=0.1).status == "Suspended"
    control.cancel(job_id)
    view = control.wait(job_id, lambda v: v.finished, timeout=30, interval=0.1)
    assert (view.status, view.succeeded, view.failed) == ("Cancelled", 0, 0)
    assert invoker.calls == 0
    with pytest.raises(BatchOperationsError, match="NoSuchJob"):
        control.describe("no-such-job")
    with pytest.raises(BatchOperationsError, match="JobStatusException"):
        control.confirm(job_id)


def test_same_client_request_token_creates_one_job(stack, jobs):
    control, resources, _ = jobs
    request = create_job_request(
        resources=resources,
        bucket=stack.bucket,
        selection=ObjectSelection(prefix="nothing-here/"),
        arguments=JobArguments(),
        token="same-token",
    )
    first, second = control.create(request), control.create(request)
    assert first == second
    control.cancel(first)


def test_the_job_api_answers_bad_requests_with_s3_control_errors(stack):
    import httpx

    engine = LocalJobEngine(s3=stack.s3, invoke=Invoker(), function_arns={FUNCTION_ARN})
    server = S3ControlServer(engine).start()
    try:
        headers = {"x-amz-account-id": ACCOUNT}
        garbage = httpx.post(f"{server.url}/v20180820/jobs", content=b"<not xml", headers=headers)
        assert garbage.status_code == 400
        assert b"<Code>MalformedXML</Code>" in garbage.content
        empty = httpx.post(
            f"{server.url}/v20180820/jobs",
            content=b'<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"/>',
            headers=headers,
        )
        assert empty.status_code == 400
        assert b"<Code>InvalidRequest</Code>" in empty.content
        assert b"RoleArn" in empty.content
        other = httpx.get(f"{server.url}/v20180820/jobs/x", headers={"x-amz-account-id": "999999999999"})
        assert other.status_code == 403
        assert engine.jobs == {}
    finally:
        server.stop()
