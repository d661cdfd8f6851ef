"""The routes the web console uses, through the real tag_api handler and the AWS emulator: tag
corrections (S3 tags, tag index, bus event, who decided), the feed of recent and failed images,
thumbnails, and the console's static files. Every reply is checked against the OpenAPI document."""

from __future__ import annotations

import base64
import io

import jsonschema
import pytest
from PIL import Image

from tests.integration.test_tag_api import check_documented, expect_error
from tests.support.api_stack import rest_event
from tests.support.events import load_schema
from tests.support.images import jpeg_bytes, truncated_jpeg

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]


CORRECT = "/v1/images/{bucket}/{key}/tags"
FEED = "/v1/images"
THUMB = "/v1/thumbnails/{bucket}/{key}"
IMAGE = "/v1/images/{bucket}/{key}"


def stored(stack, key, data=None):
    """An image tagged through the API's store mode (the shared pipeline)."""
    stack.put_image(key, data or jpeg_bytes(120, 80, seed=hash(key) % 100))
    reply = stack.call("POST", "/v1/tags", {"s3": {"bucket": stack.bucket, "key": key}, "store": True})
    assert reply.status == 200, reply.body
    stack.drain_events(expect=1)
    return reply.json


def object_tags(stack, key):
    return {
        t["Key"]: t["Value"] for t in stack.s3().get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]
    }


def test_correction_reaches_s3_index_bus_and_record(stack, openapi):
    provider_tags = [t["name"] for t in stored(stack, "photos/a b.jpg")["tags"]]
    stack.s3().put_object_tagging(
        Bucket=stack.bucket,
        Key="photos/a b.jpg",
        Tagging={
            "TagSet": [
                {"Key": "owner", "Value": "ann"},
                *[{"Key": k, "Value": v} for k, v in object_tags(stack, "photos/a b.jpg").items()],
            ]
        },
    )
    removed = provider_tags[0]
    reply = stack.call(
        "PATCH", f"/v1/images/{stack.bucket}/photos/a b.jpg/tags", {"add": ["Sunset"], "remove": [removed]}
    )
    assert reply.status == 200, reply.body
    check_documented(openapi, "PATCH", CORRECT, reply)
    body = reply.json
    assert body["added"] == ["Sunset"]
    assert body["removed"] == [removed]
    assert [t["name"] for t in body["image"]["tags"]] == provider_tags  # what the providers said
    decisions = body["image"]["corrections"]["log"]
    # Who: the API key *id* from the request context of the sample event, never the key.
    assert {d["by"] for d in decisions} == {"apikey:k1a2b3c4d5"}
    assert body["tags_in_force"][0]["name"] == "Sunset"
    assert removed not in [t["name"] for t in body["tags_in_force"]]

    tags = object_tags(stack, "photos/a b.jpg")
    assert tags["owner"] == "ann"  # the user's own tag is kept
    assert tags["autotag:Sunset"] == "1.00"
    assert f"autotag:{removed}" not in tags
    assert len(tags) <= 10

    hits = stack.call("GET", "/v1/tags/sunset/images").json["items"]
    assert [(h["key"], h["providers"]) for h in hits] == [("photos/a b.jpg", ["person"])]
    assert all(
        h["key"] != "photos/a b.jpg" for h in stack.call("GET", f"/v1/tags/{removed}/images").json["items"]
    )

    (event,) = [e for e in stack.drain_events(expect=1) if e["detail-type"] == "Image Tags Corrected"]
    assert event["source"] == "autotag"
    jsonschema.validate(event["detail"], load_schema("image_tags_corrected"))
    assert event["detail"]["corrected_by"] == "apikey:k1a2b3c4d5"

    record = stack.call("GET", f"/v1/images/{stack.bucket}/photos/a b.jpg")
    check_documented(openapi, "GET", IMAGE, record)
    assert record.json["tags_in_force"] == body["tags_in_force"]


def test_correction_survives_a_retag_through_the_api(stack):
    stored(stack, "retag.jpg")
    stack.call("PATCH", f"/v1/images/{stack.bucket}/retag.jpg/tags", {"add": ["keeper"]})
    stack.drain_events(expect=1)
    again = stack.call(
        "POST", "/v1/tags", {"s3": {"bucket": stack.bucket, "key": "retag.jpg"}, "store": True}
    )
    assert again.status == 200
    assert object_tags(stack, "retag.jpg")["autotag:keeper"] == "1.00"
    assert "retag.jpg" in [h["key"] for h in stack.call("GET", "/v1/tags/keeper/images").json["items"]]


@pytest.fixture(scope="module")
def valid_image(stack):
    stored(stack, "valid.jpg")
    return "valid.jpg"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_request"),
        ({"add": []}, "invalid_request"),
        ({"add": ["a"], "remove": ["A"]}, "invalid_request"),
        ({"add": [""]}, "invalid_request"),
        ({"add": ["x" * 129]}, "invalid_request"),
        ({"add": ["bad\u0007bell"]}, "invalid_request"),
        ({"add": [f"t{i}" for i in range(51)]}, "invalid_request"),
        ({"add": "dog"}, "invalid_request"),
        ({"add": ["x"], "extra": 1}, "invalid_request"),
    ],
)
def test_bad_corrections_are_400(stack, openapi, body, code):
    stored(stack, "valid.jpg") if stack.call(
        "GET", f"/v1/images/{stack.bucket}/valid.jpg"
    ).status == 404 else None
    reply = stack.call("PATCH", f"/v1/images/{stack.bucket}/valid.jpg/tags", body)
    expect_error(openapi, reply, 400, code, template=CORRECT, method="PATCH")


def test_correction_errors(stack, openapi):
    reply = stack.call("PATCH", f"/v1/images/{stack.bucket}/nothing.jpg/tags", {"add": ["x"]})
    expect_error(openapi, reply, 404, "image_not_found", template=CORRECT, method="PATCH")
    reply = stack.call("PATCH", "/v1/images/not-allowed-bucket/x.jpg/tags", {"add": ["x"]})
    expect_error(openapi, reply, 403, "bucket_not_allowed", template=CORRECT, method="PATCH")
    stack.put_image("broken.jpg", truncated_jpeg())
    stack.call("POST", "/v1/tags", {"s3": {"bucket": stack.bucket, "key": "broken.jpg"}, "store": True})
    reply = stack.call("PATCH", f"/v1/images/{stack.bucket}/broken.jpg/tags", {"add": ["x"]})
    expect_error(openapi, reply, 409, "image_not_tagged", template=CORRECT, method="PATCH")
    reply = stack.invoke(
        rest_event(
            "PATCH",
            f"/v1/images/{stack.bucket}/broken.jpg/tags",
            body="add=x",
            headers={"Content-Type": "text/plain"},
        )
    )
    assert reply.status == 415


def test_feed_lists_tagged_and_failed_newest_first(stack, openapi):
    stored(stack, "feed/one.jpg")
    stored(stack, "feed/two.jpg")
    stack.put_image("feed/bad.jpg", truncated_jpeg())
    stack.call("POST", "/v1/tags", {"s3": {"bucket": stack.bucket, "key": "feed/bad.jpg"}, "store": True})
    reply = stack.call("GET", FEED, query={"status": "tagged", "limit": "1"})
    check_documented(openapi, "GET", FEED, reply)
    assert reply.json["items"][0]["key"] == "feed/two.jpg"
    second = stack.call("GET", FEED, query={"status": "tagged", "limit": "1", "cursor": reply.json["cursor"]})
    assert second.json["items"][0]["key"] == "feed/one.jpg"
    assert second.json["items"][0]["top_tags"]
    failed = stack.call("GET", FEED, query={"status": "failed"}).json["items"]
    bad = next(i for i in failed if i["key"] == "feed/bad.jpg")
    assert bad["error_code"] == "corrupt_image"
    assert bad["error"]
    expect_error(
        openapi, stack.call("GET", FEED, query={"status": "lost"}), 400, "invalid_request", FEED, "GET"
    )
    expect_error(openapi, stack.call("GET", FEED, query={"cursor": "junk!"}), 400, "bad_input", FEED, "GET")


def test_thumbnail_is_small_upright_and_documented(stack, openapi):
    stored(stack, "big.jpg", jpeg_bytes(1600, 1200, seed=5))
    reply = stack.call("GET", f"/v1/thumbnails/{stack.bucket}/big.jpg", query={"size": "256"})
    assert reply.status == 200, reply.body
    check_documented(openapi, "GET", THUMB, reply)
    body = reply.json
    picture = Image.open(io.BytesIO(base64.b64decode(body["data"])))
    assert max(picture.size) == 256
    assert (body["width"], body["height"]) == picture.size
    assert reply.headers["cache-control"].startswith("private")
    expect_error(
        openapi,
        stack.call("GET", f"/v1/thumbnails/{stack.bucket}/big.jpg", query={"size": "300"}),
        400,
        "invalid_request",
        THUMB,
        "GET",
    )
    expect_error(
        openapi,
        stack.call("GET", f"/v1/thumbnails/{stack.bucket}/none.jpg"),
        404,
        "image_not_found",
        THUMB,
        "GET",
    )
    expect_error(
        openapi, stack.call("GET", "/v1/thumbnails/elsewhere/x.jpg"), 403, "bucket_not_allowed", THUMB, "GET"
    )


def test_console_files_are_served_with_a_strict_policy(stack):
    page = stack.call("GET", "/console/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="app.js"' in page.body
    assert stack.call("GET", "/console/app.js").headers["content-type"].startswith("text/javascript")
    redirect = stack.call("GET", "/console")
    assert (redirect.status, redirect.headers["location"]) == (301, "console/")
    assert stack.call("GET", "/console/secrets.txt").status == 404
    assert stack.call("GET", "/console/../v1/openapi.json").status in (404, 400)
