"""The local API Gateway: HTTP on 127.0.0.1 → REST API Lambda proxy events → HTTP.

It does what the REST API in front of ``tag_api`` does: the ``/{proxy+}`` resource, the API key
check (``x-api-key``; a missing or unknown key is ``403 {"message":"Forbidden"}`` before the
function runs), the proxy event (path, pathParameters, single- and multi-value query strings and
headers, body with ``isBase64Encoded``, a requestContext with requestId, stage and
identity.apiKey), the 10 MB payload limit, the integration timeout, and the gateway's own answers
when the function fails (502) or times out (504).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from autotag.local.runtime import FunctionPool
from autotag.local.state import ACCOUNT_ID

log = logging.getLogger("autotag.local")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 29.0
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")


def _is_text(content_type: str | None, body: bytes) -> bool:
    if not body:
        return True
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and not kind.startswith(TEXT_TYPES) and not kind.endswith("+json"):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class ApiGatewayConfig:
    def __init__(
        self,
        *,
        api_keys: set[str],
        stage: str = "local",
        public_paths: tuple[str, ...] = (),
        integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
        rate_limit_per_second: float | None = None,
        burst_limit: int | None = None,
    ) -> None:
        self.api_keys = api_keys
        self.stage = stage
        self.public_paths = public_paths
        self.integration_timeout_seconds = integration_timeout_seconds
        self.rate_limit_per_second = rate_limit_per_second
        self.burst_limit = burst_limit


class _TokenBucket:
    """The usage plan's throttle (rate per second, burst), per API key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


def proxy_event(
    *,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    stage: str,
    api_key: str | None,
    source_ip: str,
    host: str,
) -> dict[str, Any]:
    """The REST API proxy integration event for one HTTP request."""
    split = urlsplit(raw_path)
    path = unquote(split.path) or "/"
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    pairs = parse_qsl(split.query, keep_blank_values=True)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in pairs:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    text = _is_text(content_type, body)
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(":")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "apiKey": api_key,
                "apiKeyId": "local-key" if api_key else None,
                "sourceIp": source_ip,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": host,
            "apiId": "local",
        },
        "body": (body.decode("utf-8") if text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": bool(body) and not text,
    }


class LocalApiGateway:
    def __init__(
        self,
        function: FunctionPool,
        config: ApiGatewayConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.function = function
        self.config = config
        self.on_request = on_request
        self._buckets: dict[str, _TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def _throttled(self, api_key: str) -> bool:
        rate, burst = self.config.rate_limit_per_second, self.config.burst_limit
        if not rate:
            return False
        with self._buckets_lock:
            bucket = self._buckets.setdefault(api_key, _TokenBucket(rate, burst or int(rate)))
        return not bucket.take()

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        host: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        gateway_id = str(uuid.uuid4())
        path = unquote(urlsplit(raw_path).path)
        api_key = next((v for k, v in headers if k.lower() == "x-api-key"), None)
        public = any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.config.public_paths)
        if not public and (api_key is None or api_key not in self.config.api_keys):
            return _gateway_error(403, "Forbidden", "ForbiddenException", gateway_id)
        if api_key and self._throttled(api_key):
            return _gateway_error(429, "Too Many Requests", "TooManyRequestsException", gateway_id)
        if len(body) > MAX_PAYLOAD_BYTES:
            return _gateway_error(413, "Request Too Long", "RequestTooLongException", gateway_id)
        event = proxy_event(
            method=method,
            raw_path=raw_path,
            headers=headers,
            body=body,
            stage=self.config.stage,
            api_key=api_key if not public or api_key else None,
            source_ip=source_ip,
            host=host,
        )
        request_id = event["requestContext"]["requestId"]
        timeout = min(self.function.spec.timeout_seconds, self.config.integration_timeout_seconds)
        invocation = self.function.invoke(event, timeout=timeout)
        if invocation.error_type == "Sandbox.Timedout":
            return _gateway_error(504, "Endpoint request timed out", "IntegrationTimeout", request_id)
        if not invocation.ok:
            log.warning("tag_api failed: %s: %s", invocation.error_type, invocation.error_message)
            return _gateway_error(502, "Internal server error", "InternalServerErrorException", request_id)
        return _proxy_response(invocation.payload, request_id)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "autotag-local-apigw"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                started = time.monotonic()
                status, headers, payload = gateway.handle(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    body,
                    self.client_address[0],
                    self.headers.get("Host") or "127.0.0.1",
                )
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                if gateway.on_request:
                    with contextlib.suppress(Exception):
                        gateway.on_request(
                            self.command, self.path, status, (time.monotonic() - started) * 1000
                        )

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _gateway_error(
    status: int, message: str, kind: str, request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    return (
        status,
        [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", kind),
        ],
        json.dumps({"message": message}).encode(),
    )


def _proxy_response(payload: Any, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The function's proxy response → HTTP; a malformed one is a 502, as API Gateway answers."""
    if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        log.warning("tag_api returned a malformed proxy response")
        return _gateway_error(502, "Internal server error", "InternalServerErrorException", request_id)
    headers: list[tuple[str, str]] = [("x-amzn-RequestId", request_id)]
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    for name, value in single.items():
        if name not in multi:
            headers.append((name, str(value)))
    for name, values in multi.items():
        headers.extend((name, str(v)) for v in values)
    raw = payload.get("body")
    if raw is None:
        body = b""
    elif payload.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw)
        except (ValueError, TypeError):
            return _gateway_error(502, "Internal server error", "InternalServerErrorException", request_id)
    else:
        body = str(raw).encode("utf-8")
    return payload["statusCode"], headers, body
