"""A clock for code that takes one (`autotag.retry.Clock`): time moves only when someone sleeps
(or a test moves it), and every sleep is recorded."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 0.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
