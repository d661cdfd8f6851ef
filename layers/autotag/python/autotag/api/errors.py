"""THE mapping from errors to HTTP: status, stable `code`, message and request id.

Every response that is not a success is built here, from a typed error; the OpenAPI document lists
exactly the statuses in :data:`DOCUMENTED_STATUSES`. No traceback, exception text of a library or
internal detail reaches the client: only our own errors' messages, and for anything unexpected a
500 `internal_error` that points at the request id (the full error is logged).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from autotag.api.models import ErrorDetail, ErrorResponse
from autotag.errors import (
    AllProvidersFailedError,
    AuthError,
    AutotagError,
    BadInputError,
    BucketNotAllowedError,
    ConfigError,
    ConflictError,
    ContentBlockedError,
    FetchError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidRequestError,
    MalformedJsonError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ProviderBadInputError,
    ProviderError,
    ProviderTimeoutError,
    QuotaError,
    RouteMissingError,
    ThrottledError,
    UnknownProviderError,
    UnsafeUrlError,
    UnsupportedFormatError,
    UnsupportedMediaTypeError,
)
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

logger = Logger(service="autotag", child=True)

DEFAULT_RETRY_AFTER_SECONDS = 5
REQUEST_ID_HEADER = "X-Request-Id"


# --- The mapping --------------------------------------------------------------------------------

# Checked in order: the first class the error is an instance of decides the status.
STATUS_BY_TYPE: tuple[tuple[type[AutotagError], HTTPStatus], ...] = (
    (BucketNotAllowedError, HTTPStatus.FORBIDDEN),
    (NotFoundError, HTTPStatus.NOT_FOUND),
    (MethodNotAllowedError, HTTPStatus.METHOD_NOT_ALLOWED),
    (ConflictError, HTTPStatus.CONFLICT),
    (PayloadTooLargeError, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    (ImageTooLargeError, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    (UnsupportedMediaTypeError, HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
    (UnsupportedFormatError, HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
    (FetchError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (InvalidImageError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (UnsafeUrlError, HTTPStatus.BAD_REQUEST),
    (UnknownProviderError, HTTPStatus.BAD_REQUEST),
    (BadInputError, HTTPStatus.BAD_REQUEST),
    (ContentBlockedError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (ProviderBadInputError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (ThrottledError, HTTPStatus.TOO_MANY_REQUESTS),
    (ProviderTimeoutError, HTTPStatus.GATEWAY_TIMEOUT),
    (AuthError, HTTPStatus.BAD_GATEWAY),
    (QuotaError, HTTPStatus.BAD_GATEWAY),
    (ProviderError, HTTPStatus.BAD_GATEWAY),
    (ConfigError, HTTPStatus.INTERNAL_SERVER_ERROR),
)

# When every provider failed, the first failure's code decides (codes of the classes above).
STATUS_BY_CODE: dict[str, HTTPStatus] = {
    **{cls.code: status for cls, status in reversed(STATUS_BY_TYPE)},
    "deadline": HTTPStatus.GATEWAY_TIMEOUT,
    "transient": HTTPStatus.BAD_GATEWAY,
}

DOCUMENTED_STATUSES: dict[int, str] = {
    400: "Invalid request: malformed JSON, schema violation, bad base64, unsafe URL, unknown provider",
    403: "Forbidden: the s3 bucket is not allowed; or (from API Gateway, code invalid_api_key) a missing "
    "or invalid API key",
    404: "No such image record, or no such route",
    405: "The path exists, not with this method (see the Allow header)",
    409: "Conflict: the image is not tagged (retry it first), or it kept changing during the correction",
    413: "Request body over the Lambda payload limit, or image over the size/pixel limits",
    415: "Unsupported image format, or a request body that is not JSON",
    422: "Unprocessable image (corrupt, empty), URL that could not be fetched, or content blocked",
    429: "Throttled (the provider, or the usage plan: throttled / quota_exceeded); see Retry-After",
    500: "A bug: logged with the request id",
    502: "The provider failed (errors, auth or quota on its side)",
    504: "The provider timed out",
}


def status_for(error: AutotagError) -> HTTPStatus:
    if isinstance(error, AllProvidersFailedError):
        return STATUS_BY_CODE.get(error.code, HTTPStatus.BAD_GATEWAY)
    for cls, status in STATUS_BY_TYPE:
        if isinstance(error, cls):
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def _retry_after(error: AutotagError) -> int:
    seconds = getattr(error, "retry_after", None)
    if isinstance(seconds, int | float) and seconds > 0:
        return max(1, math.ceil(seconds))
    return DEFAULT_RETRY_AFTER_SECONDS


def error_body(error: AutotagError, request_id: str) -> tuple[HTTPStatus, ErrorResponse, dict[str, str]]:
    """Status, body and extra headers for a typed error."""
    status = status_for(error)
    headers = {REQUEST_ID_HEADER: request_id}
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        headers["Retry-After"] = str(_retry_after(error))
    if isinstance(error, MethodNotAllowedError):
        headers["Allow"] = ", ".join(error.allow)
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        body = ErrorResponse(
            code="internal_error",
            message=f"internal error; quote request id {request_id} when reporting it",
            request_id=request_id,
        )
    else:
        details = getattr(error, "details", None) or None
        body = ErrorResponse(code=error.code, message=error.message, request_id=request_id, details=details)
    return status, body, headers


def error_response(error: AutotagError, request_id: str) -> Response[str]:
    status, body, headers = error_body(error, request_id)
    log = logger.error if status >= 500 else logger.info
    log("request failed", extra={"status": int(status), "code": body.code, "error": str(error)})
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


# --- From the resolver's own exceptions ------------------------------------------------------------


def _validation_error(exc: RequestValidationError) -> InvalidRequestError:
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return MalformedJsonError("request body is not valid JSON")
    details = [
        ErrorDetail(
            loc=[part if isinstance(part, int) else str(part) for part in p.get("loc", ())],
            type=str(p.get("type", "invalid")),
            message=str(p.get("msg", "invalid value")),
        )
        for p in problems
    ]
    first = details[0] if details else None
    where = ".".join(str(part) for part in first.loc) if first else "request"
    summary = f"{where}: {first.message}" if first else "request is invalid"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return InvalidRequestError(f"invalid request: {summary}{more}", details=details)


def request_id_from_event(event: Mapping[str, Any]) -> str:
    """API Gateway's request id (what the client sees in x-amzn-RequestId)."""
    context = event.get("requestContext")
    value = context.get("requestId") if isinstance(context, Mapping) else None
    return str(value) if isinstance(value, str) and value else f"local-{uuid.uuid4()}"


def request_id_of(app: APIGatewayRestResolver) -> str:
    return request_id_from_event(app.current_event.raw_event)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Install the mapping on `app` (typed errors, validation, unknown routes, and a catch-all)."""

    @app.exception_handler(AutotagError)
    def _typed(exc: AutotagError) -> Response[str]:
        return error_response(exc, request_id_of(app))

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        return error_response(_validation_error(exc), request_id_of(app))

    @app.exception_handler(RequestUnsupportedContentType)
    def _media(exc: RequestUnsupportedContentType) -> Response[str]:
        return error_response(
            UnsupportedMediaTypeError("send the request body as application/json"), request_id_of(app)
        )

    @app.not_found
    def _no_route(exc: RouteNotFoundError) -> Response[str]:
        return error_response(RouteMissingError("no such route"), request_id_of(app))

    @app.exception_handler(Exception)
    def _bug(exc: Exception) -> Response[str]:
        request_id = request_id_of(app)
        logger.exception("unhandled error", extra={"request_id": request_id})
        return error_response(AutotagError("unhandled error"), request_id)


def error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` entries for the given statuses, all with the ErrorResponse schema."""
    return {
        status: {
            "description": DOCUMENTED_STATUSES[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
            **(
                {
                    "headers": {
                        "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
                    }
                }
                if status == 429
                else {}
            ),
        }
        for status in statuses
    }


def route_responses(model: type, description: str, *error_statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` of a route: its 200 with `model`, and its error statuses."""
    ok: OpenAPIResponse = {
        "description": description,
        "content": {content_types.APPLICATION_JSON: {"model": model}},
    }
    return {200: ok, **error_responses(*error_statuses)}


def page_responses(model: type) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` of a route that lists images a page at a time."""
    return route_responses(model, "One page of images; pass cursor back for the next", 400, 403, 429, 500)
