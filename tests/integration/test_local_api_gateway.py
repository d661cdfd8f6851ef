"""The local API gateway over real HTTP on 127.0.0.1: whatever a client sends, the answer is JSON in
the API's error shape {code, message, request_id} — never an HTML page or a dropped connection.

The function behind it is the real tag_api entry point (`autotag.api.app.handle`), run in-process
by a stand-in for the Lambda runtime's pool; the requests here are all refused before the function
needs AWS.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

import pytest
from autotag.api.app import handle
from autotag.deploy.gateway import gateway_responses
from autotag.local.api_gateway import ApiGatewayConfig, LocalApiGateway
from autotag.local.lambda_workers import Invocation, LocalFunction

from tests.support.lambda_context import lambda_context

pytestmark = pytest.mark.integration

API_KEY = "local-test-key"


@dataclass
class InProcessFunction:
    """The FunctionPool interface, running the handler in this process."""

    spec: LocalFunction
    invocations: int = 0

    def invoke(self, event: Any, *, timeout: float | None = None) -> Invocation:
        self.invocations += 1
        payload = handle(event, lambda_context("autotag-tag-api", timeout_seconds=29))
        return Invocation(request_id="local", payload=payload)


@pytest.fixture(scope="module")
def gateway():
    function = InProcessFunction(
        LocalFunction(name="autotag-tag-api", code_dir=__import__("pathlib").Path("."))
    )
    config = ApiGatewayConfig(api_keys={API_KEY}, gateway_responses=gateway_responses())
    server = LocalApiGateway(function, config)  # type: ignore[arg-type]
    server.start()
    yield server
    server.stop()


def exchange(gateway: LocalApiGateway, raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes, read one whole HTTP/1.1 answer; fails the test if the connection drops."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection dropped without an answer: {received!r}"
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection dropped mid-answer"
            rest += chunk
    assert headers["content-type"] == "application/json", (status, rest[:200])
    return status, headers, json.loads(rest[:length])


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"x-api-key: {API_KEY}"]
    merged = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
    lines += [f"{k}: {v}" for k, v in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_error_shape(body: Any, code: str) -> None:
    assert set(body) >= {"code", "message", "request_id"}, body
    assert body["code"] == code, body
    assert body["message"]
    assert body["request_id"]


@pytest.mark.parametrize("body", [b"{", b"[", b"null", b"[]", b"12", b'"x"', b"[" * 1000 + b"]" * 1000])
def test_bodies_that_are_not_a_json_object_reach_the_function_and_are_malformed_json(gateway, body):
    status, headers, answer = exchange(gateway, request("POST", "/prod/v1/tags", body))
    assert status == 400
    assert_error_shape(answer, "malformed_json")
    assert headers["x-request-id"] == answer["request_id"]


def test_a_huge_integer_is_malformed_json_not_a_dropped_connection(gateway):
    body = b'{"image": "x", "options": {"max_tags": ' + b"9" * 5000 + b"}}"
    status, _, answer = exchange(gateway, request("POST", "/prod/v1/tags", body))
    assert status == 400
    assert_error_shape(answer, "malformed_json")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "FOO"])
def test_methods_api_gateway_does_not_serve_are_forbidden_in_json(gateway, method):
    status, _, answer = exchange(gateway, request(method, "/prod/v1/tags"))
    assert status == 403
    assert_error_shape(answer, "forbidden")


def test_a_header_over_64_kb_is_request_too_large_in_json(gateway):
    status, _, answer = exchange(
        gateway, request("GET", "/prod/v1/openapi.json", headers={"X-Big": "a" * 70_000})
    )
    assert status == 413
    assert_error_shape(answer, "payload_too_large")


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "0x10", "10, 12"])
def test_a_malformed_content_length_is_a_json_400(gateway, value):
    raw = request("POST", "/prod/v1/tags", b"{}", headers={"Content-Length": value})
    status, headers, answer = exchange(gateway, raw)
    assert status == 400
    assert_error_shape(answer, "request_refused")
    assert headers.get("connection") == "close"


def test_a_content_length_over_the_payload_limit_is_refused_before_reading(gateway):
    raw = request("POST", "/prod/v1/tags", b"", headers={"Content-Length": str(11 * 2**20)})
    status, _, answer = exchange(gateway, raw)
    assert status == 413
    assert_error_shape(answer, "payload_too_large")


def test_a_garbled_request_line_is_a_json_400(gateway):
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /prod/v1/tags HTTP/1.1 extra words\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # the gateway closes the connection after a refusal
            answer += chunk
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    assert b'"request_refused"' in answer
    assert b"<html" not in answer.lower()
