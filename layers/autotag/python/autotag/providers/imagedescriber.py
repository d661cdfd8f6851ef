"""imagedescriber.app AI Image Tag API (``POST /api/v1/generate_tags``).

Bearer key, a base64 data URL, ``lang`` in seven languages; answers tags (no confidences),
a title and a description, plus the credits used and left. Errors are a body ``code`` ≠ 0.
Secret: ``{"api_key": "…"}``.
"""

from __future__ import annotations

import base64

import httpx

from autotag.errors import (
    AuthError,
    ContentBlockedError,
    ProviderBadInputError,
    ProviderError,
    ProviderResponseError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.image import ImageConstraints, ImageFormat
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagResult, tag_key
from autotag.providers.base import Capabilities, InputForm, Provider, ProviderRequest
from autotag.providers.failures import (
    DETAIL_LIMIT,
    error_for_status,
    error_text,
    parse_retry_after,
    provider_error,
)
from autotag.providers.redaction import scrub
from autotag.providers.responses import parse, parse_optional
from autotag.providers.responses.imagedescriber import GenerateTagsResponse

LANGUAGES = ("en", "zh", "fr", "de", "es", "ja", "ko")
PATH = "/api/v1/generate_tags"
THROTTLE_WAIT_SECONDS = 2.0
"""Wait after code 1004 when no Retry-After is given: one request's share of 30 per minute."""

# Body codes from the API document, with our class and a plain description.
ERROR_CODES: dict[int, tuple[type[ProviderError], str]] = {
    1002: (AuthError, "unauthorized: the authorization header is missing or malformed"),
    1003: (AuthError, "invalid API key"),
    1004: (ThrottledError, "too many requests (30 per minute per key)"),
    1005: (ProviderBadInputError, "invalid parameters"),
    2002: (QuotaError, "insufficient credits"),
    2003: (ContentBlockedError, "content blocked by the provider's filter"),
    2004: (ProviderBadInputError, "invalid image format (JPG, PNG or WebP up to 4 MB)"),
    2005: (TransientError, "image upload failed"),
    5050: (TransientError, "provider internal error"),
}


class ImageDescriberProvider(Provider):
    name = "imagedescriber"
    default_endpoint = "https://api.imagedescriber.app"
    # "The maximum image size is 4MB" does not say whether the file or the base64 text is
    # measured; counting the base64 text (and decimal MB) means a size error can never happen.
    constraints = ImageConstraints(
        max_bytes=4_000_000,
        base64_counts=True,
        formats=frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP}),
    )
    capabilities = Capabilities(
        input_forms=(InputForm.DATA_URL,),
        languages=LANGUAGES,
        confidences=False,
        captions=True,
        auth="Bearer API key",
        rate_limit="30 requests/minute per key (code 1004 beyond)",
        default_rate_limit_per_minute=30,
    )

    async def tag(self, request: ProviderRequest) -> TagResult:
        (api_key,) = self.secret().require("api_key", provider=self.key)
        lang = provider_language(request.options.lang)
        image = request.image
        response = await self.send_json(
            f"{self.endpoint}{PATH}",
            {
                "image": f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}",
                "lang": lang,
            },
            headers={"authorization": f"Bearer {api_key}"},
            deadline=self.call_deadline(request),
            check=lambda r: self._check(r, secret=api_key),
        )
        return self._result(response, lang=lang, requested=request.options.lang)

    def _check(self, response: httpx.Response, *, secret: str) -> None:
        body = parse_optional(GenerateTagsResponse, response)
        if body is not None and body.code not in (None, 0, "0"):
            raise self._error_for_code(body, response, secret=secret)
        if response.is_error:
            raise error_for_status(response, provider=self.key)
        if body is None or body.data is None:
            raise ProviderResponseError(
                f"response is not the documented JSON (HTTP {response.status_code})", provider=self.key
            )

    def _error_for_code(
        self, body: GenerateTagsResponse, response: httpx.Response, *, secret: str
    ) -> ProviderError:
        try:
            number = int(body.code)
        except (TypeError, ValueError):
            number = None
        error_class, description = ERROR_CODES.get(
            number if number is not None else -1, (ProviderError, "provider error")
        )
        if number not in ERROR_CODES and response.status_code >= 500:
            error_class = TransientError
        detail = scrub(body.message or "", secret)[:DETAIL_LIMIT]
        if detail.casefold() in description.casefold():
            detail = ""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return provider_error(
            error_class,
            error_text(description, detail, request_id=body.request_id),
            provider=self.key,
            provider_code=body.code,
            request_id=body.request_id,
            retry_after=THROTTLE_WAIT_SECONDS if retry_after is None else retry_after,
        )

    def _result(self, response: httpx.Response, *, lang: str, requested: str) -> TagResult:
        body = parse(GenerateTagsResponse, response.json(), provider=self.key, what="response has no data")
        data = body.data
        block = data.tags if data is not None else None
        tags: dict[str, Tag] = {}
        for name in block.tags if block is not None else ():
            if name and tag_key(name) not in tags:
                tags[tag_key(name)] = Tag(name=name, provider=self.key, names={lang: name.strip()})
        credits = data.credits if data is not None else None
        details: dict[str, str | int | float | bool | None] = {
            "request_id": body.request_id,
            "lang": lang,
            "credits_consumed": credits.amount if credits is not None else None,
            "credits_remaining": credits.remaining if credits is not None else None,
        }
        if provider_language(requested) != requested.lower():
            details["lang_requested"] = requested
        status = ProviderStatus(
            provider=self.key, status=ProviderOutcome.OK, tag_count=len(tags), details=details
        )
        return TagResult(
            tags=tuple(tags.values()),
            title=block.title if block is not None else None,
            description=block.description if block is not None else None,
            providers=(status,),
        )


def provider_language(lang: str) -> str:
    """The provider's language for a requested code (``zh-CN`` → ``zh``); English when unsupported."""
    primary = lang.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else "en"
