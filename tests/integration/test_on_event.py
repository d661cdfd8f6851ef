"""on_event end to end: the real handler driven by EventBridge events (samples in events/) against
the AWS emulator and the local imagedescriber server, compared with what the real on_upload
handler does for the same bytes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from autotag.store.dynamodb import DynamoImageStore

from tests.support.api_stack import ApiStack
from tests.support.events import load_event, next_sequencer
from tests.support.images import jpeg_bytes, truncated_jpeg

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]


@pytest.fixture(autouse=True)
def _clean_queues(stack):
    stack.drain_events(wait=0.0, expect=10_000)
    stack.dead_letters(wait=0.0)
    return


def dead_lettered(bucket: str, key: str, error_code: str) -> dict[str, str]:
    """What on_event returns for an event it sends to the DLQ."""
    return {"status": "dead_lettered", "bucket": bucket, "key": key, "error_code": error_code}


def tag_requested(stack: ApiStack, key: str, **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event("eventbridge_tag_image_requested"))
    event["detail"] = {"bucket": stack.bucket, "key": key, **detail}
    event["resources"] = [f"arn:aws:s3:::{stack.bucket}/{key}"]
    event["id"] = f"req-{key}"
    return event


def object_created(stack: ApiStack, key: str, etag: str, sequencer: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("eventbridge_s3_object_created"))
    event["detail"]["bucket"]["name"] = stack.bucket
    event["detail"]["object"].update(key=key, etag=etag, sequencer=sequencer or next_sequencer())
    event["resources"] = [f"arn:aws:s3:::{stack.bucket}"]
    return event


def store(stack: ApiStack) -> DynamoImageStore:
    return DynamoImageStore(stack.emulator.client("dynamodb"), stack.table)


def object_tags(stack: ApiStack, key: str) -> dict[str, str]:
    response = stack.s3().get_object_tagging(Bucket=stack.bucket, Key=key)
    return {t["Key"]: t["Value"] for t in response["TagSet"]}


IDENTITY = {"key", "version_id", "etag", "sequencer", "updated_at", "tagged_at", "providers"}


def comparable_record(stack: ApiStack, key: str) -> dict[str, Any]:
    record = store(stack).get(stack.bucket, key)
    assert record is not None, key
    data = record.model_dump(mode="json", exclude=IDENTITY)
    data["providers"] = [(p.provider, p.status.value, p.tag_count) for p in record.providers]
    return data


def comparable_event(event: dict[str, Any]) -> dict[str, Any]:
    detail = {k: v for k, v in event["detail"].items() if k not in IDENTITY}
    detail["providers"] = [(p["provider"], p["status"], p["tag_count"]) for p in event["detail"]["providers"]]
    return {"source": event["source"], "detail-type": event["detail-type"], "detail": detail}


def put_same_image(stack: ApiStack, *keys: str) -> dict[str, str]:
    data = jpeg_bytes(160, 120, seed=42)
    etags = {}
    for key in keys:
        response = stack.put_image(key, data)
        stack.s3().put_object_tagging(
            Bucket=stack.bucket, Key=key, Tagging={"TagSet": [{"Key": "project", "Value": "zoo"}]}
        )
        etags[key] = response["ETag"].strip('"')
    return etags


def test_both_event_kinds_do_exactly_what_an_upload_does(stack):
    etags = put_same_image(stack, "zoo/upload.jpg", "zoo/requested.jpg", "zoo/announced.jpg")

    upload = stack.on_upload("zoo/upload.jpg", etags["zoo/upload.jpg"])
    assert upload == {"batchItemFailures": []}
    requested = stack.on_event(tag_requested(stack, "zoo/requested.jpg"))
    assert requested["status"] == "tagged"
    announced = stack.on_event(object_created(stack, "zoo/announced.jpg", etags["zoo/announced.jpg"]))
    assert announced["status"] == "tagged"

    expected = comparable_record(stack, "zoo/upload.jpg")
    assert expected["status"] == "tagged"
    assert expected["tags"]
    assert comparable_record(stack, "zoo/requested.jpg") == expected
    assert comparable_record(stack, "zoo/announced.jpg") == expected

    expected_tags = object_tags(stack, "zoo/upload.jpg")
    assert expected_tags["project"] == "zoo"
    assert len(expected_tags) > 1
    assert object_tags(stack, "zoo/requested.jpg") == expected_tags
    assert object_tags(stack, "zoo/announced.jpg") == expected_tags

    events = {
        e["detail"]["key"]: e for e in stack.drain_events(expect=3) if e["detail-type"] == "Image Tagged"
    }
    assert set(events) == {"zoo/upload.jpg", "zoo/requested.jpg", "zoo/announced.jpg"}
    baseline = comparable_event(events["zoo/upload.jpg"])
    assert comparable_event(events["zoo/requested.jpg"]) == baseline
    assert comparable_event(events["zoo/announced.jpg"]) == baseline
    assert stack.dead_letters(wait=0.3) == []


def test_request_options_reach_the_provider(stack):
    put_same_image(stack, "opts/cat.jpg")
    result = stack.on_event(tag_requested(stack, "opts/cat.jpg", options={"max_tags": 2, "lang": "fr"}))
    assert result["status"] == "tagged"
    assert stack.provider.last.json["lang"] == "fr"
    assert len(store(stack).get(stack.bucket, "opts/cat.jpg").tags) == 2


def test_the_same_request_delivered_twice_runs_once(stack):
    put_same_image(stack, "dupes/cat.jpg")
    event = tag_requested(stack, "dupes/cat.jpg")
    calls = stack.provider.calls
    assert stack.on_event(event)["status"] == "tagged"
    assert stack.on_event(copy.deepcopy(event))["status"] == "tagged"
    assert stack.provider.calls == calls + 1
    # A new request (new event id) is a new job: the object is tagged again.
    again = copy.deepcopy(event)
    again["id"] = "another-request"
    stack.on_event(again)
    assert stack.provider.calls == calls + 2


def test_an_object_announced_by_both_s3_paths_is_tagged_once(stack):
    etag = put_same_image(stack, "both/cat.jpg")["both/cat.jpg"]
    calls = stack.provider.calls
    put = next_sequencer()  # one PUT, announced to the queue and to EventBridge
    assert stack.on_upload("both/cat.jpg", etag, sequencer=put) == {"batchItemFailures": []}
    assert stack.on_event(object_created(stack, "both/cat.jpg", etag, put))["status"] == "tagged"
    assert stack.provider.calls == calls + 1


def test_url_encoded_keys_in_object_created_events_are_decoded(stack):
    etag = put_same_image(stack, "spaces/my cat.jpg")["spaces/my cat.jpg"]
    result = stack.on_event(object_created(stack, "spaces/my+cat.jpg", etag))
    assert (result["status"], result["key"]) == ("tagged", "spaces/my cat.jpg")


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (
            {"detail-type": "Tag Image Requested", "source": "autotag", "detail": {"key": "x.jpg"}},
            "invalid_event",
        ),
        ("not even an object", "invalid_event"),
        ({"source": "someone.else", "detail-type": "Whatever", "detail": {}}, "invalid_event"),
    ],
)
def test_malformed_events_end_in_the_dlq_with_the_reason(stack, event, code):
    if isinstance(event, dict) and event.get("source") == "autotag":
        base = load_event("eventbridge_tag_image_requested")
        event = {**base, **event}
    result = stack.on_event(event)
    assert result["status"] == "dead_lettered"
    letters = stack.dead_letters()
    assert len(letters) == 1
    attributes = {k: v["StringValue"] for k, v in letters[0]["MessageAttributes"].items()}
    assert attributes["error_code"] == code
    assert attributes["source_function"] == "on_event"
    expected_reason = (
        "event is not a JSON object"
        if isinstance(event, str)
        else "not a Tag Image Requested or S3 Object Created event"
    )
    assert expected_reason in attributes["error_reason"]
    assert json.loads(letters[0]["Body"]) == event  # kept as it arrived, for a redrive


def test_missing_key_reason_names_the_field(stack):
    event = load_event("eventbridge_tag_image_requested")
    event["detail"] = {"bucket": stack.bucket}
    stack.on_event(event)
    (letter,) = stack.dead_letters()
    reason = letter["MessageAttributes"]["error_reason"]["StringValue"]
    assert "detail.key: Field required" in reason


def test_a_bucket_not_allowed_goes_to_the_dlq(stack):
    stack.put_image("x.jpg", jpeg_bytes(32, 32), bucket=stack.other_bucket)
    event = tag_requested(stack, "x.jpg")
    event["detail"]["bucket"] = stack.other_bucket
    calls = stack.provider.calls
    assert stack.on_event(event) == dead_lettered(stack.other_bucket, "x.jpg", "bucket_not_allowed")
    assert stack.provider.calls == calls
    (letter,) = stack.dead_letters()
    assert letter["MessageAttributes"]["error_code"]["StringValue"] == "bucket_not_allowed"


def test_a_terminal_failure_is_recorded_announced_and_dead_lettered(stack):
    stack.put_image("broken/cat.jpg", truncated_jpeg())
    result = stack.on_event(tag_requested(stack, "broken/cat.jpg"))
    assert result == dead_lettered(stack.bucket, "broken/cat.jpg", "corrupt_image")
    record = store(stack).get(stack.bucket, "broken/cat.jpg")
    assert record is not None
    assert record.status.value == "failed"
    assert record.error_code == "corrupt_image"
    failed = [e for e in stack.drain_events(expect=1) if e["detail-type"] == "Image Tagging Failed"]
    assert [e["detail"]["error_code"] for e in failed] == ["corrupt_image"]
    (letter,) = stack.dead_letters()
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert (attributes["error_code"], attributes["bucket"], attributes["key"]) == (
        "corrupt_image",
        stack.bucket,
        "broken/cat.jpg",
    )


def test_transient_failures_raise_for_lambda_retries(stack):
    from tests.support.provider_servers import ImageDescriberServer

    put_same_image(stack, "flaky/cat.jpg")
    stack.provider.script(ImageDescriberServer.error(5050), ImageDescriberServer.error(5050))
    with pytest.raises(Exception) as caught:
        stack.on_event(tag_requested(stack, "flaky/cat.jpg"))
    assert getattr(caught.value, "retryable", False) is True
    assert stack.dead_letters(wait=0.3) == []
    # Lambda's retry of the same event then succeeds (the failed attempt left no idempotency record).
    assert stack.on_event(tag_requested(stack, "flaky/cat.jpg"))["status"] == "tagged"


def test_a_version_id_s3_refuses_goes_to_the_dlq(stack):
    put_same_image(stack, "versions/cat.jpg")
    assert stack.on_event(tag_requested(stack, "versions/cat.jpg"))["status"] == "tagged"
    tagged = store(stack).get(stack.bucket, "versions/cat.jpg")
    stack.drain_events(wait=0.5)
    refused = tag_requested(stack, "versions/cat.jpg", version_id="not-a-version")
    refused["id"] = "req-versions/cat.jpg-refused"  # a new request, not a redelivery
    result = stack.on_event(refused)
    assert (result["status"], result["error_code"]) == ("dead_lettered", "invalid_s3_reference")
    (letter,) = stack.dead_letters()
    assert letter["MessageAttributes"]["error_code"]["StringValue"] == "invalid_s3_reference"
    assert "not-a-version" in letter["MessageAttributes"]["error_reason"]["StringValue"]
    # The existing object's record is not overwritten by a failure about a version that does not exist.
    assert store(stack).get(stack.bucket, "versions/cat.jpg") == tagged
    assert stack.drain_events(wait=0.5) == []


def test_a_url_encoded_key_with_a_refused_version_id_goes_to_the_dlq(stack):
    # The key-decoding probe HEADs the reference before the pipeline does: refused there too.
    put_same_image(stack, "versions/a cat.jpg")
    result = stack.on_event(tag_requested(stack, "versions/a+cat.jpg", version_id="not-a-version"))
    assert (result["status"], result["error_code"]) == ("dead_lettered", "invalid_s3_reference")
    (letter,) = stack.dead_letters()
    assert letter["MessageAttributes"]["key"]["StringValue"] == "versions/a+cat.jpg"


def test_a_bad_request_never_damages_a_good_record(stack):
    key = "good/dog.jpg"
    versioning = stack.s3().put_bucket_versioning
    versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        first = stack.put_image(key, jpeg_bytes(64, 48, seed=91))
        assert stack.on_event(tag_requested(stack, key))["status"] == "tagged"
        good = store(stack).get(stack.bucket, key)
        stack.drain_events(wait=0.5, expect=99)
        calls = stack.provider.calls

        unknown = tag_requested(stack, key, options={"providers": ["nope"]})
        unknown["id"] = "req-unknown-provider"
        assert stack.on_event(unknown)["error_code"] == "unknown_provider"
        stack.put_image(key, jpeg_bytes(64, 48, seed=92))
        stack.s3().delete_object(Bucket=stack.bucket, Key=key, VersionId=first["VersionId"])
        gone = tag_requested(stack, key, version_id=first["VersionId"])
        gone["id"] = "req-gone-version"
        assert stack.on_event(gone)["error_code"] == "object_not_found"

        letters = stack.dead_letters(wait=1.0)
        reasons = {m["MessageAttributes"]["error_code"]["StringValue"]: m for m in letters}
        assert set(reasons) == {"unknown_provider", "object_not_found"}
        assert (
            "'nope' is not configured"
            in reasons["unknown_provider"]["MessageAttributes"]["error_reason"]["StringValue"]
        )
        assert store(stack).get(stack.bucket, key) == good
        assert stack.provider.calls == calls
        assert [
            e for e in stack.drain_events(wait=0.5, expect=99) if e["detail-type"] == "Image Tagging Failed"
        ] == []
    finally:
        versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Suspended"})


def test_a_request_for_a_key_that_never_existed_goes_to_the_dlq_with_the_reason(stack):
    calls = stack.provider.calls
    result = stack.on_event(tag_requested(stack, "never/there.jpg"))
    assert result == dead_lettered(stack.bucket, "never/there.jpg", "object_not_found")
    (letter,) = stack.dead_letters()
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attributes["error_code"] == "object_not_found"
    assert f"s3://{stack.bucket}/never/there.jpg does not exist" in attributes["error_reason"]
    assert attributes["key"] == "never/there.jpg"
    assert store(stack).get(stack.bucket, "never/there.jpg") is None  # no silent "skipped" record
    assert stack.provider.calls == calls
    assert stack.drain_events(wait=0.5, expect=10) == []
