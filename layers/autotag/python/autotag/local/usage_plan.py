"""The usage plan's limits as API Gateway applies them before the function runs: the per-key throttle
and quota and the stage throttle (token buckets; the quota counted per UTC day, ISO week or month)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime


class TokenBucket:
    """A throttle: `rate` requests per second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


@dataclass(frozen=True)
class UsageLimits:
    """A usage plan's limits (the deployment config's ``api`` section; None: no such limit)."""

    key_rate_limit: float | None = None
    key_burst_limit: int | None = None
    quota_limit: int | None = None
    quota_period: str = "DAY"
    stage_rate_limit: float | None = None
    stage_burst_limit: int | None = None


class UsagePlan:
    """The limits of one stage: which API Gateway response type refuses a request, if any."""

    def __init__(self, limits: UsageLimits | None = None) -> None:
        self.limits = limits = limits or UsageLimits()
        self._key_buckets: dict[str, TokenBucket] = {}
        self._quota_used: dict[tuple[str, str], int] = {}
        self._counters_lock = threading.Lock()
        self._stage_bucket = (
            TokenBucket(limits.stage_rate_limit, limits.stage_burst_limit or int(limits.stage_rate_limit))
            if limits.stage_rate_limit
            else None
        )

    def stage_throttled(self) -> bool:
        """The stage throttle alone (requests that need no API key)."""
        return self._stage_bucket is not None and not self._stage_bucket.take()

    def refusal(self, api_key: str) -> str | None:
        """``QUOTA_EXCEEDED`` or ``THROTTLED`` when a limit refuses this request; None when within."""
        limits = self.limits
        with self._counters_lock:
            if limits.key_rate_limit:
                bucket = self._key_buckets.setdefault(
                    api_key, TokenBucket(limits.key_rate_limit, limits.key_burst_limit or 1)
                )
            else:
                bucket = None
            if limits.quota_limit is not None:
                period = (api_key, quota_window(limits.quota_period))
                used = self._quota_used.get(period, 0)
                if used >= limits.quota_limit:
                    return "QUOTA_EXCEEDED"
                self._quota_used[period] = used + 1
        if self.stage_throttled() or (bucket and not bucket.take()):
            return "THROTTLED"
        return None


def quota_window(period: str) -> str:
    """The usage plan's current quota window (UTC day, ISO week or month)."""
    now = datetime.now(UTC)
    if period == "WEEK":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week}"
    return now.strftime("%Y-%m") if period == "MONTH" else now.strftime("%Y-%m-%d")
