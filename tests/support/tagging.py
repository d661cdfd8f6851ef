"""Calling a provider that runs inside the process (basic, efficientnet) the way the pipeline
does: the image read and fitted to the provider's constraints, one request, one answer."""

from __future__ import annotations

import asyncio

import httpx
from autotag.intake.fit import fit
from autotag.intake.source import load_image
from autotag.models import TagResult
from autotag.providers.base import EffectiveOptions, Provider, ProviderContext, ProviderRequest
from autotag.retry import Deadline

from tests.support.fakes import StaticCredentials


def offline_context() -> ProviderContext:
    """No credentials and an HTTP client that answers every call with 599: a provider that runs in
    the process must not need either."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(599)))
    return ProviderContext(http=http, credentials=StaticCredentials({}))


def tag_image(
    provider: Provider,
    data: bytes,
    *,
    min_confidence: float | None = None,
    max_tags: int | None = None,
    seconds: float = 30.0,
) -> TagResult:
    source = load_image(data)
    request = ProviderRequest(
        image=fit(source, provider.constraints),
        source=source,
        options=EffectiveOptions(lang="en", min_confidence=min_confidence, max_tags=max_tags),
        deadline=Deadline.after(seconds),
    )
    return asyncio.run(provider.tag(request))
