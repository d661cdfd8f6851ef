"""The shared HTTP policy for providers: one async client, timeouts and retries (the status
mapping is :mod:`autotag.providers.failures`, the log redaction :mod:`autotag.providers.redaction`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from autotag.errors import ProviderResponseError, ProviderTimeoutError, TransientError
from autotag.observability import trace_library
from autotag.providers.failures import error_for_status
from autotag.providers.redaction import redact_library_logs
from autotag.retry import Deadline, RetryPolicy, retry_async

trace_library("httpx")  # X-Ray subsegments for provider calls (httpx is not patched at cold start)

USER_AGENT = "autotag/0.1 (+https://github.com/autotag)"


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    max_connections: int = 50


def make_client(
    policy: HttpPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One client per process, shared by all providers (connection reuse across a batch)."""
    redact_library_logs()
    policy = policy or HttpPolicy()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
        limits=httpx.Limits(max_connections=policy.max_connections, max_keepalive_connections=20),
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
        transport=transport,
    )


def json_body(response: httpx.Response, *, provider: str) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested past the parser's depth
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
