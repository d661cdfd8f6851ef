"""The three ways in — upload, API, bus — end to end on the local stack: the record, the tag index,
the object's S3 tags and the outcome event, plus a terminal failure landing in the DLQ."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import FAST_CONFIG, RunningStack, jpeg, png, start_stack
from tests.e2e.objects import request_tagging

pytestmark = pytest.mark.e2e

CONFIG = copy.deepcopy(FAST_CONFIG)
# Objects under manual/ still trigger a notification (S3 cannot express exclusions) but on_upload
# ignores them: whatever tags them there came through the API or the bus.
CONFIG["tagging"]["filters"] = {"exclude_prefixes": ["manual/"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("paths"), CONFIG)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def debug_queue(stack: RunningStack) -> str:
    return stack.subscribe()


def assert_tagged_everywhere(stack: RunningStack, debug_queue: str, key: str) -> None:
    record = stack.wait_record(key)
    assert record.tags, "a tagged record has tags"
    assert record.etag

    best = record.tags[0]
    hits = stack.store().images_with_tag(best.name, limit=500).items
    assert any(h.bucket == stack.bucket and h.key == key for h in hits), (
        f"{key} is not in the index of {best.name}"
    )

    tag_set = stack.client("s3").get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]
    written = {t["Key"]: t["Value"] for t in tag_set}
    assert any(k.startswith("autotag:") for k in written), tag_set
    assert record.s3_tags is not None
    assert set(record.s3_tags.written) <= set(written)

    event = stack.events_for(debug_queue, key, "Image Tagged")
    assert event["source"] == "autotag"
    assert event["detail"]["bucket"] == stack.bucket
    assert [t["name"] for t in event["detail"]["tags"]][: len(record.tags)] == [t.name for t in record.tags][
        :100
    ]


def test_upload_path_tags_the_object_stores_indexes_and_announces(
    stack: RunningStack, debug_queue: str
) -> None:
    key = "photos/beach day 1.jpg"  # a space: the notification carries it URL-encoded
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=jpeg((30, 120, 220)))

    assert_tagged_everywhere(stack, debug_queue, key)
    assert "tagged  s3://autotag-local-images/photos/beach day 1.jpg" in stack.log()


def test_api_path_with_the_api_key(stack: RunningStack, debug_queue: str) -> None:
    key = "manual/api/red.png"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=png((220, 20, 20)))
    api, headers = stack.state.api_url, {"x-api-key": stack.state.api_key}

    response = httpx.post(
        f"{api}v1/tags",
        json={"s3": {"bucket": stack.bucket, "key": key}, "store": True},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] is True
    assert body["tags"]
    assert_tagged_everywhere(stack, debug_queue, key)

    inline = base64.b64encode(png((10, 200, 10))).decode()
    tagged = httpx.post(f"{api}v1/tags", json={"image": inline}, headers=headers, timeout=30)
    assert tagged.status_code == 200, tagged.text
    assert "green" in [t["name"] for t in tagged.json()["tags"]]

    stored = httpx.get(f"{api}v1/images/{stack.bucket}/{key}", headers=headers, timeout=30)
    assert stored.status_code == 200, stored.text


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-the-key"}])
def test_api_refuses_requests_without_the_key_like_api_gateway(
    stack: RunningStack, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{stack.state.api_url}v1/tags", json={"image": "x"}, headers=headers, timeout=10)
    assert response.status_code == 403
    body = response.json()  # API Gateway's answer, reshaped by the stack's gateway response
    assert body["code"] == "invalid_api_key"
    assert "x-api-key" in body["message"]
    assert body["request_id"] == response.headers["x-amzn-RequestId"]


def test_api_refuses_an_oversized_url_with_the_documented_code(stack: RunningStack) -> None:
    response = httpx.post(
        f"{stack.state.api_url}v1/tags",
        json={"url": "https://example.com/" + "a" * 3000},
        headers={"x-api-key": stack.state.api_key},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert response.json()["details"][0]["loc"] == ["body", "url"]  # the function's answer


@pytest.mark.parametrize("body", [b"{", b"[", b"null"])
def test_api_answers_bodies_that_are_not_an_object_with_malformed_json(
    stack: RunningStack, body: bytes
) -> None:
    response = httpx.post(
        f"{stack.state.api_url}v1/tags",
        content=body,
        headers={"x-api-key": stack.state.api_key, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_bus_path_tag_image_requested(stack: RunningStack, debug_queue: str) -> None:
    key = "manual/bus/blue sky.jpg"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=jpeg((40, 90, 250)))
    request_tagging(stack, key)

    assert_tagged_everywhere(stack, debug_queue, key)


def test_corrupt_upload_is_recorded_announced_and_dead_lettered_with_its_reason(
    stack: RunningStack, debug_queue: str
) -> None:
    key = "photos/broken.jpg"
    stack.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=b"\xff\xd8\xff\xe0 this is not a real jpeg"
    )

    record = stack.wait_record(key, status="failed")
    assert record.error_code
    event = stack.events_for(debug_queue, key, "Image Tagging Failed")
    assert event["detail"]["error_code"] == record.error_code

    sqs = stack.client("sqs")
    message = sqs.receive_message(
        QueueUrl=stack.state.resources.dlq_url, MessageAttributeNames=["All"], WaitTimeSeconds=2
    )["Messages"][0]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["error_code"] == record.error_code
    assert attributes["key"] == key
    assert attributes["error_reason"]
    sqs.change_message_visibility(
        QueueUrl=stack.state.resources.dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
