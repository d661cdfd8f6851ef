"""The REST API's Lambda proxy integration, both ways: an HTTP request → the proxy event API Gateway
sends the function (:func:`proxy_event`, with the resource of the deployed API's tree that serves
the path), and the function's proxy response → HTTP (:func:`http_response`)."""

from __future__ import annotations

import base64
import fnmatch
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from autotag.api.images import CONSOLE_PATH
from autotag.local.state import ACCOUNT_ID

log = logging.getLogger("autotag.local")

Response = tuple[int, list[tuple[str, str]], bytes]
"""An HTTP answer: status, headers, body."""


def resource_for(path: str) -> tuple[str, dict[str, str] | None]:
    """The resource of the deployed API's tree that serves `path`, and its path parameters."""
    if path in ("/", "/v1", "/v1/tags", CONSOLE_PATH):
        return path, None
    if path.startswith(f"{CONSOLE_PATH}/"):
        return f"{CONSOLE_PATH}/{{proxy+}}", {"proxy": path[len(CONSOLE_PATH) + 1 :]}
    if path.startswith("/v1/"):
        return "/v1/{proxy+}", {"proxy": path[len("/v1/") :]}
    return "/{proxy+}", {"proxy": path.lstrip("/")}


def header(headers: list[tuple[str, str]], name: str) -> str | None:
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
    binary = _is_binary(header(headers, "content-type"), binary_media_types)
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
                "userAgent": header(headers, "user-agent"),
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


def http_response(payload: Any, request_id: str) -> Response | None:
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
