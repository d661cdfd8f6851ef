"""`autotag show` and `autotag backfill` against the emulator, as the CLI reaches a local stack: a
state file naming the emulator and the resources (what `autotag local` writes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from autotag.cli import main
from autotag.local.state import LocalResources, LocalState, write_state
from autotag.models import Tag
from autotag.ops.backfill import Backfill, BackfillReport
from autotag.ops.target import resolve_target
from autotag.store.base import ImageRecord, ImageStatus
from autotag.store.dynamodb import DynamoImageStore
from autotag.store.schema import create_table

from tests.support.aws import REGION, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(aws_emulator, tmp_path):
    """A bucket, a table and a tag queue in the emulator, and a state file pointing at them."""
    s3, ddb, sqs = (aws_emulator.client(s) for s in ("s3", "dynamodb", "sqs"))
    bucket, table = unique("ops-images"), unique("ops-table")
    s3.create_bucket(Bucket=bucket)
    create_table(ddb, table)
    queue_url = sqs.create_queue(QueueName=unique("ops-tag-queue"))["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=unique("ops-tag-dlq"))["QueueUrl"]
    resources = LocalResources(
        images_bucket=bucket,
        table_name=table,
        idempotency_table_name=table,
        event_bus_name="default",
        tag_queue_url=queue_url,
        dlq_url=dlq_url,
        events_queue_url=dlq_url,
    )
    state_path = tmp_path / "local.json"

    def start(instance_id: str) -> None:
        """Write the state file as one start of `autotag local` would (its own instance id)."""
        state = LocalState(
            pid=os.getpid(),
            endpoint_url=aws_emulator.endpoint,
            api_url="http://127.0.0.1:9/prod/",
            api_key="k",
            resources=resources,
            region=REGION,
            instance_id=instance_id,
        )
        write_state(state_path, state)

    start("first")
    yield {
        "bucket": bucket,
        "queue_url": queue_url,
        "state": state_path,
        "start": start,
        "store": DynamoImageStore(ddb, table),
        "s3": s3,
        "sqs": sqs,
    }
    for url in (queue_url, dlq_url):
        sqs.delete_queue(QueueUrl=url)
    ddb.delete_table(TableName=table)
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("key", ["photos/what?.jpg", "photos/#1 best.jpg", "photos/a%20b?x=1#y.png"])
def test_show_finds_keys_with_url_characters(capsys, deployment, key):
    bucket = deployment["bucket"]
    deployment["store"].put(
        ImageRecord(
            bucket=bucket,
            key=key,
            status=ImageStatus.TAGGED,
            tags=(Tag(name="sky", confidence=0.9, provider="basic"),),
        )
    )
    status, out, err = run(capsys, "show", f"s3://{bucket}/{key}", "--state", str(deployment["state"]))
    assert status == 0, err
    assert f"image     s3://{bucket}/{key}" in out
    status, out, err = run(
        capsys, "show", f"s3://{bucket}/{key}", "--json", "--state", str(deployment["state"])
    )
    assert status == 0, err
    assert json.loads(out)["key"] == key


def test_show_says_why_a_record_is_skipped(capsys, deployment):
    bucket = deployment["bucket"]
    deployment["store"].put(
        ImageRecord(
            bucket=bucket, key="gone.jpg", status=ImageStatus.SKIPPED, error="object no longer exists"
        )
    )
    status, out, _ = run(capsys, "show", f"s3://{bucket}/gone.jpg", "--state", str(deployment["state"]))
    assert status == 0
    assert "status    skipped  (object no longer exists)" in out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_show_of_a_missing_record_is_a_one_line_error(capsys, deployment, json_flag):
    url = f"s3://{deployment['bucket']}/never/was.jpg"
    status, out, err = run(capsys, "show", url, *json_flag, "--state", str(deployment["state"]))
    assert status == 1
    assert out == ""  # not "null"
    [line] = err.strip().splitlines()
    assert line.startswith(f"autotag: error: not_found: no record for {url} ")


def _put_objects(s3, bucket: str, count: int) -> list[str]:
    keys = [f"old/{i:03d}.png" for i in range(count)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    return keys


def _drain(sqs, queue_url: str) -> list[str]:
    keys: list[str] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            keys.append(unquote_plus(json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return keys


def _interrupt_a_backfill(deployment, checkpoints: Path) -> None:
    """A backfill stopped by Ctrl-C while listing the 25th object: two batches of 10 were sent and
    checkpointed (last key old/019.png)."""
    target = resolve_target(stack=None, state_path=deployment["state"])

    def interrupt(report: BackfillReport) -> None:
        if report.listed == 25:
            raise KeyboardInterrupt

    job = Backfill(
        target=target,
        store=deployment["store"],
        url=f"s3://{deployment['bucket']}/old/",
        checkpoint_dir=checkpoints,
        on_progress=interrupt,
    )
    with pytest.raises(KeyboardInterrupt):
        job.run()
    assert job.report.enqueued == 20


def test_a_checkpoint_of_an_earlier_local_stack_is_not_resumed(capsys, deployment, tmp_path):
    bucket, sqs, queue_url = deployment["bucket"], deployment["sqs"], deployment["queue_url"]
    keys = _put_objects(deployment["s3"], bucket, 30)
    checkpoints = tmp_path / "checkpoints"
    state = str(deployment["state"])  # the same file after a restart
    backfill_old = ("backfill", f"s3://{bucket}/old/", "--checkpoint-dir", str(checkpoints), "--state", state)
    _interrupt_a_backfill(deployment, checkpoints)
    assert len(_drain(sqs, queue_url)) == 20
    assert len(list(checkpoints.glob("*.json"))) == 1

    # The same stack, still running: the interrupted run resumes after old/019.png.
    status, out, err = run(capsys, *backfill_old)
    assert status == 0, err
    assert "resuming after old/019.png" in err
    assert "10 enqueued" in out
    assert "the interrupted run enqueued 20" in out
    assert sorted(_drain(sqs, queue_url)) == keys[20:]

    # Interrupted again, then `autotag local` restarts (same names, new instance, empty): the
    # checkpoint must not be resumed, and every object is enqueued.
    _interrupt_a_backfill(deployment, checkpoints)
    _drain(sqs, queue_url)
    deployment["start"]("second")
    status, out, err = run(capsys, *backfill_old)
    assert status == 0, err
    assert "resuming after" not in err
    assert "earlier instance of this target" in err
    assert out.strip().endswith("30 enqueued, 0 already tagged (skipped)")
    assert sorted(_drain(sqs, queue_url)) == keys
    assert list(checkpoints.glob("*.json")) == []
