"""`autotag backfill --engine batch-operations` against the local stack, as a user drives it: the job
is created through the S3 Control API the local stack serves, its tasks run the real on_batch
function, every existing object gets tagged through the tag queue, and the completion report
lands in the reports bucket in the documented layout. Also: status, cancel, --force, the budget
guard of both engines."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from autotag.ops.batch_operations import (
    LOCAL_CONTROL_ENDPOINT,
    OUTPUT_FUNCTION_ARN,
    OUTPUT_REPORTS_BUCKET,
    OUTPUT_ROLE_ARN,
)

from tests.e2e.conftest import RunningStack, png, start_stack, wait_for
from tests.e2e.objects import notifications_paused

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNT = 30
JOB_ID = re.compile(r"job ([0-9a-f-]{36})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("batch-backfill"))
    yield running
    assert running.stop() == 0


def existing_objects(stack: RunningStack, prefix: str, count: int) -> list[str]:
    """Objects that predate autotag: written while the bucket notifies nobody."""
    keys = [f"{prefix}{i:03d} old photo+{i}.png" for i in range(count)]
    with notifications_paused(stack) as s3:
        for i, key in enumerate(keys):
            s3.put_object(Bucket=stack.bucket, Key=key, Body=png((i * 7 % 256, 90, 200), (8, 8)))
        s3.put_object(Bucket=stack.bucket, Key=f"{prefix}readme.txt", Body=b"not an image")
    return keys


def job_id_of(text: str) -> str:
    match = JOB_ID.search(text)
    assert match, text
    return match.group(1)


def report_rows(stack: RunningStack, job_id: str) -> list[list[str]]:
    s3 = stack.client("s3")
    reports = stack.state.resources.extra[OUTPUT_REPORTS_BUCKET]
    manifest_key = f"batch-operations/job-{job_id}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=reports, Key=manifest_key)["Body"].read())
    assert manifest["Format"] == "Report_CSV_20180820"
    assert (
        manifest["ReportSchema"]
        == "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    )
    rows: list[list[str]] = []
    for entry in manifest["Results"]:
        body = s3.get_object(Bucket=entry["Bucket"], Key=entry["Key"])["Body"].read().decode()
        rows.extend(csv.reader(io.StringIO(body)))
    return rows


def test_batch_operations_backfill_tags_every_existing_object_and_reports(stack: RunningStack) -> None:
    keys = existing_objects(stack, "archive/", COUNT)
    time.sleep(1)
    store = stack.store()
    assert store.get(stack.bucket, keys[0]) is None  # nothing was tagged on its own

    run = stack.cli(
        "backfill", f"s3://{stack.bucket}/archive/", "--engine", "batch-operations", "--wait", timeout=300
    )
    assert run.returncode == 0, run.stderr + run.stdout
    # The budget guard stated the count and the cost before any task ran.
    assert f"budget: {COUNT + 1} object(s) at most, engine batch-operations" in run.stderr
    assert "total: $" in run.stderr
    assert f"succeeded {COUNT + 1}, failed 0, total {COUNT + 1}" in run.stdout
    assert f"report rows: {COUNT + 1} succeeded" in run.stdout
    job_id = job_id_of(run.stdout)

    wait_for(
        lambda: all(
            (r := store.get(stack.bucket, k)) is not None and r.status.value == "tagged" for k in keys
        ),
        timeout=120,
        interval=1,
        what="every backfilled object tagged",
    )
    tags = stack.client("s3").get_object_tagging(Bucket=stack.bucket, Key=keys[3])["TagSet"]
    assert any(t["Key"].startswith("autotag:") for t in tags)
    assert store.get(stack.bucket, "archive/readme.txt") is None

    rows = report_rows(stack, job_id)
    assert len(rows) == COUNT + 1
    by_key = {unquote(row[1]): row for row in rows}
    assert set(by_key) == {*keys, "archive/readme.txt"}
    for key in keys:
        bucket, _, version, status, http, code, message = by_key[key]
        assert (bucket, status, http, code) == (stack.bucket, "succeeded", "200", "")
        assert version  # the local bucket is versioned: the manifest carries version ids
        assert message.startswith("enqueued for tagging: message ")
    assert by_key["archive/readme.txt"][6].startswith("not tagged:")

    status = stack.cli("backfill", "status", job_id)
    assert status.returncode == 0, status.stderr
    assert f"job {job_id}: Complete" in status.stdout
    assert f"[############################] {COUNT + 1}/{COUNT + 1} 100%" in status.stdout

    # A second job finds every object tagged at its current ETag: nothing is enqueued again.
    again = stack.cli(
        "backfill", f"s3://{stack.bucket}/archive/", "--engine", "batch-operations", "--wait", timeout=300
    )
    assert again.returncode == 0, again.stderr
    rows = report_rows(stack, job_id_of(again.stdout))
    skipped = [r for r in rows if r[6].startswith("skipped: already processed at ETag")]
    assert len(skipped) == COUNT

    # --force enqueues them all again, and the upload path tags them again (a replay).
    before = store.get(stack.bucket, keys[0]).updated_at
    forced = stack.cli(
        "backfill",
        f"s3://{stack.bucket}/archive/",
        "--engine",
        "batch-operations",
        "--force",
        "--wait",
        timeout=300,
    )
    assert forced.returncode == 0, forced.stderr
    rows = report_rows(stack, job_id_of(forced.stdout))
    assert sum(r[6].startswith("enqueued for tagging (forced)") for r in rows) == COUNT
    wait_for(
        lambda: store.get(stack.bucket, keys[0]).updated_at > before, timeout=60, what="the forced re-tag"
    )


def test_budget_ceiling_and_dry_run_stop_a_job_before_any_task(stack: RunningStack) -> None:
    keys = existing_objects(stack, "ceiling/", 6)
    over = stack.cli(
        "backfill", f"s3://{stack.bucket}/ceiling/", "--engine", "batch-operations", "--max-objects", "3"
    )
    assert over.returncode == 1
    assert "autotag: error: budget_exceeded: 7 objects exceed the budget ceiling of 3" in over.stderr
    job_id = job_id_of(over.stderr)
    status = stack.cli("backfill", "status", job_id)
    assert status.returncode == 0, status.stderr
    assert f"job {job_id}: Cancelled" in status.stdout
    assert "succeeded 0, failed 0, total 7" in status.stdout
    assert "report rows: none (no task ran, so S3 wrote no report)" in status.stdout

    dry = stack.cli("backfill", f"s3://{stack.bucket}/ceiling/", "--engine", "batch-operations", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "budget: 7 object(s) at most" in dry.stderr
    assert "dry run: job" in dry.stdout
    time.sleep(2)
    assert all(stack.store().get(stack.bucket, k) is None for k in keys)

    # The one-machine engine stops at the same kind of ceiling, and keeps its checkpoint.
    local = stack.cli(
        "backfill",
        f"s3://{stack.bucket}/ceiling/",
        "--max-objects",
        "4",
        "--checkpoint-dir",
        str(stack.state_path.parent),
    )
    assert local.returncode == 0, local.stderr
    assert "budget: 6 object(s) at most, engine one-machine" in local.stderr  # counted after the filters
    assert (
        "4 enqueued, 0 already tagged (skipped), stopped at the budget ceiling of 4 object(s)" in local.stdout
    )
    rest = stack.cli(
        "backfill", f"s3://{stack.bucket}/ceiling/", "--checkpoint-dir", str(stack.state_path.parent)
    )
    assert rest.returncode == 0, rest.stderr
    assert "resuming after ceiling/003 old photo+3.png" in rest.stderr
    assert "2 enqueued" in rest.stdout
    for key in keys:
        stack.wait_record(key, timeout=60)


def test_cancel_stops_a_job_waiting_for_confirmation(stack: RunningStack) -> None:
    import boto3

    extra = stack.state.resources.extra
    control = boto3.client(
        "s3control",
        endpoint_url=extra[LOCAL_CONTROL_ENDPOINT],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    control.meta.events.register(
        "before-sign.s3-control.*",
        lambda request, **_: setattr(request, "url", request.url.replace("//123456789012.", "//", 1)),
    )
    existing_objects(stack, "cancel/", 2)
    job_id = _suspended_job(control, stack, extra, "cancel/")
    cancel = stack.cli("backfill", "cancel", job_id)
    assert cancel.returncode == 0, cancel.stderr
    assert f"job {job_id}: Cancelling" in cancel.stdout
    status = stack.cli("backfill", "status", job_id, "--wait")
    assert f"job {job_id}: Cancelled" in status.stdout
    assert status.returncode == 1  # --wait: the job did not complete

    # A job left waiting (an interrupted CLI) is confirmed later, through the same budget guard.
    waiting = _suspended_job(control, stack, extra, "cancel/", user_arguments={"force": "false"})
    confirmed = stack.cli("backfill", "confirm", waiting, "--wait")
    assert confirmed.returncode == 0, confirmed.stderr + confirmed.stdout
    assert "budget: 3 object(s) at most, engine batch-operations" in confirmed.stderr
    assert f"job {waiting}: Complete" in confirmed.stdout
    stack.wait_record("cancel/000 old photo+0.png", timeout=60)

    unknown = stack.cli("backfill", "status", "no-such-job")
    assert unknown.returncode == 1
    assert "NoSuchJob" in unknown.stderr


def _suspended_job(control, stack, extra, prefix, *, user_arguments=None):
    """A LambdaInvoke job over `prefix` that needs confirmation, once it waits for it."""
    invoke = {"FunctionArn": extra[OUTPUT_FUNCTION_ARN], "InvocationSchemaVersion": "2.0"}
    if user_arguments is not None:
        invoke["UserArguments"] = user_arguments
    job_id = control.create_job(
        AccountId="123456789012",
        ConfirmationRequired=True,
        Operation={"LambdaInvoke": invoke},
        Report={"Enabled": False},
        ManifestGenerator={
            "S3JobManifestGenerator": {
                "SourceBucket": f"arn:aws:s3:::{stack.bucket}",
                "EnableManifestOutput": False,
                "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": [prefix]}},
            }
        },
        Priority=1,
        RoleArn=extra[OUTPUT_ROLE_ARN],
    )["JobId"]
    wait_for(
        lambda: control.describe_job(AccountId="123456789012", JobId=job_id)["Job"]["Status"] == "Suspended",
        timeout=30,
        what=f"job {job_id} to wait for confirmation",
    )
    return job_id
