"""The budget guard: counts, prices, time from rate limits, and the ceiling in objects or money."""

from __future__ import annotations

import math

import pytest
from autotag.deploy.config import DeploymentConfig
from autotag.errors import ConfigError
from autotag.ops import budget


def config(*providers: dict, **extra) -> DeploymentConfig:
    return DeploymentConfig.model_validate({"tagging": {"providers": list(providers)}, **extra})


def test_rekognition_and_google_list_prices_are_tiered():
    assert budget.tiered_cost(10_000_000, budget.LIST_PRICES["rekognition"]) == pytest.approx(7_200.0)
    assert budget.tiered_cost(1_000, budget.LIST_PRICES["rekognition"]) == pytest.approx(1.0)
    assert budget.tiered_cost(10_000_000, budget.LIST_PRICES["google_vision"]) == pytest.approx(12_498.5)
    assert budget.tiered_cost(1_000, budget.LIST_PRICES["google_vision"]) == 0.0


def test_imagedescriber_alone_takes_231_days_for_ten_million():
    estimate = budget.estimate(10_000_000, config({"name": "imagedescriber"}), engine="batch-operations")
    assert estimate.calls_per_minute == 30
    assert estimate.limited_by == "imagedescriber's rate limit"
    assert estimate.duration_seconds / 86400 == pytest.approx(231.48, abs=0.01)
    [provider] = estimate.providers
    assert provider.cost_usd is None  # no list price: it must be configured
    assert not estimate.prices_known
    assert "price unknown" in estimate.describe()
    assert "231.5 days" in estimate.describe()


def test_configured_price_and_rate_limit_win():
    estimate = budget.estimate(
        2_000,
        config({"name": "rekognition", "price_per_1000": 0.5, "rate_limit_per_minute": 3000}),
        engine="one-machine",
    )
    [provider] = estimate.providers
    assert provider.cost_usd == pytest.approx(1.0)
    assert estimate.calls_per_minute == 3000
    assert estimate.duration_seconds == pytest.approx(40.0)


def test_without_a_rate_limit_the_consumers_bound_the_time():
    estimate = budget.estimate(1_000, config({"name": "basic"}), engine="one-machine")
    # 50 instances x 10 records in flight x 60 / 0.2 s per call.
    assert estimate.calls_per_minute == pytest.approx(150_000)
    assert estimate.provider_cost_usd == 0.0


def test_batch_operations_adds_its_job_and_per_object_fees():
    one = budget.estimate(1_000_000, config({"name": "basic"}), engine="one-machine")
    batch = budget.estimate(1_000_000, config({"name": "basic"}), engine="batch-operations")
    extra = batch.aws_cost_usd - one.aws_cost_usd
    on_batch = 1_000_000 * budget.ON_BATCH_SECONDS_PER_TASK * 0.25 * budget.LAMBDA_PER_GB_SECOND
    invokes = 1_000_000 * budget.LAMBDA_PER_MILLION_REQUESTS / 1_000_000
    assert extra == pytest.approx(0.25 + 1.00 + on_batch + invokes)


def test_money_ceiling_becomes_an_object_ceiling():
    cfg = config({"name": "rekognition", "price_per_1000": 2.0})
    limit = budget.ceiling_objects(cfg, engine="one-machine", max_objects=None, max_cost_usd=10.0)
    assert limit is not None
    unit = budget.per_object_cost(cfg, engine="one-machine")
    assert limit * unit <= 10.0 < (limit + 1) * unit
    assert 4_900 < limit < 5_000  # $2 per 1,000 plus a little AWS


def test_the_tighter_ceiling_wins():
    cfg = config({"name": "rekognition", "price_per_1000": 2.0})
    assert budget.ceiling_objects(cfg, engine="one-machine", max_objects=100, max_cost_usd=10.0) == 100
    assert budget.ceiling_objects(cfg, engine="one-machine", max_objects=None, max_cost_usd=None) is None


def test_batch_job_fee_comes_off_a_money_ceiling_first():
    cfg = config({"name": "basic"})
    assert budget.ceiling_objects(cfg, engine="batch-operations", max_objects=None, max_cost_usd=0.2) == 0


def test_money_ceiling_needs_known_prices():
    with pytest.raises(ConfigError, match="set price_per_1000 for imagedescriber"):
        budget.ceiling_objects(
            config({"name": "imagedescriber"}), engine="one-machine", max_objects=None, max_cost_usd=5.0
        )


def test_check_refuses_beyond_the_ceiling_only():
    estimate = budget.estimate(11, config({"name": "basic"}), engine="batch-operations")
    budget.check(estimate, None)
    budget.check(estimate, 11)
    with pytest.raises(budget.BudgetExceededError, match="11 objects exceed the budget ceiling of 10"):
        budget.check(estimate, 10)
    assert budget.BudgetExceededError.code == "budget_exceeded"


def test_several_providers_add_their_prices_and_the_slowest_sets_the_pace():
    cfg = config(
        {"name": "rekognition", "rate_limit_per_minute": 3000},
        {"name": "google_vision", "rate_limit_per_minute": 1800},
    )
    estimate = budget.estimate(10_000, cfg, engine="one-machine")
    assert estimate.provider_cost_usd == pytest.approx(10.0 + 13.5)
    assert estimate.calls_per_minute == 1800
    assert math.isclose(estimate.duration_seconds, 10_000 / 1800 * 60)


def test_a_backfill_the_queue_cannot_hold_is_refused():
    slow = config({"name": "imagedescriber"})
    budget.check_retention(budget.estimate(100_000, slow, engine="batch-operations"), slow)  # 2.3 days
    with pytest.raises(budget.BudgetExceededError, match=r"need ~4\.6 days .* keeps messages \(4 days\)"):
        budget.check_retention(budget.estimate(200_000, slow, engine="batch-operations"), slow)
    longer = config({"name": "imagedescriber"}, queue={"retention_days": 14})
    budget.check_retention(budget.estimate(200_000, longer, engine="batch-operations"), longer)


def test_manifest_buckets_must_be_bucket_names():
    from pydantic import ValidationError

    assert config({"name": "basic"}, batch_operations={"manifest_buckets": ["inventory-reports"]})
    with pytest.raises(ValidationError, match=r"not S3 bucket names: arn:aws:s3:::x/\*"):
        config({"name": "basic"}, batch_operations={"manifest_buckets": ["arn:aws:s3:::x/*"]})
