"""How far on_upload may scale out: the SQS event source's maximum concurrency that keeps the
tightest rate-limited provider within its limit (docs/deploy.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import Field

from autotag.deploy.config import DeploymentConfig, FrozenModel
from autotag.deploy.limits import SQS_ESM_MAX_CONCURRENCY, SQS_ESM_MIN_CONCURRENCY

KNOWN_RATE_LIMITS_PER_MINUTE: Mapping[str, float] = {
    # imagedescriber: "each API key is limited to 30 requests per minute" (error 1004 beyond).
    "imagedescriber": 30.0,
}
"""Documented per-key limits, used when a provider's config sets no ``rate_limit_per_minute``."""

TYPICAL_CALL_SECONDS: Mapping[str, float] = {
    "basic": 0.2,
    "efficientnet": 0.1,
    "rekognition": 1.5,
    "google_vision": 1.5,
    "imagedescriber": 4.0,
}
DEFAULT_CALL_SECONDS = 3.0


class ConcurrencyPlan(FrozenModel):
    """How far ``on_upload`` may scale out, and why (see docs/deploy.md)."""

    max_concurrency: int
    in_flight_per_instance: int = Field(description="min(processing.concurrency, batch_size)")
    limiting_provider: str | None = None
    rate_limit_per_minute: float | None = None
    call_seconds: float | None = None
    calls_per_minute_per_instance: float | None = None
    peak_calls_per_minute: float | None = Field(default=None, description="max_concurrency x per instance")
    exceeds_rate_limit: bool = False
    explanation: str


def plan_concurrency(config: DeploymentConfig) -> ConcurrencyPlan:
    """The on_upload maximum concurrency that keeps the tightest rate-limited provider within its limit.

    Every upload calls each default provider once, so one instance makes at most
    ``in_flight / call_seconds`` calls per second to each: ``in_flight = min(processing.concurrency,
    batch_size)`` records are tagged at once. ``max_concurrency = floor(limit / calls per minute per
    instance)``, clamped to SQS's 2..1000 and to ``queue.max_concurrency``.
    """
    tagging = config.tagging
    in_flight = min(tagging.processing.concurrency, config.queue.batch_size)
    cap = config.queue.max_concurrency
    best: tuple[int, str, float, float, float] | None = None
    for key in tagging.default_provider_keys:
        provider = tagging.provider(key)
        if provider is None:
            continue
        limit = provider.rate_limit_per_minute or KNOWN_RATE_LIMITS_PER_MINUTE.get(provider.name)
        if limit is None:
            continue
        seconds = config.provider_call_seconds.get(key) or TYPICAL_CALL_SECONDS.get(
            provider.name, DEFAULT_CALL_SECONDS
        )
        per_instance = in_flight * 60.0 / seconds
        allowed = math.floor(limit / per_instance)
        if best is None or allowed < best[0]:
            best = (allowed, key, limit, seconds, per_instance)
    if best is None:
        return ConcurrencyPlan(
            max_concurrency=cap,
            in_flight_per_instance=in_flight,
            explanation=f"no configured provider has a rate limit; queue.max_concurrency ({cap}) applies",
        )
    allowed, key, limit, seconds, per_instance = best
    concurrency = max(SQS_ESM_MIN_CONCURRENCY, min(allowed, cap, SQS_ESM_MAX_CONCURRENCY))
    peak = concurrency * per_instance
    exceeds = peak > limit
    explanation = (
        f"{key} allows {limit:g} calls/min; one instance tags {in_flight} at once at ~{seconds:g} s per "
        f"call = {per_instance:g} calls/min; floor({limit:g} / {per_instance:g}) = {allowed}, "
        f"clamped to [{SQS_ESM_MIN_CONCURRENCY}, {min(cap, SQS_ESM_MAX_CONCURRENCY)}] = {concurrency}"
    )
    if exceeds:
        needed = max(1, math.floor(limit * seconds / (60.0 * SQS_ESM_MIN_CONCURRENCY)))
        explanation += (
            f"; {concurrency} instances still peak at {peak:g} calls/min: set "
            f"processing.concurrency or queue.batch_size to {needed} to stay under the limit "
            "(until then the provider's throttling is retried with backoff and by SQS redelivery)"
        )
    return ConcurrencyPlan(
        max_concurrency=concurrency,
        in_flight_per_instance=in_flight,
        limiting_provider=key,
        rate_limit_per_minute=limit,
        call_seconds=seconds,
        calls_per_minute_per_instance=per_instance,
        peak_calls_per_minute=peak,
        exceeds_rate_limit=exceeds,
        explanation=explanation,
    )
