"""Helpers for the providers' integration tests: images, provider setup, one call per test.

Each call runs in its own event loop with its own HTTP client (the same client the Lambda uses,
:func:`autotag.providers.http.make_client`), against a server from ``tests.support.provider_servers``.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autotag import errors
from autotag.config import ProviderConfig
from autotag.errors import ProviderError
from autotag.image import ImageFormat, PreparedImage, S3Location, SourceImage
from autotag.models import TagResult
from autotag.providers.base import EffectiveOptions, Presigner, Provider, ProviderContext, ProviderRequest
from autotag.providers.http import make_client
from autotag.retry import Deadline

from tests.support.fakes import StaticCredentials
from tests.support.images import solid_bytes


def image_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40), fmt: str = "JPEG"
) -> bytes:
    return solid_bytes(color, width, height, fmt)


def make_images(
    data: bytes | None = None, fmt: ImageFormat = ImageFormat.JPEG, width: int = 64, height: int = 48
) -> tuple[SourceImage, PreparedImage]:
    data = data if data is not None else image_bytes(width, height, fmt=fmt.pil_name)
    source = SourceImage(
        data=data, format=fmt, width=width, height=height, sha256=hashlib.sha256(data).hexdigest()
    )
    prepared = PreparedImage(data=data, format=fmt, width=width, height=height, reencoded=False)
    return source, prepared


def options(
    lang: str = "en",
    min_confidence: float | None = None,
    max_tags: int | None = None,
    prompt: str | None = None,
    choices: tuple[str, ...] | None = None,
    single: bool | None = None,
) -> EffectiveOptions:
    return EffectiveOptions(
        lang=lang,
        min_confidence=min_confidence,
        max_tags=max_tags,
        prompt=prompt,
        choices=choices,
        single=single,
    )


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Outcome:
    result: TagResult | None
    error: ProviderError | None
    seconds: float

    @property
    def ok(self) -> TagResult:
        assert self.error is None, f"expected success, got {type(self.error).__name__}: {self.error}"
        assert self.result is not None
        return self.result

    def failed(self, error_type: type[ProviderError] = ProviderError) -> ProviderError:
        assert self.error is not None, f"expected {error_type.__name__}, got a result: {self.result}"
        assert isinstance(self.error, error_type), f"{type(self.error).__name__}: {self.error}"
        return self.error

    def failed_as(self, error_type: type[ProviderError], code: str, retryable: bool) -> ProviderError:
        """The error, checked for its type, its stable code and whether it is retryable."""
        error = self.failed(error_type)
        assert (error.code, error.retryable) == (code, retryable), f"{error.code}, {error.retryable}: {error}"
        return error


FAILURES: dict[str, tuple[type[ProviderError], bool]] = {
    "auth": (errors.AuthError, False),
    "bad_input": (errors.ProviderBadInputError, False),
    "content_blocked": (errors.ContentBlockedError, False),
    "provider_error": (ProviderError, False),
    "quota": (errors.QuotaError, False),
    "throttled": (errors.ThrottledError, True),
    "transient": (errors.TransientError, True),
}
"""Each stable code a provider failure may carry: the error type it comes as, and whether it is retryable."""


def documented_failures(**codes: tuple[object, ...]) -> list[tuple[object, type[ProviderError], str, bool]]:
    """Parametrize rows ``(provider's code, error type, stable code, retryable)`` from a provider's
    documented codes grouped by the stable code each must become, e.g. ``auth=(401, 403)``."""
    return [
        (provider_code, FAILURES[code][0], code, FAILURES[code][1])
        for code, provider_codes in codes.items()
        for provider_code in provider_codes
    ]


def attempts_for(retryable: bool) -> int:
    """One attempt for a retryable failure, so a test sees the mapping itself; three for a terminal
    one, which must then be given up after the first."""
    return 1 if retryable else 3


def call(
    provider_class: type[Provider],
    endpoint: str,
    *,
    secret: Mapping[str, Any],
    request_options: EffectiveOptions | None = None,
    timeout_seconds: float = 5.0,
    max_attempts: int = 3,
    provider_options: Mapping[str, Any] | None = None,
    presign: Presigner | None = None,
    s3: S3Location | None = None,
    images: tuple[SourceImage, PreparedImage] | None = None,
    deadline_seconds: float = 30.0,
) -> Outcome:
    """One ``provider.tag`` over real HTTP; the error is returned, not raised (only ProviderError)."""
    name = provider_class.name
    config = ProviderConfig(
        name=name,
        endpoint=endpoint,
        timeout_seconds=timeout_seconds,
        max_attempts=max_attempts,
        options=dict(provider_options or {}),
    )
    source, prepared = images or make_images()

    async def run() -> Outcome:
        async with make_client() as http:
            context = ProviderContext(
                http=http, credentials=StaticCredentials({name: dict(secret)}), presign=presign
            )
            provider = provider_class(config, context)
            request = ProviderRequest(
                image=prepared,
                source=source,
                options=request_options or options(),
                deadline=Deadline.after(deadline_seconds),
                s3=s3,
            )
            started = time.monotonic()
            try:
                result = await provider.tag(request)
            except ProviderError as error:
                return Outcome(None, error, time.monotonic() - started)
            finally:
                await provider.aclose()
            return Outcome(result, None, time.monotonic() - started)

    return asyncio.run(run())
