"""Every upload, every version, every time: on_upload driven by the notifications S3 (the emulator)
itself sends to the tag queue after plain boto3 PUTs, in order, out of order, twice, and moved back
from the DLQ the way ``aws sqs start-message-move-task`` moves them."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import jsonschema
import pytest
from autotag.ordering import compare_sequencers
from autotag.store.dynamodb import DynamoImageStore

from tests.support.aws import unique
from tests.support.events import load_schema, sqs_batch
from tests.support.images import jpeg_bytes
from tests.support.lambda_context import lambda_context
from tests.support.provider_servers import Reply
from tests.support.sqs_delivery import lambda_records, move_messages, receive_all
from tests.support.upload_stack import UploadStack, upload_stack

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_uploads")]
STACK = upload_stack


def queue_arn(stack: UploadStack) -> str:
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.tag_queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def notifications(stack: UploadStack) -> list[dict[str, Any]]:
    """The messages S3 sent to the tag queue since the last call, as Lambda would hand them over."""
    return lambda_records(receive_all(stack.sqs, stack.tag_queue_url), queue_arn(stack))


def deliver(stack: UploadStack, *records: dict[str, Any]) -> dict[str, Any]:
    from functions.on_upload import handler

    return handler.handler(sqs_batch(*records), lambda_context(timeout_seconds=60))


def sequencer_of(record: dict[str, Any]) -> str:
    return str(json.loads(record["body"])["Records"][0]["s3"]["object"]["sequencer"])


def autotag_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("autotag:")}


def test_the_emulator_sends_a_growing_sequencer_and_the_version_id(stack):
    stack.upload("seq/a.jpg", jpeg_bytes(32, 32, seed=1))
    _, version = stack.upload("seq/a.jpg", jpeg_bytes(32, 32, seed=1))
    first, second = notifications(stack)
    assert compare_sequencers(sequencer_of(first), sequencer_of(second)) == -1
    assert json.loads(second["body"])["Records"][0]["s3"]["object"]["versionId"] == version


def test_the_same_bytes_uploaded_again_end_tagged_without_a_provider_call(stack, store):
    """The issue's reproduction: an unversioned bucket (what an imported bucket often is), the same
    file copied twice. S3 drops the object's tags on the overwrite; the second PUT is a new event."""
    bucket = unique("unversioned")
    s3 = stack.s3
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn(stack), "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    try:
        data = jpeg_bytes(96, 72, seed=21)
        s3.put_object(Bucket=bucket, Key="photos/same.jpg", Body=data, ContentType="image/jpeg")
        assert deliver(stack, *notifications(stack)) == {"batchItemFailures": []}
        first = store.get(bucket, "photos/same.jpg")
        tagged = autotag_tags(stack_tags(s3, bucket, "photos/same.jpg"))
        assert tagged

        s3.put_object(Bucket=bucket, Key="photos/same.jpg", Body=data, ContentType="image/jpeg")
        assert stack_tags(s3, bucket, "photos/same.jpg") == {}  # S3 dropped them
        (second,) = notifications(stack)
        assert deliver(stack, second) == {"batchItemFailures": []}

        assert autotag_tags(stack_tags(s3, bucket, "photos/same.jpg")) == tagged
        record = store.get(bucket, "photos/same.jpg")
        assert record.status.value == "tagged"
        assert record.sequencer == sequencer_of(second) != first.sequencer
        assert record.cached  # the content-hash cache answered: one provider call in all
        assert stack.provider.calls == 1
        assert len(stack.bus_events("Image Tagged")) == 2
    finally:
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)


def stack_tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


@pytest.mark.parametrize("order", ["in_order", "reversed", "shuffled_and_duplicated"])
def test_a_then_b_then_a_leaves_the_record_of_a(stack, store, order):
    key = f"aba/{order}.jpg"
    a, b = jpeg_bytes(64, 48, seed=31), jpeg_bytes(64, 48, seed=32)
    etag_a, _ = stack.upload(key, a)
    stack.upload(key, b)
    _, current_version = stack.upload(key, a)
    events = notifications(stack)
    assert len(events) == 3
    if order == "reversed":
        events.reverse()
    elif order == "shuffled_and_duplicated":
        events = events * 2
        random.Random(5).shuffle(events)
    for event in events:  # one delivery per invocation, as the queue hands them out
        assert deliver(stack, event) == {"batchItemFailures": []}

    record = store.get(stack.bucket, key)
    assert (record.etag, record.version_id, record.status.value) == (etag_a, current_version, "tagged")
    assert record.sha256 == hashlib.sha256(a).hexdigest()
    assert autotag_tags(stack.object_tags(key, current_version))
    # Never more than one provider call per distinct image, however the events came.
    assert stack.provider.calls <= 2


def test_a_duplicate_notification_is_processed_once(stack, store):
    stack.upload("dupe/cat.jpg", jpeg_bytes(48, 48, seed=41))
    (event,) = notifications(stack)
    for _ in range(3):
        assert deliver(stack, {**event, "messageId": f"delivery-{_}"}) == {"batchItemFailures": []}
    assert stack.provider.calls == 1
    assert len(stack.bus_events("Image Tagged")) == 1


def test_a_terminal_failure_moved_back_by_a_message_move_is_processed_again(stack, store):
    data = jpeg_bytes(80, 60, seed=51)
    stack.provider.fail_images(
        [hashlib.sha256(data).hexdigest()], kind=Reply.json({"error": "no credits"}, 402)
    )
    _, version = stack.upload("redrive/cat.jpg", data)
    (event,) = notifications(stack)
    assert deliver(stack, event) == {"batchItemFailures": []}
    failed = store.get(stack.bucket, "redrive/cat.jpg")
    assert (failed.status.value, failed.error_code) == ("failed", "quota")
    (failure,) = stack.bus_events("Image Tagging Failed")
    assert failure["detail"]["error_code"] == "quota"

    # The operator buys credits and redrives with AWS's own tool (emulated: moto lacks it).
    stack.provider.recover()
    calls = stack.provider.calls
    assert move_messages(stack.sqs, stack.dlq_url, stack.tag_queue_url) == 1
    (moved,) = notifications(stack)
    assert moved["body"] == event["body"]
    assert deliver(stack, moved) == {"batchItemFailures": []}
    record = store.get(stack.bucket, "redrive/cat.jpg")
    assert (record.status.value, record.version_id) == ("tagged", version)
    assert stack.provider.calls == calls + 1
    # A duplicate of the now successful event is still processed once.
    assert deliver(stack, {**moved, "messageId": "late-duplicate"}) == {"batchItemFailures": []}
    assert stack.provider.calls == calls + 1
    assert stack.drain(stack.dlq_url, wait=0.3) == []


def test_user_tags_are_the_users_even_under_autotags_prefix(stack, store):
    user = {"owner": "alice", "autotag:favourite": "yes", "autotag:cat": "mine"}
    _, version = stack.upload("mine/cat.jpg", jpeg_bytes(64, 64, seed=61), tags=user)
    assert deliver(stack, *notifications(stack)) == {"batchItemFailures": []}

    tags = stack.object_tags("mine/cat.jpg", version)
    assert {k: tags[k] for k in user} == user  # every one of the user's tags, untouched
    record = store.get(stack.bucket, "mine/cat.jpg")
    assert set(record.s3_tags.written) == {"autotag:pet", "autotag:whiskers", "autotag:indoor"}
    assert [(d.key, d.reason.value) for d in record.s3_tags.dropped] == [("autotag:cat", "user_tag")]
    (event,) = stack.bus_events("Image Tagged")
    jsonschema.validate(event["detail"], load_schema("image_tagged"))
    assert event["detail"]["s3_tags_dropped"] == [{"key": "autotag:cat", "value": "", "reason": "user_tag"}]
    assert event["detail"]["s3_tags_removed"] == []

    # A re-tag with other labels removes only what autotag wrote, and says so.
    stack.provider.tags = ["dog"]
    from tests.support.upload_stack import reconfigure

    reconfigure(stack, lang="fr")  # a new cache fingerprint: the provider answers again
    try:
        assert deliver(stack, replay_of(stack, "mine/cat.jpg", version)) == {"batchItemFailures": []}
    finally:
        reconfigure(stack)
    tags = stack.object_tags("mine/cat.jpg", version)
    assert {k: tags[k] for k in user} == user
    assert autotag_tags(tags) == {"autotag:favourite": "yes", "autotag:cat": "mine", "autotag:dog": ""}
    (event,) = stack.bus_events("Image Tagged")
    assert event["detail"]["s3_tags_removed"] == ["autotag:indoor", "autotag:pet", "autotag:whiskers"]


def replay_of(stack: UploadStack, key: str, version: str) -> dict[str, Any]:
    """The object's event again, as ``autotag redrive`` / ``backfill --force`` replay it."""
    record = store_record(stack, key)
    message = stack.message(key, record.etag, version)
    body = json.loads(message["body"])
    body["Records"][0]["s3"]["object"]["sequencer"] = record.sequencer
    return {
        **message,
        "body": json.dumps(body),
        "messageAttributes": {
            "replay_id": {
                "stringValue": "r1",
                "dataType": "String",
                "stringListValues": [],
                "binaryListValues": [],
            }
        },
    }


def store_record(stack: UploadStack, key: str) -> Any:
    return DynamoImageStore(stack.emulator.client("dynamodb"), stack.table).get(stack.bucket, key)


def test_the_ten_tag_limit_drops_are_reported(stack, store):
    user = {f"user-{i}": str(i) for i in range(9)}
    stack.upload("full/cat.jpg", jpeg_bytes(40, 40, seed=71), tags=user)
    assert deliver(stack, *notifications(stack)) == {"batchItemFailures": []}
    record = store.get(stack.bucket, "full/cat.jpg")
    assert list(record.s3_tags.written) == ["autotag:cat"]
    assert [(d.key, d.reason.value) for d in record.s3_tags.dropped] == [
        ("autotag:pet", "tag_limit"),
        ("autotag:whiskers", "tag_limit"),
        ("autotag:indoor", "tag_limit"),
    ]
    (event,) = stack.bus_events("Image Tagged")
    assert [d["key"] for d in event["detail"]["s3_tags_dropped"]] == [
        "autotag:pet",
        "autotag:whiskers",
        "autotag:indoor",
    ]


def test_eventbridge_notifications_carry_the_same_growing_sequencer(stack):
    """The emulator's S3 -> EventBridge events (notifications mode "eventbridge") are ordered too."""
    events, sqs, s3 = (stack.emulator.client(s) for s in ("events", "sqs", "s3"))
    bucket, rule = unique("bridged"), unique("s3-created")
    queue_url = sqs.create_queue(QueueName=unique("bridged-events"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    events.put_rule(
        Name=rule, EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]})
    )
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    try:
        versions = [
            s3.put_object(Bucket=bucket, Key="k.jpg", Body=jpeg_bytes(16, 16, seed=1))["VersionId"]
            for _ in range(2)
        ]
        received = [json.loads(m["Body"]) for m in receive_all(sqs, queue_url)]
        objects = [e["detail"]["object"] for e in received if e["detail"]["bucket"]["name"] == bucket]
        assert [o["version-id"] for o in objects] == versions
        assert compare_sequencers(objects[0]["sequencer"], objects[1]["sequencer"]) == -1
    finally:
        events.remove_targets(Rule=rule, Ids=["q"])
        events.delete_rule(Name=rule)
        sqs.delete_queue(QueueUrl=queue_url)
        for item in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        s3.delete_bucket(Bucket=bucket)
