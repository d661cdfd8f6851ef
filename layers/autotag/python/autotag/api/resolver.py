"""The resolver the API's routes are registered on, and the middlewares every request passes.

Powertools' REST resolver, with two things its defaults do not give:

- **Path parameters are any text, and** ``<key>`` **and** ``<tag>`` **span segments** like API
  Gateway's ``{key+}`` (S3 keys and tags may contain ``/``). Powertools' ``<name>`` stops at ``/``
  and refuses ``#``, NUL, emoji and other characters a client may percent-encode, and a regex route
  cannot name a group (its ``<name>`` rewriting applies inside ``(?P<name>...)`` too), so the rule
  is compiled here. What a parameter may be is then decided by its validation (a 400), never by a
  404 from routing.
- **Checks before validation.** Powertools runs its request validation before every middleware
  added with ``use()``; a path no route serves (404), a method it does not (405), a body over the
  payload limit (413), not JSON (415) or not a JSON object this API can read (400
  ``malformed_json``) must be refused before the body is validated against the route's model. So
  the resolver's validation is wired as middlewares after :func:`gate` (``enable_validation`` off,
  Powertools' own OpenAPI validation middlewares on): the order is request id → gate → request
  validation → response validation → route.

Every refusal is a typed error raised inside the resolver's chain, so it reaches the one mapping
(:mod:`autotag.api.errors`) like any other error.
"""

from __future__ import annotations

import re
from typing import Any

from autotag.api.body import check_json_object
from autotag.api.errors import REQUEST_ID_HEADER, request_id_of
from autotag.api.settings import get_api_settings
from autotag.errors import (
    MethodNotAllowedError,
    PayloadTooLargeError,
    RouteMissingError,
    UnsupportedMediaTypeError,
)
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
    OpenAPIResponseValidationMiddleware,
)

SPANNING_PARAMETERS = ("key", "tag")
"""Path parameters that may contain ``/`` (API Gateway's greedy ``{name+}``)."""
_PARAMETER = re.compile(r"<(\w+)>")
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def route_pattern(rule: str) -> re.Pattern[str]:
    """The regular expression a route rule matches paths with (a trailing ``/`` is allowed, as
    Powertools' REST resolver allows it)."""

    def parameter(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"(?P<{name}>.+)" if name in SPANNING_PARAMETERS else f"(?P<{name}>[^/]+)"

    return re.compile("^" + _PARAMETER.sub(parameter, rule) + "/*$", re.DOTALL)


class AutotagResolver(APIGatewayRestResolver):
    """The REST resolver with any-text path parameters and a table of what each path serves."""

    def __init__(self) -> None:
        super().__init__(enable_validation=False)
        self._served: list[tuple[str, re.Pattern[str]]] = []
        self.use(
            middlewares=[
                request_id_header,
                gate,
                OpenAPIRequestValidationMiddleware(),
                OpenAPIResponseValidationMiddleware(validation_serializer=None),
            ]
        )

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> re.Pattern[str]:
        return route_pattern(rule)

    def route(self, rule: str, method: str | list[str] | tuple[str], *args: Any, **kwargs: Any) -> Any:
        methods = [method] if isinstance(method, str) else list(method)
        self._served.extend((m.upper(), route_pattern(rule)) for m in methods)
        return super().route(rule, method, *args, **kwargs)

    def methods_for(self, path: str) -> list[str]:
        """The methods some route serves at `path` (none: no such route)."""
        return sorted({method for method, pattern in self._served if pattern.match(path)})


def gate(app: AutotagResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Before validation: the route (404, 405), then the request body (413, 415, 400)."""
    event = app.current_event
    method = event.http_method.upper()
    allowed = app.methods_for(event.path or "/")
    if not allowed:
        raise RouteMissingError("no such route")
    if method not in allowed:
        raise MethodNotAllowedError(f"{method} is not allowed here; use {', '.join(allowed)}", allow=allowed)
    raw = event.raw_event
    body = raw.get("body")
    if isinstance(body, str) and body:
        limit = get_api_settings().max_body_bytes
        encoded = raw.get("isBase64Encoded") is True
        size = len(body) * 3 // 4 if encoded else len(body.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise PayloadTooLargeError(
                f"request body is {size} bytes; the limit is {limit}. "
                "Upload large images with POST /v1/uploads"
            )
    if method in _METHODS_WITH_BODY:
        media = (_header(raw, "content-type") or "").split(";", 1)[0].strip().lower()
        if media and media != content_types.APPLICATION_JSON and not media.endswith("+json"):
            raise UnsupportedMediaTypeError(f"request body must be application/json, not {media}")
        check_json_object(raw)
    return next_middleware(app)


def request_id_header(app: AutotagResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every answer carries API Gateway's request id (errors get it from the mapping)."""
    response = next_middleware(app)
    response.headers.setdefault(REQUEST_ID_HEADER, request_id_of(app))
    return response


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if isinstance(key, str) and key.lower() == name:
            return str(value)
    return None
