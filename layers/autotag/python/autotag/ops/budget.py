"""The budget guard of a backfill: how many objects, what they cost, how long they take, and the
ceiling (objects or money) beyond which a backfill stops. Both engines use it.

Prices are list prices in USD (us-east-1), each with its source; a provider's configured
``price_per_1000`` wins. Time comes from the tightest of: each default provider's rate limit, and
what the tag queue's consumers can do (:func:`autotag.deploy.concurrency.plan_concurrency`: maximum
concurrency x records in flight per instance / seconds per call). docs/scale.md works a 10 M-object
backfill through the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from autotag.deploy.concurrency import (
    DEFAULT_CALL_SECONDS,
    KNOWN_RATE_LIMITS_PER_MINUTE,
    TYPICAL_CALL_SECONDS,
    plan_concurrency,
)
from autotag.deploy.config import DeploymentConfig
from autotag.errors import AutotagError, ConfigError

Engine = Literal["one-machine", "batch-operations"]

PriceTiers = Sequence[tuple[float, float]]
"""(images up to this many this month, USD per 1,000 in the tier), in order; the last tier's
bound is infinity."""

LIST_PRICES: Mapping[str, PriceTiers] = {
    # https://aws.amazon.com/rekognition/pricing/ (Image, Group 1 APIs incl. DetectLabels, us-east-1):
    # first 1 M images/month $1.00 per 1,000, next 4 M $0.80, next 30 M $0.60, over 35 M $0.40.
    "rekognition": ((1_000_000, 1.00), (5_000_000, 0.80), (35_000_000, 0.60), (math.inf, 0.40)),
    # https://cloud.google.com/vision/pricing (Label Detection): first 1,000 units/month free,
    # up to 5 M $1.50 per 1,000, above $1.00.
    "google_vision": ((1_000, 0.0), (5_000_000, 1.50), (math.inf, 1.00)),
    # Computed in-process: no per-image fee.
    "basic": ((math.inf, 0.0),),
}
"""Known list prices by provider name; others need ``price_per_1000`` in their config."""

# https://aws.amazon.com/s3/pricing/ (Batch Operations): $0.25 per job, $1.00 per million objects.
BATCH_OPERATIONS_PER_JOB = 0.25
BATCH_OPERATIONS_PER_MILLION_OBJECTS = 1.00
# https://aws.amazon.com/lambda/pricing/ arm64: $0.0000133334 per GB-second, $0.20 per million requests.
LAMBDA_PER_GB_SECOND = 0.0000133334
LAMBDA_PER_MILLION_REQUESTS = 0.20
# https://aws.amazon.com/sqs/pricing/ standard queue: $0.40 per million requests (64 KB chunks).
SQS_PER_MILLION_REQUESTS = 0.40
SQS_REQUESTS_PER_OBJECT = 3
"""Send, receive, delete (the one-machine engine sends in batches of 10, so this is an upper bound)."""
ON_BATCH_SECONDS_PER_TASK = 0.1
"""on_batch per task: a HEAD, a GetItem and a SendMessage (~30 ms each in-region)."""
ON_UPLOAD_SECONDS_PER_IMAGE = 0.143
"""Billed on_upload time per image measured by ``make bench`` (bench/results/cost.json)."""


class BudgetExceededError(AutotagError):
    """A backfill would pass its configured ceiling."""

    code = "budget_exceeded"


def tiered_cost(objects: int, tiers: PriceTiers) -> float:
    cost, below = 0.0, 0.0
    for bound, per_1000 in tiers:
        in_tier = max(0.0, min(objects, bound) - below)
        cost += in_tier * per_1000 / 1000
        below = bound
        if objects <= bound:
            break
    return cost


@dataclass(frozen=True)
class ProviderEstimate:
    key: str
    name: str
    cost_usd: float | None
    """None: price unknown (set the provider's ``price_per_1000``)."""
    calls_per_minute: float | None
    """The documented or configured rate limit; None when there is none."""


@dataclass(frozen=True)
class Estimate:
    objects: int
    engine: Engine
    providers: tuple[ProviderEstimate, ...]
    aws_cost_usd: float
    calls_per_minute: float
    limited_by: str
    notes: tuple[str, ...] = field(default=())

    @property
    def provider_cost_usd(self) -> float:
        return sum(p.cost_usd or 0.0 for p in self.providers)

    @property
    def total_cost_usd(self) -> float:
        return self.provider_cost_usd + self.aws_cost_usd

    @property
    def prices_known(self) -> bool:
        return all(p.cost_usd is not None for p in self.providers)

    @property
    def duration_seconds(self) -> float:
        return self.objects / self.calls_per_minute * 60 if self.calls_per_minute > 0 else math.inf

    def describe(self) -> str:
        lines = [f"budget: {self.objects} object(s) at most, engine {self.engine}"]
        for provider in self.providers:
            price = (
                "price unknown (set price_per_1000)"
                if provider.cost_usd is None
                else f"${provider.cost_usd:,.2f}"
            )
            limit = f", {provider.calls_per_minute:g} calls/min" if provider.calls_per_minute else ""
            lines.append(f"  provider {provider.key}: {price}{limit}")
        services = "Lambda, SQS" + (", Batch Operations" if self.engine == "batch-operations" else "")
        lines.append(f"  AWS ({services}): ${self.aws_cost_usd:,.2f}")
        total = f"${self.total_cost_usd:,.2f}" + ("" if self.prices_known else " + unknown provider prices")
        lines.append(
            f"  total: {total}; time: {_duration(self.duration_seconds)} at "
            f"{self.calls_per_minute:,.0f} images/min ({self.limited_by})"
        )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "unbounded"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def estimate(objects: int, config: DeploymentConfig, *, engine: Engine) -> Estimate:
    """What tagging ``objects`` objects with the default providers costs and takes."""
    tagging = config.tagging
    providers: list[ProviderEstimate] = []
    rates: list[tuple[float, str]] = []
    for key in tagging.default_provider_keys:
        provider = tagging.provider(key)
        if provider is None:
            continue
        if provider.price_per_1000 is not None:
            cost: float | None = objects * provider.price_per_1000 / 1000
        elif provider.name in LIST_PRICES:
            cost = tiered_cost(objects, LIST_PRICES[provider.name])
        else:
            cost = None
        limit = provider.rate_limit_per_minute or KNOWN_RATE_LIMITS_PER_MINUTE.get(provider.name)
        providers.append(ProviderEstimate(key=key, name=provider.name, cost_usd=cost, calls_per_minute=limit))
        if limit:
            rates.append((limit, f"{key}'s rate limit"))
        else:
            seconds = config.provider_call_seconds.get(key) or TYPICAL_CALL_SECONDS.get(
                provider.name, DEFAULT_CALL_SECONDS
            )
            plan = plan_concurrency(config)
            consumers = plan.max_concurrency * plan.in_flight_per_instance * 60.0 / seconds
            why = (
                f"{plan.max_concurrency} on_upload instances x {plan.in_flight_per_instance} in flight "
                f"at ~{seconds:g} s per {key} call"
            )
            rates.append((consumers, why))
    calls_per_minute, limited_by = min(rates) if rates else (math.inf, "no provider")
    lambda_seconds = ON_UPLOAD_SECONDS_PER_IMAGE
    requests = 1
    aws = 0.0
    if engine == "batch-operations":
        aws += BATCH_OPERATIONS_PER_JOB + objects * BATCH_OPERATIONS_PER_MILLION_OBJECTS / 1_000_000
        on_batch_gb = config.batch_operations.function.memory_mb / 1024
        aws += objects * ON_BATCH_SECONDS_PER_TASK * on_batch_gb * LAMBDA_PER_GB_SECOND
        requests += 1
    on_upload_gb = config.functions.on_upload.memory_mb / 1024
    aws += objects * lambda_seconds * on_upload_gb * LAMBDA_PER_GB_SECOND
    aws += objects * requests * LAMBDA_PER_MILLION_REQUESTS / 1_000_000
    aws += objects * SQS_REQUESTS_PER_OBJECT * SQS_PER_MILLION_REQUESTS / 1_000_000
    notes = ["objects already tagged at their current ETag are skipped (not charged by the provider)"]
    return Estimate(
        objects=objects,
        engine=engine,
        providers=tuple(providers),
        aws_cost_usd=aws,
        calls_per_minute=calls_per_minute,
        limited_by=limited_by,
        notes=tuple(notes),
    )


def per_object_cost(config: DeploymentConfig, *, engine: Engine) -> float:
    """USD per object at the first price tier (an upper bound used to turn money into objects)."""
    one = estimate(1, config, engine=engine)
    return one.total_cost_usd - (BATCH_OPERATIONS_PER_JOB if engine == "batch-operations" else 0.0)


def ceiling_objects(
    config: DeploymentConfig, *, engine: Engine, max_objects: int | None, max_cost_usd: float | None
) -> int | None:
    """The most objects a backfill may send: the tighter of the object and the money ceiling."""
    limits: list[int] = []
    if max_objects is not None:
        limits.append(max_objects)
    if max_cost_usd is not None:
        unknown = [p.key for p in estimate(1, config, engine=engine).providers if p.cost_usd is None]
        if unknown:
            raise ConfigError(
                f"a money ceiling needs every provider's price: set price_per_1000 for {', '.join(unknown)}"
            )
        fixed = BATCH_OPERATIONS_PER_JOB if engine == "batch-operations" else 0.0
        unit = per_object_cost(config, engine=engine)
        limits.append(math.floor(max(0.0, max_cost_usd - fixed) / unit) if unit > 0 else 2**63 - 1)
    return min(limits) if limits else None


def check(estimate_: Estimate, ceiling: int | None) -> None:
    """Refuse a backfill whose object count passes the ceiling (the batch engine cannot stop half way)."""
    if ceiling is not None and estimate_.objects > ceiling:
        raise BudgetExceededError(
            f"{estimate_.objects} objects exceed the budget ceiling of {ceiling} "
            f"(estimated ${estimate_.total_cost_usd:,.2f}); narrow the prefix or raise "
            "--max-objects/--max-cost"
        )


def check_retention(estimate_: Estimate, config: DeploymentConfig) -> None:
    """Refuse a backfill the tag queue cannot hold: both engines enqueue far faster than a
    rate-limited provider drains, and SQS deletes what waits longer than the queue's retention."""
    retention = config.queue.retention_days * 86400
    if estimate_.duration_seconds > retention:
        days = estimate_.duration_seconds / 86400
        raise BudgetExceededError(
            f"{estimate_.objects} objects need ~{days:,.1f} days at "
            f"{estimate_.calls_per_minute:,.0f} images/min ({estimate_.limited_by}), longer than the tag "
            f"queue keeps messages ({config.queue.retention_days} days): backfill in slices (a narrower "
            "prefix, --created-after/--created-before, --max-objects) or raise queue.retention_days "
            "(at most 14); see docs/scale.md"
        )
