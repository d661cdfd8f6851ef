"""Project-scoped IAM tokens for Huawei Cloud (``POST /v3/auth/tokens``, password identity).

The token is the ``X-Subject-Token`` response header. It is cached in the provider context's state
(process-wide) until ``token_refresh_margin_seconds`` before its expiry, one issue at a time per
event loop, and dropped when the gateway says it expired or was revoked.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from autotag.errors import AuthError, ProviderError, ProviderResponseError
from autotag.providers.base import ProviderContext
from autotag.providers.failures import error_for_status
from autotag.providers.http import json_body, send
from autotag.providers.redaction import Scrubber
from autotag.providers.responses import parse_optional, read
from autotag.providers.responses.huawei import IamErrorBody, TokenResponse
from autotag.retry import Deadline, RetryPolicy

DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
TOKEN_LIFETIME_SECONDS = 24 * 3600
TOKEN_REFRESH_MARGIN_SECONDS = 3600
STATE_KEY = "huawei.tokens"


@dataclass(frozen=True)
class PasswordIdentity:
    username: str
    password: str = field(repr=False)
    domain_name: str
    project_id: str | None
    project_name: str


@dataclass(frozen=True)
class CachedToken:
    value: str = field(repr=False)
    fresh_until: float
    """On the provider clock's monotonic timeline."""
    project_id: str | None


def _parse_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def token_lifetime(body: object, wall_now: float) -> float:
    """Seconds the token is valid, from ``expires_at`` (relative to ``issued_at`` when given)."""
    answer = read(TokenResponse, body)
    token = answer.token if answer is not None else None
    if token is None:
        return TOKEN_LIFETIME_SECONDS
    expires = _parse_time(token.expires_at)
    if expires is None:
        return TOKEN_LIFETIME_SECONDS
    issued = _parse_time(token.issued_at)
    return max(0.0, expires - (issued if issued is not None else wall_now))


class IamTokens:
    """Issues and caches the tokens of one provider (``provider`` names it in errors)."""

    def __init__(
        self,
        *,
        provider: str,
        endpoint: str,
        context: ProviderContext,
        policy: RetryPolicy,
        refresh_margin: float = TOKEN_REFRESH_MARGIN_SECONDS,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint.rstrip("/")
        self.context = context
        self.policy = policy
        self.refresh_margin = refresh_margin
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _cache(self) -> dict[tuple[str, ...], CachedToken]:
        cache: dict[tuple[str, ...], CachedToken] = self.context.state.setdefault(STATE_KEY, {})
        return cache

    def _key(self, identity: PasswordIdentity) -> tuple[str, ...]:
        scope = identity.project_id or f"name:{identity.project_name}"
        return (self.endpoint, identity.domain_name, identity.username, scope)

    def drop(self, identity: PasswordIdentity) -> None:
        self._cache().pop(self._key(identity), None)

    def forget_all(self) -> None:
        """Forget every token cached for this IAM endpoint; the next call asks IAM again."""
        cache = self._cache()
        for key in [k for k in cache if k[0] == self.endpoint]:
            del cache[key]

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def get(
        self, identity: PasswordIdentity, deadline: Deadline, scrub: Scrubber
    ) -> tuple[CachedToken, bool]:
        """A valid token, and whether it was just issued (a fresh token is not refreshed again)."""
        key = self._key(identity)
        async with self._lock():
            cached = self._cache().get(key)
            if cached is not None and cached.fresh_until > self.context.clock.now():
                return cached, False
            token = await self._issue(identity, deadline, scrub)
            self._cache()[key] = token
            return token, True

    async def _issue(self, identity: PasswordIdentity, deadline: Deadline, scrub: Scrubber) -> CachedToken:
        project = {"id": identity.project_id} if identity.project_id else {"name": identity.project_name}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": identity.username,
                            "password": identity.password,
                            "domain": {"name": identity.domain_name},
                        }
                    },
                },
                "scope": {"project": project},
            }
        }
        payload = json.dumps(body).encode("utf-8")
        url = f"{self.endpoint}/v3/auth/tokens"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST", url, headers={"Content-Type": "application/json;charset=utf8"}, content=payload
            )

        def check(response: httpx.Response) -> None:
            if response.status_code in (200, 201):
                return
            raise self._error(response, scrub)

        response = await send(
            self.context.http,
            build,
            provider=self.provider,
            deadline=deadline,
            policy=self.policy,
            check=check,
        )
        value = response.headers.get("x-subject-token")
        if not value:
            raise ProviderResponseError(
                "IAM answered without an X-Subject-Token header", provider=self.provider
            )
        answer = json_body(response, provider=self.provider)
        lifetime = token_lifetime(answer, time.time())
        margin = min(self.refresh_margin, lifetime / 2)
        token = read(TokenResponse, answer)
        info = token.token if token is not None else None
        project_id = info.project.id if info is not None and info.project is not None else None
        return CachedToken(
            value=value, fresh_until=self.context.clock.now() + lifetime - margin, project_id=project_id
        )

    def _error(self, response: httpx.Response, scrub: Scrubber) -> ProviderError:
        body = parse_optional(IamErrorBody, response)
        code: str | int | None = None
        if body is not None:
            code = body.error_code or (body.error.code if body.error is not None else None)
        status = response.status_code
        text = scrub(f"IAM token request refused (HTTP {status})")
        if status in (400, 401, 403, 404):
            return AuthError(text, provider=self.provider, provider_code=code or status)
        return error_for_status(response, provider=self.provider, message=text, provider_code=code or status)
