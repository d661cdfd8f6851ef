"""The process's one event loop for provider calls (anyio's blocking portal): kept across calls,
bounded by a timeout that cancels the call, refused from its own thread, restartable after close."""

from __future__ import annotations

import asyncio
import threading

import pytest
from autotag.errors import ProviderTimeoutError
from autotag.eventloop import THREAD_NAME, EventLoopPortal


@pytest.fixture
def portal():
    running = EventLoopPortal()
    yield running
    running.close()


async def _loop_and_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    return asyncio.get_running_loop(), threading.current_thread()


def test_every_call_runs_on_the_same_loop_and_thread(portal):
    # An httpx.AsyncClient must stay on the loop it was first used on: warm invocations reuse it.
    first_loop, first_thread = portal.run(_loop_and_thread)
    second_loop, second_thread = portal.run(_loop_and_thread)
    assert first_loop is second_loop
    assert first_thread is second_thread
    assert first_thread is not threading.current_thread()
    assert first_thread.name == THREAD_NAME
    assert first_thread.daemon


def test_a_call_past_its_timeout_is_cancelled_and_reported_as_the_deadline(portal):
    cancelled = threading.Event()

    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(ProviderTimeoutError) as caught:
        portal.run(hang, timeout=0.1)
    assert caught.value.code == "deadline"
    assert cancelled.wait(5)


def test_errors_come_back_as_they_are(portal):
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        portal.run(fail)
    assert portal.run(_loop_and_thread)  # the loop survives a failed call


def test_a_call_from_the_loops_own_thread_is_refused(portal):
    async def reenter() -> None:
        portal.run(_loop_and_thread)

    with pytest.raises(RuntimeError, match="event loop thread"):
        portal.run(reenter)


def test_close_stops_the_thread_and_the_next_call_starts_a_new_loop(portal):
    _, thread = portal.run(_loop_and_thread)
    portal.close()
    assert not thread.is_alive()
    _, again = portal.run(_loop_and_thread)
    assert again is not thread
    assert again.is_alive()
