"""The on-demand HTTPS API: route functions over the domain, on Powertools' REST resolver.

Validation and the OpenAPI document (``GET /v1/openapi.json``) come from the models in
:mod:`autotag.api.models`; every failure is mapped in :mod:`autotag.api.errors`; what every request
passes before its route (404/405, body size, media type, JSON) is :mod:`autotag.api.resolver`. The
routes only translate: the work is done by the shared pipeline, store and service
(:mod:`autotag.api.backend`).
"""

from __future__ import annotations

import json
import re
import uuid
from functools import lru_cache
from typing import Annotated, Any

from autotag.api import images
from autotag.api.backend import ApiBackend, get_backend
from autotag.api.errors import (
    page_responses,
    register_error_handlers,
    request_id_of,
    route_responses,
)
from autotag.api.models import (
    BucketParam,
    CursorParam,
    ImageInfo,
    ImageRecordResponse,
    KeyParam,
    SourceInfo,
    TagHitsPage,
    TagRequest,
    TagResponse,
    UploadRequest,
    UploadResponse,
)
from autotag.api.resolver import AutotagResolver
from autotag.errors import BucketNotAllowedError, ConfigError, ImageNotFoundError, ImageTooLargeError
from autotag.image import S3Location, SourceImage
from autotag.intake.checks import inspect_image
from autotag.intake.source import load_image
from autotag.retry import Deadline
from autotag.store.keys import MAX_PAGE_SIZE
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
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


app = AutotagResolver()
register_error_handlers(app)


# --- Helpers -----------------------------------------------------------------------------------


def _deadline(backend: ApiBackend) -> Deadline:
    settings = backend.api
    budget = settings.max_request_seconds
    context = app.lambda_context
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = min(budget, context.get_remaining_time_in_millis() / 1000)
    return Deadline.after(max(0.5, budget - settings.safety_margin_seconds))


def _inline_image(text: str, backend: ApiBackend) -> SourceImage:
    if len(text) > backend.api.max_image_chars:
        raise ImageTooLargeError(
            f"inline image is {len(text)} characters; the limit is {backend.api.max_image_chars}. "
            "Upload larger images with POST /v1/uploads",
            code="inline_image_too_large",
        )
    # Always as a data URL: a plain string is never looked up as a file path.
    data_url = text if text.lstrip()[:5].lower() == "data:" else f"data:;base64,{text}"
    return load_image(data_url, limits=backend.config.limits)


def _check_bucket(location: S3Location, backend: ApiBackend) -> None:
    if location.bucket not in backend.settings.allowed_buckets:
        raise BucketNotAllowedError(f"bucket {location.bucket!r} is not one this deployment may read")


# --- Routes ------------------------------------------------------------------------------------


@app.post(
    "/v1/tags",
    summary="Tag an image given inline, by https URL, or by S3 reference",
    description="Exactly one of image, url or s3. With store=true (s3 only) the result is also stored "
    "and the object tagged, exactly as an upload would be.",
    responses=route_responses(
        TagResponse, "The normalized tags", 400, 403, 404, 413, 415, 422, 429, 500, 502, 504
    ),
    tags=["tagging"],
    operation_id="tagImage",
)
def post_tags(request: Annotated[TagRequest, Body()]) -> TagResponse:
    backend = get_backend()
    request_id = request_id_of(app)
    deadline = _deadline(backend)
    options = request.options
    if request.image is not None:
        image = _inline_image(request.image, backend)
        result = backend.tag_image(image, options, deadline=deadline)
        return TagResponse.of(
            result, request_id=request_id, source=SourceInfo(kind="image"), image=ImageInfo.of(image)
        )
    if request.url is not None:
        data = backend.fetch_url(request.url, deadline=deadline)
        image = inspect_image(data, limits=backend.config.limits)
        result = backend.tag_image(image, options, deadline=deadline)
        return TagResponse.of(
            result,
            request_id=request_id,
            source=SourceInfo(kind="url", url=request.url),
            image=ImageInfo.of(image),
        )
    assert request.s3 is not None
    location = request.s3.location()
    _check_bucket(location, backend)
    source = SourceInfo(kind="s3", s3=request.s3)
    if request.store:
        record = backend.process_object(location, options, deadline=deadline)
        return TagResponse.of(record, request_id=request_id, source=source)
    image = backend.read_object(location)
    result = backend.tag_image(image, options, deadline=deadline, s3=location)
    return TagResponse.of(result, request_id=request_id, source=source, image=ImageInfo.of(image))


@app.get(
    "/v1/images/<bucket>/<key>",
    summary="The stored record of an image",
    responses=route_responses(ImageRecordResponse, "The stored record", 400, 403, 404, 429, 500),
    tags=["images"],
    operation_id="getImage",
)
def get_image(
    bucket: BucketParam,
    key: KeyParam,
) -> ImageRecordResponse:
    record = get_backend().store.get(bucket, key)
    if record is None:
        raise ImageNotFoundError(f"no record for s3://{bucket}/{key}")
    return ImageRecordResponse.of(record, request_id=request_id_of(app))


@app.get(
    "/v1/tags/<tag>/images",
    summary="Images carrying a tag, best first",
    responses=page_responses(TagHitsPage),
    tags=["images"],
    operation_id="listImagesWithTag",
)
def get_tag_images(
    tag: Annotated[str, Path(min_length=1, max_length=256)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: CursorParam = None,
) -> TagHitsPage:
    page = get_backend().store.images_with_tag(tag, limit=limit, cursor=cursor)
    return TagHitsPage(request_id=request_id_of(app), tag=tag, items=page.items, cursor=page.cursor)


@app.post(
    "/v1/uploads",
    summary="A presigned PUT URL into the watched bucket, for images too large to send inline",
    description="PUT the bytes to the URL with the returned headers; the object is then tagged by the "
    "upload path (S3 notification) like any other upload.",
    responses=route_responses(UploadResponse, "Where and how to upload", 400, 403, 413, 415, 429, 500),
    tags=["uploads"],
    operation_id="createUpload",
)
def post_uploads(request: Annotated[UploadRequest, Body()]) -> UploadResponse:
    backend = get_backend()
    bucket = backend.settings.images_bucket
    if not bucket:
        raise ConfigError("IMAGES_BUCKET is not set")
    limit = backend.config.limits.max_bytes
    if request.size > limit:
        raise ImageTooLargeError(f"images are limited to {limit} bytes; this one is {request.size}")
    extension = _UPLOAD_EXTENSIONS[request.content_type]
    stem = _UNSAFE_KEY_CHARS.sub("-", (request.filename or "image").rsplit(".", 1)[0]).strip("-.")[:100]
    key = f"{backend.api.upload_prefix}{uuid.uuid4().hex}/{stem or 'image'}{extension}"
    expires = backend.api.upload_url_ttl_seconds
    url = backend.presign_put(bucket, key, content_type=request.content_type, expires_in=expires)
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
    """The document, generated from the route models; only statuses the API returns are listed
    (validation is wired as middlewares, api/resolver.py, so Powertools adds no 422 of its own)."""
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
    # Powertools adds its validation error schemas; unreferenced here (errors are ErrorResponse).
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


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Resolve one API Gateway REST proxy event (checks before validation: api/resolver.py)."""
    return app.resolve(event, context)
