"""The shared HTTP policy, driven through httpx.MockTransport (no sockets)."""

from __future__ import annotations

import asyncio
import email.utils

import httpx
import pytest
from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderResponseError,
    ProviderTimeoutError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.providers.failures import error_for_status, parse_retry_after
from autotag.providers.http import USER_AGENT, json_body, make_client, send
from autotag.providers.redaction import redact_headers
from autotag.retry import Deadline, RetryPolicy

from tests.support.clock import FakeClock


def response(status: int, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "https://p.test/x"), **kwargs)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ProviderBadInputError),
        (401, AuthError),
        (402, QuotaError),
        (403, AuthError),
        (404, ProviderBadInputError),
        (408, TransientError),
        (413, ProviderBadInputError),
        (425, TransientError),
        (429, ThrottledError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
        (302, ProviderResponseError),
    ],
)
def test_status_mapping(status, expected):
    error = error_for_status(response(status), provider="p")
    assert type(error) is expected
    assert error.provider == "p"
    assert error.provider_code == status


def test_429_carries_retry_after():
    error = error_for_status(response(429, {"Retry-After": "12"}), provider="p")
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 12.0
    assert error.retryable


def test_parse_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=lambda: 1_000_000) == pytest.approx(30)


def test_json_body_rejects_non_json():
    assert json_body(response(200, json={"a": 1}), provider="p") == {"a": 1}
    with pytest.raises(ProviderResponseError):
        json_body(response(200, content=b"<html>"), provider="p")


def test_redact_headers():
    redacted = redact_headers({"Authorization": "Bearer s3cret", "X-Api-Key": "k", "Accept": "json"})
    assert redacted == {"Authorization": "***", "X-Api-Key": "***", "Accept": "json"}


def _send(handler, *, clock=None, seconds=30.0, attempts=3, check=None, bare=False):
    clock = clock or FakeClock()

    async def go() -> httpx.Response:
        async with make_client(transport=httpx.MockTransport(handler)) as client:
            return await send(
                client,
                (lambda: httpx.Request("POST", "https://p.test/tag", json={"x": 1}))
                if bare
                else (lambda: client.build_request("POST", "https://p.test/tag", json={"x": 1})),
                provider="p",
                deadline=Deadline.after(seconds, clock),
                policy=RetryPolicy(max_attempts=attempts),
                check=check,
            )

    return asyncio.run(go())


def test_send_retries_5xx_then_succeeds_with_a_fresh_request():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503) if len(seen) < 3 else httpx.Response(200, json={"ok": True})

    result = _send(handler)
    assert result.json() == {"ok": True}
    assert len(seen) == 3
    assert len({id(r) for r in seen}) == 3
    assert seen[0].headers["user-agent"] == USER_AGENT


def test_send_honours_retry_after_with_the_clock():
    clock = FakeClock()
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "4"}) if len(calls) == 1 else httpx.Response(200)

    assert _send(handler, clock=clock).status_code == 200
    assert clock.sleeps[0] >= 4


class Answering:
    """A transport handler that answers every request with one status and counts the requests."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(self.status)


@pytest.mark.parametrize(
    ("status", "options", "error", "attempts"),
    [
        pytest.param(500, {"attempts": 2}, TransientError, 2, id="gives-up-after-max-attempts"),
        pytest.param(401, {}, AuthError, 1, id="does-not-retry-auth-errors"),
        pytest.param(200, {"seconds": 0}, TransientError, 0, id="no-attempt-after-the-deadline"),
    ],
)
def test_send_attempts(status, options, error, attempts):
    handler = Answering(status)
    with pytest.raises(error):
        _send(handler, **options)
    assert handler.calls == attempts


def test_transport_failures_map_to_the_taxonomy():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TransientError, match="connection failed"):
        _send(refuse, attempts=1)
    with pytest.raises(ProviderTimeoutError):
        _send(stall, attempts=1)


def test_check_sees_body_level_errors():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": "quota"})

    def check(resp: httpx.Response) -> None:
        if resp.json().get("error") == "quota":
            raise QuotaError("credits exhausted", provider="p")

    with pytest.raises(QuotaError):
        _send(handler, check=check)


def test_send_gives_bare_requests_the_client_defaults():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    _send(handler, bare=True)
    assert seen[0].headers["user-agent"] == USER_AGENT
