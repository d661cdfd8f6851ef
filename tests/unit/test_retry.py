from __future__ import annotations

import asyncio
import random

import pytest
from autotag.errors import AuthError, ProviderBadInputError, ThrottledError, TransientError
from autotag.retry import Deadline, RetryPolicy, retry_async

from tests.support.clock import FakeClock


class Flaky:
    def __init__(self, *errors: Exception, value: str = "done") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.value = value

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def run(call, *, policy=None, seconds=60.0, clock=None, rng=None, on_retry=None):
    clock = clock or FakeClock(start=500.0)
    deadline = Deadline.after(seconds, clock)
    return asyncio.run(
        retry_async(
            call,
            policy=policy or RetryPolicy(),
            deadline=deadline,
            rng=rng or random.Random(7),
            on_retry=on_retry,
        )
    )


def test_retries_transient_failures_until_success():
    clock = FakeClock(start=500.0)
    call = Flaky(TransientError("503"), TransientError("503"))
    retries: list[int] = []
    assert run(call, clock=clock, on_retry=lambda e, attempt, d: retries.append(attempt)) == "done"
    assert call.calls == 3
    assert retries == [1, 2]
    assert len(clock.sleeps) == 2


def test_attempts_are_bounded():
    call = Flaky(*(TransientError("down") for _ in range(10)))
    with pytest.raises(TransientError, match="down"):
        run(call, policy=RetryPolicy(max_attempts=4))
    assert call.calls == 4


@pytest.mark.parametrize("error", [AuthError("bad key"), ProviderBadInputError("bad image")])
def test_non_retryable_errors_are_not_retried(error):
    clock = FakeClock(start=500.0)
    call = Flaky(error)
    with pytest.raises(type(error)):
        run(call, clock=clock)
    assert call.calls == 1
    assert clock.sleeps == []


def test_backoff_is_exponential_with_full_jitter_and_capped():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (8, 3.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # jitter spans the whole range


def test_retry_after_is_honoured():
    clock = FakeClock(start=500.0)
    call = Flaky(ThrottledError("429", retry_after=7.5))
    assert run(call, clock=clock) == "done"
    assert len(clock.sleeps) == 1
    assert 7.5 <= clock.sleeps[0] <= RetryPolicy().max_delay + 7.5


def test_retry_after_beyond_the_policy_is_left_to_redelivery():
    call = Flaky(ThrottledError("429", retry_after=120))
    with pytest.raises(ThrottledError):
        run(call, policy=RetryPolicy(max_retry_after=30), seconds=600)
    assert call.calls == 1


def test_never_waits_past_the_deadline():
    clock = FakeClock(start=500.0)
    call = Flaky(ThrottledError("429", retry_after=5))
    with pytest.raises(ThrottledError):
        run(call, clock=clock, seconds=3)
    assert call.calls == 1
    assert clock.sleeps == []


def test_total_time_stays_within_the_deadline():
    clock = FakeClock(start=500.0)
    start = clock.time
    call = Flaky(*(ThrottledError("429", retry_after=2) for _ in range(10)))
    with pytest.raises(ThrottledError):
        run(call, clock=clock, seconds=5, policy=RetryPolicy(max_attempts=10))
    assert clock.time - start <= 5
    assert call.calls == 3  # waits of 2 s at 0 and 2, the third would cross 5 s


def test_expired_deadline_fails_before_calling():
    clock = FakeClock(start=500.0)
    call = Flaky()
    with pytest.raises(TransientError) as caught:
        run(call, clock=clock, seconds=0)
    assert caught.value.code == "deadline"
    assert call.calls == 0


def test_deadline_arithmetic():
    clock = FakeClock(start=500.0)
    deadline = Deadline.after(10, clock)
    assert deadline.remaining() == 10
    assert deadline.cap(30) == 10
    assert deadline.cap(4) == 4
    clock.time += 11
    assert deadline.expired
    assert deadline.remaining() == 0
