"""The local API Gateway: HTTP on 127.0.0.1 → REST API Lambda proxy events → HTTP.

It does what the REST API in front of ``tag_api`` (``infra/api.py``) does:

* the stage in the path (``/prod/v1/tags``; the API URL ends in the stage, as the ``ApiUrl``
  output does) and the resource tree (``/``, ``/{proxy+}``, ``/v1``, ``/v1/{proxy+}``,
  ``/v1/tags``) that sets ``resource`` and ``pathParameters``;
* the API key check (``x-api-key``; missing or unknown → 403 before the function runs), the usage
  plan's per-key throttle and quota and the stage throttle (429);
* no request validator (the deployed API has none: every body reaches the function);
* HTTP the gateway refuses before any of that — a method API Gateway does not serve (TRACE, an
  unknown verb), a header over 64 KB, a malformed ``Content-Length`` — answered in the same JSON
  error shape, never with HTML or a dropped connection;
* the gateway's own errors reshaped by the stack's gateway responses
  (:func:`autotag.deploy.gateway.gateway_responses`: ``{"code", "message", "request_id"}``);
* the proxy event (single- and multi-value query strings and headers, body with
  ``isBase64Encoded`` for binary media types, a requestContext with requestId, stage and
  identity.apiKey), the payload limit, the integration timeout, and the gateway's own answers when
  the function fails (502) or times out (504).

Here: the gateway's checks in order, its own error answers and the HTTP server. The proxy event
both ways is :mod:`autotag.local.proxy_events`; the usage plan's limits :mod:`autotag.local.usage_plan`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from autotag.api.images import CONSOLE_PATH
from autotag.deploy.gateway import API_STAGE_NAME, GatewayResponseSpec
from autotag.deploy.limits import API_GATEWAY_MAX_INTEGRATION_SECONDS, API_GATEWAY_MAX_PAYLOAD_BYTES
from autotag.local.lambda_workers import FunctionPool
from autotag.local.proxy_events import Response, header, http_response, proxy_event
from autotag.local.usage_plan import UsageLimits, UsagePlan

log = logging.getLogger("autotag.local")

# API Gateway's own answers (status, message, error type) before the stack's gateway responses
# reshape them (autotag.deploy.gateway.gateway_responses, the same list infra/api.py applies).
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
    "DEFAULT_4XX": (400, "Bad request", "BadRequestException"),
    "DEFAULT_5XX": (500, "Internal server error", "InternalServerErrorException"),
}
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
"""The methods an ``ANY`` method of a REST API serves; API Gateway finds no method for others."""
MAX_HEADER_BYTES = 65536
"""http.server's own line limit: a longer header line is refused (REQUEST_TOO_LARGE) before parsing."""
READ_TIMEOUT_SECONDS = 30.0
"""A client that declares more body than it sends is cut off after this, with a 400."""


@dataclass
class ApiGatewayConfig:
    api_keys: set[str]
    stage: str = API_STAGE_NAME
    integration_timeout_seconds: float = float(API_GATEWAY_MAX_INTEGRATION_SECONDS)
    limits: UsageLimits = field(default_factory=UsageLimits)
    max_image_chars: int | None = None
    """Kept for callers; the deployed API has no request validator, so nothing checks it here."""
    binary_media_types: tuple[str, ...] = field(default=())
    """The deployed API sets none, so every body reaches the function as text."""
    gateway_responses: tuple[GatewayResponseSpec, ...] = ()
    """The stack's gateway responses; without them API Gateway's defaults ({"message": ...})."""

    def gateway_error(
        self, response_type: str, request_id: str, *, status: int | None = None, message: str | None = None
    ) -> Response:
        """API Gateway's own answer of this type, reshaped like the stack's gateway responses
        (`status` and `message` stand in for API Gateway's own, for the DEFAULT_4XX / 5XX types)."""
        default_status, default_message, kind = _GATEWAY_DEFAULTS[response_type]
        status, message = status or default_status, message or default_message
        family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        by_type = {e.response_type: e for e in self.gateway_responses}
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


def is_public(method: str, path: str) -> bool:
    """The methods the deployed API serves without an API key: GET of the console's files."""
    return method == "GET" and (path == CONSOLE_PATH or path.startswith(f"{CONSOLE_PATH}/"))


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
        self.plan = UsagePlan(config.limits)
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

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, client: str, host: str
    ) -> Response:
        if method not in METHODS:
            # Not a method of ANY: API Gateway finds no method for the request.
            return self.config.gateway_error("MISSING_AUTHENTICATION_TOKEN", str(uuid.uuid4()))
        split = urlsplit(raw_path)
        full_path = unquote(split.path)
        stage_prefix = f"/{self.config.stage}"
        if full_path != stage_prefix and not full_path.startswith(stage_prefix + "/"):
            # No such stage: API Gateway answers 403 without naming what is missing.
            return self.config.gateway_error("MISSING_AUTHENTICATION_TOKEN", str(uuid.uuid4()))
        path = full_path[len(stage_prefix) :] or "/"
        api_key = header(headers, "x-api-key")
        if is_public(method, path):
            # The console's static files: no key (a browser's navigation cannot send one), no plan.
            api_key = None
            if self.plan.stage_throttled():
                return self.config.gateway_error("THROTTLED", str(uuid.uuid4()))
        else:
            if api_key is None or api_key not in self.config.api_keys:
                return self.config.gateway_error("INVALID_API_KEY", str(uuid.uuid4()))
            refusal = self.plan.refusal(api_key)
            if refusal is not None:
                return self.config.gateway_error(refusal, str(uuid.uuid4()))
        if len(body) > API_GATEWAY_MAX_PAYLOAD_BYTES:
            return self.config.gateway_error("REQUEST_TOO_LARGE", str(uuid.uuid4()))
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
        response = http_response(invocation.payload, request_id)
        return response or self.config.gateway_error("INTEGRATION_FAILURE", request_id)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_GatewayHandler,), {"gateway": self})


class _GatewayHandler(BaseHTTPRequestHandler):
    """One HTTP exchange with the local gateway (`gateway` is set on the subclass a gateway makes)."""

    gateway: LocalApiGateway

    protocol_version = "HTTP/1.1"
    server_version = "autotag-local-apigateway"
    timeout = READ_TIMEOUT_SECONDS

    def _serve(self) -> None:
        started = time.monotonic()
        try:
            status, headers, payload = self._answer()
        except Exception:
            # API Gateway answers a failure of its own with a 5XX, never a dropped connection.
            log.exception("local API gateway failed on %s %s", self.command, self.path)
            status, headers, payload = self.gateway.config.gateway_error("DEFAULT_5XX", str(uuid.uuid4()))
            self.close_connection = True
        self._send(status, headers, payload)
        if self.gateway.on_request:
            millis = (time.monotonic() - started) * 1000
            with contextlib.suppress(Exception):
                self.gateway.on_request(self.command, self.path, status, millis)

    def _answer(self) -> Response:
        declared = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding") is not None and not declared:
            self.close_connection = True
            return self.gateway.config.gateway_error(
                "DEFAULT_4XX", str(uuid.uuid4()), status=411, message="Length Required"
            )
        if len(set(declared)) > 1 or not all(v.strip().isdigit() for v in declared):
            self.close_connection = True  # the body's end is unknown: the connection is unusable
            return self.gateway.config.gateway_error(
                "DEFAULT_4XX", str(uuid.uuid4()), message="Content-Length is not a number of bytes"
            )
        length = int(declared[0]) if declared else 0
        if length > API_GATEWAY_MAX_PAYLOAD_BYTES:
            self.close_connection = True
            return self.gateway.config.gateway_error("REQUEST_TOO_LARGE", str(uuid.uuid4()))
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return self.gateway.config.gateway_error(
                "DEFAULT_4XX",
                str(uuid.uuid4()),
                message="request body is shorter than its Content-Length",
            )
        return self.gateway.handle(
            self.command,
            self.path,
            list(self.headers.items()),
            body,
            self.client_address[0],
            self.headers.get("Host") or "127.0.0.1",
        )

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's refusals (bad request line, header too long, unknown method...)
        in API Gateway's JSON shape rather than its HTML page."""
        self.close_connection = True
        request_id = str(uuid.uuid4())
        if code == 501:  # no do_<METHOD>: a method API Gateway does not serve either
            answer = self.gateway.config.gateway_error("MISSING_AUTHENTICATION_TOKEN", request_id)
        elif code == 431:
            answer = self.gateway.config.gateway_error("REQUEST_TOO_LARGE", request_id)
        else:
            kind = "DEFAULT_5XX" if code >= 500 else "DEFAULT_4XX"
            answer = self.gateway.config.gateway_error(kind, request_id, status=code, message=message)
        self.command = self.command or "GET"
        # An unparsable request line leaves http.server in HTTP/0.9 mode (no status line, no headers).
        self.request_version = "HTTP/1.1"
        with contextlib.suppress(OSError):
            self._send(*answer)

    def do_TRACE(self) -> None:
        self.send_error(501)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return
