"""A fake TagEngine (the tagging interface the services call): fixed labels, optional delay and
failures, counted calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from autotag.errors import AutotagError
from autotag.image import S3Location, SourceImage
from autotag.models import ProviderOutcome, ProviderStatus, Tag, TagOptions, TagResult
from autotag.retry import Deadline


class FakeTagger:
    """A TagEngine that answers fixed labels, after an optional delay, and counts its calls.

    ``fail_next(error, times)`` makes the next calls raise; ``fail_images({sha256: error})`` fails
    every call for those images until removed.
    """

    def __init__(
        self,
        labels: tuple[tuple[str, float | None], ...] = (("dog", 0.9), ("pet", 0.8), ("grass", 0.4)),
        *,
        provider: str = "fake",
        delay: float = 0.0,
        title: str | None = "A dog",
    ) -> None:
        self.labels = labels
        self.provider = provider
        self.delay = delay
        self.title = title
        self.calls = 0
        self.images: list[str] = []
        self.failures: dict[str, AutotagError] = {}
        self._queued: list[AutotagError] = []
        self._lock = threading.Lock()
        self.on_call: Callable[[SourceImage], None] | None = None

    def fail_next(self, error: AutotagError, times: int = 1) -> None:
        self._queued.extend([error] * times)

    def fail_images(self, failures: dict[str, AutotagError]) -> None:
        self.failures.update(failures)

    async def tag(
        self,
        image: SourceImage,
        options: TagOptions | None = None,
        *,
        deadline: Deadline,
        s3: S3Location | None = None,
        require_success: bool = True,
    ) -> TagResult:
        with self._lock:
            self.calls += 1
            self.images.append(image.sha256)
            queued = self._queued.pop(0) if self._queued else None
        if self.on_call is not None:
            self.on_call(image)
        if self.delay:
            await asyncio.sleep(self.delay)
        error = queued or self.failures.get(image.sha256)
        if error is not None:
            raise error
        tags = tuple(Tag(name=n, confidence=c, provider=self.provider) for n, c in self.labels)
        return TagResult(
            tags=tags,
            title=self.title,
            providers=(
                ProviderStatus(
                    provider=self.provider, status=ProviderOutcome.OK, latency_ms=1.0, tag_count=len(tags)
                ),
            ),
        )
