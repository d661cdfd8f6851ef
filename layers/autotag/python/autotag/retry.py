"""Bounded retries with exponential backoff and full jitter, honouring Retry-After and a deadline."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from autotag.errors import AutotagError, ThrottledError, TransientError

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class Deadline:
    """An absolute point on a clock's monotonic timeline after which no work should start."""

    at: float
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)

    @classmethod
    def after(cls, seconds: float, clock: Clock = SYSTEM_CLOCK) -> Deadline:
        return cls(clock.now() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock.now())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def within(self, seconds: float) -> Deadline:
        """This deadline, or `seconds` from now if that comes first."""
        return Deadline(min(self.at, self.clock.now() + seconds), self.clock)

    def cap(self, seconds: float) -> float:
        """`seconds`, shortened so it does not run past the deadline."""
        return min(seconds, self.remaining())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    """A provider's Retry-After beyond this is not waited for in-process (SQS redelivery takes over)."""

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the retry after failed `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)

    def delay_for(self, error: AutotagError, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait before trying again, or None if this error should not be retried."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, rng)
        if isinstance(error, ThrottledError) and error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            delay = max(delay, error.retry_after)
        return delay


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    rng: random.Random | None = None,
    on_retry: Callable[[AutotagError, int, float], None] | None = None,
) -> T:
    """Run `call` until it succeeds, fails terminally, runs out of attempts or of time.

    The last error is re-raised as is; a wait that would cross the deadline is not started.
    """
    rng = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        if deadline.expired:
            raise TransientError("deadline reached before the call could be made", code="deadline")
        try:
            return await call()
        except AutotagError as error:
            delay = policy.delay_for(error, attempt, rng)
            if delay is None or delay >= deadline.remaining():
                raise
            if on_retry is not None:
                on_retry(error, attempt, delay)
            await deadline.clock.sleep(delay)
