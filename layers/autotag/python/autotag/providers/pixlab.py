"""PixLab ``tagimg``: confidence-scored labels for an uploaded image (or an image URL).

By default the bytes go as a multipart upload (``POST /tagimg``) with the key as the ``key``
form field; options switch the key to the ``WWW-Authenticate`` header and the image to a URL
(a presigned S3 URL). The key never goes in the URL, so it cannot reach access logs. Errors
arrive as JSON ``status`` ≠ 200 with ``error``, even on HTTP 200. Secret: ``{"api_key": "…"}``.
"""

from __future__ import annotations

import json

import httpx

from autotag.config import ProviderConfig
from autotag.errors import ConfigError, ProviderError, ProviderResponseError, TransientError
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagResult
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderContext, ProviderRequest
from autotag.providers.failures import (
    error_for_status,
    error_text,
    find_request_id,
    provider_error,
    status_class,
)
from autotag.providers.responses import parse_optional
from autotag.providers.responses.pixlab import TagImgResponse

PATH = "/tagimg"
DEFAULT_PRESIGN_SECONDS = 900
KEY_PLACES = ("param", "header")
IMAGE_INPUTS = ("upload", "url")
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")


class PixLabProvider(Provider):
    name = "pixlab"
    default_endpoint = "https://api.pixlab.io"
    # The document states no size limit; stay at a size every PixLab plan accepts for uploads.
    constraints = ImageConstraints(
        max_bytes=10_000_000,
        formats=frozenset(
            {ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.GIF, ImageFormat.BMP}
        ),
    )
    capabilities = Capabilities(
        input_forms=(InputForm.BYTES, InputForm.URL),
        auth="key form field/JSON field, or WWW-Authenticate header",
        rate_limit="per plan",
    )

    def __init__(self, config: ProviderConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        self.key_in = str(config.options.get("key_in", "param"))
        self.image_input = str(config.options.get("image_input", "upload"))
        if self.key_in not in KEY_PLACES:
            raise ConfigError(f"{config.key}: options.key_in must be one of {', '.join(KEY_PLACES)}")
        if self.image_input not in IMAGE_INPUTS:
            raise ConfigError(f"{config.key}: options.image_input must be one of {', '.join(IMAGE_INPUTS)}")

    async def tag(self, request: ProviderRequest) -> TagResult:
        (api_key,) = self.secret().require("api_key", provider=self.key)
        url = f"{self.endpoint}{PATH}"
        headers = {"www-authenticate": api_key} if self.key_in == "header" else {}
        key_field = {"key": api_key} if self.key_in == "param" else {}
        image_url = self._image_url(request)
        image = request.image

        def build() -> httpx.Request:
            if image_url is not None:
                body = json.dumps({"img": image_url, **key_field}).encode()
                return httpx.Request(
                    "POST", url, content=body, headers={**headers, "content-type": "application/json"}
                )
            filename = f"image.{'jpg' if image.format is ImageFormat.JPEG else image.format.value}"
            return httpx.Request(
                "POST",
                url,
                data=key_field,
                files={"file": (filename, image.data, image.content_type)},
                headers=headers,
            )

        response = await self.send(
            build, deadline=self.call_deadline(request), check=lambda r: self._check(r, secret=api_key)
        )
        return self._result(response, via="url" if image_url else "upload")

    def _image_url(self, request: ProviderRequest) -> str | None:
        """A presigned URL in URL mode, when the S3 original is what we would upload."""
        presign = self.context.presign
        if self.image_input != "url" or request.s3 is None or presign is None or request.image.reencoded:
            return None
        return presign(request.s3, int(self.config.options.get("presign_seconds", DEFAULT_PRESIGN_SECONDS)))

    def _check(self, response: httpx.Response, *, secret: str) -> None:
        body = parse_optional(TagImgResponse, response)
        status = body.status if body is not None else None
        if body is not None and status is not None and status != 200:
            raise self._body_error(body, status, response, secret=secret)
        if response.is_error:
            raise error_for_status(response, provider=self.key)
        if body is None or status != 200 or body.tags is None:
            raise ProviderResponseError(
                f"response is not the documented JSON (HTTP {response.status_code})",
                provider=self.key,
                request_id=find_request_id(response, REQUEST_ID_HEADERS),
            )

    def _body_error(
        self, body: TagImgResponse, status: int, response: httpx.Response, *, secret: str
    ) -> ProviderError:
        """The ``status`` PixLab puts in its JSON is HTTP-like."""
        error_class = status_class(status)
        if error_class is ProviderError and response.status_code >= 500:
            error_class = TransientError
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        return provider_error(
            error_class,
            error_text(f"status {status}", body.error, secrets=(secret,), request_id=request_id),
            provider=self.key,
            provider_code=status,
            request_id=request_id,
            response=response,
        )

    def _result(self, response: httpx.Response, *, via: str) -> TagResult:
        body = parse_optional(TagImgResponse, response)
        pairs = [
            (item.name, item.confidence) if not isinstance(item, str) else (item, None)
            for item in (body.tags if body is not None and body.tags is not None else [])
        ]
        # The scale is not documented (samples suggest 0..1); any value above 1 means percent.
        scale = 100.0 if any(c is not None and c > 1.0 for _, c in pairs) else 1.0
        tags: dict[str, Tag] = {}
        for name, confidence in pairs:
            unit = None if confidence is None else min(1.0, max(0.0, confidence / scale))
            tag = Tag(name=name, confidence=unit, provider=self.key)
            current = tags.get(tag.key)
            if current is None or (tag.confidence or 0) > (current.confidence or 0):
                tags[tag.key] = tag
        details: dict[str, str | int | float | bool | None] = {"image_input": via, "confidence_scale": scale}
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        if request_id:
            details["request_id"] = request_id
        status = ProviderStatus(
            provider=self.key, status=ProviderOutcome.OK, tag_count=len(tags), details=details
        )
        return TagResult(tags=tuple(tags.values()), providers=(status,))
