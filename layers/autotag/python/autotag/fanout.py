"""The provider fan-out: one image through the selected providers at once, each one's tags
normalized (threshold, cap, ranking), then merged into one result with a status per provider.

:class:`Tagger` is what the tag step (:mod:`autotag.tagstep`) runs; it knows nothing of S3, the
store or the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Sequence

from aws_lambda_powertools import Logger

from autotag.config import AutotagConfig, ProviderConfig
from autotag.errors import (
    AllProvidersFailedError,
    AuthError,
    AutotagError,
    BadInputError,
    ProviderError,
    UnknownProviderError,
)
from autotag.image import ImageConstraints, PreparedImage, S3Location, SourceImage
from autotag.intake.fit import fit
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagOptions, TagResult
from autotag.providers import provider_class
from autotag.providers.base import EffectiveOptions, Provider, ProviderContext, ProviderRequest
from autotag.retry import Deadline

logger = Logger(service="autotag", child=True)


def effective_options(
    config: AutotagConfig, provider: ProviderConfig, options: TagOptions
) -> EffectiveOptions:
    return EffectiveOptions(
        lang=options.lang or provider.lang or config.lang,
        min_confidence=options.min_confidence
        if options.min_confidence is not None
        else provider.min_confidence,
        max_tags=options.max_tags if options.max_tags is not None else provider.max_tags,
        prompt=options.prompt,
        choices=tuple(options.choices) if options.choices else None,
        single=options.single,
    )


def apply_policy(tags: Iterable[Tag], *, min_confidence: float | None, max_tags: int | None) -> list[Tag]:
    """Threshold then cap. Tags without a confidence are kept by a threshold (nothing to compare)."""
    kept = [
        t for t in tags if min_confidence is None or t.confidence is None or t.confidence >= min_confidence
    ]
    kept = rank(kept)
    return kept if max_tags is None else kept[:max_tags]


def rank(tags: Iterable[Tag]) -> list[Tag]:
    """Highest confidence first; tags without a confidence after, in the provider's order."""
    return sorted(tags, key=lambda t: -_score(t))


def _union(*groups: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return tuple(seen)


def merge_tags(tags: Iterable[Tag]) -> list[Tag]:
    """Same tag (case-insensitive name) from several providers → one tag, best confidence, all sources."""
    merged: dict[str, Tag] = {}
    for tag in tags:
        current = merged.get(tag.key)
        if current is None:
            merged[tag.key] = tag
            continue
        best, other = (tag, current) if _score(tag) > _score(current) else (current, tag)
        merged[tag.key] = best.model_copy(
            update={
                "sources": _union(current.sources, tag.sources),
                "names": {**other.names, **best.names},
                "categories": _union(best.categories, other.categories),
                "parents": _union(best.parents, other.parents),
                "aliases": _union(best.aliases, other.aliases),
                "boxes": best.boxes + other.boxes,
            }
        )
    return rank(merged.values())


def _score(tag: Tag) -> float:
    return -1.0 if tag.confidence is None else tag.confidence


def merge_results(results: Sequence[TagResult], *, attribute_providers: Collection[str] = ()) -> TagResult:
    """Combine per-provider results (in configured order) into one.

    Tags only ``attribute_providers`` gave (``basic``'s colours, orientation, camera facts: certain,
    so confidence 1.0, but not what the picture shows) come after every content tag."""
    tags = merge_tags(t for r in results for t in r.tags)
    if attribute_providers:
        only_attributes = [set(t.sources) <= set(attribute_providers) for t in tags]
        tags = [t for t, a in zip(tags, only_attributes, strict=True) if not a] + [
            t for t, a in zip(tags, only_attributes, strict=True) if a
        ]
    return TagResult(
        tags=tuple(tags),
        title=next((r.title for r in results if r.title), None),
        description=next((r.description for r in results if r.description), None),
        classification=next((r.classification for r in results if r.classification), None),
        providers=tuple(p for r in results for p in r.providers),
    )


def check_options(config: AutotagConfig, options: TagOptions) -> None:
    """Refuse, before any work, request options this deployment cannot run: a provider it does not
    configure is the request's error (:class:`UnknownProviderError`), not the image's."""
    for key in options.providers or ():
        if config.provider(key) is None:
            configured = ", ".join(p.key for p in config.providers)
            raise UnknownProviderError(f"provider {key!r} is not configured (configured: {configured})")


class Tagger:
    """Runs the configured providers. One per process; provider instances are reused."""

    def __init__(self, config: AutotagConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        self._providers: dict[str, Provider] = {}

    def provider(self, key: str) -> Provider:
        if key not in self._providers:
            provider_config = self.config.provider(key)
            if provider_config is None:
                configured = ", ".join(p.key for p in self.config.providers)
                raise UnknownProviderError(f"provider {key!r} is not configured (configured: {configured})")
            self._providers[key] = provider_class(provider_config.name)(provider_config, self.context)
        return self._providers[key]

    def select(self, options: TagOptions) -> list[Provider]:
        keys = options.providers or list(self.config.default_provider_keys)
        return [self.provider(key) for key in dict.fromkeys(keys)]

    async def tag(
        self,
        image: SourceImage,
        options: TagOptions | None = None,
        *,
        deadline: Deadline,
        s3: S3Location | None = None,
        require_success: bool = True,
    ) -> TagResult:
        """Tag `image` with the selected providers concurrently.

        One provider failing does not lose the others' tags; the result carries a status per
        provider. With `require_success`, raises :class:`AllProvidersFailedError` when none succeeded.
        Image errors that no provider could get past (e.g. cannot fit any limits) are raised as is.
        """
        options = options or TagOptions()
        providers = self.select(options)
        fitted: dict[ImageConstraints, asyncio.Task[PreparedImage]] = {}

        def prepared(constraints: ImageConstraints) -> asyncio.Task[PreparedImage]:
            if constraints not in fitted:
                fitted[constraints] = asyncio.ensure_future(asyncio.to_thread(fit, image, constraints))
            return fitted[constraints]

        runs = [self._run(p, image, options, deadline, s3, prepared(p.constraints)) for p in providers]
        results = await asyncio.gather(*runs, return_exceptions=True)
        image_errors = [r for r in results if isinstance(r, BadInputError)]
        if image_errors and len(image_errors) == len(results):
            raise image_errors[0]
        for outcome in results:
            if isinstance(outcome, BaseException) and not isinstance(outcome, BadInputError):
                raise outcome
        merged = merge_results(
            [
                r if isinstance(r, TagResult) else _image_failure(p, r)
                for p, r in zip(providers, results, strict=True)
            ],
            attribute_providers={p.key for p in providers if p.capabilities.attributes_only},
        )
        if require_success and not merged.succeeded:
            raise AllProvidersFailedError(merged)
        return merged

    async def _run(
        self,
        provider: Provider,
        image: SourceImage,
        options: TagOptions,
        deadline: Deadline,
        s3: S3Location | None,
        prepared: asyncio.Task[PreparedImage],
    ) -> TagResult:
        effective = effective_options(self.config, provider.config, options)
        request = ProviderRequest(
            image=await prepared, source=image, options=effective, deadline=deadline, s3=s3
        )
        clock = self.context.clock
        started = clock.now()
        try:
            try:
                raw = await provider.tag(request)
            except AuthError as error:
                if error.code == "auth_config":
                    raise
                # Credentials may have rotated: drop caches and try once more with fresh ones.
                logger.info("auth error; refreshing credentials once", extra={"provider": provider.key})
                provider.on_auth_error()
                provider.secret(refresh=True)
                raw = await provider.tag(request)
        except ProviderError as error:
            latency = (clock.now() - started) * 1000
            logger.warning(
                "provider failed",
                extra={"provider": provider.key, "error_code": error.code, "error": str(error)},
            )
            return TagResult(providers=(_failed_status(provider.key, error, latency),))
        latency = (clock.now() - started) * 1000
        tags = apply_policy(raw.tags, min_confidence=effective.min_confidence, max_tags=effective.max_tags)
        extra = raw.providers[0].details if raw.providers else {}
        status = ProviderStatus(
            provider=provider.key,
            status=ProviderOutcome.OK,
            latency_ms=round(latency, 1),
            tag_count=len(tags),
            details=extra,
        )
        return raw.model_copy(update={"tags": tuple(tags), "providers": (status,)})


def _failed_status(key: str, error: AutotagError, latency_ms: float | None) -> ProviderStatus:
    return ProviderStatus(
        provider=key,
        status=ProviderOutcome.FAILED,
        latency_ms=None if latency_ms is None else round(latency_ms, 1),
        error_code=error.code,
        error=str(error),
        retryable=error.retryable,
    )


def _image_failure(provider: Provider, error: BaseException) -> TagResult:
    assert isinstance(error, AutotagError)
    return TagResult(providers=(_failed_status(provider.key, error, None),))
