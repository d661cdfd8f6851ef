"""The on-demand HTTPS API: route functions over the domain, on Powertools' REST resolver.

Validation and the OpenAPI document (``GET /v1/openapi.json``) come from the models in
:mod:`autotag.api.models`; every failure is mapped in :mod:`autotag.api.errors`. The routes only
translate: the work is done by the shared pipeline, store and service (:mod:`autotag.api.runtime`).
"""

from __future__ import annotations

import json
import re
import uuid
from functools import lru_cache
from typing import Annotated, Any

from autotag.api import images
from autotag.api.body import check_json_object
from autotag.api.errors import (
    REQUEST_ID_HEADER,
    BucketNotAllowedError,
    ImageNotFoundError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RouteMissingError,
    UnsupportedMediaTypeError,
    error_responses,
    proxy_error_response,
    register_error_handlers,
    request_id_from_event,
    request_id_of,
)
from autotag.api.models import (
    ImageInfo,
    ImageRecordResponse,
    SourceInfo,
    TagHitsPage,
    TagRequest,
    TagResponse,
    UploadRequest,
    UploadResponse,
)
from autotag.api.runtime import ApiRuntime, get_runtime
from autotag.api.settings import get_api_settings
from autotag.errors import AutotagError, ConfigError, ImageTooLargeError
from autotag.image import S3_BUCKET_PATTERN, S3Location, SourceImage
from autotag.intake import inspect_image, load_image
from autotag.retry import Deadline
from autotag.store.keys import MAX_PAGE_SIZE
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

API_TITLE = "autotag API"
API_VERSION = "1"
OPENAPI_PATH = "/v1/openapi.json"
_UPLOAD_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
}
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class AutotagResolver(APIGatewayRestResolver):
    """REST resolver where a path parameter is any text (Powertools' default refuses ``#``, NUL,
    emoji and other characters a client may percent-encode), and ``<key>`` and ``<tag>`` span path
    segments like API Gateway's ``{key+}`` (S3 keys and tags may contain ``/``). What a parameter
    may be is then decided by its validation (a 400), never by a 404 from routing."""

    SPANNING = ("key", "tag")

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> re.Pattern[str]:
        compiled = APIGatewayRestResolver._compile_regex(rule, base_regex)

        def widen(match: re.Match[str]) -> str:
            name = match.group(1)
            return f"(?P<{name}>.+)" if name in AutotagResolver.SPANNING else f"(?P<{name}>[^/]+)"

        return re.compile(re.sub(r"\(\?P<(\w+)>\[.*?\]\+\)", widen, compiled.pattern), re.DOTALL)

    def methods_for(self, path: str) -> list[str]:
        """The methods some route serves at `path` (none: no such route)."""
        routes = self._static_routes + self._dynamic_routes
        return sorted({route.method for route in routes if route.rule.match(path)})


app = AutotagResolver(enable_validation=True)
register_error_handlers(app)


def _ok(model: type, description: str) -> dict[int, OpenAPIResponse]:
    return {200: {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}}}


# --- Helpers -----------------------------------------------------------------------------------


def _deadline(runtime: ApiRuntime) -> Deadline:
    settings = runtime.api
    budget = settings.max_request_seconds
    context = app.lambda_context
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = min(budget, context.get_remaining_time_in_millis() / 1000)
    return Deadline.after(max(0.5, budget - settings.safety_margin_seconds))


def _inline_image(text: str, runtime: ApiRuntime) -> SourceImage:
    if len(text) > runtime.api.max_image_chars:
        raise ImageTooLargeError(
            f"inline image is {len(text)} characters; the limit is {runtime.api.max_image_chars}. "
            "Upload larger images with POST /v1/uploads",
            code="inline_image_too_large",
        )
    # Always as a data URL: a plain string is never looked up as a file path.
    data_url = text if text.lstrip()[:5].lower() == "data:" else f"data:;base64,{text}"
    return load_image(data_url, limits=runtime.config.limits)


def _check_bucket(location: S3Location, runtime: ApiRuntime) -> None:
    if location.bucket not in runtime.settings.allowed_buckets:
        raise BucketNotAllowedError(f"bucket {location.bucket!r} is not one this deployment may read")


# --- Routes ------------------------------------------------------------------------------------


@app.post(
    "/v1/tags",
    summary="Tag an image given inline, by https URL, or by S3 reference",
    description="Exactly one of image, url or s3. With store=true (s3 only) the result is also stored "
    "and the object tagged, exactly as an upload would be.",
    responses={
        **_ok(TagResponse, "The normalized tags"),
        **error_responses(400, 403, 404, 413, 415, 422, 429, 500, 502, 504),
    },
    tags=["tagging"],
    operation_id="tagImage",
)
def post_tags(request: Annotated[TagRequest, Body()]) -> TagResponse:
    runtime = get_runtime()
    request_id = request_id_of(app)
    deadline = _deadline(runtime)
    options = request.options
    if request.image is not None:
        image = _inline_image(request.image, runtime)
        result = runtime.tag_image(image, options, deadline=deadline)
        return TagResponse.of_result(
            result, request_id=request_id, source=SourceInfo(kind="image"), image=ImageInfo.of(image)
        )
    if request.url is not None:
        data = runtime.fetch_url(request.url, deadline=deadline)
        image = inspect_image(data, limits=runtime.config.limits)
        result = runtime.tag_image(image, options, deadline=deadline)
        return TagResponse.of_result(
            result,
            request_id=request_id,
            source=SourceInfo(kind="url", url=request.url),
            image=ImageInfo.of(image),
        )
    assert request.s3 is not None
    location = request.s3.location()
    _check_bucket(location, runtime)
    source = SourceInfo(kind="s3", s3=request.s3)
    if request.store:
        record = runtime.process_object(location, options, deadline=deadline)
        return TagResponse.of_record(record, request_id=request_id, source=source)
    image = runtime.read_object(location)
    result = runtime.tag_image(image, options, deadline=deadline, s3=location)
    return TagResponse.of_result(result, request_id=request_id, source=source, image=ImageInfo.of(image))


@app.get(
    "/v1/images/<bucket>/<key>",
    summary="The stored record of an image",
    responses={
        **_ok(ImageRecordResponse, "The stored record"),
        **error_responses(400, 403, 404, 429, 500),
    },
    tags=["images"],
    operation_id="getImage",
)
def get_image(
    bucket: Annotated[str, Path(pattern=S3_BUCKET_PATTERN)],
    key: Annotated[str, Path(min_length=1, max_length=1024, description="The object key; may contain /")],
) -> ImageRecordResponse:
    record = get_runtime().store.get(bucket, key)
    if record is None:
        raise ImageNotFoundError(f"no record for s3://{bucket}/{key}")
    return ImageRecordResponse.of(record, request_id=request_id_of(app))


@app.get(
    "/v1/tags/<tag>/images",
    summary="Images carrying a tag, best first",
    responses={
        **_ok(TagHitsPage, "One page of images; pass cursor back for the next"),
        **error_responses(400, 403, 429, 500),
    },
    tags=["images"],
    operation_id="listImagesWithTag",
)
def get_tag_images(
    tag: Annotated[str, Path(min_length=1, max_length=256)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
) -> TagHitsPage:
    page = get_runtime().store.images_with_tag(tag, limit=limit, cursor=cursor)
    return TagHitsPage(request_id=request_id_of(app), tag=tag, items=page.items, cursor=page.cursor)


@app.post(
    "/v1/uploads",
    summary="A presigned PUT URL into the watched bucket, for images too large to send inline",
    description="PUT the bytes to the URL with the returned headers; the object is then tagged by the "
    "upload path (S3 notification) like any other upload.",
    responses={
        **_ok(UploadResponse, "Where and how to upload"),
        **error_responses(400, 403, 413, 415, 429, 500),
    },
    tags=["uploads"],
    operation_id="createUpload",
)
def post_uploads(request: Annotated[UploadRequest, Body()]) -> UploadResponse:
    runtime = get_runtime()
    bucket = runtime.settings.images_bucket
    if not bucket:
        raise ConfigError("IMAGES_BUCKET is not set")
    limit = runtime.config.limits.max_bytes
    if request.size > limit:
        raise ImageTooLargeError(f"images are limited to {limit} bytes; this one is {request.size}")
    extension = _UPLOAD_EXTENSIONS[request.content_type]
    stem = _UNSAFE_KEY_CHARS.sub("-", (request.filename or "image").rsplit(".", 1)[0]).strip("-.")[:100]
    key = f"{runtime.api.upload_prefix}{uuid.uuid4().hex}/{stem or 'image'}{extension}"
    expires = runtime.api.upload_url_ttl_seconds
    url = runtime.presign_put(bucket, key, content_type=request.content_type, expires_in=expires)
    return UploadResponse(
        request_id=request_id_of(app),
        url=url,
        headers={"Content-Type": request.content_type},
        bucket=bucket,
        key=key,
        expires_in=expires,
        max_bytes=limit,
    )


# After the routes above: the first route whose method and pattern match serves a request.
images.register(app)


@app.get(OPENAPI_PATH, include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, body=openapi_json())


# --- The OpenAPI document ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The document, generated from the route models; only statuses the API returns are listed."""
    # Powertools' OpenAPI models take ~60 ms to build: loaded when the document is first asked for.
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    schema = app.get_openapi_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="On-demand image tagging. Errors are JSON: {code, message, request_id}.",
        security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
        security=[{"apiKey": []}],
    )
    document: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            default_422 = responses.get("422", {}).get("content", {}).get(content_types.APPLICATION_JSON, {})
            if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                # Powertools documents its own 422 for validation; ours are 400 invalid_request.
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    text = json.dumps(document)
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in text.replace(f'"{unused}":', ""):
            schemas.pop(unused, None)
    return document


@lru_cache(maxsize=1)
def openapi_json() -> str:
    return json.dumps(openapi_document(), separators=(",", ":"))


# --- Entry point -------------------------------------------------------------------------------


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if isinstance(key, str) and key.lower() == name:
            return str(value)
    return None


def _ingress_rejection(event: dict[str, Any]) -> AutotagError | None:
    """Checks made before routing: the body size, and that a request body is JSON."""
    body = event.get("body")
    if isinstance(body, str) and body:
        limit = get_api_settings().max_body_bytes
        encoded = event.get("isBase64Encoded") is True
        size = len(body) * 3 // 4 if encoded else len(body.encode("utf-8", "surrogatepass"))
        if size > limit:
            return PayloadTooLargeError(
                f"request body is {size} bytes; the limit is {limit}. "
                "Upload large images with POST /v1/uploads"
            )
    if str(event.get("httpMethod", "")).upper() not in _METHODS_WITH_BODY:
        return None
    media = (_header(event, "content-type") or "").split(";", 1)[0].strip().lower()
    if media and media != content_types.APPLICATION_JSON and not media.endswith("+json"):
        return UnsupportedMediaTypeError(f"request body must be application/json, not {media}")
    try:
        check_json_object(event)
    except AutotagError as error:
        return error
    return None


def _route_rejection(event: dict[str, Any]) -> AutotagError | None:
    """A path no route serves (404), or a method its routes do not (405), before the body is read."""
    method = str(event.get("httpMethod", "")).upper()
    allowed = app.methods_for(str(event.get("path") or "/"))
    if not allowed:
        return RouteMissingError("no such route")
    if method not in allowed:
        return MethodNotAllowedError(f"{method} is not allowed here; use {', '.join(allowed)}", allow=allowed)
    return None


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Resolve one API Gateway REST proxy event."""
    rejection = _route_rejection(event) or _ingress_rejection(event)
    if rejection is not None:
        return proxy_error_response(rejection, request_id_from_event(event))
    response = app.resolve(event, context)
    # Errors carry it already; successes get it too, so every answer can be traced.
    response.setdefault("headers", {}).setdefault(REQUEST_ID_HEADER, request_id_from_event(event))
    return response
