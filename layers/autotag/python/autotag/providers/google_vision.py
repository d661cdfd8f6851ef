"""Google Cloud Vision ``POST /v1/images:annotate`` with an API key.

LABEL_DETECTION always; OBJECT_LOCALIZATION too with the option ``objects: true`` (normalized
polygons become boxes). Labels come in English only. Errors arrive two ways: an HTTP error with
Google's envelope (``{"error": {code, status, details: [ErrorInfo{reason, metadata}]}}``), or a
per-image ``google.rpc.Status`` inside an HTTP 200 (``responses[0].error``).

The key travels as ``?key=`` (Vision's documented form) or, with ``api_key_in: header``, as
``x-goog-api-key``; it is never put into an error message, and the shared HTTP client's log
redaction blanks it in logged URLs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import httpx

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import BoundingBox, Tag, TagKind, TagResult, tag_key
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderRequest
from autotag.providers.failures import error_for_status, provider_error
from autotag.providers.responses import parse_optional, parse_response
from autotag.providers.responses.google_vision import (
    AnnotateImageResponse,
    AnnotateResponse,
    BoundingPoly,
    ErrorEnvelope,
    Label,
    LocalizedObject,
    Status,
)
from autotag.retry import Deadline

DEFAULT_MAX_RESULTS = 50
URL_EXPIRY_SECONDS = 600

# google.rpc.Code → taxonomy, for per-image errors inside an HTTP 200
_RPC_CLASSES: dict[int, type[ProviderError]] = {
    1: TransientError,  # CANCELLED
    2: TransientError,  # UNKNOWN
    3: ProviderBadInputError,  # INVALID_ARGUMENT ("Bad image data.")
    4: TransientError,  # DEADLINE_EXCEEDED
    5: ProviderBadInputError,  # NOT_FOUND (an image URI)
    7: AuthError,  # PERMISSION_DENIED
    8: ThrottledError,  # RESOURCE_EXHAUSTED
    9: ProviderBadInputError,  # FAILED_PRECONDITION
    10: TransientError,  # ABORTED
    11: ProviderBadInputError,  # OUT_OF_RANGE
    13: TransientError,  # INTERNAL
    14: TransientError,  # UNAVAILABLE (e.g. "We can not access the URL currently")
    16: AuthError,  # UNAUTHENTICATED
}
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
_QUOTA_REASONS = frozenset({"BILLING_DISABLED", "BILLING_NOT_ACTIVE", "ACCOUNT_STATE_INVALID"})


class GoogleVisionProvider(Provider):
    name = "google_vision"
    default_endpoint = "https://vision.googleapis.com"
    constraints = ImageConstraints(
        # the JSON request is capped at 10 MB, so the base64 content must leave room for the rest
        max_bytes=9_900_000,
        base64_counts=True,
        max_pixels=75_000_000,  # an unconfirmed cap; downscaling past it costs labels nothing
        formats=frozenset(
            {ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF, ImageFormat.BMP, ImageFormat.WEBP}
        ),
    )
    capabilities = Capabilities(
        input_forms=(InputForm.BASE64, InputForm.URL),
        boxes=True,
        auth="API key",
        rate_limit="per-project requests/minute quota (1,800/min by default)",
        default_rate_limit_per_minute=1800,
    )

    async def tag(self, request: ProviderRequest) -> TagResult:
        (api_key,) = self.secret().require("api_key", provider=self.key)
        deadline = self.call_deadline(request)
        url = self._presigned_url(request)
        body = await self._annotate(self._entry(request, url), str(api_key), deadline)
        if url is not None and _is_fetch_failure(body.responses[0]):
            # Google could not fetch the URL; sending the bytes is the documented remedy.
            body = await self._annotate(self._entry(request, None), str(api_key), deadline)
        return self._result(body.responses[0])

    def _entry(self, request: ProviderRequest, url: str | None) -> dict[str, Any]:
        options = request.options
        max_results = options.max_tags if options.max_tags is not None else DEFAULT_MAX_RESULTS
        max_results = max(1, max_results)
        model = self.config.options.get("model")
        features: list[dict[str, Any]] = [{"type": "LABEL_DETECTION", "maxResults": max_results}]
        if self.config.options.get("objects"):
            features.append({"type": "OBJECT_LOCALIZATION", "maxResults": max_results})
        if model:
            for feature in features:
                feature["model"] = str(model)
        image: dict[str, Any] = (
            {"source": {"imageUri": url}}
            if url is not None
            else {"content": base64.b64encode(request.image.data).decode("ascii")}
        )
        return {"image": image, "features": features}

    def _presigned_url(self, request: ProviderRequest) -> str | None:
        if not self.config.options.get("use_url") or request.s3 is None or self.context.presign is None:
            return None
        if request.source.format not in self.constraints.formats or request.source.size > 20_000_000:
            return None
        expiry = int(self.config.options.get("url_expiry_seconds", URL_EXPIRY_SECONDS))
        return self.context.presign(request.s3, expiry)

    async def _annotate(self, entry: dict[str, Any], api_key: str, deadline: Deadline) -> AnnotateResponse:
        payload = json.dumps({"requests": [entry]}, separators=(",", ":")).encode("utf-8")
        url = httpx.URL(f"{self.endpoint}/v1/images:annotate")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.config.options.get("api_key_in", "query") == "header":
            headers["x-goog-api-key"] = api_key
        else:
            url = url.copy_merge_params({"key": api_key})

        def build() -> httpx.Request:
            return httpx.Request("POST", url, headers=headers, content=payload)

        def check(response: httpx.Response) -> None:
            if response.is_error:
                raise self._http_error(response, api_key)

        response = await self.send(build, deadline=deadline, check=check)
        return parse_response(
            AnnotateResponse, response, provider=self.key, what="response has no responses[0]"
        )

    def _http_error(self, response: httpx.Response, api_key: str) -> ProviderError:
        envelope = parse_optional(ErrorEnvelope, response)
        error = envelope.error if envelope is not None else None
        if error is None:
            return error_for_status(response, provider=self.key)
        status_name = error.status or ""
        reason, metadata = error.error_info()
        text = _clean(error.message, api_key) or f"HTTP {response.status_code}"
        if reason:
            text = f"{text} ({reason})"
        status = response.status_code
        provider_code = status_name or status
        error_class: type[ProviderError] | None = None
        if reason in _KEY_REASONS:
            error_class = AuthError
        elif reason in _QUOTA_REASONS:
            error_class = QuotaError
        elif status == 429 or status_name == "RESOURCE_EXHAUSTED":
            error_class = QuotaError if _per_day(metadata) else ThrottledError
        elif status in (401, 403) or status_name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            error_class = AuthError
        elif status >= 500:
            error_class = TransientError
        elif status == 400 or status_name == "INVALID_ARGUMENT":
            error_class = ProviderBadInputError
        if error_class is None:
            return error_for_status(response, provider=self.key, message=text, provider_code=provider_code)
        return provider_error(
            error_class, text, provider=self.key, provider_code=provider_code, response=response
        )

    def _result(self, answer: AnnotateImageResponse) -> TagResult:
        labels = [self._label(a) for a in answer.labelAnnotations]
        objects = [self._object(a) for a in answer.localizedObjectAnnotations]
        error = answer.error
        # annotations that came back are valid even when another feature failed: keep them
        if error is not None and (error.code or error.message) and not (labels or objects):
            raise self._image_error(error)
        return TagResult(tags=tuple(_merge_objects(labels, objects)))

    def _image_error(self, error: Status) -> ProviderError:
        number = error.code if error.code is not None else 2
        cls = _RPC_CLASSES.get(number, ProviderError)
        text = _clean(error.message, None) or f"image error {number}"
        return cls(text, provider=self.key, provider_code=number)

    def _label(self, annotation: Label) -> Tag:
        name = annotation.description
        return Tag(
            name=name,
            confidence=_score(annotation.score),
            provider=self.key,
            kind=TagKind.LABEL,
            names={annotation.locale or "en": name.strip()},
        )

    def _object(self, annotation: LocalizedObject) -> Tag:
        name = annotation.name
        score = _score(annotation.score)
        box = _box(annotation.boundingPoly, score)
        return Tag(
            name=name,
            confidence=score,
            provider=self.key,
            kind=TagKind.OBJECT,
            names={annotation.languageCode or "en": name.strip()},
            boxes=(box,) if box is not None else (),
        )


def _merge_objects(labels: list[Tag], objects: list[Tag]) -> list[Tag]:
    """One tag per name: an object that is also a label adds its box to the label; several
    objects of one name (two bicycles) become one object tag with several boxes."""
    merged: dict[str, Tag] = {tag.key: tag for tag in labels}
    for obj in objects:
        key = tag_key(obj.name)
        current = merged.get(key)
        if current is None:
            merged[key] = obj
            continue
        best = max(current.confidence or 0.0, obj.confidence or 0.0)
        merged[key] = current.model_copy(update={"boxes": current.boxes + obj.boxes, "confidence": best})
    return list(merged.values())


def _is_fetch_failure(answer: AnnotateImageResponse) -> bool:
    return answer.error is not None and answer.error.code == 14


def _per_day(metadata: Mapping[str, str]) -> bool:
    """Whether the exhausted quota is a daily one (waiting minutes will not help)."""
    limit = " ".join(metadata.get(k, "") for k in ("quota_limit", "quota_metric", "quota_unit")).lower()
    return "perday" in limit.replace(" ", "").replace("_", "") or "/d/" in limit


def _clean(message: str | None, api_key: str | None) -> str:
    text = message or ""
    if api_key:
        text = text.replace(api_key, "***")
    return text.strip()[:300]


def _score(value: float | None) -> float | None:
    return None if value is None else min(1.0, max(0.0, value))


def _box(poly: BoundingPoly | None, confidence: float | None) -> BoundingBox | None:
    if poly is None or not poly.normalizedVertices:
        return None
    xs = [v.x for v in poly.normalizedVertices]
    ys = [v.y for v in poly.normalizedVertices]
    return BoundingBox.clamped(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys), confidence)
