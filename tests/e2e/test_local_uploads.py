"""Every upload, every version, every time, on the local stack as a user drives it with plain boto3:
the same bytes uploaded twice, A then B then A, a failure redriven by a message move, and the
user's own tags under autotag's prefix."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from autotag.ordering import compare_sequencers

from tests.e2e.conftest import FAST_CONFIG, RunningStack, jpeg, start_stack, wait_for
from tests.support.sqs_delivery import move_messages

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("uploads"), FAST_CONFIG)
    yield running
    assert running.stop() == 0


def tag_set(stack: RunningStack, key: str) -> dict[str, str]:
    response = stack.client("s3").get_object_tagging(Bucket=stack.bucket, Key=key)
    return {t["Key"]: t["Value"] for t in response["TagSet"]}


def ours(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("autotag:")}


def test_the_same_bytes_uploaded_twice_end_tagged_both_times(stack: RunningStack) -> None:
    s3, key, data = stack.client("s3"), "again/same.jpg", jpeg((200, 40, 40))
    s3.put_object(Bucket=stack.bucket, Key=key, Body=data)
    first = stack.wait_record(key)
    written = wait_for(lambda: ours(tag_set(stack, key)), what="autotag's tags after the first upload")

    second_version = s3.put_object(Bucket=stack.bucket, Key=key, Body=data)["VersionId"]
    store = stack.store()
    record = wait_for(
        lambda: (r := store.get(stack.bucket, key)) is not None and r.version_id == second_version and r,
        what="the record of the second upload",
    )
    assert record.status.value == "tagged"
    assert compare_sequencers(record.sequencer or "0", first.sequencer or "0") == 1
    assert record.cached  # the same bytes: no provider call
    assert wait_for(lambda: ours(tag_set(stack, key)), what="autotag's tags after the re-upload") == written


def test_a_then_b_then_a_ends_with_the_record_and_tags_of_the_last_a(stack: RunningStack) -> None:
    s3, key = stack.client("s3"), "aba/photo.jpg"
    a, b = jpeg((10, 90, 10)), jpeg((10, 10, 90))
    s3.put_object(Bucket=stack.bucket, Key=key, Body=a)
    s3.put_object(Bucket=stack.bucket, Key=key, Body=b)
    last = s3.put_object(Bucket=stack.bucket, Key=key, Body=a)
    store = stack.store()
    record = wait_for(
        lambda: (
            (r := store.get(stack.bucket, key)) is not None
            and r.version_id == last["VersionId"]
            and r.status.value == "tagged"
            and r
        ),
        timeout=60,
        what="the record of the last upload",
    )
    assert record.etag == last["ETag"].strip('"')
    assert wait_for(lambda: ours(tag_set(stack, key)), what="autotag's tags on the current object")
    # Let every notification settle: the record must still describe the current object.
    wait_for(
        lambda: (
            stack.client("sqs").get_queue_attributes(
                QueueUrl=stack.state.resources.tag_queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
        ),
        timeout=60,
        what="the tag queue to drain",
    )
    assert store.get(stack.bucket, key).version_id == last["VersionId"]


def test_a_failure_moved_back_from_the_dlq_is_processed_again(stack: RunningStack) -> None:
    s3, sqs, key = stack.client("s3"), stack.client("sqs"), "redrive/broken.jpg"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=b"\xff\xd8\xff\xe0 not a jpeg at all")
    failed = stack.wait_record(key, status="failed")
    dlq = stack.state.resources.dlq_url

    def letters() -> int:
        attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    wait_for(lambda: letters() >= 1, what="the DLQ letter")
    before = failed.updated_at
    # What `aws sqs start-message-move-task --source-arn <DLQ>` does (moto lacks the API).
    assert move_messages(sqs, dlq, stack.state.resources.tag_queue_url) >= 1
    store = stack.store()
    again = wait_for(
        lambda: (r := store.get(stack.bucket, key)) is not None and r.updated_at > before and r,
        what="the redriven event processed again",
    )
    assert again.status.value == "failed"
    assert again.sequencer == failed.sequencer  # the same event, not swallowed
    wait_for(lambda: letters() >= 1, what="the letter back in the DLQ with its reason")


def test_user_tags_under_our_prefix_are_kept_and_show_reports_them(stack: RunningStack) -> None:
    s3, key = stack.client("s3"), "mine/photo.jpg"
    user = {"owner": "me", "autotag:favourite": "yes"}
    s3.put_object(Bucket=stack.bucket, Key=key, Body=jpeg((120, 120, 20)), Tagging=urlencode(user))
    record = stack.wait_record(key)
    tags = tag_set(stack, key)
    assert {k: tags[k] for k in user} == user
    assert "autotag:favourite" not in record.s3_tags.written
    assert record.s3_tags.user_tags_kept == 2
    shown = stack.cli("show", f"s3://{stack.bucket}/{key}")
    assert shown.returncode == 0, shown.stderr
    assert "user tags kept: 2" in shown.stdout
