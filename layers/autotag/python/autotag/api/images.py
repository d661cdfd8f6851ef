"""Routes the web console works with: tag corrections, the recent-images feed, thumbnails, and the
console's own static files (``/console/``, the only paths served without an API key: they carry no
data, and every call the page makes sends the key; see docs/console.md)."""

from __future__ import annotations

import base64
from functools import lru_cache
from importlib import resources
from typing import Annotated

from autotag.api.backend import get_backend
from autotag.api.errors import page_responses, request_id_of, route_responses
from autotag.api.models import (
    BucketParam,
    CorrectionRequest,
    CorrectionResponse,
    CursorParam,
    ImageSummaryPage,
    KeyParam,
    ThumbnailResponse,
)
from autotag.corrections import CorrectionRequest as Correction
from autotag.corrections import actor_of
from autotag.errors import BucketNotAllowedError, ImageNotFoundError, InvalidRequestError, RouteMissingError
from autotag.image import S3Location
from autotag.store.base import ImageStatus
from autotag.store.keys import MAX_PAGE_SIZE
from autotag.thumbnails import DEFAULT_THUMBNAIL_SIDE, THUMBNAIL_SIDES
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

CONSOLE_PATH = "/console"
"""Where the API serves the web console's static files: the only paths that need no API key (the CDK
stack and the local gateway exempt them)."""
CONSOLE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CONSOLE_HEADERS = {
    # The page runs only its own script and talks only to this API; thumbnails arrive as data: URLs.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=len(CONSOLE_FILES))
def console_file(name: str) -> str:
    return resources.files("autotag.console").joinpath(name).read_text(encoding="utf-8")


def register(app: APIGatewayRestResolver) -> None:
    """Add the routes to the API's resolver (after the core routes: their order decides matches)."""

    @app.patch(
        "/v1/images/<bucket>/<key>/tags",
        summary="Correct an image's tags: add and remove tags",
        description="People's decisions are stored apart from the providers' output and win over it; "
        "they survive re-tagging and re-uploads of the same bytes. The tag index and the object's S3 "
        "tags follow at once, and an `Image Tags Corrected` event is published. Who decided is taken "
        "from the request (the API key id).",
        responses=route_responses(
            CorrectionResponse,
            "The record with the corrections and the tags now in force",
            400,
            403,
            404,
            409,
            415,
            429,
            500,
        ),
        tags=["images"],
        operation_id="correctImageTags",
    )
    def patch_image_tags(
        bucket: BucketParam, key: KeyParam, request: Annotated[CorrectionRequest, Body()]
    ) -> CorrectionResponse:
        backend = get_backend()
        if bucket not in backend.settings.allowed_buckets:
            raise BucketNotAllowedError(f"bucket {bucket!r} is not one this deployment may read")
        request_id = request_id_of(app)
        outcome = backend.correct_tags(
            bucket,
            key,
            Correction(
                add=tuple(request.add),
                remove=tuple(request.remove),
                by=actor_of(app.current_event.raw_event.get("requestContext")),
                request_id=request_id,
            ),
        )
        record = outcome.record
        return CorrectionResponse(
            request_id=request_id,
            image=record,
            tags_in_force=record.tags_in_force,
            added=list(outcome.added),
            removed=list(outcome.removed),
            s3_tags=outcome.s3_tags,
        )

    @app.get(
        "/v1/images",
        summary="Images by status, most recently processed first",
        responses=page_responses(ImageSummaryPage),
        tags=["images"],
        operation_id="listImages",
    )
    def list_images(
        status: Annotated[ImageStatus, Query()] = ImageStatus.TAGGED,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 24,
        cursor: CursorParam = None,
    ) -> ImageSummaryPage:
        page = get_backend().store.recent(status, limit=limit, cursor=cursor)
        return ImageSummaryPage(
            request_id=request_id_of(app), status=status, items=page.items, cursor=page.cursor
        )

    @app.get(
        "/v1/thumbnails/<bucket>/<key>",
        summary="A small upright rendition of a stored image, made on the fly",
        responses=route_responses(
            ThumbnailResponse, "The thumbnail, base64", 400, 403, 404, 413, 415, 422, 429, 500
        ),
        tags=["images"],
        operation_id="getThumbnail",
    )
    def get_thumbnail(
        bucket: BucketParam,
        key: KeyParam,
        size: Annotated[
            int, Query(description=f"Longest side in pixels: one of {', '.join(map(str, THUMBNAIL_SIDES))}")
        ] = DEFAULT_THUMBNAIL_SIDE,
    ) -> Response[str]:
        backend = get_backend()
        if size not in THUMBNAIL_SIDES:
            raise InvalidRequestError(f"size must be one of {', '.join(map(str, THUMBNAIL_SIDES))}")
        location = S3Location(bucket, key)
        if bucket not in backend.settings.allowed_buckets:
            raise BucketNotAllowedError(f"bucket {bucket!r} is not one this deployment may read")
        if backend.store.get(bucket, key) is None:
            raise ImageNotFoundError(f"no record for s3://{bucket}/{key}")
        image = backend.thumbnail(location, size)
        body = ThumbnailResponse(
            request_id=request_id_of(app),
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            data=base64.b64encode(image.data).decode(),
        )
        return Response(
            200,
            content_types.APPLICATION_JSON,
            body=body.model_dump_json(),
            # The browser keeps it for the session: the same key and size are the same picture
            # until the object is replaced, and a replaced object is re-tagged (the page refetches).
            headers={"Cache-Control": "private, max-age=300"},
        )

    @app.get(CONSOLE_PATH, include_in_schema=False)
    def get_console() -> Response[str]:
        if not app.current_event.path.endswith("/"):
            # Relative asset URLs need the trailing slash (the stage prefix is unknown here).
            return Response(301, content_types.TEXT_HTML, body="", headers={"Location": "console/"})
        return _console_response("index.html")

    @app.get(f"{CONSOLE_PATH}/<name>", include_in_schema=False)
    def get_console_file(name: str) -> Response[str]:
        if name not in CONSOLE_FILES:
            raise RouteMissingError(f"no console file {name!r}")
        return _console_response(name)


def _console_response(name: str) -> Response[str]:
    return Response(200, CONSOLE_FILES[name], body=console_file(name), headers=dict(CONSOLE_HEADERS))
