"""CoreViz image tagging (``POST /api/ai/tag``): tags, prompted tags, or classification by choices.

The image goes as a URL: a presigned S3 URL when the original object is in S3 and is what the
provider should see, otherwise a base64 data URL. Two documented response versions exist (tags as
objects with confidences, or as plain strings); both are read. Secret: ``{"api_key": "…"}``.
"""

from __future__ import annotations

import base64
import json
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
from autotag.providers.http import error_for_status, find_request_id, number, parse_retry_after, scrub, send

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
        languages=None,
        confidences=True,
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
        payload = json.dumps(body).encode()
        url = f"{self.endpoint}{PATH}"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST",
                url,
                content=payload,
                headers={"content-type": "application/json", "x-api-key": api_key},
            )

        response = await send(
            self.context.http,
            build,
            provider=self.key,
            deadline=self.call_deadline(request),
            policy=self.retry_policy,
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
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not ({"tags", "classification", "all_scores"} & body.keys()):
            raise ProviderResponseError(
                f"response is not the documented JSON (HTTP {response.status_code})",
                provider=self.key,
                request_id=find_request_id(response, REQUEST_ID_HEADERS),
            )

    def _status_error(self, response: httpx.Response, *, secret: str) -> ProviderError:
        status = response.status_code
        request_id = find_request_id(response, REQUEST_ID_HEADERS)
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = ""
        if isinstance(body, dict):
            parts = [str(body[k]) for k in ("error", "message") if isinstance(body.get(k), str)]
            detail = scrub(": ".join(parts), secret)[:200]
        known = STATUS_ERRORS.get(status)
        if known is None:
            error = error_for_status(response, provider=self.key)
            error_class: type[ProviderError] = type(error)
            description = f"HTTP {status}"
        else:
            error_class, description = known
            description = f"{description} (HTTP {status})"
        if status >= 500:
            error_class = TransientError
        message = f"{description}: {detail}" if detail else description
        if request_id:
            message += f" (request_id {request_id})"
        kwargs: dict[str, Any] = {"provider": self.key, "provider_code": status, "request_id": request_id}
        if error_class is ThrottledError:
            return ThrottledError(
                message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs
            )
        return error_class(message, **kwargs)

    def _result(self, response: httpx.Response, *, via: str) -> TagResult:
        body: dict[str, Any] = response.json()
        tags = self._tags(body.get("tags"))
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

    def _tags(self, raw: object) -> dict[str, Tag]:
        """Tags as objects ({"tag"|"name"|"label", "confidence"|"score"}) or as plain strings."""
        items = raw if isinstance(raw, list) else []
        pairs: list[tuple[str, float | None]] = []
        for item in items:
            if isinstance(item, str):
                pairs.append((item, None))
            elif isinstance(item, dict):
                name = next((item[k] for k in ("tag", "name", "label") if isinstance(item.get(k), str)), None)
                if name:
                    pairs.append((name, number(item.get("confidence", item.get("score")))))
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

    def _classification(self, body: dict[str, Any]) -> Classification | None:
        raw_scores = body.get("all_scores")
        pairs: list[tuple[str, float | None]] = []
        for item in raw_scores if isinstance(raw_scores, list) else []:
            if isinstance(item, dict) and isinstance(item.get("choice"), str):
                pairs.append((item["choice"], number(item.get("score"))))
        label = body.get("classification") if isinstance(body.get("classification"), str) else None
        if label is None and not pairs:
            return None
        scale = _scale([c for _, c in pairs] + [number(body.get("confidence"))])
        scores = tuple(
            ChoiceScore(choice=choice, score=unit)
            for choice, score in pairs
            if (unit := _unit(score, scale)) is not None
        )
        confidence = _unit(number(body.get("confidence")), scale)
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
