"""Hostile requests through the real tag_api handler and the AWS emulator: every answer is a status
the OpenAPI document lists for the operation, with the documented error shape, and no library
internals (memory addresses, exception class names) in the message."""

from __future__ import annotations

import base64
import json

import pytest
from jsonschema import Draft202012Validator

from tests.support.api_stack import HttpReply, module_fixtures
from tests.support.https_server import Reply
from tests.support.images import (
    TIFF_ASCII,
    TIFF_LONG,
    TIFF_RATIONAL,
    jpeg_bytes,
    png_header_only,
    tiff_with_strip_types,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics")]

stack, openapi = module_fixtures()


def documented(openapi: dict, method: str, template: str, reply: HttpReply) -> dict:
    operation = openapi["paths"][template][method.lower()]
    assert str(reply.status) in operation["responses"], (reply.status, reply.body[:300])
    schema = operation["responses"][str(reply.status)]["content"]["application/json"]["schema"]
    errors = list(
        Draft202012Validator({"components": openapi["components"], **schema}).iter_errors(reply.json)
    )
    assert not errors, [e.message for e in errors[:3]]
    body = reply.json
    if reply.status >= 400:
        assert "0x" not in body["message"]
        assert "Error:" not in body["message"]
    return body


@pytest.mark.parametrize("tag", ["#", "a/b", "\x00", "😀", "c#/d\x00😀", " ", "%", "..", "a" * 256])
def test_any_tag_text_gets_a_documented_answer(stack, openapi, tag):
    reply = stack.call("GET", f"/v1/tags/{tag}/images")
    body = documented(openapi, "GET", "/v1/tags/{tag}/images", reply)
    assert reply.status == 200, body
    assert body["tag"] == tag
    assert body["items"] == []


def test_a_tag_over_the_limit_is_a_400(stack, openapi):
    reply = stack.call("GET", f"/v1/tags/{'a' * 257}/images")
    assert documented(openapi, "GET", "/v1/tags/{tag}/images", reply)["code"] == "invalid_request"


@pytest.mark.parametrize(
    "options",
    [{"max_tags": "10"}, {"max_tags": True}, {"max_tags": 1.5}, {"min_confidence": "0.5"}, {"single": 1}],
)
def test_request_fields_are_strictly_typed(stack, openapi, options):
    image = base64.b64encode(jpeg_bytes(32, 24)).decode()
    reply = stack.call("POST", "/v1/tags", {"image": image, "options": options})
    body = documented(openapi, "POST", "/v1/tags", reply)
    assert (reply.status, body["code"]) == (400, "invalid_request")
    assert body["details"][0]["loc"][:2] == ["body", "options"]


@pytest.mark.parametrize(
    "body", [{"s3": {"bucket": "b", "key": "k"}, "store": 1}, {"image": "x", "store": "true"}]
)
def test_store_is_a_boolean(stack, openapi, body):
    reply = stack.call("POST", "/v1/tags", body)
    assert documented(openapi, "POST", "/v1/tags", reply)["code"] == "invalid_request"


@pytest.mark.parametrize("size", ["10", True, 10.5])
def test_upload_size_is_an_integer(stack, openapi, size):
    reply = stack.call("POST", "/v1/uploads", {"content_type": "image/png", "size": size})
    assert documented(openapi, "POST", "/v1/uploads", reply)["code"] == "invalid_request"


def test_integer_options_are_accepted_as_numbers(stack, openapi):
    image = base64.b64encode(jpeg_bytes(32, 24)).decode()
    reply = stack.call("POST", "/v1/tags", {"image": image, "options": {"min_confidence": 0, "max_tags": 3}})
    documented(openapi, "POST", "/v1/tags", reply)
    assert reply.status == 200


@pytest.mark.parametrize(
    "body",
    [
        "{",
        "[",
        "null",
        "[" * 1000 + "]" * 1000,
        '{"image": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"options": {"max_tags": ' + "9" * 4301 + '}, "image": "x"}',
    ],
)
def test_unreadable_bodies_are_malformed_json(stack, openapi, body):
    reply = stack.call("POST", "/v1/tags", body)
    assert (reply.status, documented(openapi, "POST", "/v1/tags", reply)["code"]) == (400, "malformed_json")


def test_pillow_messages_reach_clients_without_addresses(stack, openapi):
    junk = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40).decode()
    reply = stack.call("POST", "/v1/tags", {"image": junk})
    body = documented(openapi, "POST", "/v1/tags", reply)
    assert reply.status == 422
    assert "BytesIO" not in body["message"]


@pytest.mark.parametrize("kind", [TIFF_ASCII, TIFF_RATIONAL])
def test_tiff_strip_tables_that_are_not_integers_are_422(stack, openapi, kind):
    image = base64.b64encode(tiff_with_strip_types(kind, TIFF_LONG)).decode()
    reply = stack.call("POST", "/v1/tags", {"image": image})
    assert (reply.status, documented(openapi, "POST", "/v1/tags", reply)["code"]) == (422, "corrupt_image")


def test_non_ascii_urls_are_fetched_or_refused_cleanly(stack, openapi):
    stack.web.routes["/ph%C3%B6tos/%C3%A7at.jpg?gr%C3%B6%C3%9Fe=1"] = Reply(
        200, {"Content-Type": "image/jpeg"}, jpeg_bytes(40, 30)
    )
    utf8 = "https://images.example.com/phötos/çat.jpg?größe=1".encode().decode("latin-1")
    stack.web.routes["/go-%C3%BC"] = Reply(302, {"Location": utf8})
    cases = {
        "https://images.example.com/phötos/çat.jpg?größe=1": (200, None),
        "https://redirect.example.com/go-ü": (200, None),
        "https://bücher.example/x.jpg": (422, "fetch_failed"),  # IDNA-encoded, then not in the fake DNS
        "https://exa\u200bmple..com/x.jpg": (400, "unsafe_url"),
    }
    for url, (status, code) in cases.items():
        reply = stack.call("POST", "/v1/tags", {"url": url})
        body = documented(openapi, "POST", "/v1/tags", reply)
        assert reply.status == status, (url, body)
        assert code is None or body["code"] == code
    assert "xn--bcher-kva.example" in stack.dns.queries
    assert json.dumps(stack.dns.queries).isascii()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_too_large_to_decode_is_a_413_before_any_provider_call(stack, openapi):
    calls = stack.provider.calls
    image = base64.b64encode(png_header_only(9999, 9999, bit_depth=16)).decode()
    reply = stack.call("POST", "/v1/tags", {"image": image})
    body = documented(openapi, "POST", "/v1/tags", reply)
    assert (reply.status, body["code"]) == (413, "image_too_large_to_decode")
    assert stack.provider.calls == calls


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/tags", "POST"),
        ("DELETE", "/v1/images/some-bucket/a/b.jpg", "GET"),
        ("PATCH", "/v1/uploads", "POST"),
        ("POST", "/v1/openapi.json", "GET"),
    ],
)
def test_a_method_a_path_does_not_serve_is_405_with_allow(stack, method, path, allow):
    reply = stack.call(method, path, "{")  # the body is never read: the route decides first
    assert reply.status == 405, reply.body
    assert reply.json["code"] == "method_not_allowed"
    assert reply.headers["allow"] == allow


def test_an_unknown_path_is_404_whatever_the_body(stack):
    reply = stack.call("POST", "/v1/nothing-here", "{")
    assert (reply.status, reply.json["code"]) == (404, "route_not_found")


def test_integral_numbers_are_integers_as_the_schema_says(stack, openapi):
    reply = stack.call("POST", "/v1/uploads", {"content_type": "image/png", "size": 1000.0})
    documented(openapi, "POST", "/v1/uploads", reply)
    assert reply.status == 200
