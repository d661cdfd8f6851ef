"""The local API Gateway: HTTP on 127.0.0.1 → REST API Lambda proxy events → HTTP.

It does what the REST API in front of ``tag_api`` (``infra/api.py``) does:

* the stage in the path (``/prod/v1/tags``; the API URL ends in the stage, as the ``ApiUrl``
  output does) and the resource tree (``/``, ``/{proxy+}``, ``/v1``, ``/v1/{proxy+}``,
  ``/v1/tags``) that sets ``resource`` and ``pathParameters``;
* the API key check (``x-api-key``; missing or unknown → 403 before the function runs), the usage
  plan's per-key throttle and quota and the stage throttle (429);
* the request validator of ``POST /v1/tags`` (``image`` / ``url`` must be strings or null within
  their size limits → 400);
* the gateway's own errors reshaped by the stack's gateway responses
  (:func:`autotag.resources.gateway_errors`: ``{"code", "message", "request_id"}``);
* the proxy event (single- and multi-value query strings and headers, body with
  ``isBase64Encoded`` for binary media types, a requestContext with requestId, stage and
  identity.apiKey), the payload limit, the integration timeout, and the gateway's own answers when
  the function fails (502) or times out (504).
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from autotag.local.runtime import FunctionPool
from autotag.local.state import ACCOUNT_ID
from autotag.resources import (
    API_GATEWAY_MAX_INTEGRATION_SECONDS,
    API_GATEWAY_MAX_PAYLOAD_BYTES,
    API_MAX_URL_CHARS,
    CONSOLE_PATH,
    GatewayError,
)

log = logging.getLogger("autotag.local")

STAGE = "prod"
"""The stage name of the deployed API (infra/api.py STAGE_NAME)."""
# API Gateway's own answers (status, message, error type) before the stack's gateway responses
# reshape them (autotag.resources.gateway_errors, the same list infra/api.py applies).
_GATEWAY_DEFAULTS: dict[str, tuple[int, str, str]] = {
    "INVALID_API_KEY": (403, "Forbidden", "ForbiddenException"),
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    "THROTTLED": (429, "Too Many Requests", "TooManyRequestsException"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded", "LimitExceededException"),
    "BAD_REQUEST_BODY": (400, "Invalid request body", "BadRequestException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLongException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "IntegrationTimeout"),
    "INTEGRATION_FAILURE": (502, "Internal server error", "InternalServerErrorException"),
}

Response = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class ApiGatewayConfig:
    api_keys: set[str]
    stage: str = STAGE
    integration_timeout_seconds: float = float(API_GATEWAY_MAX_INTEGRATION_SECONDS)
    key_rate_limit: float | None = None
    key_burst_limit: int | None = None
    quota_limit: int | None = None
    quota_period: str = "DAY"
    stage_rate_limit: float | None = None
    stage_burst_limit: int | None = None
    max_image_chars: int | None = None
    binary_media_types: tuple[str, ...] = field(default=())
    """The deployed API sets none, so every body reaches the function as text."""
    gateway_errors: tuple[GatewayError, ...] = ()
    """The stack's gateway responses; without them API Gateway's defaults ({"message": ...})."""

    def gateway_error(self, response_type: str, request_id: str) -> Response:
        """API Gateway's own answer of this type, reshaped like the stack's gateway responses."""
        status, message, kind = _GATEWAY_DEFAULTS[response_type]
        family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        by_type = {e.response_type: e for e in self.gateway_errors}
        custom = by_type.get(response_type) or by_type.get(family)
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", kind),
        ]
        if custom is None:
            return status, headers, json.dumps({"message": message}).encode()
        body = {"code": custom.code, "message": custom.message or message, "request_id": request_id}
        headers.extend(custom.headers.items())
        return custom.status or status, headers, json.dumps(body).encode()


class _TokenBucket:
    """A throttle: `rate` requests per second sustained, `burst` at once."""

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


def resource_for(path: str) -> tuple[str, dict[str, str] | None]:
    """The resource of the deployed API's tree that serves `path`, and its path parameters."""
    if path in ("/", "/v1", "/v1/tags", CONSOLE_PATH):
        return path, None
    if path.startswith(f"{CONSOLE_PATH}/"):
        return f"{CONSOLE_PATH}/{{proxy+}}", {"proxy": path[len(CONSOLE_PATH) + 1 :]}
    if path.startswith("/v1/"):
        return "/v1/{proxy+}", {"proxy": path[len("/v1/") :]}
    return "/{proxy+}", {"proxy": path.lstrip("/")}


def is_public(method: str, path: str) -> bool:
    """The methods the deployed API serves without an API key: GET of the console's files."""
    return method == "GET" and (path == CONSOLE_PATH or path.startswith(f"{CONSOLE_PATH}/"))


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _is_binary(content_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return bool(kind) and any(fnmatch.fnmatch(kind, pattern.lower()) for pattern in binary_media_types)


def proxy_event(
    *,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    stage: str,
    api_key: str | None,
    source_ip: str,
    host: str,
    binary_media_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The REST API proxy integration event for one HTTP request (`path` without the stage)."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    binary = _is_binary(_header(headers, "content-type"), binary_media_types)
    resource, path_parameters = resource_for(path)
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
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
                "apiKeyId": "local-api-key" if api_key else None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": _header(headers, "user-agent"),
                "user": None,
            },
            "domainName": host,
            "apiId": "local",
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace"))
        if body
        else None,
        "isBase64Encoded": bool(body) and binary,
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
        self._key_buckets: dict[str, _TokenBucket] = {}
        self._quota_used: dict[tuple[str, str], int] = {}
        self._counters_lock = threading.Lock()
        self._stage_bucket = (
            _TokenBucket(config.stage_rate_limit, config.stage_burst_limit or int(config.stage_rate_limit))
            if config.stage_rate_limit
            else None
        )
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """Like the stack's ``ApiUrl`` output: ends with the stage and a slash."""
        return f"{self.base_url}/{self.config.stage}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def _within_plan(self, api_key: str) -> Response | None:
        """The usage plan and stage limits; a 429 when one is exceeded."""
        with self._counters_lock:
            if self.config.key_rate_limit:
                bucket = self._key_buckets.setdefault(
                    api_key,
                    _TokenBucket(self.config.key_rate_limit, self.config.key_burst_limit or 1),
                )
            else:
                bucket = None
            if self.config.quota_limit is not None:
                period = (api_key, _quota_window(self.config.quota_period))
                used = self._quota_used.get(period, 0)
                if used >= self.config.quota_limit:
                    return self.config.gateway_error("QUOTA_EXCEEDED", str(uuid.uuid4()))
                self._quota_used[period] = used + 1
        if (self._stage_bucket and not self._stage_bucket.take()) or (bucket and not bucket.take()):
            return self.config.gateway_error("THROTTLED", str(uuid.uuid4()))
        return None

    def _invalid_body(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bool:
        """The request validator on POST /v1/tags (JSON body; image and url sizes)."""
        if method != "POST" or path != "/v1/tags":
            return False
        content_type = (_header(headers, "content-type") or "application/json").split(";")[0].strip().lower()
        if content_type != "application/json":
            return False  # the model is declared for application/json only
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return True
        if not isinstance(document, dict):
            return True
        limits = {"image": self.config.max_image_chars, "url": API_MAX_URL_CHARS}
        for name, limit in limits.items():
            value = document.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or (limit is not None and len(value) > limit):
                return True
        return False

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, client: str, host: str
    ) -> Response:
        split = urlsplit(raw_path)
        full_path = unquote(split.path)
        stage_prefix = f"/{self.config.stage}"
        if full_path != stage_prefix and not full_path.startswith(stage_prefix + "/"):
            # No such stage: API Gateway answers 403 without naming what is missing.
            return self.config.gateway_error("MISSING_AUTHENTICATION_TOKEN", str(uuid.uuid4()))
        path = full_path[len(stage_prefix) :] or "/"
        api_key = _header(headers, "x-api-key")
        if is_public(method, path):
            # The console's static files: no key (a browser's navigation cannot send one), no plan.
            api_key = None
            if self._stage_bucket and not self._stage_bucket.take():
                return self.config.gateway_error("THROTTLED", str(uuid.uuid4()))
        else:
            if api_key is None or api_key not in self.config.api_keys:
                return self.config.gateway_error("INVALID_API_KEY", str(uuid.uuid4()))
            refused = self._within_plan(api_key)
            if refused is not None:
                return refused
        if len(body) > API_GATEWAY_MAX_PAYLOAD_BYTES:
            return self.config.gateway_error("REQUEST_TOO_LARGE", str(uuid.uuid4()))
        if self._invalid_body(method, path, headers, body):
            return self.config.gateway_error("BAD_REQUEST_BODY", str(uuid.uuid4()))
        event = proxy_event(
            method=method,
            path=path,
            query=split.query,
            headers=headers,
            body=body,
            stage=self.config.stage,
            api_key=api_key,
            source_ip=client,
            host=host,
            binary_media_types=self.config.binary_media_types,
        )
        request_id = event["requestContext"]["requestId"]
        timeout = min(self.function.spec.timeout_seconds, self.config.integration_timeout_seconds)
        invocation = self.function.invoke(event, timeout=timeout)
        if invocation.error_type == "Sandbox.Timedout":
            return self.config.gateway_error("INTEGRATION_TIMEOUT", request_id)
        if not invocation.ok:
            log.warning("tag_api failed: %s: %s", invocation.error_type, invocation.error_message)
            return self.config.gateway_error("INTEGRATION_FAILURE", request_id)
        response = _proxy_response(invocation.payload, request_id)
        return response or self.config.gateway_error("INTEGRATION_FAILURE", request_id)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "autotag-local-apigateway"

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
                    millis = (time.monotonic() - started) * 1000
                    with contextlib.suppress(Exception):
                        gateway.on_request(self.command, self.path, status, millis)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _quota_window(period: str) -> str:
    """The usage plan's current quota window (UTC day, ISO week or month)."""
    now = datetime.now(UTC)
    if period == "WEEK":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week}"
    return now.strftime("%Y-%m") if period == "MONTH" else now.strftime("%Y-%m-%d")


def _proxy_response(payload: Any, request_id: str) -> Response | None:
    """The function's proxy response → HTTP; None when malformed (API Gateway answers 502)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        log.warning("tag_api returned a malformed proxy response")
        return None
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
            return None
    else:
        body = str(raw).encode("utf-8")
    return payload["statusCode"], headers, body
