import hashlib
import json

import jsonschema
import pytest
from autotag.store.keys import tag_pk

from tests.support.events import load_schema, s3_notification, s3_record, s3_test_event, sqs_message
from tests.support.images import jpeg_bytes, truncated_jpeg
from tests.support.upload_stack import upload_stack

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_uploads")]
STACK = upload_stack

USER_TAGS = {"owner": "alice", "project": "summer", "cost-center": "42"}


def index_keys(stack, key):
    ddb = stack.emulator.client("dynamodb")
    items = ddb.scan(TableName=stack.table)["Items"]
    return {i["pk"]["S"] for i in items if i["pk"]["S"].startswith("TAG#") and i["key"]["S"] == key}


def test_upload_is_recorded_indexed_tagged_and_announced(stack, store):
    key = "uploads/Summer Holiday/chat noir \u2013 été 😺.jpg"
    etag, version = stack.upload(key, jpeg_bytes(200, 150, seed=1), tags=USER_TAGS)

    response = stack.invoke(stack.message(key, etag, version))

    assert response == {"batchItemFailures": []}
    record = store.get(stack.bucket, key)
    assert record.status.value == "tagged"
    assert [t.name for t in record.tags] == ["cat", "pet", "whiskers", "indoor"]
    assert record.title == "A cat at home"
    assert (record.version_id, record.etag, record.width, record.height) == (version, etag, 200, 150)
    assert record.providers[0].provider == "imagedescriber"
    assert index_keys(stack, key) == {tag_pk(t) for t in ("cat", "pet", "whiskers", "indoor")}
    assert [h.key for h in store.images_with_tag("Whiskers").items] == [key]
    assert stack.object_tags(key, version) == {
        **USER_TAGS,
        "autotag:cat": "",
        "autotag:pet": "",
        "autotag:whiskers": "",
        "autotag:indoor": "",
    }
    assert record.s3_tags.user_tags_kept == 3
    (event,) = stack.bus_events("Image Tagged")
    assert event["source"] == "autotag"
    jsonschema.validate(event["detail"], load_schema("image_tagged"))
    assert event["detail"]["key"] == key
    assert event["detail"]["version_id"] == version
    assert [t["name"] for t in event["detail"]["tags"]] == ["cat", "pet", "whiskers", "indoor"]
    assert stack.provider.calls == 1


def test_duplicate_deliveries_make_one_provider_call_and_copies_none(stack, store):
    data = jpeg_bytes(120, 90, seed=2)
    etag, version = stack.upload("dup/original.jpg", data)
    message = stack.message("dup/original.jpg", etag, version)

    for _ in range(3):  # S3 delivering the same notification three times
        assert stack.invoke(message) == {"batchItemFailures": []}
    # ...and twice more inside one batch, as two distinct SQS messages.
    again = [{**message, "messageId": f"again-{i}"} for i in range(2)]
    assert stack.invoke(*again) == {"batchItemFailures": []}
    assert stack.provider.calls == 1

    copy_etag, copy_version = stack.upload("dup/copy of original.jpg", data)
    assert stack.invoke(stack.message("dup/copy of original.jpg", copy_etag, copy_version)) == {
        "batchItemFailures": []
    }
    assert stack.provider.calls == 1
    copy = store.get(stack.bucket, "dup/copy of original.jpg")
    assert copy.cached
    assert copy.tags == store.get(stack.bucket, "dup/original.jpg").tags
    assert len(stack.bus_events("Image Tagged")) == 2


def test_batch_with_transient_and_corrupt_objects(stack, store):
    images = {f"batch/img-{i:02d}.jpg": jpeg_bytes(96, 72, seed=100 + i) for i in range(9)}
    images["batch/broken.jpg"] = truncated_jpeg()
    messages, uploaded = {}, {}
    for key, data in images.items():
        etag, version = stack.upload(key, data)
        uploaded[key] = (etag, version)
        messages[key] = stack.message(key, etag, version)
    flaky = ["batch/img-03.jpg", "batch/img-07.jpg"]
    stack.provider.fail_images({hashlib.sha256(images[k]).hexdigest() for k in flaky}, kind="error")

    response = stack.invoke(*messages.values())

    failed_ids = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed_ids == {messages[k]["messageId"] for k in flaky}
    # The corrupt one: recorded failed, announced, and in the DLQ with its reason.
    broken = store.get(stack.bucket, "batch/broken.jpg")
    assert broken.status.value == "failed"
    assert broken.error_code == "corrupt_image"
    (letter,) = stack.drain(stack.dlq_url)
    assert json.loads(letter["Body"]) == json.loads(messages["batch/broken.jpg"]["body"])
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attributes["error_code"] == "corrupt_image"
    assert attributes["error_reason"] == broken.error
    assert attributes["source_message_id"] == messages["batch/broken.jpg"]["messageId"]
    assert attributes["key"] == "batch/broken.jpg"
    (failure,) = stack.bus_events("Image Tagging Failed", wait=0.5)
    jsonschema.validate(failure["detail"], load_schema("image_tagging_failed"))
    assert failure["detail"]["error_code"] == "corrupt_image"
    for key in flaky:
        assert store.get(stack.bucket, key) is None
    tagged = [k for k in images if k not in flaky and k != "batch/broken.jpg"]
    assert all(store.get(stack.bucket, k).status.value == "tagged" for k in tagged)

    # The provider recovers; SQS redelivers the two failed messages.
    stack.provider.recover()
    calls_before = stack.provider.calls
    redelivery = [
        dict(messages[k], attributes={**messages[k]["attributes"], "ApproximateReceiveCount": "2"})
        for k in flaky
    ]
    assert stack.invoke(*redelivery) == {"batchItemFailures": []}
    assert stack.provider.calls == calls_before + 2
    assert all(store.get(stack.bucket, k).status.value == "tagged" for k in flaky)

    # The whole batch again: nothing new is called or failed. The failed event is evaluated again
    # (a failed record never absorbs its event: that is what makes any redrive work), and fails
    # again with the same reason.
    assert stack.invoke(*messages.values()) == {"batchItemFailures": []}
    assert stack.provider.calls == calls_before + 2
    (again,) = stack.drain(stack.dlq_url, wait=0.3)
    assert json.loads(again["Body"]) == json.loads(messages["batch/broken.jpg"]["body"])


def test_full_user_tag_set_and_retag_with_fewer_labels(stack, store):
    ten = {f"user-{i}": f"value {i}" for i in range(10)}
    etag, version = stack.upload("full/ten tags.jpg", jpeg_bytes(80, 60, seed=3), tags=ten)
    assert stack.invoke(stack.message("full/ten tags.jpg", etag, version)) == {"batchItemFailures": []}
    assert stack.object_tags("full/ten tags.jpg", version) == ten
    record = store.get(stack.bucket, "full/ten tags.jpg")
    assert record.s3_tags.written == {}
    assert record.s3_tags.reason == "no free tag slots: 10 user tags (S3 allows 10)"
    assert record.tags

    # Re-tag: a new version arrives carrying the old tag set (as a copy would), the provider now
    # sees fewer labels.
    key = "retag/photo.jpg"
    etag, version = stack.upload(key, jpeg_bytes(80, 60, seed=4), tags=USER_TAGS)
    stack.invoke(stack.message(key, etag, version))
    assert index_keys(stack, key) == {tag_pk(t) for t in ("cat", "pet", "whiskers", "indoor")}
    old_tags = stack.object_tags(key, version)
    stack.provider.tags = ["cat", "sofa"]
    etag2, version2 = stack.upload(key, jpeg_bytes(80, 60, seed=5), tags=old_tags)
    assert stack.invoke(stack.message(key, etag2, version2)) == {"batchItemFailures": []}
    assert stack.object_tags(key, version2) == {**USER_TAGS, "autotag:cat": "", "autotag:sofa": ""}
    assert index_keys(stack, key) == {tag_pk("cat"), tag_pk("sofa")}
    assert key not in {h.key for h in store.images_with_tag("whiskers").items}
    assert key in {h.key for h in store.images_with_tag("sofa").items}
    retagged = store.get(stack.bucket, key)
    assert retagged.version_id == version2
    assert set(retagged.s3_tags.removed) == {"autotag:pet", "autotag:whiskers", "autotag:indoor"}


def test_real_notification_and_tag_writes_do_not_retrigger(stack, store):
    key = "notified/emulator photo.jpg"
    stack.upload(key, jpeg_bytes(64, 64, seed=6), tags=USER_TAGS)
    (notification,) = stack.drain(stack.tag_queue_url)  # what S3 itself sent to the tag queue
    message = sqs_message(notification["Body"], message_id=notification["MessageId"])

    assert stack.invoke(message) == {"batchItemFailures": []}

    assert store.get(stack.bucket, key).status.value == "tagged"
    assert "autotag:cat" in stack.object_tags(key)
    # PutObjectTagging is not ObjectCreated: nothing new reached the tag queue.
    assert stack.drain(stack.tag_queue_url, wait=1.0) == []


def test_test_event_multi_record_filters_deleted_and_invalid_messages(stack, store):
    e1, v1 = stack.upload("multi/a.jpg", jpeg_bytes(64, 48, seed=7))
    e2, v2 = stack.upload("multi/b.png", jpeg_bytes(64, 48, seed=8))
    multi = sqs_message(
        s3_notification(
            s3_record(stack.bucket, "multi/a.jpg", etag=e1, version_id=v1),
            s3_record(stack.bucket, "multi/b.png", etag=e2, version_id=v2),
            s3_record(stack.bucket, "multi/notes.txt", etag="x", version_id="y"),
        )
    )
    e3, v3 = stack.upload("multi/deleted.jpg", jpeg_bytes(64, 48, seed=9))
    stack.s3.delete_object(Bucket=stack.bucket, Key="multi/deleted.jpg", VersionId=v3)
    test_event = sqs_message(s3_test_event(stack.bucket))
    garbage = sqs_message("this is not an S3 notification")

    response = stack.invoke(multi, test_event, stack.message("multi/deleted.jpg", e3, v3), garbage)

    assert response == {"batchItemFailures": []}
    assert store.get(stack.bucket, "multi/a.jpg").status.value == "tagged"
    assert store.get(stack.bucket, "multi/b.png").status.value == "tagged"
    assert store.get(stack.bucket, "multi/notes.txt") is None
    skipped = store.get(stack.bucket, "multi/deleted.jpg")
    assert skipped.status.value == "skipped"
    assert skipped.error == "object no longer exists"
    (letter,) = stack.drain(stack.dlq_url)
    assert letter["Body"] == "this is not an S3 notification"
    assert letter["MessageAttributes"]["error_code"]["StringValue"] == "invalid_event"
    assert stack.provider.calls == 2


def test_a_version_id_s3_refuses_is_dead_lettered_once_with_its_reason(stack, store):
    # moto, like S3, answers 400 to a HEAD naming a version id on an unversioned bucket.
    from tests.support.aws import unique

    bucket = unique("unversioned")
    stack.s3.create_bucket(Bucket=bucket)
    try:
        key = "plain/cat.jpg"
        etag = stack.s3.put_object(Bucket=bucket, Key=key, Body=jpeg_bytes(64, 48, seed=11))["ETag"]
        good = sqs_message(s3_notification(s3_record(bucket, key, etag=etag.strip('"'))))
        assert stack.invoke(good) == {"batchItemFailures": []}
        tagged = store.get(bucket, key)
        assert tagged.status.value == "tagged"
        stack.bus_events(wait=0.5)
        calls = stack.provider.calls

        bad = sqs_message(
            s3_notification(
                s3_record(bucket, key, etag=etag.strip('"'), version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
            )
        )
        # Terminal at once: processed (not a batch item failure that SQS would redeliver).
        assert stack.invoke(bad) == {"batchItemFailures": []}

        (letter,) = stack.drain(stack.dlq_url)
        assert json.loads(letter["Body"]) == json.loads(bad["body"])
        attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
        assert attributes["error_code"] == "invalid_s3_reference"
        assert "S3 refused the reference" in attributes["error_reason"]
        assert attributes["source_message_id"] == bad["messageId"]
        assert stack.provider.calls == calls
        # The record of the object that does exist is left as it was; nothing is announced.
        assert store.get(bucket, key) == tagged
        assert stack.bus_events(wait=0.5) == []
        # A redelivery (or a redrive) is evaluated again: refused again, the good record untouched.
        assert stack.invoke(bad) == {"batchItemFailures": []}
        (again,) = stack.drain(stack.dlq_url, wait=0.3)
        assert json.loads(again["Body"]) == json.loads(bad["body"])
        assert store.get(bucket, key) == tagged
        assert stack.provider.calls == calls
    finally:
        for item in stack.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            stack.s3.delete_object(Bucket=bucket, Key=item["Key"])
        stack.s3.delete_bucket(Bucket=bucket)
