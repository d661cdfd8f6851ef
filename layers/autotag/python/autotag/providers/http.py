"""The shared HTTP policy for providers: one async client, timeouts, retries, status mapping."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.observability import trace_library
from autotag.retry import Deadline, RetryPolicy, retry_async

trace_library("httpx")  # X-Ray subsegments for provider calls (httpx is not patched at cold start)

USER_AGENT = "autotag/0.1 (+https://github.com/autotag)"


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    max_connections: int = 50


_SECRET_QUERY = re.compile(
    r"([?&](?:key|api_key|apikey|access_token|token|signature|x-amz-signature|x-amz-security-token)=)"
    r"[^&\s\"']*",
    re.IGNORECASE,
)
_SECRET_HEADER = re.compile(
    r"(\(b'(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-goog-api-key|x-auth-token"
    r"|x-subject-token|x-security-token)', b')[^']*(')",
    re.IGNORECASE,
)


class _RedactSecrets(logging.Filter):
    """httpx logs request URLs (API keys ride in some query strings) and httpcore's debug trace
    prints response headers (IAM tokens come back in one): blank those values."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_HEADER.sub(r"\1***\2", _SECRET_QUERY.sub(r"\1***", message))
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_http_logs() -> None:
    """Install the redaction on the HTTP libraries' loggers (idempotent)."""
    for name in ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
            logger.addFilter(_RedactSecrets())


def make_client(
    policy: HttpPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One client per process, shared by all providers (connection reuse across a batch)."""
    redact_http_logs()
    policy = policy or HttpPolicy()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
        limits=httpx.Limits(max_connections=policy.max_connections, max_keepalive_connections=20),
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
        transport=transport,
    )


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


def error_for_status(
    response: httpx.Response,
    *,
    provider: str,
    message: str | None = None,
    provider_code: str | int | None = None,
) -> ProviderError:
    """The default mapping of an HTTP error status to the taxonomy (providers refine it)."""
    status = response.status_code
    text = message or f"HTTP {status}"
    kwargs: dict[str, Any] = {"provider": provider, "provider_code": provider_code or status}
    if status == 429:
        return ThrottledError(
            text, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs
        )
    if status in (401, 403):
        return AuthError(text, **kwargs)
    if status == 402:
        return QuotaError(text, **kwargs)
    if status in (408, 425) or status >= 500:
        return TransientError(text, **kwargs)
    if 400 <= status < 500:
        return ProviderBadInputError(text, **kwargs)
    return ProviderResponseError(f"unexpected HTTP {status}", **kwargs)


def json_body(response: httpx.Response, *, provider: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderResponseError(
            f"response is not JSON (HTTP {response.status_code})", provider=provider
        ) from None


async def send(
    client: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    *,
    provider: str,
    deadline: Deadline,
    policy: RetryPolicy,
    check: Callable[[httpx.Response], None] | None = None,
) -> httpx.Response:
    """Send a request with retries; transport failures become taxonomy errors.

    `build` makes a fresh request per attempt (signatures and dates must be recomputed).
    `check` inspects a response and raises a taxonomy error for it (status or body-level codes);
    without one, any non-2xx status is mapped by :func:`error_for_status`.
    """

    async def attempt() -> httpx.Response:
        request = build()
        # Requests built bare (httpx.Request) still carry the client's defaults, e.g. user-agent.
        for name, value in client.headers.items():
            request.headers.setdefault(name, value)
        remaining = deadline.remaining()
        if remaining <= 0:
            raise ProviderTimeoutError("deadline reached", provider=provider)
        timeout = client.timeout
        request.extensions["timeout"] = httpx.Timeout(
            min(timeout.read or remaining, remaining),
            connect=min(timeout.connect or remaining, remaining),
        ).as_dict()
        try:
            response = await client.send(request)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"timed out ({type(exc).__name__})", provider=provider) from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed ({type(exc).__name__})", provider=provider) from None
        if check is not None:
            check(response)
        elif response.is_error:
            raise error_for_status(response, provider=provider)
        return response

    return await retry_async(attempt, policy=policy, deadline=deadline)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to log: credentials replaced."""
    secret = {"authorization", "x-api-key", "x-auth-token", "x-subject-token", "x-security-token", "cookie"}
    return {k: ("***" if k.lower() in secret else v) for k, v in headers.items()}


def find_request_id(response: httpx.Response, headers: Iterable[str]) -> str | None:
    """The provider's request id from the first of `headers` present (kept for support cases)."""
    return next((response.headers[h] for h in headers if response.headers.get(h)), None)


def scrub(text: str, *secrets: str) -> str:
    """Provider text with our credentials removed, should the provider echo them back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def number(value: object) -> float | None:
    """A JSON number or numeric string as float; None for anything else (booleans included)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def as_list(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else an empty list (defensive parsing of provider bodies)."""
    return value if isinstance(value, list) else []
