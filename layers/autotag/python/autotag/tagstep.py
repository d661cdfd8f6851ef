"""The tag step: an image's tags from the content-hash cache, or from the providers.

:class:`TagStep` wraps the provider fan-out (:class:`autotag.fanout.Tagger`, behind the
:class:`TagEngine` interface) with what every entry point wants around it: the cache (keyed by
:mod:`autotag.cachekey`), single flight (identical bytes arriving together make one provider call),
a whole-step retry within the deadline, and the ``ProviderFailures`` metric. It is synchronous and
thread-safe: the provider coroutines run on the process's one event loop
(:class:`autotag.eventloop.EventLoopPortal`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

from aws_lambda_powertools import Logger

from autotag.cachekey import cache_key, provider_fingerprint
from autotag.cacheround import RoundLookup
from autotag.config import AutotagConfig
from autotag.errors import AllProvidersFailedError, AutotagError, ProviderTimeoutError
from autotag.eventloop import EventLoopPortal
from autotag.image import S3Location, SourceImage
from autotag.models import TagOptions, TagResult
from autotag.observability import record_provider_failures
from autotag.retry import Deadline, RetryPolicy, retry_async
from autotag.store.base import CacheEntry, ImageStore

logger = Logger(service="autotag", child=True)

HANG_GUARD_SECONDS = 2.0
"""How far past the deadline a provider call may run before it is cancelled: providers stop at the
deadline themselves; this only guards a hang."""


class TagEngine(Protocol):
    """What the tag step needs from :class:`autotag.fanout.Tagger` (a fake in unit tests)."""

    async def tag(
        self,
        image: SourceImage,
        options: TagOptions | None = None,
        *,
        deadline: Deadline,
        s3: S3Location | None = None,
        require_success: bool = True,
    ) -> TagResult: ...


class TagStep:
    """Cache, single flight, retry and metrics around the providers. One per process."""

    def __init__(
        self,
        *,
        config: AutotagConfig,
        tagger: TagEngine,
        store: ImageStore,
        portal: EventLoopPortal | None = None,
        retry_policy: RetryPolicy | None = None,
        on_close: list[Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.config = config
        self.tagger = tagger
        self.store = store
        self._portal = portal or EventLoopPortal()
        # Providers retry their own HTTP calls; this covers the whole tag step once more, within the
        # deadline, before the record goes back to SQS.
        self._retry = retry_policy or RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=4.0)
        self._on_close = on_close or []
        self._inflight: dict[str, concurrent.futures.Future[TagResult]] = {}
        self._inflight_lock = threading.Lock()

    def tag(
        self,
        image: SourceImage,
        options: TagOptions,
        deadline: Deadline,
        *,
        s3: S3Location | None,
        retry: RetryPolicy | None = None,
        defer_cache: bool = False,
        cache_lookup: RoundLookup | None = None,
    ) -> tuple[TagResult, bool, CacheEntry | None]:
        """The result for these bytes and options, whether it came from the cache, and (with
        ``defer_cache``) the cache entry the caller is to write, instead of writing it here.

        ``s3`` is where the bytes came from, if anywhere (providers that read S3 themselves use it).
        ``retry`` replaces the whole-step retry policy for this call. ``cache_lookup``: where to ask
        the cache (a batch's shared read, :mod:`autotag.cacheround`); the store directly when None.
        Raises the provider errors as they are (:class:`~autotag.errors.AllProvidersFailedError`,
        :class:`~autotag.errors.ProviderTimeoutError` on the deadline, ...)."""
        if not self.config.cache.enabled:
            return self._call_providers(image, options, deadline, s3, retry), False, None
        key = cache_key(image.sha256, provider_fingerprint(self.config, options))
        cached = cache_lookup.get(key) if cache_lookup is not None else self.store.cached_result(key)
        if cached is not None:
            return cached, True, None
        # Single flight: identical bytes arriving together (copies in one batch) make one call.
        with self._inflight_lock:
            leader = self._inflight.get(key)
            if leader is None:
                mine: concurrent.futures.Future[TagResult] = concurrent.futures.Future()
                self._inflight[key] = mine
        if leader is not None:
            try:
                return leader.result(timeout=deadline.remaining()), True, None
            except concurrent.futures.TimeoutError:
                raise ProviderTimeoutError(
                    "tagging did not finish before the deadline", code="deadline"
                ) from None
        try:
            result = self._call_providers(image, options, deadline, s3, retry)
            entry = None
            if not result.failed:
                entry = CacheEntry(key, result, int(self.config.cache.ttl_days * 86400))
                if not defer_cache:
                    self.store.cache_result(entry.key, entry.result, ttl_seconds=entry.ttl_seconds)
                    entry = None
            mine.set_result(result)
            return result, False, entry
        except BaseException as error:
            mine.set_exception(error)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    def _call_providers(
        self,
        image: SourceImage,
        options: TagOptions,
        deadline: Deadline,
        s3: S3Location | None,
        retry: RetryPolicy | None,
    ) -> TagResult:
        async def attempt() -> TagResult:
            try:
                result = await self.tagger.tag(image, options, deadline=deadline, s3=s3)
            except AllProvidersFailedError as error:
                record_provider_failures(error.result)
                raise
            record_provider_failures(result)
            return result

        def on_retry(error: AutotagError, attempt_no: int, delay: float) -> None:
            logger.info(
                "tagging failed transiently; retrying",
                extra={
                    "s3_uri": s3.uri if s3 else None,
                    "sha256": image.sha256,
                    "error_code": error.code,
                    "attempt": attempt_no,
                    "delay": delay,
                },
            )

        step = functools.partial(
            retry_async, attempt, policy=retry or self._retry, deadline=deadline, on_retry=on_retry
        )
        return self._portal.run(step, timeout=deadline.remaining() + HANG_GUARD_SECONDS)

    def close(self) -> None:
        """Release the providers' resources (HTTP client) and stop the event loop."""
        for closer in self._on_close:
            try:
                self._portal.run(closer, timeout=5)
            except Exception:
                logger.debug("error while closing", exc_info=True)
        self._on_close = []
        self._portal.close()
