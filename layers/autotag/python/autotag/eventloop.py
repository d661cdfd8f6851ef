"""The process's one event loop for provider calls, reached from synchronous threads.

The tagging service is synchronous and thread-safe (a batch handler runs several objects at once
in threads), while every provider call is a coroutine on one loop that owns the shared HTTP client
(an ``httpx.AsyncClient`` must stay on the loop it was first used on). anyio's blocking portal
runs that loop on a daemon thread; it starts on first use and is kept while the process is warm
(every invocation of a warm Lambda reuses it, with the client's open connections).

Starting the portal loads anyio's asyncio backend (measured ~40 ms CPU, once per process, at the
first provider call); httpx loads the same backend on an HTTP provider's first request anyway, so
only deployments whose providers make no httpx call (the local model, ``basic``, Rekognition through
boto3) pay it extra.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

from autotag.errors import ProviderTimeoutError

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")

THREAD_NAME = "autotag-io"


class EventLoopPortal:
    """One anyio blocking portal (an event loop on a daemon thread), started on first use."""

    def __init__(self) -> None:
        self._context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._lock = threading.Lock()

    def _running(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                # Imported here: anyio's portal is not needed until the first provider call.
                from anyio.from_thread import start_blocking_portal

                context = start_blocking_portal(name=THREAD_NAME)
                self._portal = context.__enter__()
                self._context = context
            return self._portal

    def run(self, func: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """``await func()`` on the loop and return its result; raises :class:`ProviderTimeoutError`
        (code ``deadline``), cancelling the call, when it takes longer than ``timeout`` seconds.
        Refused (RuntimeError) from the loop's own thread: await the coroutine there instead."""
        future = self._running().start_task_soon(func)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ProviderTimeoutError(
                "tagging did not finish before the deadline", code="deadline"
            ) from None

    def close(self) -> None:
        """Stop the loop (cancelling what still runs on it) and join its thread."""
        with self._lock:
            context, self._context, self._portal = self._context, None, None
        if context is not None:
            context.__exit__(None, None, None)
