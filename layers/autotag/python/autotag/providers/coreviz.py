"""CoreViz image tagging (``POST /api/ai/tag``): tags, prompted tags, or classification by choices.

The image goes as a URL: a presigned S3 URL when the original object is in S3 and is what the
provider should see, otherwise a base64 data URL. Two documented response versions exist (tags as
objects with confidences, or as plain strings); both are read. Secret: ``{"api_key": "…"}``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    ProviderResponseError,
    ThrottledError,
    TransientError,
)
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import (
    ChoiceScore,
    Classification,
    ProviderOutcome,
    ProviderStatus,
    Tag,
    TagKind,
    TagResult,
    tag_key,
)
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderRequest
from autotag.providers.failures import error_text, find_request_id, provider_error, status_class
from autotag.providers.responses import parse, parse_optional, parse_response
from autotag.providers.responses.coreviz import ErrorBody, TagObject, TagResponse

PATH = "/api/ai/tag"
DEFAULT_PRESIGN_SECONDS = 900
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-vercel-id", "cf-ray")

STATUS_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    400: (ProviderBadInputError, "invalid request or image URL"),
    401: (AuthError, "invalid or missing API key"),
    403: (AuthError, "API key not allowed"),
    422: (ProviderBadInputError, "image could not be processed"),
    429: (ThrottledError, "rate limited"),
}


class CoreVizProvider(Provider):
    name = "coreviz"
    default_endpoint = "https://lab.coreviz.io"
    # Size limits are "per plan"; a data URL travels in a JSON body, so stay well within the
    # request-body limits common to such hosts (counting the base64 text).
    constraints = ImageConstraints(
        max_bytes=4_000_000,
        base64_counts=True,
        formats=frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.GIF}),
    )
    capabilities = Capabilities(
        input_forms=(InputForm.URL, InputForm.DATA_URL),
        classification=True,
        prompt=True,
        auth="x-api-key header",
        rate_limit="per plan (HTTP 429)",
    )

    async def tag(self, request: ProviderRequest) -> TagResult:
        (api_key,) = self.secret().require("api_key", provider=self.key)
        image, via = self._image_reference(request)
        body: dict[str, Any] = {"image": image}
        opts = request.options
        if opts.prompt:
            body["prompt"] = opts.prompt
        if opts.choices:
            body["choices"] = list(opts.choices)
            body["single"] = bool(opts.single)
        response = await self.send_json(
            f"{self.endpoint}{PATH}",
            body,
            headers={"x-api-key": api_key},
            deadline=self.call_deadline(request),
            check=lambda r: self._check(r, secret=api_key),
        )
        return self._result(response, via=via)

    def _image_reference(self, request: ProviderRequest) -> tuple[str, str]:
        """(image field, how it was sent). A presigned URL only when the provider would see the
        same bytes we prepared (the original object was not re-encoded to fit)."""
        mode = str(self.config.options.get("image_input", "auto"))
        presign = self.context.presign
        usable = request.s3 is not None and presign is not None and not request.image.reencoded
        if mode != "data_url" and usable:
            assert request.s3 is not None
            assert presign is not None
            seconds = int(self.config.options.get("presign_seconds", DEFAULT_PRESIGN_SECONDS))
            return presign(request.s3, seconds), "presigned_url"
        image = request.image
        encoded = base64.b64encode(image.data).decode()
        return f"data:{image.content_type};base64,{encoded}", "data_url"

    def _check(self, response: httpx.Response, *, secret: str) -> None:
        if response.is_error:
            raise self._status_error(response, secret=secret)
        parse_response(
            TagResponse,
            response,
            provider=self.key,
            what=f"response is not the documented JSON (HTTP {response.status_code})",
            request_id=find_request_id(response, REQUEST_ID_HEADERS),
        )

    def _status_error(self, response: httpx.Response, *, secret: str) -> ProviderError:
        status = response.status_code
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        body = parse_optional(ErrorBody, response)
        detail = ": ".join(p for p in (body.error, body.message) if p is not None) if body else ""
        known = STATUS_ERRORS.get(status)
        if known is None:
            error_class, description = status_class(status, default=ProviderResponseError), f"HTTP {status}"
        else:
            error_class, description = known[0], f"{known[1]} (HTTP {status})"
        if status >= 500:
            error_class = TransientError
        return provider_error(
            error_class,
            error_text(description, detail, secrets=(secret,), request_id=request_id),
            provider=self.key,
            provider_code=status,
            request_id=request_id,
            response=response,
        )

    def _result(self, response: httpx.Response, *, via: str) -> TagResult:
        body = parse(
            TagResponse, response.json(), provider=self.key, what="response is not the documented JSON"
        )
        tags = self._tags(body)
        classification = self._classification(body)
        if classification is not None and tag_key(classification.label) not in tags:
            tags[tag_key(classification.label)] = Tag(
                name=classification.label,
                confidence=classification.confidence,
                provider=self.key,
                kind=TagKind.CONCEPT,
                categories=("classification",),
            )
        details: dict[str, str | int | float | bool | None] = {"image_input": via}
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        if request_id:
            details["request_id"] = request_id
        status = ProviderStatus(
            provider=self.key, status=ProviderOutcome.OK, tag_count=len(tags), details=details
        )
        return TagResult(tags=tuple(tags.values()), classification=classification, providers=(status,))

    def _tags(self, body: TagResponse) -> dict[str, Tag]:
        """Tags as objects ({"tag"|"name"|"label", "confidence"|"score"}) or as plain strings."""
        pairs: list[tuple[str, float | None]] = []
        for item in body.tags:
            if isinstance(item, TagObject):
                if item.text:
                    pairs.append((item.text, item.value))
            else:
                pairs.append((item, None))
        scale = _scale(c for _, c in pairs)
        tags: dict[str, Tag] = {}
        for name, confidence in pairs:
            if not name.strip():
                continue
            tag = Tag(name=name, confidence=_unit(confidence, scale), provider=self.key)
            current = tags.get(tag.key)
            if current is None or (tag.confidence or 0) > (current.confidence or 0):
                tags[tag.key] = tag
        return tags

    def _classification(self, body: TagResponse) -> Classification | None:
        pairs = [(item.choice, item.score) for item in body.all_scores]
        label = body.classification
        if label is None and not pairs:
            return None
        scale = _scale([c for _, c in pairs] + [body.confidence])
        scores = tuple(
            ChoiceScore(choice=choice, score=unit)
            for choice, score in pairs
            if (unit := _unit(score, scale)) is not None
        )
        confidence = _unit(body.confidence, scale)
        if label is None:
            best = max(scores, key=lambda s: s.score, default=None)
            if best is None:
                return None
            label, confidence = best.choice, best.score
        elif confidence is None:
            confidence = next((s.score for s in scores if s.choice == label), None)
        return Classification(label=label, confidence=confidence, scores=scores, provider=self.key)


def _scale(values: Any) -> float:
    """100 when any score is above 1 (a percentage), else 1: the documents say 0..1, be defensive."""
    return 100.0 if any(v is not None and v > 1.0 for v in values) else 1.0


def _unit(value: float | None, scale: float) -> float | None:
    if value is None:
        return None
    return min(1.0, max(0.0, value / scale))
