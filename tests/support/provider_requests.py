"""Requests for local providers (basic, efficientnet) as the pipeline makes them: the image loaded,
fitted to the provider's constraints, and one call run to its result."""

from __future__ import annotations

import asyncio

from autotag.intake import fit, load_image
from autotag.models import TagResult
from autotag.providers.base import EffectiveOptions, Provider, ProviderRequest
from autotag.retry import Deadline


def local_request(
    provider: type[Provider] | Provider,
    data: bytes,
    *,
    min_confidence: float | None = None,
    max_tags: int | None = None,
    seconds: float = 30.0,
) -> ProviderRequest:
    source = load_image(data)
    return ProviderRequest(
        image=fit(source, provider.constraints),
        source=source,
        options=EffectiveOptions(lang="en", min_confidence=min_confidence, max_tags=max_tags),
        deadline=Deadline.after(seconds),
    )


def tag_locally(provider: Provider, data: bytes, **options: float | int | None) -> TagResult:
    """``provider.tag`` on `data`, in a fresh event loop."""
    return asyncio.run(provider.tag(local_request(provider, data, **options)))  # type: ignore[arg-type]
