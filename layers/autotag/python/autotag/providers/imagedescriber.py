"""imagedescriber.app AI Image Tag API (``POST /api/v1/generate_tags``).

Bearer key, a base64 data URL, ``lang`` in seven languages; answers tags (no confidences),
a title and a description, plus the credits used and left. Errors are a body ``code`` ≠ 0.
Secret: ``{"api_key": "…"}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

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
from autotag.providers.http import error_for_status, parse_retry_after, scrub, send

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
        payload = json.dumps(
            {
                "image": f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}",
                "lang": lang,
            }
        ).encode()
        url = f"{self.endpoint}{PATH}"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST",
                url,
                content=payload,
                headers={"content-type": "application/json", "authorization": f"Bearer {api_key}"},
            )

        response = await send(
            self.context.http,
            build,
            provider=self.key,
            deadline=self.call_deadline(request),
            policy=self.retry_policy,
            check=lambda r: self._check(r, secret=api_key),
        )
        return self._result(response.json(), lang=lang, requested=request.options.lang)

    def _check(self, response: httpx.Response, *, secret: str) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        if code not in (None, 0, "0"):
            raise self._error_for_code(body, response, secret=secret)
        if response.is_error:
            raise error_for_status(response, provider=self.key)
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ProviderResponseError(
                f"response is not the documented JSON (HTTP {response.status_code})", provider=self.key
            )

    def _error_for_code(
        self, body: dict[str, Any], response: httpx.Response, *, secret: str
    ) -> ProviderError:
        code = body.get("code")
        request_id = _text(body.get("request_id"))
        try:
            number = int(code)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = None
        error_class, description = ERROR_CODES.get(
            number if number is not None else -1, (ProviderError, "provider error")
        )
        if number not in ERROR_CODES and response.status_code >= 500:
            error_class = TransientError
        provider_message = scrub(_text(body.get("message")) or "", secret)[:200]
        message = description
        if provider_message and provider_message.casefold() not in description.casefold():
            message += f": {provider_message}"
        if request_id:
            message += f" (request_id {request_id})"
        kwargs: dict[str, Any] = {"provider": self.key, "provider_code": code, "request_id": request_id}
        if error_class is ThrottledError:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return ThrottledError(
                message, retry_after=THROTTLE_WAIT_SECONDS if retry_after is None else retry_after, **kwargs
            )
        return error_class(message, **kwargs)

    def _result(self, body: dict[str, Any], *, lang: str, requested: str) -> TagResult:
        data = body["data"]
        block = data.get("tags") if isinstance(data.get("tags"), dict) else {}
        raw_tags = block.get("tags")
        tags: dict[str, Tag] = {}
        for raw in raw_tags if isinstance(raw_tags, list) else ():
            name = _text(raw)
            if name and tag_key(name) not in tags:
                tags[tag_key(name)] = Tag(name=name, provider=self.key, names={lang: name.strip()})
        credits = data.get("credits") if isinstance(data.get("credits"), dict) else {}
        details: dict[str, str | int | float | bool | None] = {
            "request_id": _text(body.get("request_id")),
            "lang": lang,
            "credits_consumed": _number(credits.get("amount")),
            "credits_remaining": _number(credits.get("remaining")),
        }
        if provider_language(requested) != requested.lower():
            details["lang_requested"] = requested
        status = ProviderStatus(
            provider=self.key, status=ProviderOutcome.OK, tag_count=len(tags), details=details
        )
        return TagResult(
            tags=tuple(tags.values()),
            title=_text(block.get("title")),
            description=_text(block.get("description")),
            providers=(status,),
        )


def provider_language(lang: str) -> str:
    """The provider's language for a requested code (``zh-CN`` → ``zh``); English when unsupported."""
    primary = lang.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else "en"


def _text(value: object) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _number(value: object) -> int | float | str | None:
    """Credits as a number (the example shows them as strings, the table as numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text or None
    return int(number) if number.is_integer() else number
