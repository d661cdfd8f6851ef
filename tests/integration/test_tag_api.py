"""tag_api end to end: the real handler, API Gateway REST proxy events (events/), the AWS emulator,
the local imagedescriber server, and URL sources served by a local HTTPS server behind a fake
internet that refuses (and fails the test on) any connect that is not to a loopback stand-in.

Every reply is checked against the OpenAPI document the API serves: its status must be listed
for the operation, and its body must validate against the documented schema.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import time

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from PIL import Image

from tests.support.api_stack import HttpReply
from tests.support.events import load_event
from tests.support.https_server import Reply
from tests.support.images import bomb_png, jpeg_bytes, truncated_jpeg
from tests.support.provider_servers import ImageDescriberServer

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]


TAGS = "/v1/tags"
IMAGE = "/v1/images/{bucket}/{key}"
TAG_IMAGES = "/v1/tags/{tag}/images"
UPLOADS = "/v1/uploads"


@pytest.fixture(autouse=True)
def _fresh_provider(stack):
    stack.provider.credits = 1000
    yield
    stack.provider._script.clear()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_documented(openapi: dict, method: str, template: str, reply: HttpReply) -> None:
    """The status is documented for the operation and the body validates against its schema."""
    operation = openapi["paths"][template][method.lower()]
    assert str(reply.status) in operation["responses"], f"{reply.status} is not documented for {template}"
    content = operation["responses"][str(reply.status)]["content"]["application/json"]
    validator = Draft202012Validator({"components": openapi["components"], **content["schema"]})
    errors = sorted(validator.iter_errors(reply.json), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert reply.headers.get("content-type", "").startswith("application/json")


def expect_error(
    openapi, reply: HttpReply, status: int, code: str, template: str = TAGS, method: str = "POST"
):
    assert reply.status == status, reply.body
    body = reply.json
    assert body["code"] == code, body
    assert body["request_id"]
    assert reply.headers["x-request-id"] == body["request_id"]
    assert "Traceback" not in reply.body
    assert 'File "' not in reply.body
    check_documented(openapi, method, template, reply)
    return body


# --- The document ----------------------------------------------------------------------------------


def test_openapi_document_is_valid_and_lists_exactly_our_statuses(openapi):
    validate_spec(openapi)
    assert set(openapi["paths"]) == {
        TAGS, IMAGE, TAG_IMAGES, UPLOADS,
        "/v1/images", "/v1/images/{bucket}/{key}/tags", "/v1/thumbnails/{bucket}/{key}",
    }  # fmt: skip
    post_tags = openapi["paths"][TAGS]["post"]
    assert set(post_tags["responses"]) == {
        "200", "400", "403", "404", "413", "415", "422", "429", "500", "502", "504"
    }  # fmt: skip
    assert post_tags["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TagRequest")
    assert "HTTPValidationError" not in json.dumps(openapi)
    assert openapi["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }


# --- Success paths -------------------------------------------------------------------------------


def test_post_tags_with_the_sample_event(stack, openapi):
    event = load_event("apigw_post_tags")
    reply = stack.invoke(event)
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", TAGS, reply)
    body = reply.json
    assert body["request_id"] == event["requestContext"]["requestId"]
    assert [t["name"] for t in body["tags"]] == stack.provider.tags
    assert body["title"] == stack.provider.title
    assert body["providers"][0]["status"] == "ok"
    assert body["source"]["kind"] == "image"
    assert body["image"]["format"] == "png"
    assert body["stored"] is False


@pytest.mark.parametrize("form", ["base64", "data_url", "urlsafe_base64"])
def test_post_tags_inline_forms(stack, openapi, form):
    data = jpeg_bytes(96, 64, seed=3)
    text = {
        "base64": b64(data),
        "data_url": "data:image/jpeg;base64," + b64(data),
        "urlsafe_base64": base64.urlsafe_b64encode(data).decode().rstrip("="),
    }[form]
    reply = stack.call("POST", TAGS, {"image": text, "options": {"max_tags": 2, "lang": "en"}})
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", TAGS, reply)
    assert len(reply.json["tags"]) == 2
    assert (reply.json["image"]["width"], reply.json["image"]["height"]) == (96, 64)
    # The provider received the image the client sent.
    assert stack.provider.last.image == data


def test_post_tags_by_url(stack, openapi):
    data = jpeg_bytes(80, 60, seed=4)
    stack.web.routes["/photos/cat.jpg"] = Reply(200, {"Content-Type": "image/jpeg"}, data)
    before = len(stack.internet.connects)
    reply = stack.call("POST", TAGS, {"url": "https://images.example.com/photos/cat.jpg"})
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", TAGS, reply)
    source = reply.json["source"]
    assert (source["kind"], source["url"]) == ("url", "https://images.example.com/photos/cat.jpg")
    assert reply.json["image"]["sha256"] == stack.provider.last.image_sha256
    assert stack.internet.connects[before:] == [("93.184.215.14", 443)]


def test_post_tags_by_s3_reference_without_storing(stack, openapi):
    stack.put_image("inbox/dog.jpg", jpeg_bytes(120, 90, seed=5))
    reply = stack.call("POST", TAGS, {"s3": {"bucket": stack.bucket, "key": "inbox/dog.jpg"}})
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", TAGS, reply)
    assert reply.json["stored"] is False
    assert reply.json.get("record") is None
    assert stack.s3().get_object_tagging(Bucket=stack.bucket, Key="inbox/dog.jpg")["TagSet"] == []
    missing = stack.call("GET", stack.image_path(stack.bucket, "inbox/dog.jpg"))
    expect_error(openapi, missing, 404, "image_not_found", IMAGE, "GET")


def test_post_tags_store_persists_tags_the_object_and_announces(stack, openapi):
    key = "albums/2025/summer cat.jpg"
    stack.put_image(key, jpeg_bytes(200, 150, seed=6))
    stack.s3().put_object_tagging(
        Bucket=stack.bucket, Key=key, Tagging={"TagSet": [{"Key": "owner", "Value": "alice"}]}
    )
    stack.drain_events(wait=0.2, expect=99)
    reply = stack.call("POST", TAGS, {"s3": {"bucket": stack.bucket, "key": key}, "store": True})
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", TAGS, reply)
    body = reply.json
    assert body["stored"] is True
    assert body["record"]["status"] == "tagged"
    assert [t["name"] for t in body["tags"]] == stack.provider.tags

    object_tags = {
        t["Key"]: t["Value"] for t in stack.s3().get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]
    }
    assert object_tags["owner"] == "alice"
    assert any(k.startswith("autotag:") for k in object_tags)

    stored = stack.call("GET", stack.image_path(stack.bucket, key))
    assert stored.status == 200, stored.body
    check_documented(openapi, "GET", IMAGE, stored)
    assert stored.json["image"]["key"] == key
    assert [t["name"] for t in stored.json["image"]["tags"]] == stack.provider.tags

    events = stack.drain_events(expect=1)
    tagged = [e for e in events if e["detail-type"] == "Image Tagged"]
    assert [e["detail"]["key"] for e in tagged] == [key]


def test_get_image_with_the_sample_event(stack, openapi):
    key = "photos/2025/cat.jpg"
    stack.put_image(key, jpeg_bytes(64, 64, seed=7))
    assert stack.call("POST", TAGS, {"s3": {"bucket": stack.bucket, "key": key}, "store": True}).status == 200
    event = copy.deepcopy(load_event("apigw_get_image"))
    event["path"] = event["path"].replace("example-images-bucket", stack.bucket)
    reply = stack.invoke(event)
    assert reply.status == 200, reply.body
    check_documented(openapi, "GET", IMAGE, reply)
    assert (reply.json["image"]["bucket"], reply.json["image"]["key"]) == (stack.bucket, key)


def test_list_images_by_tag_is_paginated_with_an_opaque_cursor(stack, openapi):
    stack.provider.tags = ["zebra-crossing", "street"]
    try:
        keys = [f"streets/{n}.jpg" for n in range(3)]
        for n, key in enumerate(keys):
            stack.put_image(key, jpeg_bytes(64, 48, seed=100 + n))
            assert (
                stack.call("POST", TAGS, {"s3": {"bucket": stack.bucket, "key": key}, "store": True}).status
                == 200
            )
    finally:
        stack.provider.tags = ["cat", "pet", "whiskers", "indoor"]
    event = copy.deepcopy(load_event("apigw_get_tag_images"))
    event["path"] = "/v1/tags/Zebra-Crossing/images"
    event["queryStringParameters"] = {"limit": "2"}
    event["multiValueQueryStringParameters"] = {"limit": ["2"]}
    first = stack.invoke(event)
    assert first.status == 200, first.body
    check_documented(openapi, "GET", TAG_IMAGES, first)
    assert len(first.json["items"]) == 2
    assert first.json["cursor"]
    second = stack.call(
        "GET", "/v1/tags/zebra-crossing/images", query={"limit": "2", "cursor": first.json["cursor"]}
    )
    assert second.status == 200, second.body
    check_documented(openapi, "GET", TAG_IMAGES, second)
    assert second.json["cursor"] is None
    found = [item["key"] for item in first.json["items"] + second.json["items"]]
    assert sorted(found) == keys


def test_presigned_upload_lands_in_the_watched_bucket(stack, openapi):
    reply = stack.call(
        "POST", UPLOADS, {"content_type": "image/png", "size": 1234, "filename": "../My Holiday!.png"}
    )
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", UPLOADS, reply)
    body = reply.json
    assert body["bucket"] == stack.bucket
    assert body["method"] == "PUT"
    assert body["key"].startswith("uploads/")
    assert body["key"].endswith("/My-Holiday.png")
    picture = io.BytesIO()
    Image.new("RGB", (20, 20), "blue").save(picture, "PNG")
    assert body["url"].startswith(stack.emulator.endpoint)  # the emulator, on loopback
    put = httpx.put(body["url"], content=picture.getvalue(), headers=body["headers"], timeout=10)
    assert put.status_code == 200, put.text
    head = stack.s3().head_object(Bucket=stack.bucket, Key=body["key"])
    assert head["ContentType"] == "image/png"


# --- Bad inputs: each with its documented status and code --------------------------------------


def test_malformed_json(stack, openapi):
    expect_error(openapi, stack.call("POST", TAGS, '{"image": '), 400, "malformed_json")
    # Valid JSON that is not an object is not a request either.
    expect_error(openapi, stack.call("POST", TAGS, [1, 2, 3]), 400, "malformed_json")


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"image": "aGVsbG8=", "url": "https://images.example.com/a.jpg"}, "source_count"),
        ({"options": {"max_tags": 3}}, "source_count"),
        ({}, "source_count"),
        ({"image": "aGVsbG8=", "store": True}, "store_needs_s3"),
        ({"image": "aGVsbG8=", "options": {"max_tags": -1}}, "greater_than_equal"),
        ({"image": "aGVsbG8=", "options": {"min_confidence": 2}}, "less_than_equal"),
        ({"image": "aGVsbG8=", "options": {"colour": "red"}}, "extra_forbidden"),
        ({"image": 42}, "string_type"),
        ({"s3": {"bucket": "UPPER", "key": "a.jpg"}}, "string_pattern_mismatch"),
        ({"image": "aGVsbG8=", "options": {"max_tags": "3"}}, "int_type"),
    ],
)
def test_schema_violations_are_400_invalid_request(stack, openapi, body, error_type):
    reply = stack.call("POST", TAGS, body)
    found = expect_error(openapi, reply, 400, "invalid_request")
    assert error_type in [d["type"] for d in found["details"]]


def test_option_errors_point_at_the_field(stack, openapi):
    found = expect_error(
        openapi,
        stack.call("POST", TAGS, {"image": "aGVsbG8=", "options": {"max_tags": -1}}),
        400,
        "invalid_request",
    )
    assert found["details"][0]["loc"] == ["body", "options", "max_tags"]


def test_invalid_base64(stack, openapi):
    expect_error(openapi, stack.call("POST", TAGS, {"image": "this is *not* base64!"}), 400, "bad_base64")


def test_a_non_image(stack, openapi):
    reply = stack.call("POST", TAGS, {"image": b64(b"%PDF-1.7\n" + b"x" * 500)})
    expect_error(openapi, reply, 415, "unsupported_format")


def test_an_unsupported_format(stack, openapi):
    icon = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(icon, "ICO")
    expect_error(
        openapi, stack.call("POST", TAGS, {"image": b64(icon.getvalue())}), 415, "unsupported_format"
    )


def test_a_corrupt_image(stack, openapi):
    expect_error(openapi, stack.call("POST", TAGS, {"image": b64(truncated_jpeg())}), 422, "corrupt_image")


def test_a_decompression_bomb(stack, openapi):
    calls = stack.provider.calls
    expect_error(openapi, stack.call("POST", TAGS, {"image": b64(bomb_png())}), 413, "decompression_bomb")
    assert stack.provider.calls == calls


def test_a_5mb_body_is_refused_as_an_inline_image_too_large(stack, openapi):
    text = b64(b"\xff\xd8\xff" + b"\0" * 3_900_000)
    body = json.dumps({"image": text})
    assert len(body) > 5_000_000
    found = expect_error(openapi, stack.call("POST", TAGS, body), 413, "inline_image_too_large")
    assert "/v1/uploads" in found["message"]


def test_a_6mb_body_is_413_before_routing(stack, openapi):
    body = json.dumps({"image": "A" * 6_300_000})
    found = expect_error(openapi, stack.call("POST", TAGS, body), 413, "payload_too_large")
    assert "/v1/uploads" in found["message"]


def test_a_body_that_is_not_json(stack, openapi):
    reply = stack.call(
        "POST", TAGS, "image=abc", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    expect_error(openapi, reply, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example.com/photos/cat.jpg",
        "https://127.0.0.1/cat.jpg",
        "https://10.0.0.1/cat.jpg",
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://[::1]/cat.jpg",
        "https://[::ffff:169.254.169.254]/",
        "https://intranet.example.com/cat.jpg",  # resolves to 10.20.30.40
        "https://metadata.example.com/",  # resolves to 169.254.169.254
        "https://dual.example.com/cat.jpg",  # one public and one private address
        "file:///etc/passwd",
    ],
)
def test_unsafe_urls_are_refused_without_connecting(stack, openapi, url):
    before = list(stack.internet.connects)
    expect_error(openapi, stack.call("POST", TAGS, {"url": url}), 400, "unsafe_url")
    assert stack.internet.connects == before


def test_a_redirect_to_a_private_address_is_refused(stack, openapi):
    stack.web.routes["/go"] = Reply(302, {"Location": "https://169.254.169.254/latest/meta-data/"})
    stack.web.routes["/go-by-name"] = Reply(302, {"Location": "https://intranet.example.com/x.jpg"})
    for path in ("/go", "/go-by-name"):
        before = len(stack.internet.connects)
        reply = stack.call("POST", TAGS, {"url": f"https://redirect.example.com{path}"})
        expect_error(openapi, reply, 400, "unsafe_url")
        assert stack.internet.connects[before:] == [("93.184.215.15", 443)]


def test_a_url_that_is_not_an_image(stack, openapi):
    stack.web.routes["/page"] = Reply(200, {"Content-Type": "text/html"}, b"<html></html>")
    expect_error(
        openapi,
        stack.call("POST", TAGS, {"url": "https://images.example.com/page"}),
        415,
        "unsupported_format",
    )


def test_a_url_that_fails(stack, openapi):
    expect_error(
        openapi, stack.call("POST", TAGS, {"url": "https://images.example.com/gone.jpg"}), 422, "fetch_failed"
    )


def test_an_s3_bucket_not_allowed(stack, openapi):
    stack.put_image("secret.jpg", jpeg_bytes(32, 32), bucket=stack.other_bucket)
    reply = stack.call("POST", TAGS, {"s3": {"bucket": stack.other_bucket, "key": "secret.jpg"}})
    expect_error(openapi, reply, 403, "bucket_not_allowed")


def test_an_s3_object_that_does_not_exist(stack, openapi):
    reply = stack.call("POST", TAGS, {"s3": {"bucket": stack.bucket, "key": "nope.jpg"}, "store": True})
    expect_error(openapi, reply, 404, "object_not_found")


def test_unknown_provider(stack, openapi):
    reply = stack.call("POST", TAGS, {"image": b64(jpeg_bytes(32, 32)), "options": {"providers": ["nope"]}})
    expect_error(openapi, reply, 400, "unknown_provider")


def test_provider_throttling_is_429_with_retry_after(stack, openapi):
    throttled = ImageDescriberServer.error(1004, headers={"Retry-After": "7"})
    stack.provider.script(throttled, throttled)
    calls = stack.provider.calls
    started = time.monotonic()
    reply = stack.call("POST", TAGS, {"image": b64(jpeg_bytes(40, 40, seed=8))})
    expect_error(openapi, reply, 429, "throttled")
    assert int(reply.headers["retry-after"]) >= 1
    # One quick retry within the request, then the 429 goes back to the client to wait.
    assert stack.provider.calls == calls + 2
    assert time.monotonic() - started < 5


def test_provider_failure_is_502(stack, openapi):
    stack.provider.script(ImageDescriberServer.error(5050), ImageDescriberServer.error(5050))
    reply = stack.call("POST", TAGS, {"image": b64(jpeg_bytes(40, 40, seed=9))})
    found = expect_error(openapi, reply, 502, "transient")
    assert "imagedescriber" in found["message"]


def test_one_transient_provider_failure_is_retried_within_the_request(stack, openapi):
    stack.provider.script(ImageDescriberServer.error(5050))
    calls = stack.provider.calls
    reply = stack.call("POST", TAGS, {"image": b64(jpeg_bytes(40, 40, seed=19))})
    assert reply.status == 200, reply.body
    check_documented(openapi, "POST", TAGS, reply)
    assert [t["name"] for t in reply.json["tags"]] == ["cat", "pet", "whiskers", "indoor"]
    assert stack.provider.calls == calls + 2


def test_content_blocked_is_422(stack, openapi):
    stack.provider.script(ImageDescriberServer.error(2003))
    reply = stack.call("POST", TAGS, {"image": b64(jpeg_bytes(40, 40, seed=10))})
    expect_error(openapi, reply, 422, "content_blocked")


@pytest.mark.parametrize(
    ("path", "query", "code", "template"),
    [
        pytest.param("/v1/tags/cat/images", {"limit": "0"}, "invalid_request", TAG_IMAGES, id="limit-0"),
        pytest.param("/v1/tags/cat/images", {"limit": "x"}, "invalid_request", TAG_IMAGES, id="limit-x"),
        pytest.param("/v1/tags/cat/images", {"cursor": "garbage"}, "bad_input", TAG_IMAGES, id="bad-cursor"),
        pytest.param("/v1/images/Bad_Bucket/x.jpg", None, "invalid_request", IMAGE, id="bad-bucket"),
    ],
)
def test_get_routes_bad_parameters(stack, openapi, path, query, code, template):
    expect_error(openapi, stack.call("GET", path, query=query), 400, code, template, "GET")


def test_upload_too_large_and_wrong_type(stack, openapi):
    expect_error(
        openapi,
        stack.call("POST", UPLOADS, {"content_type": "image/png", "size": 10**12}),
        413,
        "image_too_large",
        UPLOADS,
    )
    expect_error(
        openapi,
        stack.call("POST", UPLOADS, {"content_type": "text/html", "size": 10}),
        400,
        "invalid_request",
        UPLOADS,
    )


def test_unknown_route_is_a_json_404(stack):
    reply = stack.call("GET", "/v1/nothing-here")
    assert reply.status == 404
    assert reply.json["code"] == "route_not_found"
    # The path exists with another method: 405, naming it.
    wrong_method = stack.call("DELETE", "/v1/tags")
    assert (wrong_method.status, wrong_method.headers["allow"]) == (405, "POST")


@pytest.mark.parametrize("store", [False, True])
def test_an_s3_version_id_s3_refuses(stack, openapi, store):
    stack.put_image("versions/cat.jpg", jpeg_bytes(32, 32))
    body = {"s3": {"bucket": stack.bucket, "key": "versions/cat.jpg", "version_id": "0"}, "store": store}
    expect_error(openapi, stack.call("POST", TAGS, body), 400, "invalid_s3_reference")


# --- The shared service: one Tagger and result cache for every route and function ------------------


@pytest.fixture
def cached(stack):
    """The same stack with the result cache on (a redeploy: new config, warm state dropped)."""
    from autotag.api.backend import build_backend, get_backend, set_backend
    from autotag.subscriber import reset_subscriber

    fetcher = get_backend().fetcher
    config = json.loads(os.environ["AUTOTAG_CONFIG"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOTAG_CONFIG", json.dumps({**config, "cache": {"enabled": True}}))
        reset_subscriber()  # and the shared service with it
        set_backend(build_backend(fetcher=fetcher))
        try:
            yield stack
        finally:
            reset_subscriber()
    set_backend(build_backend(fetcher=fetcher))


def test_the_api_and_the_functions_share_one_service(cached):
    from autotag.api.backend import get_backend
    from autotag.subscriber import build_subscriber
    from autotag.wiring import build_service

    service = get_backend().service
    assert service is build_service()
    assert build_subscriber().service is service


def test_unstored_requests_are_answered_from_the_result_cache(cached, openapi):
    data = jpeg_bytes(72, 54, seed=31)
    calls = cached.provider.calls
    inline = cached.call("POST", TAGS, {"image": b64(data)})
    assert inline.status == 200, inline.body
    assert cached.provider.calls == calls + 1
    # Same bytes again, by every source that does not store: no provider call.
    again = cached.call("POST", TAGS, {"image": b64(data)})
    cached.put_image("cache/same.jpg", data)
    by_s3 = cached.call("POST", TAGS, {"s3": {"bucket": cached.bucket, "key": "cache/same.jpg"}})
    for reply in (again, by_s3):
        assert reply.status == 200, reply.body
        check_documented(openapi, "POST", TAGS, reply)
        assert reply.json["tags"] == inline.json["tags"]
    assert cached.provider.calls == calls + 1
    # Other options are another cache entry.
    fewer = cached.call("POST", TAGS, {"image": b64(data), "options": {"max_tags": 2}})
    assert [t["name"] for t in fewer.json["tags"]] == ["cat", "pet"]
    assert cached.provider.calls == calls + 2


def test_an_upload_tagged_by_on_event_fills_the_cache_for_the_api(cached):
    data = jpeg_bytes(64, 64, seed=32)
    cached.put_image("cache/uploaded.jpg", data)
    event = copy.deepcopy(load_event("eventbridge_tag_image_requested"))
    event["detail"] = {"bucket": cached.bucket, "key": "cache/uploaded.jpg"}
    event["id"] = "cache-uploaded"
    assert cached.on_event(event)["status"] == "tagged"
    calls = cached.provider.calls
    reply = cached.call("POST", TAGS, {"image": b64(data)})
    assert reply.status == 200, reply.body
    assert [t["name"] for t in reply.json["tags"]] == ["cat", "pet", "whiskers", "indoor"]
    assert cached.provider.calls == calls


def test_a_bad_store_request_never_damages_a_good_record(stack, openapi):
    key = "good/cat.jpg"
    versioning = stack.s3().put_bucket_versioning
    versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        first = stack.put_image(key, jpeg_bytes(64, 48, seed=81))
        assert (
            stack.call("POST", TAGS, {"s3": {"bucket": stack.bucket, "key": key}, "store": True}).status
            == 200
        )
        good = stack.call("GET", stack.image_path(stack.bucket, key)).json["image"]
        stack.drain_events(wait=0.5, expect=99)

        unknown = {
            "s3": {"bucket": stack.bucket, "key": key},
            "store": True,
            "options": {"providers": ["nope"]},
        }
        expect_error(openapi, stack.call("POST", TAGS, unknown), 400, "unknown_provider")
        # A version that no longer exists (deleted for good): not found, and the record is left alone.
        stack.put_image(key, jpeg_bytes(64, 48, seed=82))
        stack.s3().delete_object(Bucket=stack.bucket, Key=key, VersionId=first["VersionId"])
        gone = {"s3": {"bucket": stack.bucket, "key": key, "version_id": first["VersionId"]}, "store": True}
        expect_error(openapi, stack.call("POST", TAGS, gone), 404, "object_not_found")

        assert stack.call("GET", stack.image_path(stack.bucket, key)).json["image"] == good
        assert stack.drain_events(wait=0.5, expect=99) == []  # no Image Tagging Failed
    finally:
        versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Suspended"})
