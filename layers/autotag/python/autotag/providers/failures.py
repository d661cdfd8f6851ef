"""What a provider's failure becomes: the one place where HTTP statuses, throttling (429 and
Retry-After) and provider error codes turn into the typed errors of :mod:`autotag.errors`.

A provider answers 429, step by step:

1. The adapter's ``check`` (passed to :func:`autotag.providers.http.send`) sees the response. An
   adapter whose provider signals throttling some other way (a body code: imagedescriber 1004,
   Huawei APIG.0308, PixLab ``status: 429``, Google RESOURCE_EXHAUSTED) picks the class from its
   own table (Google's per-day quota is a ``QuotaError``: waiting minutes will not help);
   everything else goes through :func:`status_class`, where 429 is
   :class:`~autotag.errors.ThrottledError`.
2. :func:`provider_error` builds the error; a ``ThrottledError`` carries ``retry_after`` read from
   the ``Retry-After`` header by :func:`parse_retry_after` (delta-seconds or an HTTP date), unless
   the adapter knows better (ImageKit's ``X-RateLimit-Reset``, imagedescriber's 2 s default).
3. ``send`` retries through :func:`autotag.retry.retry_async`: ``ThrottledError`` is retryable;
   the wait is the jittered backoff or ``retry_after``, whichever is longer. A ``retry_after``
   beyond ``RetryPolicy.max_retry_after`` (30 s), a wait that would cross the provider's deadline
   (``timeout_seconds``), or the last of ``max_attempts`` ends the retries and the error is raised.
4. The provider fan-out (``Tagger``) records that provider as failed (``error_code``
   ``throttled``, retryable) beside the other providers' tags. When no provider succeeded, the
   ``AllProvidersFailedError`` is retryable: an S3 event is redelivered (SQS), the API answers
   429 ``throttled`` with ``Retry-After`` (docs/api.md).

Rekognition goes through boto3, whose own retries handle throttling (standard mode); its error
codes are mapped in :mod:`autotag.providers.rekognition` with :func:`status_class` as the fallback.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    ProviderResponseError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.providers.redaction import scrub

if TYPE_CHECKING:
    import httpx

DETAIL_LIMIT = 200
"""Characters of provider-supplied text kept in an error message."""


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def status_class(status: int, *, default: type[ProviderError] = ProviderError) -> type[ProviderError]:
    """The taxonomy class for an HTTP status (or an HTTP-like status a provider puts in its body)."""
    if status == 429:
        return ThrottledError
    if status in (401, 403):
        return AuthError
    if status == 402:
        return QuotaError
    if status in (408, 425) or status >= 500:
        return TransientError
    if 400 <= status < 500:
        return ProviderBadInputError
    return default


def provider_error(
    error_class: type[ProviderError],
    message: str,
    *,
    provider: str,
    provider_code: str | int | None = None,
    request_id: str | None = None,
    response: httpx.Response | None = None,
    retry_after: float | None = None,
    code: str | None = None,
) -> ProviderError:
    """An error of `error_class`; a throttling error waits `retry_after`, else the response's
    Retry-After."""
    if error_class is ThrottledError:
        if retry_after is None and response is not None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return ThrottledError(
            message,
            retry_after=retry_after,
            provider=provider,
            provider_code=provider_code,
            request_id=request_id,
        )
    return error_class(
        message, provider=provider, provider_code=provider_code, request_id=request_id, code=code
    )


def error_for_status(
    response: httpx.Response,
    *,
    provider: str,
    message: str | None = None,
    provider_code: str | int | None = None,
    request_id: str | None = None,
) -> ProviderError:
    """The default mapping of an HTTP error status to the taxonomy (providers refine it)."""
    status = response.status_code
    error_class = status_class(status, default=ProviderResponseError)
    if error_class is ProviderResponseError:
        message = f"unexpected HTTP {status}"
    text = message or f"HTTP {status}"
    return provider_error(
        error_class,
        text,
        provider=provider,
        provider_code=provider_code or status,
        request_id=request_id,
        response=response,
    )


def error_text(
    description: str,
    detail: str | None = None,
    *,
    secrets: tuple[str, ...] = (),
    request_id: str | None = None,
) -> str:
    """``description: detail (request_id …)``, the provider's detail cut short and our secrets
    removed should the provider echo them back."""
    message = description
    if detail:
        message += f": {scrub(detail, *secrets)[:DETAIL_LIMIT]}"
    if request_id:
        message += f" (request_id {request_id})"
    return message


def find_request_id(response: httpx.Response, headers: tuple[str, ...]) -> str | None:
    """The provider's request id from the first of `headers` present (kept for support cases)."""
    return next((response.headers[h] for h in headers if response.headers.get(h)), None)
