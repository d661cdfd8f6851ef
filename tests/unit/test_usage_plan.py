"""The local gateway's usage plan: the per-key quota and throttle and the stage throttle."""

from __future__ import annotations

from autotag.local.usage_plan import UsageLimits, UsagePlan, quota_window


def test_no_limits_refuse_nothing() -> None:
    plan = UsagePlan()
    assert all(plan.refusal("key") is None for _ in range(50))
    assert not plan.stage_throttled()


def test_quota_counts_per_key() -> None:
    plan = UsagePlan(UsageLimits(quota_limit=2))
    assert plan.refusal("a") is None
    assert plan.refusal("a") is None
    assert plan.refusal("a") == "QUOTA_EXCEEDED"
    assert plan.refusal("b") is None


def test_key_throttle_allows_the_burst_then_refuses() -> None:
    plan = UsagePlan(UsageLimits(key_rate_limit=0.001, key_burst_limit=3))
    assert [plan.refusal("a") for _ in range(4)] == [None, None, None, "THROTTLED"]
    assert plan.refusal("b") is None


def test_stage_throttle_covers_every_key() -> None:
    plan = UsagePlan(UsageLimits(stage_rate_limit=0.001, stage_burst_limit=2))
    assert plan.refusal("a") is None
    assert plan.refusal("b") is None
    assert plan.refusal("c") == "THROTTLED"
    assert plan.stage_throttled()


def test_quota_windows() -> None:
    assert len(quota_window("DAY")) == len("2026-01-31")
    assert "-W" in quota_window("WEEK")
    assert len(quota_window("MONTH")) == len("2026-01")
