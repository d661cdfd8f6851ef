"""The API's resolver: path parameters, the route table, and the checks made before validation.

Only requests refused before a route runs are resolved here, so nothing reaches AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from autotag.api.app import app, handle
from autotag.api.resolver import route_pattern


def _event(method: str, path: str, body: str | None = None, content_type: str = "application/json") -> dict:
    headers = {"Content-Type": content_type}
    return {
        "httpMethod": method,
        "path": path,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": {"requestId": "req-1"},
        "body": body,
        "isBase64Encoded": False,
    }


def _answer(event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = handle(event, None)  # type: ignore[arg-type]
    headers = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(name.lower(), str(values[0]))
    return response["statusCode"], headers, json.loads(response["body"])


def test_key_and_tag_span_segments_other_parameters_do_not() -> None:
    image = route_pattern("/v1/images/<bucket>/<key>")
    match = image.match("/v1/images/b/photos/2024/cat #1.jpg")
    assert match is not None
    assert match.groupdict() == {"bucket": "b", "key": "photos/2024/cat #1.jpg"}
    assert route_pattern("/v1/tags/<tag>/images").match("/v1/tags/a/b/images") is not None
    assert route_pattern("/v1/images/<bucket>/<key>").match("/v1/images/a/b/c") is not None
    assert route_pattern("/v1/thumbnails/<bucket>/<key>").match("/v1/thumbnails/b") is None
    assert route_pattern("/v1/tags").match("/v1/tags/") is not None


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/tags", ["POST"]),
        ("/v1/images/b/k", ["GET"]),
        ("/v1/images/b/k/tags", ["GET", "PATCH"]),
        ("/v1/nope", []),
    ],
)
def test_methods_for_a_path(path: str, methods: list[str]) -> None:
    assert app.methods_for(path) == methods


def test_an_unknown_route_is_404_before_the_body_is_read() -> None:
    status, headers, body = _answer(_event("POST", "/v1/nope", "not json", "text/plain"))
    assert status == 404
    assert body == {"code": "route_not_found", "message": "no such route", "request_id": "req-1"}
    assert headers["x-request-id"] == "req-1"


def test_a_method_the_path_lacks_is_405_with_allow() -> None:
    status, headers, body = _answer(_event("PUT", "/v1/images/b/k/tags", "{"))
    assert status == 405
    assert body["code"] == "method_not_allowed"
    assert headers["allow"] == "GET, PATCH"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{}", "text/plain", 415, "unsupported_media_type"),
        ("[1]", "application/json", 400, "malformed_json"),
        ("[" * 100 + "]" * 100, "application/json", 400, "malformed_json"),
        ("x" * 6_000_001, "application/json", 413, "payload_too_large"),
    ],
)
def test_the_body_is_refused_before_validation(body: str, content_type: str, status: int, code: str) -> None:
    answer_status, headers, answer = _answer(_event("POST", "/v1/tags", body, content_type))
    assert (answer_status, answer["code"]) == (status, code)
    assert answer["request_id"] == headers["x-request-id"] == "req-1"


def test_a_json_body_that_fails_the_schema_is_invalid_request() -> None:
    status, _, body = _answer(_event("POST", "/v1/tags", '{"image": "x", "url": "https://a.example"}'))
    assert status == 400
    assert body["code"] == "invalid_request"
    assert body["details"][0]["type"] == "source_count"
